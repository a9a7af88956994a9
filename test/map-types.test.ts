import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';

import { createMap, load, MapType, open, pidfdOpen } from '../dist/index.js';
import { Child, fixture, possibleCpus, symbolizer, syscalls } from './helpers.js';

const OBJ = fixture('map_types.bpf.o');
const cpus = possibleCpus();

/** Slots of `results` (map_types.bpf.c). */
const R = {
  TAIL_ENTRY: 0,
  TAIL_TARGET: 1,
  TAIL_FELL_THROUGH: 2,
  ARRAY_OF_MAPS: 3,
  HASH_OF_MAPS: 4,
  QUEUE_POP: 7,
  STACK_POP: 8,
  PERF_OUTPUT: 9,
  STACK_ID: 10,
} as const;

const ENOENT = 2;

/** Whether the kernel's BTF knows a map type (its enum value's name is in the strings). */
const kernelHas = (mapType: string) => readFileSync('/sys/kernel/btf/vmlinux').includes(`\0${mapType}\0`);

/**
 * Loads the object for a child that calls getppid `n` times, attaches the programs that
 * run on it (tail_target only runs as a tail call), runs it, returns the results.
 */
async function runChild<T>(n: number, setup: (obj: Awaited<ReturnType<typeof load>>) => T) {
  const child = syscalls('getppid', n);
  const obj = await load(OBJ, { globals: { target_tgid: child.pid } });
  obj.program('tail_entry').attach();
  obj.program('use_maps').attach();
  const extra = setup(obj);
  const { code } = await child.run();
  expect(code).toBe(0);
  return { obj, extra, results: obj.map('results', { key: 'u32', value: 'i64' }) };
}

