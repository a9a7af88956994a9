import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { features, load, type BpfError, type Program } from '../dist/index.js';
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

  it('memcgAccounting: where BPF memory is charged to RLIMIT_MEMLOCK (before 5.11) a load lifts it, as libbpf does; elsewhere it is left alone', async () => {
    /** The soft "Max locked memory" of this process. */
    const memlock = () => /^Max locked memory\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    const before = memlock();
    using obj = await load(fixture('maps.bpf.o'));
    expect(obj.maps.length).toBeGreaterThan(0);
    expect(memlock()).toBe(f.memcgAccounting ? before : 'unlimited');
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

  // The batch kinds, tried for real with no fallback allowed.
  const B = fixture('target');
  const attempts = {
    uprobeMulti: () => ['uprobe_multi.bpf.o', 'on_entry', (p: Program) => p.attachUprobeMulti({ binary: B, symbols: ['nodebpf_target'], fallback: false })],
    uprobeSession: () => ['uprobe_session.bpf.o', 'on_session', (p: Program) => p.attachUprobeMulti({ binary: B, symbols: ['nodebpf_target'], session: true })],
    kprobeMulti: () => ['kprobe_multi.bpf.o', 'on_entry', (p: Program) => p.attachKprobeMulti({ symbols: ['__x64_sys_getpgid'], fallback: false })],
    kprobeSession: () => ['kprobe_session.bpf.o', 'on_session', (p: Program) => p.attachKprobeMulti({ symbols: ['__x64_sys_getpgid'], session: true })],
    tracingMulti: () => ['tracing_multi.bpf.o', 'on_entry', (p: Program) => p.attachTracingMulti({ functions: ['__x64_sys_getpgid'], fallback: false })],
  } as const;
  for (const [feature, make] of Object.entries(attempts) as [keyof typeof attempts, (typeof attempts)[keyof typeof attempts]][]) {
    it(`${feature}: attaching works exactly where features() says so`, async () => {
      const [object, prog, attach] = make();
      const r = await attempt(async () => {
        using obj = await load(fixture(object));
        attach(obj.program(prog)).close();
      });
      if (f[feature]) expect(r).toBe(true);
      else expect(r).toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining(feature) });
    });
  }
});
