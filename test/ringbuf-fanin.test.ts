// One ring buffer per CPU (nodebpf.bpf.h's NODEBPF_RINGBUF_PER_CPU: an ARRAY_OF_MAPS of
// ring buffers) read as one stream: the consumer makes a ring per online CPU and puts it
// in the CPU's slot, every record arrives once and in order per CPU, refusals of a full
// ring are counted, and closing takes the rings out again. This process is the producer
// (`process.ppid` is one getppid), pinned to one CPU at a time.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { load, type BpfObject, type RingBuffer } from '../dist/index.js';
import { fixture } from './helpers.js';

/** The fixture's ring size: 4 KiB, 24 ring bytes per record. */
const RING_RECORDS = Math.floor(4096 / 24);

function onlineCpus(): number[] {
  return readFileSync('/sys/devices/system/cpu/online', 'utf8')
    .trim()
    .split(',')
    .flatMap((part) => {
      const [a, b = a] = part.split('-').map(Number);
      return Array.from({ length: b - a + 1 }, (_, i) => a + i);
    });
}

/** Pins every thread of this process to `cpu`, or lets them run anywhere again. */
function pin(cpu: number | null): void {
  const cpus = cpu === null ? onlineCpus().join(',') : String(cpu);
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
}

afterEach(() => pin(null));

interface Rec {
  seq: number;
  cpu: number;
  intact: boolean;
}

function drain(rb: RingBuffer, out: Rec[]): void {
  for (let b = rb.poll(); b; b = rb.poll()) {
    for (const r of b) {
      const seq = Number(r.view.getBigUint64(r.offset, true));
      out.push({ seq, cpu: r.view.getUint32(r.offset + 8, true), intact: r.length === 16 && r.view.getUint32(r.offset + 12, true) === (~seq >>> 0) });
    }
  }
}

/** Records attempted on each CPU (`produced[cpu]` in .bss), and their sum. */
function producedOn(obj: BpfObject): bigint[] {
  const raw = obj.map('.bss').get(new Uint8Array(4)) as Uint8Array;
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Array.from({ length: raw.byteLength / 8 }, (_, i) => v.getBigUint64(8 * i, true));
}
const produced = (obj: BpfObject) => Number(producedOn(obj).reduce((s, n) => s + n, 0n));

async function open(per: number): Promise<BpfObject> {
  const obj = await load(fixture('ringbuf_fanin.bpf.o'), { globals: { target_tgid: process.pid, per_trigger: per } });
  obj.program('produce').attach();
  return obj;
}

describe('one ring buffer per CPU, read as one stream', () => {
  for (const copy of [false, true]) {
    it(`a ring in each online CPU's slot; every record once, in order per CPU (${copy ? 'copied' : 'read in place'})`, async () => {
      await using obj = await open(100);
      const rb = obj.ringbuf('fanned', { copy });
      expect(obj.events('fanned')).toBe(rb);
      expect(rb.zeroCopy).toBe(!copy);
      const slots = obj.map('fanned', { key: 'u32', value: 'u32' });
      const cpus = onlineCpus();
      const ids = cpus.map((c) => slots.get(c));
      expect(ids.every((id) => typeof id === 'number' && id > 0)).toBe(true);
      expect(new Set(ids).size).toBe(cpus.length);
      expect(slots.get(63)).toBeUndefined();
      const got: Rec[] = [];
      // Two rounds over the CPUs (a ring holds 170 records): each CPU's records come in
      // batches of their own, the rings taking turns.
      for (let round = 0; round < 2; round++) {
        for (const cpu of cpus) {
          pin(cpu);
          void process.ppid;
        }
        pin(null);
        drain(rb, got);
      }
      expect(produced(obj)).toBe(cpus.length * 200);
      expect(got.length).toBe(cpus.length * 200);
      expect(got.every((r) => r.intact)).toBe(true);
      for (const cpu of cpus) {
        // Each CPU's records, 0..199 in order.
        expect(got.filter((r) => r.cpu === cpu).map((r) => r.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i));
      }
      expect(rb.stats()).toEqual({ received: got.length, batches: expect.any(Number), lost: 0 });
    });
  }

  it('a full ring refuses records, counted: received + lost = produced', async () => {
    await using obj = await open(256);
    const rb = obj.ringbuf('fanned');
    pin(onlineCpus()[0]);
    void process.ppid;
    pin(null);
    const got: Rec[] = [];
    drain(rb, got);
    const { lost } = rb.stats();
    expect(got.length).toBe(RING_RECORDS);
    expect(lost).toBe(256 - RING_RECORDS);
    expect(got.length + (lost ?? 0)).toBe(produced(obj));
  });

  it('for await over the stream, stopped early, keeps the rest', async () => {
    await using obj = await open(50);
    const rb = obj.ringbuf('fanned');
    for (const cpu of onlineCpus()) {
      pin(cpu);
      void process.ppid;
    }
    pin(null);
    const seen: string[] = [];
    for await (const r of rb) {
      seen.push(`${r.view.getUint32(r.offset + 8, true)}:${r.view.getBigUint64(r.offset, true)}`);
      if (seen.length === 10) break;
    }
    const rest: Rec[] = [];
    drain(rb, rest);
    const all = [...seen, ...rest.map((r) => `${r.cpu}:${r.seq}`)].sort();
    const want = onlineCpus().flatMap((cpu) => Array.from({ length: 50 }, (_, i) => `${cpu}:${i}`));
    expect(all).toEqual(want.sort());
  });

  it('closing takes the rings out of their slots (what the BPF side writes then is counted lost); a new consumer puts new ones in', async () => {
    await using obj = await open(10);
    const slots = obj.map('fanned', { key: 'u32', value: 'u32' });
    const rb = obj.ringbuf('fanned');
    const cpu = onlineCpus()[0];
    const first = slots.get(cpu);
    expect(first).toBeGreaterThan(0);
    rb.close();
    expect(slots.get(cpu)).toBeUndefined();
    pin(cpu);
    void process.ppid;
    pin(null);
    const again = obj.ringbuf('fanned');
    expect(again).not.toBe(rb);
    const second = slots.get(cpu);
    expect(second).toBeGreaterThan(0);
    expect(second).not.toBe(first);
    expect(again.stats().lost).toBe(10);
    const got: Rec[] = [];
    drain(again, got);
    expect(got).toEqual([]);
  });

  it('a map of maps whose values are not ring buffers is no event map', async () => {
    await using obj = await open(1);
    expect(() => obj.ringbuf('not_rings')).toThrow(expect.objectContaining({ code: 'EINVAL', map: 'not_rings' }));
    expect(() => obj.events('not_rings')).toThrow(expect.objectContaining({ code: 'EINVAL', map: 'not_rings' }));
  });
});
