import os from 'node:os';
import { setTimeout as sleep, setImmediate as tick } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';

import { createMap, load, MapType, maxPerCpu, sumPerCpu, type BpfMap } from '../dist/index.js';
import { fixture, kernelAtLeast, possibleCpus, syscalls } from './helpers.js';

const cpus = possibleCpus();

/** More entries than one default batch of small entries holds on most machines' first call. */
const N = 12_000;
/**
 * Entries of the maps-of-maps tests: on 6.1 each inner map put in or taken out waits for an
 * RCU grace period (12 ms under TCG: 12,000 inserts took 146 s there, 94 ms on 6.18).
 */
const NM = 1_000;
/** A value no neighbouring key shares, so a value read under the wrong key shows. */
const valueOf = (k: number) => BigInt(k) * 1_000_003n + 7n;
const expected = (n = N) => Array.from({ length: n }, (_, k) => [k, valueOf(k)] as [number, bigint]);
const byKey = <V>(e: [number, V][]) => [...e].sort((a, b) => a[0] - b[0]);

/** No key twice. */
function expectUnique(keys: number[]): void {
  expect(new Set(keys).size).toBe(keys.length);
}

/** Whether the map's whole-map read went through the kernel's batch commands. */
const batched = (m: BpfMap<number, unknown>) => m._native().lookupBatch().batched;

