// Program knobs before load (libbpf's bpf_program__set_type, __set_expected_attach_type,
// __set_attach_target), through open() and through load()'s `programs` option.
import { describe, expect, it } from 'vitest';

import { load, open } from '../dist/index.js';
import { fixture, kernelFeatures as f, syscalls } from './helpers.js';

const N = 23;
const BPF_PROG_TYPE_KPROBE = 2;
const BPF_PROG_TYPE_TRACEPOINT = 5;
const BPF_TRACE_UPROBE_SESSION = 57;
const BPF_PROG_TYPE_TRACING = 26;
const BPF_TRACE_RAW_TP = 23;
const lacks = (feature: keyof typeof f, what: string) =>
  f[feature] ? '' : ` [skipped: this kernel (${f.kernel}) has no ${what}: features().${feature} is false]`;

describe('program knobs before load', () => {
  it('open() lists name, section, type, expected attach type, attach target and autoload', async () => {
    const o = await open(fixture('attach_kinds.bpf.o'));
    const rows = o.programs.map((p) => ({
      name: p.name,
      section: p.section,
      progType: p.progType,
      expectedAttachType: p.expectedAttachType,
      attachTarget: p.attachTarget,
      autoload: p.autoload,
    }));
    expect(rows).toContainEqual({
      name: 'on_exec',
      section: 'tp_btf/sched_process_exec',
      progType: BPF_PROG_TYPE_TRACING,
      expectedAttachType: BPF_TRACE_RAW_TP,
      attachTarget: 'sched_process_exec',
      autoload: true,
    });
    expect(rows).toContainEqual(expect.objectContaining({ name: 'on_any_tp_btf', section: 'tp_btf', attachTarget: undefined }));
    expect(rows).toContainEqual(expect.objectContaining({ name: 'on_getpgid', progType: BPF_PROG_TYPE_KPROBE, attachTarget: 'getpgid' }));
  });

  it('a type override is what the kernel loads: a SEC("kprobe") program set to tracepoint counts a tracepoint', async () => {
    const child = syscalls('getppid', N);
    const o = await open(fixture('knobs.bpf.o'));
    const p = o.program('counted');
    p.progType = 'tracepoint';
    expect(p.progType).toBe(BPF_PROG_TYPE_TRACEPOINT);
    using obj = await o.load({ globals: { target_tgid: child.pid } });
    expect(obj.program('counted').progType).toBe(BPF_PROG_TYPE_TRACEPOINT);
    using _l = obj.program('counted').attachTracepoint('syscalls', 'sys_enter_getppid');
    expect((await child.run()).code).toBe(0);
    expect(obj.map<number, bigint>('counters', { key: 'u32', value: 'u64' }).get(0)).toBe(BigInt(N));
  });

  it('without the override the kernel refuses it on a tracepoint (the kprobe type is real)', async () => {
    using obj = await load(fixture('knobs.bpf.o'));
    expect(obj.program('counted').progType).toBe(BPF_PROG_TYPE_KPROBE);
    expect(() => obj.program('counted').attachTracepoint('syscalls', 'sys_enter_getppid')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('load({ programs }) takes the same knobs, by number too', async () => {
    const child = syscalls('getppid', N);
    using obj = await load(fixture('knobs.bpf.o'), {
      globals: { target_tgid: child.pid },
      programs: { counted: { type: BPF_PROG_TYPE_TRACEPOINT } },
    });
    using _l = obj.program('counted').attachTracepoint('syscalls', 'sys_enter_getppid');
    await child.run();
    expect(obj.map<number, bigint>('counters', { key: 'u32', value: 'u64' }).get(0)).toBe(BigInt(N));
  });

  it.skipIf(!f.uprobeSession)(`an expected attach type override is what the verifier checks: a session kfunc loads only as a uprobe session${lacks('uprobeSession', 'uprobe sessions')}`, async () => {
    await expect(load(fixture('knobs_session.bpf.o'))).rejects.toMatchObject({ code: 'VERIFIER', program: 'session_probe' });
    const o = await open(fixture('knobs_session.bpf.o'));
    o.program('session_probe').expectedAttachType = 'trace_uprobe_session';
    using obj = await o.load();
    expect(obj.program('session_probe')).toMatchObject({ loaded: true, expectedAttachType: BPF_TRACE_UPROBE_SESSION });
  });

  it('bad values are refused where they are set: unknown names, out-of-range numbers, attachTarget on a kind without one', async () => {
    const o = await open(fixture('knobs.bpf.o'));
    const p = o.program('counted');
    // @ts-expect-error an unknown name is refused by the types too (the setter takes libbpf's names)
    expect(() => (p.progType = 'tracepointz')).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining("'tracepointz'") }));
    expect(() => (p.progType = 2 ** 32)).toThrow(expect.objectContaining({ code: 'RANGE' }));
    expect(() => (p.expectedAttachType = -1)).toThrow(expect.objectContaining({ code: 'RANGE' }));
    await expect(load(fixture('knobs.bpf.o'), { programs: { counted: { expectedAttachType: 1.5 } } })).rejects.toMatchObject({ code: 'RANGE' });
    p.attachTarget = 'vfs_read';
    await expect(o.load()).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('attachTarget is for fentry') });
  });
});