describe('map types', () => {
  it('open() lists each map: type, sizes, BTF types, pinning, inner map', async () => {
    const spec = await open(OBJ);
    const m = (name: string) => spec.map(name);
    expect(m('results')).toMatchObject({ mapType: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 16, btfKeyType: '__u32', btfValueType: '__s64', pinning: 'none' });
    expect(m('jmp')).toMatchObject({ mapType: MapType.PROG_ARRAY, keySize: 4, valueSize: 4, btfKeyType: undefined });
    expect(m('outer_array')).toMatchObject({
      mapType: MapType.ARRAY_OF_MAPS,
      valueSize: 4,
      inner: { mapType: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, flags: 0 },
    });
    expect((await open(fixture('bloom.bpf.o'))).map('bloom')).toMatchObject({ mapType: MapType.BLOOM_FILTER, keySize: 0, valueSize: 4, mapExtra: 3, flags: 1 << 6 });
    expect(m('perf_events')).toMatchObject({ mapType: MapType.PERF_EVENT_ARRAY, maxEntries: 0 });
    expect(m('stacks')).toMatchObject({ mapType: MapType.STACK_TRACE, valueSize: 127 * 8 });
  });

  it('PROG_ARRAY: a tail call runs the program set from JS, and falls through while the slot is empty', async () => {
    const { obj, results } = await runChild(3, (o) => o);
    expect([results.get(R.TAIL_ENTRY), results.get(R.TAIL_TARGET), results.get(R.TAIL_FELL_THROUGH)]).toEqual([3n, 0n, 3n]);
    obj.close();
    const second = await runChild(4, (o) => o.map('jmp', { key: 'u32' }).setProgram(0, o.program('tail_target')));
    expect([second.results.get(R.TAIL_ENTRY), second.results.get(R.TAIL_TARGET), second.results.get(R.TAIL_FELL_THROUGH)]).toEqual([4n, 4n, 0n]);
    expect(second.obj.map('jmp', { key: 'u32', value: 'u32' }).get(0)).toBeGreaterThan(0); // the program's id
    second.obj.close();
  });

  it('ARRAY_OF_MAPS / HASH_OF_MAPS: inner maps from createMap, read by the program through the outer map', async () => {
    const inner = () => createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1, name: 'inner' }, { key: 'u32', value: 'u64' });
    const a = inner();
    const h = inner();
    a.set(0, 42n);
    h.set(0, 4242n);
    const { obj, results } = await runChild(1, (o) => {
      o.map('outer_array', { key: 'u32' }).setMap(0, a);
      o.map('outer_hash', { key: 'u32' }).setMap(7, h);
    });
    // The outer maps hold the inner ones: closing our handles leaves them there.
    a.close();
    h.close();
    expect(results.get(R.ARRAY_OF_MAPS)).toBe(42n);
    expect(results.get(R.HASH_OF_MAPS)).toBe(4242n);
    expect(obj.map('outer_hash', { key: 'u32', value: 'u32' }).keys()).toEqual([7]);
    // A map that does not match the inner template is refused by the kernel.
    using wrong = createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    expect(() => obj.map('outer_array', { key: 'u32' }).setMap(1, wrong)).toThrow(expect.objectContaining({ code: 'EINVAL', map: 'outer_array' }));
    expect(() => a.get(0)).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    obj.close();
  });

  it('map of maps without an inner definition: innerMap from another map or a map, else EINVAL', async () => {
    using tmpl = createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 });
    using obj = await load(OBJ, { maps: { outer_array: { innerMap: 'results' }, outer_hash: { innerMap: tmpl } } });
    // `results` has 16 entries: an inner map of 1 no longer fits the template.
    using small = createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 });
    using big = createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 16 });
    expect(() => obj.map('outer_array', { key: 'u32' }).setMap(0, small)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    obj.map('outer_array', { key: 'u32' }).setMap(0, big);
    obj.map('outer_hash', { key: 'u32' }).setMap(0, small);
    expect(() => createMap({ type: MapType.ARRAY_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 1 })).toThrow(
      expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('inner map is needed') }),
    );
    using outer = createMap({ type: MapType.HASH_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 2, innerMap: small }, { key: 'u32' });
    outer.setMap(3, big.maxEntries === 16 ? small : big);
    expect(outer.keys()).toEqual([3]);
  });

  it.skipIf(!kernelHas('BPF_MAP_TYPE_BLOOM_FILTER'))(`BLOOM_FILTER: push and has from JS (map_extra hash functions), peek and push from the program${kernelHas('BPF_MAP_TYPE_BLOOM_FILTER') ? '' : ' [skipped: bloom filter maps need Linux 5.16]'}`, async () => {
    const child = syscalls('getppid', 1);
    using obj = await load(fixture('bloom.bpf.o'), { globals: { target_tgid: child.pid } });
    const b = obj.map('bloom', { value: 'u32' });
    expect(b.has(5)).toBe(false);
    b.push(5);
    expect(b.has(5)).toBe(true);
    obj.program('use_bloom').attach();
    expect((await child.run()).code).toBe(0);
    const seen = obj.map('.data').get(new Uint8Array(4)) as Uint8Array;
    const v = new DataView(seen.buffer, seen.byteOffset);
    // BPF_F_ZERO_SEED: the same bits every run, so 6 is exactly absent.
    expect([v.getBigInt64(0, true), v.getBigInt64(8, true)]).toEqual([1n, 0n]);
    expect(b.has(100)).toBe(true);
  });

  it('QUEUE and STACK: push/pop/peek from JS and from the program, in FIFO and LIFO order', async () => {
    const { obj, results } = await runChild(1, (o) => {
      const q = o.map('queue', { value: 'u32' });
      const s = o.map('stack', { value: 'u32' });
      expect(q.pop()).toBeUndefined();
      for (const v of [1, 2, 3]) q.push(v);
      for (const v of [1, 2]) s.push(v);
      expect(q.peek()).toBe(1);
      expect(s.peek()).toBe(2);
    });
    expect(results.get(R.QUEUE_POP)).toBe(1n);
    expect(results.get(R.STACK_POP)).toBe(2n);
    const q = obj.map('queue', { value: 'u32' });
    const s = obj.map('stack', { value: 'u32' });
    expect([q.pop(), q.pop(), q.pop(), q.pop()]).toEqual([2, 3, 10, undefined]);
    expect([s.pop(), s.pop(), s.pop()]).toEqual([20, 1, undefined]);
    for (let i = 0; i < 8; i++) q.push(i);
    expect(() => q.push(8)).toThrow(expect.objectContaining({ code: 'EINVAL', errno: 7 })); // E2BIG: full
    q.push(8, 'exist'); // drops the oldest
    expect(q.pop()).toBe(1);
    obj.close();
  });

  it('PERF_EVENT_ARRAY: one entry per possible CPU, and bpf_perf_event_output runs against it', async () => {
    const { obj, results } = await runChild(1, () => undefined);
    expect(obj.map('perf_events').maxEntries).toBe(cpus);
    expect(results.get(R.PERF_OUTPUT)).toBe(BigInt(-ENOENT)); // no perf event in the slot yet
    obj.close();
    using sized = await load(OBJ, { maps: { perf_events: { maxEntries: cpus + 100 } } });
    expect(sized.map('perf_events').maxEntries).toBe(cpus);
  });

  it('STACK_TRACE: a user stack by id, frame 0 in the probed function, frame 1 in its caller, frame 2 in main', async () => {
    const target = fixture('stack_target');
    const { inside, start } = symbolizer(target);
    const child = new Child(target, []);
    using obj = await load(OBJ);
    // Past the prologue (push %rbp; mov %rsp,%rbp): the frame-pointer chain then starts at the probed function.
    using _l = obj.program('on_leaf').attachUprobe({ binary: target, symbol: 'nodebpf_leaf', offset: 4n, pid: child.pid });
    const { code, stdout } = await child.run();
    expect([code, stdout.trim()]).toEqual([0, '42']);
    const id = obj.map('results', { key: 'u32', value: 'i64' }).get(R.STACK_ID) as bigint;
    expect(id).toBeGreaterThanOrEqual(0n);
    const stack = obj.map('stacks').stack(Number(id));
    expect(stack).toBeDefined();
    expect(stack![0]).toBe(start('nodebpf_leaf')! + 4n);
    expect(stack!.slice(0, 3).map(inside)).toEqual(['nodebpf_leaf', 'nodebpf_mid', 'main']);
    expect(obj.map('stacks').stack(Number(id) + 1)).toBeUndefined();
  });

  it('the facade codecs work on maps with values: per-CPU, queue, stack trace raw bytes', async () => {
    using pc = createMap({ type: MapType.PERCPU_ARRAY, keySize: 4, valueSize: 4, maxEntries: 2 }, { key: 'u32', value: 'u32' });
    expect(pc.percpu).toBe(true);
    pc.set(1, 9);
    expect(pc.get(1)).toEqual(new Array(cpus).fill(9));
    using q = createMap({ type: MapType.QUEUE, keySize: 0, valueSize: 8, maxEntries: 2 }, { value: 'i64' });
    q.push(-5n);
    expect(q.pop()).toBe(-5n);
    expect(() => createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: -1 })).toThrow(
      expect.objectContaining({ code: 'RANGE', message: expect.stringContaining('maxEntries') }),
    );
  });
});

