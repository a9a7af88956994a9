// iter/…, tp_btf/…, lsm/…, ksyscall/… and attach targets set before load. Tracing
// programs do not load on our own kernel (lockdown) and it has no kprobes: the kernel
// matrix runs these (node test/vm/matrix.mjs --kernel 6.12 --exec 'npx vitest run test/attach-kinds.test.ts').
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { load, open, type Link } from '../dist/index.js';
import { drain, fixture, kernelAtLeast, kernelFeatures as f, LSM, lsmActive, openFds, probeEvent, syscalls, type ProbeEvent } from './helpers.js';

const N = 6;
const ARG = 999_999; // no such process: getpgid returns -ESRCH
const ESRCH = 3n;
const lacks = (feature: keyof typeof f, what: string) =>
  f[feature] ? '' : ` [skipped: this kernel (${f.kernel}) has no ${what}: features().${feature} is false]`;
const TRACING = lacks('fentry', 'loadable tracing programs (BPF trampolines)');


const byKind = (events: ProbeEvent[], kind: number) => events.filter((e) => e.kind === kind);

function exec(cmd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, [], { stdio: 'ignore' });
    p.on('error', reject);
    p.on('exit', () => resolve(p.pid!));
  });
}

describe('iterators', () => {
  it.skipIf(!f.fentry)(`iter/task prints every process once: this one with its pid and comm${TRACING}`, async () => {
    using obj = await load(fixture('iter.bpf.o'));
    const text = (await obj.program('dump_task').readIter()).toString();
    const comm = readFileSync('/proc/self/comm', 'utf8').trim();
    const lines = text.split('\n').filter(Boolean);
    expect(lines.filter((l) => l === `${process.pid} ${comm}`)).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith(`${process.pid} `))).toHaveLength(1);
    expect(lines).toContain('1 ' + readFileSync('/proc/1/comm', 'utf8').trim());
    // A stream in chunks, and a fresh iteration each time.
    let chunks = 0;
    let streamed = '';
    for await (const c of obj.program('dump_task').iterate()) {
      chunks++;
      streamed += c.toString();
    }
    expect(chunks).toBeGreaterThan(0);
    // Each iteration's link and file are closed when it ends, or when the loop is left.
    const fds = openFds();
    for await (const _ of obj.program('dump_task').iterate()) break;
    expect(openFds()).toBe(fds);
    expect(streamed.split('\n').filter((l) => l === `${process.pid} ${comm}`)).toHaveLength(1);
    // attach() gives the iterator's link.
    using link = obj.program('dump_task').attach() as Link;
    expect(link.info()).toMatchObject({ kind: 'iter', target: 'task', linkType: 'iter' });
  });

  it.skipIf(!f.fentry)(`iter/bpf_map_elem walks the map it is given: count and sum of what the test put in${TRACING}`, async () => {
    using obj = await load(fixture('iter.bpf.o'));
    const m = obj.map<number, bigint>('numbers', { key: 'u32', value: 'u64' });
    const values = [3n, 5n, 7n, 11n, 1000n];
    values.forEach((v, i) => m.set(i, v));
    const text = (await obj.program('sum_elems').readIter({ map: 'numbers' })).toString();
    expect(text).toBe(`count ${values.length} sum ${values.reduce((a, b) => a + b)}\n`);
    m.set(10, 1n);
    expect((await obj.program('sum_elems').readIter({ map: 'numbers' })).toString()).toBe('count 6 sum 1027\n');
    await expect(obj.program('sum_elems').readIter()).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('walks a map: give one') });
    await expect(obj.program('dump_task').readIter({ map: 'numbers' })).rejects.toMatchObject({ code: 'EINVAL' });
  });
});

