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

  for (const [section, feature] of [
    ['uprobe-multi', 'uprobeMulti'],
    ['uprobe-session', 'uprobeSession'],
    ['fentry-multi', 'tracingMulti'],
  ] as const) {
    it(`${feature}: a SEC("${section.replace('-', '.')}") program loads only where the kernel has it`, async () => {
      const r = await attempt(async () => (await load(fixture(`sec-${section}.bpf.o`))).close());
      expect(r === true).toBe(f[feature]);
    });
  }
});
