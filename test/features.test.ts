import { describe, expect, it } from 'vitest';

import { features, load, type BpfError } from '../dist/index.js';
import { fixture, kernelFeatures as f, syscalls } from './helpers.js';

const attempt = async (fn: () => Promise<unknown>): Promise<true | BpfError> => {
  try {
    await fn();
    return true;
  } catch (e) {
    return e as BpfError;
  }
};

describe('features() agrees with what the kernel does', () => {
  it('is cached and names the kernel', async () => {
    expect(await features()).toEqual(f);
    expect(f.kernel).toMatch(/^\d+\.\d+/);
    expect(f.btf && f.ringbuf).toBe(true);
  });

  it('kprobe', async () => {
    const r = await attempt(async () => {
      using obj = await load(fixture('kprobes.bpf.o'));
      obj.program('on_kprobe').attachKprobe({ symbol: '__x64_sys_getpgid' }).close();
    });
    if (f.kprobe) expect(r).toBe(true);
    else expect(r).toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('kprobe') });
  });

  it('fentry', async () => {
    const r = await attempt(async () => {
      using obj = await load(fixture('fentry.bpf.o'));
      obj.program('on_fentry').attach().close();
    });
    if (f.fentry) expect(r).toBe(true);
    else expect(r).toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('fentry') });
  });

  it('bpfCookie', async () => {
    const child = syscalls('getppid', 1);
    const r = await attempt(async () => {
      using obj = await load(fixture('uprobe.bpf.o'));
      obj.program('on_entry').attachUprobe({ binary: fixture('target'), symbol: 'nodebpf_target', cookie: 1 }).close();
    });
    child.proc.kill();
    expect(r === true).toBe(f.bpfCookie);
  });

  // Before 6.6 the kernel does not check a kprobe program's expected attach type at load,
  // so a missing uprobe_multi/session only shows at attach: for those, present ⇒ loadable.
  // A tracing program with attach type FENTRY_MULTI loads only where tracing_multi exists.
  for (const [section, feature, both] of [
    ['uprobe-multi', 'uprobeMulti', false],
    ['uprobe-session', 'uprobeSession', false],
    ['fentry-multi', 'tracingMulti', true],
  ] as const) {
    const untestable = !f[feature] && !both;
    const reason = untestable ? ` [skipped: ${f.kernel} lacks ${feature} and does not check the attach type at load]` : '';
    it.skipIf(untestable)(`${feature}: a SEC("${section.replace('-', '.')}") program loads ${both ? 'only ' : ''}where the kernel has it${reason}`, async () => {
      const r = await attempt(async () => (await load(fixture(`sec-${section}.bpf.o`))).close());
      expect(r === true).toBe(f[feature]);
    });
  }
});