describe('static initialization (libbpf .values = { [i] = &x })', () => {
  const STATIC = fixture('static_slots.bpf.o');

  async function run(options: { programs?: Record<string, { autoload: boolean }> } = {}) {
    const child = syscalls('getppid', 1);
    const obj = await load(STATIC, { globals: { target_tgid: child.pid }, ...options });
    obj.program('entry').attach();
    obj.map('inner_b', { key: 'u32', value: 'u64' }).set(0, 31n);
    const { code } = await child.run();
    expect(code).toBe(0);
    const r = obj.map('results', { key: 'u32', value: 'i64' });
    const out = [0, 1, 2, 3].map((k) => r.get(k));
    obj.close();
    return out;
  }

  it('a program array and a map of maps get the slots the object sets', async () => {
    const spec = await open(STATIC);
    expect(spec.map('jmp_static')).toMatchObject({ mapType: MapType.PROG_ARRAY, keySize: 4, valueSize: 4, maxEntries: 3 });
    // outer[1] is inner_b (31, set from JS); slot 2 of the program array runs tail_two.
    expect(await run()).toEqual([31n, 0n, 1n, 0n]);
  });

  it('a program configured not to load leaves its slot empty: the tail call falls through', async () => {
    expect(await run({ programs: { tail_two: { autoload: false } } })).toEqual([31n, 0n, 0n, 1n]);
  });
});

