// Perf buffers (PERF_EVENT_ARRAY + bpf_perf_event_output) through the ring-buffer API:
// every sample once and intact, in order per CPU, across batches and the end of each
// CPU's ring; the kernel's lost counts equal what the BPF side could not write.
import { describe, expect, it } from 'vitest';

import { load, PerfBuffer, type BpfObject } from '../dist/index.js';
import { Child, fixture, syscalls } from './helpers.js';

/**
 * struct record of perfbuf.bpf.c, 16 bytes (32 when wide); the kernel pads a sample's raw
 * data so the whole record is 8-aligned: 20 (36) bytes reach the reader, as with libbpf.
 */
const SAMPLE_BYTES = { narrow: 20, wide: 36 };

interface Sample {
  seq: bigint;
  cpu: number;
  intact: boolean;
  length: number;
}

function counters(obj: BpfObject): { produced: number; failed: number } {
  const raw = obj.map(obj.maps.find((m) => m.name.endsWith('.bss'))?.name ?? '').get(new Uint8Array(4)) as Uint8Array;
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return { produced: Number(v.getBigUint64(0, true)), failed: Number(v.getBigUint64(8, true)) };
}

function drain(pb: PerfBuffer, out: Sample[]): void {
  for (let b = pb.poll(); b; b = pb.poll()) {
    b.forEach((view, off, length) => {
      const seq = view.getBigUint64(off, true);
      out.push({ seq, cpu: view.getUint32(off + 8, true), intact: view.getUint32(off + 12, true) === (~Number(seq & 0xffffffffn) >>> 0), length });
    });
  }
}

describe('perf buffers', () => {
  const variants = [
    { wide: false, copy: false, how: '32-byte records, none straddling the end of a ring, read in place' },
    { wide: true, copy: false, how: '48-byte records, some straddling the end of a ring (those come copied), read in place' },
    { wide: true, copy: true, how: '48-byte records, copied into one reused buffer (forced, as without external buffers)' },
  ];
  it.each(variants)('every sample once and intact, in order on each CPU, through rings that wrap many times: $how', async ({ wide, copy }) => {
    const TRIGGERS = 40;
    const PER = 100; // 3,200 (4,800) ring bytes per trigger through 16 KiB rings
    const child = syscalls('getppid', TRIGGERS, 0, 5000);
    await using obj = await load(fixture('perfbuf.bpf.o'), { globals: { target_tgid: child.pid, per_trigger: PER, wide: wide ? 1 : 0 } });
    const pb = obj.perfbuf('events', { pagesPerCpu: 4, copy });
    expect(pb.zeroCopy).toBe(!copy);
    expect(obj.events('events')).toBe(pb);
    expect(pb).toBeInstanceOf(PerfBuffer);
    using _l = obj.program('produce').attach();
    const got: Sample[] = [];
    const done = child.run();
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished) {
      drain(pb as PerfBuffer, got);
      await new Promise((r) => setTimeout(r, 1));
    }
    drain(pb as PerfBuffer, got);
    const { produced, failed } = counters(obj);
    expect(produced).toBe(TRIGGERS * PER);
    // A slow guest (TCG) may fall behind; what it missed must be exactly what failed.
    expect(failed).toBeLessThan(produced / 4);
    expect(got.length + failed).toBe(produced);
    expect(got.every((s) => s.intact && s.length === SAMPLE_BYTES[wide ? 'wide' : 'narrow'])).toBe(true);
    expect(new Set(got.map((s) => s.seq)).size).toBe(got.length);
    for (const cpu of new Set(got.map((s) => s.cpu))) {
      const seqs = got.filter((s) => s.cpu === cpu).map((s) => s.seq);
      expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1])).toBe(true);
    }
    expect(pb.stats().received).toBe(got.length);
    // The kernel reports a loss with the next record that fits: maybe not yet all.
    expect(pb.stats().lost).toBeLessThanOrEqual(failed);
  });

  it("lost counts: the kernel's PERF_RECORD_LOST sums equal the outputs the BPF side saw fail", async () => {
    // All on CPU 0, so every failure is in the ring the last trigger writes to again: the
    // kernel reports a ring's losses with its next record that fits.
    const pinned = (n: number) => new Child('taskset', ['-c', '0', fixture('syscalls'), 'getppid', String(n)]);
    const PER = 1024; // 32 KiB of samples into a 4 KiB ring, before anything is read
    const flood = pinned(2);
    await using obj = await load(fixture('perfbuf.bpf.o'), { globals: { target_tgid: flood.pid, per_trigger: PER } });
    const pb = obj.perfbuf('events', { pagesPerCpu: 1 });
    using _l = obj.program('produce').attach();
    await flood.run();
    const got: Sample[] = [];
    drain(pb, got);
    const { produced, failed } = counters(obj);
    expect(produced).toBe(2 * PER);
    expect(failed).toBeGreaterThan(0);
    expect(got.length + failed).toBe(produced);
    // One more sample on CPU 0 carries the loss report.
    const one = pinned(1);
    const data = obj.map('.data');
    const cfg = (data.get(new Uint8Array(4)) as Uint8Array).slice();
    // .data: target_tgid, then per_trigger.
    new DataView(cfg.buffer).setUint32(0, one.pid, true);
    new DataView(cfg.buffer).setUint32(4, 1, true);
    data.set(new Uint8Array(4), cfg);
    await one.run();
    drain(pb, got);
    const stats = pb.stats();
    expect(stats.received).toBe(got.length);
    expect(got.length).toBe(produced + 1 - failed);
    expect(stats.lost).toBe(failed);
    expect(pb.lostPerCpu().find((c) => c.cpu === 0)?.lost).toBe(failed);
    expect(got.every((s) => s.intact && s.cpu === 0)).toBe(true);
  });

  it('for await over records, stopped early, keeps the rest; pagesPerCpu is checked', async () => {
    const child = syscalls('getppid', 1);
    await using obj = await load(fixture('perfbuf.bpf.o'), { globals: { target_tgid: child.pid, per_trigger: 30 } });
    expect(() => obj.perfbuf('events', { pagesPerCpu: 3 })).toThrow(expect.objectContaining({ code: 'RANGE' }));
    const pb = obj.perfbuf('events');
    using _l = obj.program('produce').attach();
    await child.run();
    const seqs: bigint[] = [];
    for await (const r of pb) {
      seqs.push(r.view.getBigUint64(r.offset, true));
      if (seqs.length === 10) break;
    }
    for (let b = pb.poll(); b; b = pb.poll()) for (const r of b) seqs.push(r.view.getBigUint64(r.offset, true));
    expect(seqs).toEqual(Array.from({ length: 30 }, (_, i) => BigInt(i)));
    expect(() => obj.ringbuf('events')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});