describe('batch operations', () => {
  it(`hash: ${N} entries written and read back exactly, the batch grown where a bucket is bigger than it`, () => {
    using m = createMap({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 16_384 }, { key: 'u32', value: 'u64' });
    expect(m.setMany(expected())).toBe(N);
    expect(batched(m)).toBe(true);
    expect(byKey(m.lookupBatch() as [number, bigint][])).toEqual(expected());
    // One entry per call: every bucket holding two keys or more answers ENOSPC first.
    expect(byKey(m.lookupBatch({ batchSize: 1 }) as [number, bigint][])).toEqual(expected());
    expect(byKey([...m.entries()] as [number, bigint][])).toEqual(expected());
    expect(m.keys().sort((a, b) => a - b)).toEqual(expected().map(([k]) => k));

    // Absent keys are skipped, not errors: N..N+9 were never there.
    const gone = Array.from({ length: N / 2 }, (_, i) => i * 2);
    expect(m.deleteMany([...gone, ...Array.from({ length: 10 }, (_, i) => N + i)])).toBe(N / 2);
    const odd = expected().filter(([k]) => k % 2 === 1);
    expect(byKey(m.drain() as [number, bigint][])).toEqual(odd);
    expect(m.lookupBatch()).toEqual([]);

    m.setMany(expected());
    expect(m.clear()).toBe(N);
    expect(m.lookupBatch()).toEqual([]);
    expect(m.deleteMany([])).toBe(0);
    expect(m.setMany([])).toBe(0);
  });

  it('LRU hash: read and drained exactly', () => {
    using m = createMap({ type: MapType.LRU_HASH, keySize: 4, valueSize: 8, maxEntries: 32_768 }, { key: 'u32', value: 'u64' });
    expect(m.setMany(expected())).toBe(N);
    expect(byKey(m.lookupBatch({ batchSize: 100 }) as [number, bigint][])).toEqual(expected());
    expect(byKey(m.drain({ batchSize: 100 }) as [number, bigint][])).toEqual(expected());
    expect(m.keys()).toEqual([]);
  });

  it("per-CPU hash and array: every CPU's value, summed and maxed", () => {
    const perCpu = (k: number) => Array.from({ length: cpus }, (_, c) => BigInt(k * cpus + c));
    using h = createMap({ type: MapType.PERCPU_HASH, keySize: 4, valueSize: 8, maxEntries: 16_384 }, { key: 'u32', value: 'u64', perCpu: true });
    const entries = Array.from({ length: N }, (_, k) => [k, perCpu(k)] as [number, bigint[]]);
    expect(h.setMany(entries)).toBe(N);
    expect(byKey(h.lookupBatch() as [number, bigint[]][])).toEqual(entries);
    expect(h.sum(7)).toBe(perCpu(7).reduce((a, b) => a + b));
    expect(h.max(7)).toBe(BigInt(7 * cpus + cpus - 1));
    expect(h.sum(N + 1)).toBeUndefined();
    expect(byKey(h.drain() as [number, bigint[]][])).toEqual(entries);

    // 4-byte values: slots of 8 bytes per CPU, numbers.
    using a = createMap({ type: MapType.PERCPU_ARRAY, keySize: 4, valueSize: 4, maxEntries: 1000 }, { key: 'u32', value: 'u32', perCpu: true });
    const small = Array.from({ length: 1000 }, (_, k) => [k, Array.from({ length: cpus }, (_, c) => k + c)] as [number, number[]]);
    expect(a.setMany(small)).toBe(1000);
    expect(a.lookupBatch()).toEqual(small);
    expect(a.sum(10)).toBe(Array.from({ length: cpus }, (_, c) => 10 + c).reduce((x, y) => x + y));
    expect(a.max(10)).toBe(10 + cpus - 1);
    expect(a.clear()).toBe(1000);
    expect(a.get(999)).toEqual(new Array(cpus).fill(0));

    expect(sumPerCpu([1n, 2n, 3n])).toBe(6n);
    expect(maxPerCpu([3, 9, 2])).toBe(9);
    expect(() => sumPerCpu([])).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => sumPerCpu([1, 2n] as number[])).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    // A map that is not per-CPU gives its value.
    using plain = createMap({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 4 }, { key: 'u32', value: 'u32' });
    plain.set(1, 5);
    expect(plain.sum(1)).toBe(5);
  });

  it(`array: ${N} slots in index order; clear() zeroes them (arrays cannot delete)`, () => {
    using m = createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: N }, { key: 'u32', value: 'u64' });
    expect(m.setMany(expected())).toBe(N);
    expect(batched(m)).toBe(true);
    expect(m.lookupBatch()).toEqual(expected());
    expect(m.lookupBatch({ batchSize: 7 })).toEqual(expected());
    expect(m.clear()).toBe(N);
    expect(m.lookupBatch()).toEqual(expected().map(([k]) => [k, 0n]));
    expect(() => m.deleteMany([1])).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('clear()') }));
    expect(() => m.drain()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    // An index beyond the array stops the batch there, naming the entry; those before it are written.
    expect(() => m.setMany([[0, 1n], [1, 2n], [N, 3n]])).toThrow(expect.objectContaining({ message: expect.stringContaining('entry 2') }));
    expect(m.get(1)).toBe(2n);
  });

  it("'noexist' and 'exist' go key by key (no kernel takes them in a batch) and name the entry refused", () => {
    using m = createMap({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 64 }, { key: 'u32', value: 'u64' });
    m.set(3, 30n);
    expect(() => m.setMany([[1, 1n], [2, 2n], [3, 3n], [4, 4n]], 'noexist')).toThrow(
      expect.objectContaining({ errno: 17, message: expect.stringContaining('entry 2') }),
    );
    expect(byKey(m.lookupBatch() as [number, bigint][])).toEqual([[1, 1n], [2, 2n], [3, 30n]]);
    expect(m.setMany([[1, 10n], [2, 20n]], 'exist')).toBe(2);
    expect(() => m.setMany([[9, 9n]], 'exist')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(m.get(1)).toBe(10n);
  });

  it('sizes are checked before anything is allocated or sent', () => {
    using m = createMap({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 64 });
    // The binding's own checks (its errors carry the code as nodebpfCode; the facade's BpfError as code).
    const n = m._native();
    expect(() => n.updateBatch(new Uint8Array(6), new Uint8Array(8))).toThrow(expect.objectContaining({ nodebpfCode: 'EINVAL', message: expect.stringContaining('multiple of the key size') }));
    expect(() => n.updateBatch(new Uint8Array(8), new Uint8Array(8))).toThrow(expect.objectContaining({ nodebpfCode: 'EINVAL', message: expect.stringContaining('2 values of 8 bytes') }));
    expect(() => n.deleteBatch(new Uint8Array(5))).toThrow(expect.objectContaining({ nodebpfCode: 'EINVAL' }));
    expect(() => m.lookupBatch({ batchSize: 0 })).toThrow(expect.objectContaining({ code: 'RANGE' }));
    expect(() => m.lookupBatch({ batchSize: 1.5 })).toThrow(expect.objectContaining({ code: 'RANGE' }));
    expect(() => m.setMany([[new Uint8Array(4), new Uint8Array(7)]])).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    using q = createMap({ type: MapType.QUEUE, keySize: 0, valueSize: 4, maxEntries: 4 });
    expect(() => q.lookupBatch()).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('needs a map with keys') }));
  });

  it('maps of maps: batched where the kernel has it (5.19), else key by key; the values are the inner maps\' ids', () => {
    using inner = createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    using h = createMap({ type: MapType.HASH_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 16_384, innerMap: inner }, { key: 'u32', value: 'u32' });
    expect(h.setMany(Array.from({ length: NM }, (_, k) => [k, inner.fd] as [number, number]))).toBe(NM);
    expect(batched(h)).toBe(kernelAtLeast(5, 19));
    // Small batches: a walk of many calls.
    const read = h.lookupBatch({ batchSize: 64 }) as [number, number][];
    expect(read.map(([k]) => k).sort((a, b) => a - b)).toEqual(expected(NM).map(([k]) => k));
    const ids = new Set(read.map(([, id]) => id));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toBeGreaterThan(0);
    expect(h.deleteMany(Array.from({ length: 100 }, (_, k) => k))).toBe(100);
    expect(h.drain()).toHaveLength(NM - 100);

    using a = createMap({ type: MapType.ARRAY_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 64, innerMap: inner }, { key: 'u32', value: 'u32' });
    a.setMany([[3, inner.fd], [60, inner.fd]]);
    // Empty slots are not entries.
    expect((a.lookupBatch() as [number, number][]).map(([k]) => k)).toEqual([3, 60]);
    // No batch delete for arrays of maps: key by key.
    expect(a.deleteMany([3, 4])).toBe(1);
    expect(a.clear()).toBe(1);
    expect(a.lookupBatch()).toEqual([]);
  });

  it('a program array (no batch commands on any kernel) is read key by key', async () => {
    using obj = await load(fixture('map_batch.bpf.o'));
    const jumps = obj.map('jumps', { key: 'u32', value: 'u32' });
    jumps.setProgram(1, obj.program('delete_next'));
    jumps.setProgram(5, obj.program('delete_next'));
    expect(batched(jumps)).toBe(false);
    const read = jumps.lookupBatch() as [number, number][];
    expect(read.map(([k]) => k)).toEqual([1, 5]);
    expect(read[0][1]).toBe(read[1][1]);
    expect(jumps.clear()).toBe(2);
    expect(jumps.lookupBatch()).toEqual([]);
  });
});

