// Ring-buffer edges: records straddling the end of the ring (wrap-around) at several ring
// and record sizes, BPF-side discards, and the 4 MiB cap on what one batch hands JS.
// The producers run on getppid of this test's own thread (`process.ppid` is one getppid),
// so the test decides exactly when records are made and how many.
import { describe, expect, it } from 'vitest';

import { load, type BpfObject, type RingBuffer } from '../dist/index.js';
import { fixture, syscalls } from './helpers.js';

/**
 * These producers fill records with bpf_loop (5.17); a kernel without it (5.10) refuses
 * them at load ("unknown func", or its func_info count, its callbacks being no subprograms
 * to it). Any other load failure leaves the tests on, to fail.
 */
const noBpfLoop = await load(fixture('ringbuf_wrap.bpf.o')).then(
  (o) => (o.close(), ''),
  (e: { code?: string; verifierLog?: string }) =>
    e.code === 'VERIFIER' && /func_info|unknown func|invalid func/.test(e.verifierLog ?? '') ? ' [skipped: no bpf_loop (5.17) on this kernel]' : '',
);

const KIB = 1024;
const MIB = 1024 * KIB;
/** The kernel's per-record header in the ring, and the alignment of records there. */
const RING_HEADER = 8;
const RING_ALIGN = 8;
/** struct rec in ringbuf_edges.h: seq, len, pad, then the payload. */
const REC_HEADER = 16;
const PATTERN_MUL = 31n;
/** MAX_BATCH_BYTES in crates/napi/src/events.rs: bytes of records with their headers handed to JS per batch at most. */
const MAX_BATCH_BYTES = 4 * MIB;

const footprint = (recBytes: number) => Math.ceil((RING_HEADER + recBytes) / RING_ALIGN) * RING_ALIGN;

/** The .bss counters, in declaration order. */
function counters(obj: BpfObject, names: string[]): Record<string, bigint> {
  const bss = obj.maps.find((m) => m.name.endsWith('.bss'));
  if (!bss) throw new Error('no .bss map');
  const raw = obj.map(bss.name).get(new Uint8Array(4));
  if (!(raw instanceof Uint8Array)) throw new Error('no .bss value');
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Object.fromEntries(names.map((n, i) => [n, v.getBigUint64(i * 8, true)]));
}

/**
 * Checks one struct rec: its length and every payload byte against the pattern of its
 * sequence number. Returns the sequence number, or a description of what is wrong.
 */
function checkRecord(rec: Uint8Array, recBytes: number): bigint | string {
  if (rec.length !== recBytes) return `length ${rec.length}, not ${recBytes}`;
  const v = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
  const seq = v.getBigUint64(0, true);
  if (v.getUint32(8, true) !== recBytes) return `seq ${seq}: len field ${v.getUint32(8, true)}`;
  const base = Number((seq * PATTERN_MUL) & 0xffn);
  for (let i = REC_HEADER; i < recBytes; i++) {
    const want = (base + i - REC_HEADER) & 0xff;
    if (rec[i] !== want) return `seq ${seq}: payload byte ${i - REC_HEADER} is ${rec[i]}, not ${want}`;
  }
  return seq;
}

/** Everything in the ring now, copied out of the batches. */
function drainNow(rb: RingBuffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let b = rb.poll(); b; b = rb.poll()) for (const r of b) out.push(r.slice());
  return out;
}