describe('tp_btf, lsm, ksyscall', () => {
  it.skipIf(!f.fentry)(`tp_btf/sched_process_exec sees the exec'd child, once, with its pid${TRACING}`, async () => {
    using obj = await load(fixture('attach_kinds.bpf.o'));
    using link = obj.program('on_exec').attach() as Link;
    // The kernel's link type for tp_btf is raw_tracepoint.
    expect(link.info()).toMatchObject({ kind: 'tp_btf', target: 'sched_process_exec', linkType: 'raw_tracepoint' });
    const pid = await exec('/bin/true');
    const mine = byKind(drain(obj.ringbuf('events')).map(probeEvent), 6).filter((e) => e.pid === pid);
    expect(mine).toEqual([expect.objectContaining({ pid, value: BigInt(pid) })]);
  });

  it.skipIf(!f.fentry)(`tp_btf with its target set before load (attachTarget) attaches from the configuration${TRACING}`, async () => {
    const o = await open(fixture('attach_kinds.bpf.o'));
    o.program('on_any_tp_btf').attachTarget = 'sched_process_exec';
    using obj = await o.load();
    const p = obj.program('on_any_tp_btf');
    expect(p).toMatchObject({ loaded: true, attachTarget: 'sched_process_exec' });
    using _l = p.attach() as Link;
    const pid = await exec('/bin/true');
    expect(byKind(drain(obj.ringbuf('events')).map(probeEvent), 10).filter((e) => e.pid === pid)).toEqual([
      expect.objectContaining({ pid, value: BigInt(pid) }),
    ]);
  });

  it.skipIf(!f.fentry)(`tp_btf without a target in its SEC() name loads on an explicit attach to the tracepoint given${TRACING}`, async () => {
    using obj = await load(fixture('attach_kinds.bpf.o'));
    const p = obj.program('on_any_tp_btf');
    expect(p).toMatchObject({ loaded: false, attachTarget: undefined });
    using link = p.attachFentry({ function: 'sched_process_exec' });
    expect(link.info()).toMatchObject({ kind: 'tp_btf', target: 'sched_process_exec', linkType: 'raw_tracepoint' });
    const pid = await exec('/bin/true');
    expect(byKind(drain(obj.ringbuf('events')).map(probeEvent), 10).filter((e) => e.pid === pid)).toEqual([
      expect.objectContaining({ pid, value: BigInt(pid) }),
    ]);
  });

  it.skipIf(!f.fentry)(`fentry with its target set before load (load({ programs: { attachTarget } }))${TRACING}`, async () => {
    const child = syscalls('getpgid', N, ARG);
    using obj = await load(fixture('fentry.bpf.o'), {
      globals: { target_tgid: child.pid },
      programs: { on_any_fentry: { attachTarget: '__x64_sys_getpgid' }, on_fentry: { autoload: false }, on_fexit: { autoload: false } },
    });
    expect(obj.program('on_any_fentry')).toMatchObject({ loaded: true, attachTarget: '__x64_sys_getpgid' });
    using link = obj.program('on_any_fentry').attach() as Link;
    expect(link.info()).toMatchObject({ kind: 'fentry', target: '__x64_sys_getpgid' });
    expect((await child.run()).code).toBe(0);
    expect(drain(obj.ringbuf('events')).map(probeEvent)).toEqual(Array(N).fill(expect.objectContaining({ kind: 5, value: BigInt(ARG) })));
  });

  it.skipIf(!lsmActive)(`lsm/file_open sees the inode of the file this process opens, once${LSM}`, async () => {
    // On tmpfs: on an overlay (the guests' /tmp) one open is two, the overlay's file and
    // the one under it, both with the same inode number.
    const dir = mkdtempSync('/run/nodebpf-lsm-');
    const file = path.join(dir, 'opened');
    writeFileSync(file, 'x');
    try {
      using obj = await load(fixture('lsm.bpf.o'), { globals: { target_tgid: process.pid } });
      using link = obj.program('on_file_open').attach() as Link;
      expect(link.info()).toMatchObject({ kind: 'lsm', target: 'file_open', linkType: 'tracing' });
      closeSync(openSync(file, 'r'));
      const ino = BigInt(statSync(file).ino);
      const seen = drain(obj.ringbuf('events')).map(probeEvent).filter((e) => e.value === ino);
      expect(seen).toEqual([expect.objectContaining({ kind: 7, pid: process.pid, value: ino })]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  const lsmCgroup = kernelAtLeast(6, 0);
  it.skipIf(!f.fentry || !lsmCgroup)(`lsm_cgroup/socket_post_create loads for its hook (libbpf resolves bpf_lsm_<hook> as for lsm/) and is left to a cgroup attach${lsmCgroup ? TRACING : ' [skipped: lsm_cgroup programs came in 6.0]'}`, async () => {
    using obj = await load(fixture('lsm_cgroup.bpf.o'));
    const p = obj.program('allow_sockets');
    expect([p.loaded, p.section]).toEqual([true, 'lsm_cgroup/socket_post_create']);
    expect(() => p.attach()).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('cannot auto-attach') }));
  });

  it.skipIf(!f.kprobe)(`ksyscall/getpgid reads the exact argument through the wrapper's pt_regs; kretsyscall the return value${lacks('kprobe', 'kprobes')}`, async () => {
    const child = syscalls('getpgid', N, ARG);
    using obj = await load(fixture('attach_kinds.bpf.o'), {
      globals: { target_tgid: child.pid },
      programs: { on_exec: { autoload: false }, on_any_tp_btf: { autoload: false } },
    });
    const entry = obj.program('on_getpgid').attach() as Link;
    const exit = obj.program('on_getpgid_ret').attach() as Link;
    expect(entry.info()).toMatchObject({ kind: 'ksyscall', target: '__x64_sys_getpgid' });
    expect(exit.info()).toMatchObject({ kind: 'kretsyscall', target: '__x64_sys_getpgid' });
    expect((await child.run()).code).toBe(0);
    const events = drain(obj.ringbuf('events')).map(probeEvent);
    expect(byKind(events, 8)).toEqual(Array(N).fill(expect.objectContaining({ value: BigInt(ARG) })));
    expect(byKind(events, 9)).toEqual(Array(N).fill(expect.objectContaining({ value: -ESRCH })));
    expect(events).toHaveLength(2 * N);
  });
});
