// Zero-copy ring-buffer delivery: batches read where the kernel wrote the records, given
// back on release; a released batch throws STALE instead of reading memory the kernel
// reuses; the copy path (what runtimes without external ArrayBuffers get) delivers the
// same; closing frees the mapping and its fds at once.
import { describe, expect, it } from 'vitest';

import { load, type EventRecord } from '../dist/index.js';
import { fixture, openFds, produceRecords as produce, syscalls } from './helpers.js';

/** struct record of ringbuf.bpf.c: seq, then value. */
const RECORD_BYTES = 16;


const seq = (r: EventRecord) => r.view.getBigUint64(r.offset, true);
const upTo = (n: number) => Array.from({ length: n }, (_, i) => BigInt(i));

describe('zero-copy ring-buffer batches', () => {
  for (const copy of [false, true]) {
    const mode = copy ? 'copied into one reused buffer (forced, as without external buffers)' : 'read in place';
    it(`every record once, in order, across batches and loops (${mode})`, async () => {
      await using obj = await produce(3000);
      const rb = obj.ringbuf('records', { copy });
      expect(rb.zeroCopy).toBe(!copy);
      const got: bigint[] = [];
      for (let b = rb.poll(); b; b = rb.poll()) {
        expect(b.count).toBe(3000);
        expect(b.byteLength).toBe(3000 * (8 + RECORD_BYTES));
        b.forEach((view, off, len) => {
          expect(len).toBe(RECORD_BYTES);
          got.push(view.getBigUint64(off, true));
        });
      }
      expect(got).toEqual(upTo(3000));
    });

    it(`a released batch throws STALE; an unreleased one is found again (${mode})`, async () => {
      await using obj = await produce(10);
      const rb = obj.ringbuf('records', { copy });
      const first = rb.poll();
      if (!first) throw new Error('no batch');
      const it1 = first[Symbol.iterator]();
      expect(seq(it1.next().value as EventRecord)).toBe(0n);
      first.release();
      expect(first.released).toBe(true);
      expect(() => first.view).toThrow(expect.objectContaining({ code: 'STALE', map: 'records' }));
      expect(() => first.forEach(() => {})).toThrow(expect.objectContaining({ code: 'STALE' }));
      expect(() => it1.next()).toThrow(expect.objectContaining({ code: 'STALE' }));
      // Released: the records went back to the kernel, none is found again.
      expect(rb.poll()).toBeNull();
    });

    it(`records() hands each record over until the iteration moves past its batch; stopping early keeps the rest (${mode})`, async () => {
      await using obj = await produce(50);
      const rb = obj.ringbuf('records', { copy });
      const kept: EventRecord[] = [];
      const got: bigint[] = [];
      for await (const r of rb) {
        got.push(seq(r));
        kept.push(r);
        if (got.length === 20) break;
      }
      // The loop ended inside the batch: the 30 records it did not yield are still there.
      expect(() => kept[0].view).toThrow(expect.objectContaining({ code: 'STALE' }));
      const b = rb.poll();
      expect(b?.count).toBe(30);
      for (const r of b ?? []) got.push(seq(r));
      expect(got).toEqual(upTo(50));
    });
  }

  it('slice() keeps a record past its batch; the batch iterator reuses one record object', async () => {
    await using obj = await produce(5);
    const rb = obj.ringbuf('records');
    const b = rb.poll();
    if (!b) throw new Error('no batch');
    const records = new Set<EventRecord>();
    const copies: Uint8Array[] = [];
    for (const r of b) {
      records.add(r);
      copies.push(r.slice());
    }
    expect(records.size).toBe(1);
    b.release();
    expect(copies.map((c) => new DataView(c.buffer).getBigUint64(0, true))).toEqual(upTo(5));
    expect(copies.every((c) => c.byteLength === RECORD_BYTES)).toBe(true);
  });

  it('close() detaches the buffer (a batch read after it is STALE) and frees the ring\'s fds at once', async () => {
    await using obj = await produce(10);
    // Counted with the object loaded and its producer gone: what the consumer adds.
    const before = openFds();
    const rb = obj.ringbuf('records');
    const b = rb.poll();
    if (!b) throw new Error('no batch');
    rb.close();
    expect(() => b.view).toThrow(expect.objectContaining({ code: 'STALE' }));
    // The waiter thread (if any) lets go of the ring as soon as it wakes.
    const deadline = Date.now() + 5000;
    while (openFds() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(openFds()).toBeLessThanOrEqual(before);
  });
});

describe("ring-buffer loss counts (nodebpf.bpf.h)", () => {
  it('rb.stats(): received + lost == produced exactly, through a 4 KiB ring overrun by output and reserve alike', async () => {
    const PER = 256; // 24 ring bytes each: about 170 fit in 4 KiB
    const child = syscalls('getppid', 3);
    await using obj = await load(fixture('ringbuf_lost.bpf.o'), { globals: { target_tgid: child.pid, per_trigger: PER } });
    const rb = obj.ringbuf('lossy');
    expect(rb.stats()).toEqual({ received: 0, batches: 0, lost: 0 });
    using _l = obj.program('produce').attach();
    await child.run();
    const seqs: bigint[] = [];
    for (let b = rb.poll(); b; b = rb.poll()) for (const r of b) seqs.push(r.view.getBigUint64(r.offset, true));
    const stats = rb.stats();
    const bss = obj.map(obj.maps.find((m) => m.name.endsWith('.bss'))?.name ?? '').get(new Uint8Array(4)) as Uint8Array;
    const produced = Number(new DataView(bss.buffer, bss.byteOffset).getBigUint64(0, true));
    expect(produced).toBe(3 * PER);
    expect(stats.received).toBe(seqs.length);
    expect(stats.lost).toBeGreaterThan(0);
    expect(stats.received + (stats.lost ?? 0)).toBe(produced);
    // The first getppid filled the ring before anything was read: its first records arrived.
    expect(seqs[0]).toBe(0n);
  });

  it('a ring declared without nodebpf.bpf.h has no loss count: lost is undefined', async () => {
    await using obj = await produce(3);
    const rb = obj.ringbuf('records');
    for (let b = rb.poll(); b; b = rb.poll()) b.release();
    expect(rb.stats()).toEqual({ received: 3, batches: 1, lost: undefined });
  });
});