/**
 * Checks one read taken while keys were being deleted (never added): no key twice, each
 * with its own value, and every key still there after the read was there all along, so
 * must be in it.
 */
function checkRead<V>(read: [number, V][], after: Set<number>, value: (k: number) => V): void {
  const keys = read.map(([k]) => k);
  expectUnique(keys);
  for (const [k, v] of read) expect(v).toEqual(value(k));
  const seen = new Set(keys);
  for (const k of after) expect(seen.has(k)).toBe(true);
}

describe('batch reads while keys are deleted', () => {
  it('deleted by a BPF program: no key twice, every key not deleted seen once', async () => {
    const child = syscalls('getpgid', N + 1000, 0, 20);
    using obj = await load(fixture('map_batch.bpf.o'), { globals: { target_tgid: child.pid } });
    const victims = obj.map('victims', { key: 'u32', value: 'u64' });
    const progress = obj.map('progress', { key: 'u32', value: 'u64' });
    victims.setMany(expected());
    using _link = obj.program('delete_next').attach();
    const done = child.run();
    let reads = 0;
    let overlapped = 0;
    for (;;) {
      const before = progress.get(1) as bigint;
      // Small batches: many calls per read, for the deletes to land between them.
      const read = victims.lookupBatch({ batchSize: 64 }) as [number, bigint][];
      const deletedAfter = progress.get(1) as bigint;
      const after = new Set((victims.lookupBatch() as [number, bigint][]).map(([k]) => k));
      checkRead(read, after, valueOf);
      expect(read.length).toBeLessThanOrEqual(N - Number(before));
      // The program counts a delete just after it: one may be done and not yet counted.
      expect(read.length).toBeGreaterThanOrEqual(N - Number(deletedAfter) - 1);
      // The same through entries().
      checkRead([...victims.entries()] as [number, bigint][], new Set((victims.lookupBatch() as [number, bigint][]).map(([k]) => k)), valueOf);
      reads++;
      if (deletedAfter > before) overlapped++;
      if (deletedAfter >= BigInt(N)) break;
      await tick();
    }
    expect((await done).code).toBe(0);
    expect(victims.lookupBatch()).toEqual([]);
    // With another CPU to run the deleter, some reads ran while it deleted.
    if (os.cpus().length > 1) expect(overlapped).toBeGreaterThan(0);
    expect(reads).toBeGreaterThan(1);
  });

  it('a hash of maps, deleted from another fd (a worker thread): no key twice, every key not deleted seen once', async () => {
    /** Keys per delete call, and reads taken while the worker deletes. */
    const RUN = 8;
    const READS = 12;
    using obj = await load(fixture('map_batch.bpf.o'));
    using inner = createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    const outer = obj.map('outer', { key: 'u32', value: 'u32' });
    outer.setMany(Array.from({ length: NM }, (_, k) => [k, inner.fd] as [number, number]));
    const [[, id]] = outer.lookupBatch({ batchSize: 1 }) as [number, number][];
    // [deleted, stop, deleting]
    const shared = new Int32Array(new SharedArrayBuffer(12));
    const worker = new Worker(
      `const { workerData: d, parentPort } = require('node:worker_threads');
      (async () => {
        const { load } = await import(d.url);
        const obj = await load(d.fixture, { maps: { outer: { reuseFd: d.fd } } });
        const m = obj.map('outer', { key: 'u32' });
        const shared = new Int32Array(d.shared);
        // Runs of keys in the kernel's order (the reader's own), every other run, until
        // told to stop: the deletes catch up with the key the reader is at. Each delete
        // call may wait for an RCU grace period (a map of maps): runs, not single keys,
        // a millisecond apart so that the reads, started with the first, see them land.
        const keys = m.keys();
        Atomics.store(shared, 2, 1);
        for (let i = 0; i < keys.length && !Atomics.load(shared, 1); i += 2 * d.run) {
          Atomics.add(shared, 0, m.deleteMany(keys.slice(i, i + d.run)));
          Atomics.wait(shared, 1, 0, 1);
        }
        obj.close();
        parentPort.postMessage('done');
      })().catch((e) => parentPort.postMessage(String(e)));`,
      { eval: true, workerData: { url: new URL('../dist/index.js', import.meta.url).href, fixture: fixture('map_batch.bpf.o'), fd: outer.fd, shared: shared.buffer, run: RUN } },
    );
    const finished = new Promise<unknown>((resolve) => worker.once('message', resolve));
    let workerDone = false;
    void finished.then(() => (workerDone = true));
    let reads = 0;
    let overlapped = 0;
    try {
      while (!workerDone && !Atomics.load(shared, 2)) await sleep(1);
      // At least READS reads, and on until one overlapped a delete (each may wait a grace
      // period: a few in a read's time).
      while (!workerDone && (reads < READS || overlapped === 0)) {
        const before = Atomics.load(shared, 0);
        const read = outer.lookupBatch({ batchSize: 2 }) as [number, number][];
        const deletedAfter = Atomics.load(shared, 0);
        const after = new Set((outer.lookupBatch() as [number, number][]).map(([k]) => k));
        checkRead(read, after, () => id);
        expect(read.length).toBeLessThanOrEqual(NM - before);
        // The worker counts a run's deletes after the call: up to a run may be done and not yet counted.
        expect(read.length).toBeGreaterThanOrEqual(NM - deletedAfter - RUN);
        reads++;
        if (deletedAfter > before) overlapped++;
        await tick();
      }
    } finally {
      Atomics.store(shared, 1, 1);
      expect(await finished).toBe('done');
      await worker.terminate();
    }
    const left = outer.lookupBatch() as [number, number][];
    expect(left).toHaveLength(NM - Atomics.load(shared, 0));
    expectUnique(left.map(([k]) => k));
    if (os.cpus().length > 1) expect(overlapped).toBeGreaterThan(0);
    expect(Atomics.load(shared, 0)).toBeGreaterThan(0);
  });
});