describe.skipIf(noBpfLoop)(`ring-buffer wrap-around${noBpfLoop}`, () => {
  const RINGS = [
    { index: 0, map: 'ring_4k', size: 4 * KIB },
    { index: 1, map: 'ring_16k', size: 16 * KIB },
    { index: 2, map: 'ring_64k', size: 64 * KIB },
  ];
  // 37, 100 and 1000 bytes take 48, 112 and 1008 ring bytes: none divides a power of two,
  // and 37 is not a multiple of 8 (the padding is exercised too).
  const REC_SIZES = [37, 100, 1000];
  // Bytes pushed through each ring, in ring sizes.
  const LAPS = 4;
  // Each trigger fills at most this share of the ring, which the test drains before the
  // next: nothing can be dropped, and where the ring ends moves from trigger to trigger.
  const FILL = 0.75;

  for (const ring of RINGS) {
    for (const recBytes of REC_SIZES) {
      it(`${recBytes}-byte records through a ${ring.size / KIB} KiB ring, ${LAPS} times its size: every one once, in order, intact`, async () => {
        const per = Math.floor((ring.size * FILL) / footprint(recBytes));
        const triggers = Math.ceil((LAPS * ring.size) / (per * footprint(recBytes)));
        using obj = await load(fixture('ringbuf_wrap.bpf.o'), {
          globals: { target_tid: process.pid, per_trigger: per, rec_bytes: recBytes, ring_index: ring.index },
        });
        using _l = obj.program('produce').attach();
        const rb = obj.ringbuf(ring.map);
        const problems: string[] = [];
        let next = 0n;
        for (let t = 0; t < triggers; t++) {
          void process.ppid; // one getppid: `per` records, in the ring when it returns
          const recs = drainNow(rb);
          if (recs.length !== per) problems.push(`trigger ${t}: ${recs.length} records, not ${per}`);
          for (const r of recs) {
            const seq = checkRecord(r, recBytes);
            if (seq !== next) problems.push(typeof seq === 'string' ? seq : `seq ${seq} where ${next} was due`);
            next++;
          }
        }
        expect(problems).toEqual([]);
        expect(next).toBe(BigInt(per * triggers));
        expect(next * BigInt(footprint(recBytes))).toBeGreaterThanOrEqual(BigInt(LAPS * ring.size));
        expect(counters(obj, ['produced', 'dropped'])).toEqual({ produced: BigInt(per * triggers), dropped: 0n });
      });
    }
  }

  it('consumed while a paced producer runs: received + dropped == produced, in order and intact, the missing ones exactly the drops', async () => {
    const RING = { index: 1, map: 'ring_16k', size: 16 * KIB };
    const REC_BYTES = 100;
    const PER = 50; // 5,600 ring bytes per trigger: a third of the ring
    const TRIGGERS = 200; // about 70 times the ring's size
    const PACE_US = 200;
    const child = syscalls('getppid', TRIGGERS, 0, PACE_US);
    using obj = await load(fixture('ringbuf_wrap.bpf.o'), {
      globals: { target_tid: child.pid, per_trigger: PER, rec_bytes: REC_BYTES, ring_index: RING.index },
    });
    using _l = obj.program('produce').attach();
    const rb = obj.ringbuf(RING.map);
    const problems: string[] = [];
    const seen: bigint[] = [];
    const done = child.run();
    let exited = false;
    void done.then(() => (exited = true));
    // Until the producer has exited and the ring is empty: records may still arrive
    // between its exit and the last batch.
    const ac = new AbortController();
    void done.then(() => ac.abort());
    for await (const batch of rb.batches({ signal: ac.signal })) {
      for (const r of batch) {
        const seq = checkRecord(r.bytes(), REC_BYTES);
        if (typeof seq === 'string') problems.push(seq);
        else seen.push(seq);
      }
    }
    expect(exited).toBe(true);
    for (const r of drainNow(rb)) {
      const seq = checkRecord(r, REC_BYTES);
      if (typeof seq === 'string') problems.push(seq);
      else seen.push(seq);
    }
    expect(problems).toEqual([]);
    const { produced, dropped } = counters(obj, ['produced', 'dropped']);
    expect(produced).toBe(BigInt(TRIGGERS * PER));
    expect(BigInt(seen.length) + dropped).toBe(produced);
    // Strictly increasing (no duplicate, no reordering), and the gaps are the drops: a
    // sequence number is taken before the reserve, so each failed reserve leaves one gap.
    const unordered = seen.filter((s, i) => i > 0 && s <= seen[i - 1]);
    expect(unordered).toEqual([]);
    const received = new Set(seen);
    let missing = 0n;
    for (let s = 0n; s < produced; s++) if (!received.has(s)) missing++;
    expect(missing).toBe(dropped);
  });
});