describe('map knobs before load', () => {
  it('mapFlags and numaNode reach the kernel; out-of-range numbers are RANGE naming the knob', async () => {
    using obj = await load(OBJ, { maps: { results: { mapFlags: 1 << 3 /* BPF_F_RDONLY */ }, queue: { numaNode: 0 } } });
    expect(obj.map('results').flags).toBe(1 << 3);
    expect(() => obj.map('results', { key: 'u32', value: 'i64' }).set(0, 1n)).toThrow(expect.objectContaining({ code: 'EPERM' }));
    expect(obj.map('queue').flags).toBe(0);
    await expect(load(OBJ, { maps: { results: { numaNode: -1 } } })).rejects.toMatchObject({ code: 'RANGE', message: expect.stringContaining("map 'results' numaNode") });
    await expect(load(OBJ, { maps: { results: { mapFlags: 2 ** 32 } } })).rejects.toMatchObject({ code: 'RANGE', message: expect.stringContaining('mapFlags') });
    await expect(load(OBJ, { maps: { results: { reuseFd: 1.5 } } })).rejects.toMatchObject({ code: 'RANGE', message: expect.stringContaining('reuseFd') });
    const spec = await open(OBJ);
    expect(() => (spec.map('results').flags = -1)).toThrow(expect.objectContaining({ code: 'RANGE' }));
  });

  it('reuseFd: the object uses the map given (checked to match), INCOMPATIBLE when it does not', async () => {
    using mine = createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 16, name: 'shared' }, { key: 'u32', value: 'i64' });
    const child = syscalls('getppid', 1);
    const spec = await open(OBJ);
    spec.map('results').reuseFd(mine);
    using obj = await spec.load({ globals: { target_tgid: child.pid } });
    obj.program('tail_entry').attach();
    await child.run();
    expect(mine.get(R.TAIL_ENTRY)).toBe(1n); // the program wrote into our map
    obj.close();
    expect(mine.get(R.TAIL_ENTRY)).toBe(1n); // and it outlives the object
    using other = createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 8 });
    await expect(load(OBJ, { maps: { results: { reuseFd: other } } })).rejects.toMatchObject({
      code: 'INCOMPATIBLE',
      map: 'results',
      message: expect.stringContaining('max_entries is 8, the object'),
    });
    const fd = openSync('/proc/self/stat', 'r');
    try {
      await expect(load(OBJ, { maps: { results: { reuseFd: fd } } })).rejects.toMatchObject({ code: 'EINVAL' });
    } finally {
      closeSync(fd);
    }
  });

  it('pinPath per map: pinned there, reused by the next load, INCOMPATIBLE when the pinned map differs', async () => {
    const dir = mkdtempSync('/sys/fs/bpf/nodebpf-maptypes-');
    try {
      const path = `${dir}/my_results`;
      {
        using first = await load(OBJ, { maps: { results: { pinPath: path } } });
        expect(first.map('results').pinned).toBe(path);
        first.map('results', { key: 'u32', value: 'i64' }).set(5, 55n);
      }
      expect(existsSync(path)).toBe(true);
      const spec = await open(OBJ);
      spec.map('results').setPinPath(path);
      using second = await spec.load();
      expect(second.map('results', { key: 'u32', value: 'i64' }).get(5)).toBe(55n);
      await expect(load(OBJ, { maps: { results: { pinPath: path, maxEntries: 4 } } })).rejects.toMatchObject({
        code: 'INCOMPATIBLE',
        message: expect.stringContaining(`the map pinned at ${path}`),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Whether the running kernel knows a map type: its name in the kernel's BTF (`enum bpf_map_type`). */

describe('local storage maps', () => {
  const task = kernelHas('BPF_MAP_TYPE_TASK_STORAGE');
  const noTask = task ? '' : ' [skipped: task storage maps need Linux 5.11]';
  it.skipIf(!task)(`TASK_STORAGE from a program; SK_STORAGE and INODE_STORAGE keyed by fds from JS${noTask}`, async () => {
    const child = syscalls('getppid', 3);
    using obj = await load(fixture('storage.bpf.o'), { globals: { target_tgid: child.pid } });
    obj.program('count_task').attach();
    const { code } = await child.run();
    expect(code).toBe(0);
    expect(obj.map('seen', { key: 'u32', value: 'i64' }).get(0)).toBe(3n); // the task's own counter, per call
    expect(obj.map('task_calls').mapType).toBe(MapType.TASK_STORAGE);
    const sock = createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    try {
      const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
      const tag = obj.map('sock_tag', { key: 'i32', value: 'u64' });
      expect(tag.get(fd)).toBeUndefined();
      tag.set(fd, 99n);
      expect(tag.get(fd)).toBe(99n);
    } finally {
      sock.close();
    }
    const file = openSync(fixture('storage.bpf.o'), 'r');
    try {
      const tag = obj.map('inode_tag', { key: 'i32', value: 'u64' });
      expect(tag.get(file)).toBeUndefined();
      tag.set(file, 5n);
      expect(tag.get(file)).toBe(5n);
      expect(tag.delete(file)).toBe(true);
    } finally {
      closeSync(file);
    }
  });

  it.skipIf(!task)(`TASK_STORAGE from JS: keyed by a pidfd, the same value the program counts${noTask}`, async () => {
    // This process calls getppid itself (`process.ppid` asks every time), from its main thread.
    using obj = await load(fixture('storage.bpf.o'), { globals: { target_tgid: process.pid } });
    obj.program('count_task').attach();
    const pidfd = pidfdOpen(process.pid);
    try {
      const calls = obj.map('task_calls', { key: 'i32', value: 'u64' });
      expect(calls.get(pidfd)).toBeUndefined();
      calls.set(pidfd, 100n);
      for (let i = 0; i < 3; i++) expect(process.ppid).toBeGreaterThan(0);
      expect(calls.get(pidfd)).toBe(103n);
      expect(obj.map('seen', { key: 'u32', value: 'i64' }).get(0)).toBe(103n);
      expect(calls.delete(pidfd)).toBe(true);
    } finally {
      closeSync(pidfd);
    }
    expect(() => pidfdOpen(0)).toThrow(expect.objectContaining({ code: 'RANGE' }));
  });

  it.skipIf(!kernelHas('BPF_MAP_TYPE_CGRP_STORAGE'))('CGRP_STORAGE (6.2+): set from JS by cgroup fd, read by a program', async () => {
    const child = syscalls('getppid', 1);
    using obj = await load(fixture('cgrp_storage.bpf.o'), { globals: { target_tgid: child.pid } });
    obj.program('read_cgroup').attach();
    // The child's cgroup in the cgroup v2 hierarchy, wherever it is mounted (hybrid hosts:
    // /sys/fs/cgroup/unified); mounted for the test where it is not (the QEMU guests).
    let mount = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' - ')[1]?.startsWith('cgroup2 '))
      ?.split(' ')[4];
    const ours = mount === undefined ? mkdtempSync('/tmp/nodebpf-cgroup2-') : undefined;
    if (ours) execFileSync('mount', ['-t', 'cgroup2', 'none', (mount = ours)]);
    const own = readFileSync(`/proc/${child.pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    expect(own).toBeDefined();
    const cg = openSync(`${mount}${own!.slice(3)}`, 'r');
    try {
      const tags = obj.map('cgroup_tag', { key: 'i32', value: 'u64' });
      tags.set(cg, 77n);
      expect(tags.get(cg)).toBe(77n);
      const { code } = await child.run();
      expect(code).toBe(0);
      expect(obj.map('seen', { key: 'u32', value: 'i64' }).get(0)).toBe(77n);
      expect(tags.delete(cg)).toBe(true);
    } finally {
      closeSync(cg);
      if (ours) {
        execFileSync('umount', [ours]);
        rmSync(ours, { recursive: true });
      }
    }
  });
});
