// kprobes and fentry/fexit: our own kernel has neither, the kernel matrix runs these.
import { describe, expect, it } from 'vitest';

import { load } from '../dist/index.js';
import { drain, fixture, guestKernel, kernelFeatures as f, probeEvent, syscalls, type ProbeEvent } from './helpers.js';

const N = 6;
const ARG = 999_999; // no such process: getpgid returns -ESRCH
const ESRCH = 3n;
const lacks = (feature: keyof typeof f, what: string) =>
  f[feature] ? '' : ` [skipped: this kernel (${f.kernel}) has no ${what}: features().${feature} is false]`;

async function run(object: string, attach: (obj: Awaited<ReturnType<typeof load>>) => void): Promise<ProbeEvent[]> {
  const child = syscalls('getpgid', N, ARG);
  using obj = await load(fixture(object), { globals: { target_tgid: child.pid } });
  attach(obj);
  expect((await child.run()).code).toBe(0);
  return drain(obj.ringbuf('events')).map(probeEvent);
}

const byKind = (events: ProbeEvent[], kind: number) => events.filter((e) => e.kind === kind);

describe('kernel probes', () => {
  it.skipIf(!f.kprobe)(`kprobe and kretprobe see N calls, the argument, the return value and cookies${f.bpfCookie ? '' : ' (no cookies: 0)'}${lacks('kprobe', 'kprobes')}`, async () => {
    // Without cookies (before 5.15) the program reads 0; uprobe.test.ts checks a given one is UNSUPPORTED.
    const [c1, c2] = f.bpfCookie ? [11, 22] : [undefined, undefined];
    const events = await run('kprobes.bpf.o', (obj) => {
      obj.program('on_kprobe').attachKprobe({ symbol: '__x64_sys_getpgid', cookie: c1 });
      obj.program('on_kretprobe').attachKprobe({ symbol: '__x64_sys_getpgid', retprobe: true, cookie: c2 });
    });
    expect(byKind(events, 0)).toEqual(Array(N).fill(expect.objectContaining({ value: BigInt(ARG), cookie: BigInt(c1 ?? 0) })));
    expect(byKind(events, 1)).toEqual(Array(N).fill(expect.objectContaining({ value: -ESRCH, cookie: BigInt(c2 ?? 0) })));
    expect(events).toHaveLength(2 * N);
  });

  it.skipIf(!f.kprobe)(`ksyscall/getpgid attaches from its SEC() name${lacks('kprobe', 'kprobes')}`, async () => {
    let kind = '';
    const events = await run('kprobes.bpf.o', (obj) => {
      kind = obj.program('on_ksyscall').attach().info().kind;
    });
    expect(kind).toBe('ksyscall');
    expect(events).toEqual(Array(N).fill(expect.objectContaining({ kind: 4, value: BigInt(ARG) })));
  });

  it.skipIf(!f.fentry)(`fentry and fexit from SEC() see N calls, the argument and the return value${lacks('fentry', 'BPF trampolines (fentry)')}`, async () => {
    const events = await run('fentry.bpf.o', (obj) => {
      const l = obj.program('on_fentry').attach();
      expect(l.info()).toMatchObject({ kind: 'fentry', target: '__x64_sys_getpgid', linkType: 'tracing' });
      obj.program('on_fexit').attach();
    });
    expect(byKind(events, 2)).toEqual(Array(N).fill(expect.objectContaining({ value: BigInt(ARG) })));
    expect(byKind(events, 3)).toEqual(Array(N).fill(expect.objectContaining({ value: -ESRCH })));
  });

  it.skipIf(!f.fentry || !f.bpfCookie)(`fentry with its target and cookie given at attach time${lacks('fentry', 'BPF trampolines (fentry)') || lacks('bpfCookie', 'attach cookies')}`, async () => {
    const events = await run('fentry.bpf.o', (obj) => {
      const p = obj.program('on_any_fentry');
      expect(p.loaded).toBe(false);
      p.attachFentry({ function: '__x64_sys_getpgid', cookie: 33 });
    });
    expect(events).toEqual(Array(N).fill(expect.objectContaining({ kind: 5, value: BigInt(ARG), cookie: 33n })));
  });

  it.skipIf(!f.fentry)(`fentry on a function the kernel does not have → ENOENT naming it${lacks('fentry', 'BPF trampolines (fentry)')}`, async () => {
    using obj = await load(fixture('fentry.bpf.o'));
    expect(() => obj.program('on_any_fentry').attachFentry({ function: 'nodebpf_no_such_function' })).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('nodebpf_no_such_function') }),
    );
  });
});

/**
 * What each matrix kernel must report. Debian builds 6.1 without CONFIG_FPROBE, so its
 * 6.1 has no kprobe_multi although the kernel version does. 5.10 (Debian 11) predates
 * attach cookies (5.15) and every multi link; it has BTF and fentry (attached through
 * BPF_RAW_TRACEPOINT_OPEN: LINK_CREATE takes tracing programs from 5.13).
 */
const EXPECTED: Record<string, Partial<typeof f>> = {
  '5.10': { memcgAccounting: false, bpfCookie: false, kprobe: true, kprobeMulti: false, kprobeSession: false, uprobeMulti: false, uprobeSession: false, fentry: true, tracingMulti: false },
  '6.1': { memcgAccounting: true, kprobe: true, kprobeMulti: false, kprobeSession: false, uprobeMulti: false, uprobeSession: false, fentry: true, tracingMulti: false },
  '6.12': { memcgAccounting: true, kprobe: true, kprobeMulti: true, kprobeSession: true, uprobeMulti: true, uprobeSession: false, fentry: true, tracingMulti: false },
  '7.2': { memcgAccounting: true, kprobe: true, kprobeMulti: true, kprobeSession: true, uprobeMulti: true, uprobeSession: true, fentry: true, tracingMulti: true },
};
const guest = guestKernel;

describe('features() on the matrix kernels', () => {
  it.skipIf(!guest)(`matches what kernel ${guest ?? '(none)'} has${guest ? '' : ' [skipped: not running in a kernel-matrix guest]'}`, () => {
    expect(f.kernel.startsWith(guest ?? '-')).toBe(true);
    expect(f).toMatchObject({ btf: true, ringbuf: true, bpfCookie: true, ...EXPECTED[guest ?? ''] });
    expect(EXPECTED[guest ?? '']).toBeDefined();
  });
});