describe.skipIf(noBpfLoop)(`ring-buffer discards${noBpfLoop}`, () => {
  it('records the BPF side discards never arrive; the submitted ones do, in order, through a wrapping 4 KiB ring', async () => {
    const PER = 100; // 2,400 of the 4,096 ring bytes: discarded records take room too
    const TRIGGERS = 20; // about 12 times the ring's size
    using obj = await load(fixture('ringbuf_wrap.bpf.o'), { globals: { target_tid: process.pid, per_trigger: PER } });
    using _l = obj.program('produce_discarding').attach();
    const rb = obj.ringbuf('ring_discard');
    const got: bigint[] = [];
    const torn: string[] = [];
    for (let t = 0; t < TRIGGERS; t++) {
      void process.ppid;
      for (const r of drainNow(rb)) {
        const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
        const seq = v.getBigUint64(0, true);
        if (r.length !== 16 || v.getBigUint64(8, true) !== BigInt.asUintN(64, ~seq)) torn.push(`seq ${seq}`);
        got.push(seq);
      }
    }
    const total = PER * TRIGGERS;
    expect(torn).toEqual([]);
    expect(got).toEqual(Array.from({ length: total / 2 }, (_, i) => BigInt(2 * i)));
    // The .bss: produced, dropped (ringbuf_edges.h), then submitted, discarded.
    expect(counters(obj, ['produced', 'dropped', 'submitted', 'discarded'])).toEqual({
      produced: BigInt(total),
      dropped: 0n,
      submitted: BigInt(total / 2),
      discarded: BigInt(total / 2),
    });
  });
});

describe.skipIf(noBpfLoop)(`ring-buffer batch cap${noBpfLoop}`, () => {
  it(`more than ${MAX_BATCH_BYTES / MIB} MiB waiting: batches of at most ${MAX_BATCH_BYTES / MIB} MiB of records, all of them delivered in order`, async () => {
    const REC_BYTES = 1000;
    const TOTAL_BYTES = 6 * MIB; // in a 16 MiB ring: all fits before anything is read
    const n = Math.ceil(TOTAL_BYTES / REC_BYTES);
    using obj = await load(fixture('ringbuf_cap.bpf.o'), { globals: { target_tid: process.pid, per_trigger: n, rec_bytes: REC_BYTES } });
    using _l = obj.program('produce').attach();
    const rb = obj.ringbuf('ring_big');
    void process.ppid; // all n records, before any consumer runs
    expect(counters(obj, ['produced', 'dropped'])).toEqual({ produced: BigInt(n), dropped: 0n });
    const sizes: number[] = [];
    const problems: string[] = [];
    let next = 0n;
    for await (const batch of rb.batches()) {
      let bytes = 0;
      for (const r of batch) {
        bytes += footprint(r.length);
        const seq = checkRecord(r.bytes(), REC_BYTES);
        if (seq !== next) problems.push(typeof seq === 'string' ? seq : `seq ${seq} where ${next} was due`);
        next++;
      }
      expect(bytes).toBe(batch.byteLength);
      expect(bytes).toBeLessThanOrEqual(MAX_BATCH_BYTES);
      sizes.push(batch.forEach(() => {}));
      if (next >= BigInt(n)) break;
    }
    expect(problems).toEqual([]);
    expect(next).toBe(BigInt(n));
    // The binding fills a batch up to the cap and leaves the rest in the ring for the next.
    const perBatch = Math.floor(MAX_BATCH_BYTES / footprint(REC_BYTES));
    expect(sizes).toEqual([perBatch, n - perBatch]);
    expect(rb.poll()).toBeNull();
  });
});
