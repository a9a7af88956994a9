// Batch parsing over hand-made buffers in the kernel ring's layout: per record a u32
// length (little-endian, bit 30 set when the BPF side discarded it), 4 more header bytes,
// then the data padded to 8 bytes. A batch starts anywhere in its buffer.
import { describe, expect, it } from 'vitest';

import { Batch } from '../../dist/index.js';

const HEADER = 8;
const ALIGN = 8;
const DISCARD_BIT = 1 << 30;
const padded = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** A ring span holding `records` at `offset` of a larger buffer whose other bytes are 0xee. */
function spanOf(records: Uint8Array[], offset = 0, discarded = new Set<number>()): { view: DataView; start: number; length: number } {
  const length = records.reduce((s, r) => s + HEADER + padded(r.length), 0);
  const backing = new Uint8Array(offset + length + 16).fill(0xee);
  const view = new DataView(backing.buffer);
  let off = offset;
  records.forEach((r, i) => {
    view.setUint32(off, r.length | (discarded.has(i) ? DISCARD_BIT : 0), true);
    backing.set(r, off + HEADER);
    off += HEADER + padded(r.length);
  });
  return { view, start: offset, length };
}

function batchOf(records: Uint8Array[], offset = 0, discarded = new Set<number>()): { batch: Batch; released: Batch[]; current: { gen: number } } {
  const { view, start, length } = spanOf(records, offset, discarded);
  const current = { gen: 1 };
  const released: Batch[] = [];
  const batch = new Batch('test', current, view, start, length, records.length - discarded.size, (b) => {
    released.push(b);
    current.gen++;
  });
  return { batch, released, current };
}

/** Records whose bytes say which record and which byte they are. */
const records = (lengths: number[]) => lengths.map((n, i) => Uint8Array.from({ length: n }, (_, j) => (i * 31 + j) & 0xff));

describe('Batch', () => {
  // Lengths around the 8-byte alignment, an empty record, and a large one.
  const LENGTHS = [1, 7, 8, 9, 0, 16, 17, 4096 + 3];

  it('iterating yields every record with its exact length and bytes, in order, through one reused record', () => {
    const input = records(LENGTHS);
    const { batch } = batchOf(input, 24);
    const seen = new Set<unknown>();
    const got = Array.from(batch, (r) => {
      seen.add(r);
      return r.slice();
    });
    expect(got).toEqual(input);
    expect(seen.size).toBe(1);
  });

  it('records are views into the span, not copies', () => {
    const input = records([5, 12]);
    const { batch } = batchOf(input, 16);
    const offsets = Array.from(batch, (r) => r.offset);
    expect(offsets).toEqual([16 + HEADER, 16 + HEADER + padded(5) + HEADER]);
  });

  it('forEach sees the same records as the iterator and returns their count; discarded ones are skipped', () => {
    const input = records(LENGTHS);
    const { batch } = batchOf(input, 8, new Set([1, 4]));
    const seen: Uint8Array[] = [];
    const n = batch.forEach((view, offset, length) => {
      seen.push(new Uint8Array(view.buffer, view.byteOffset + offset, length).slice());
    });
    const kept = input.filter((_, i) => i !== 1 && i !== 4);
    expect(n).toBe(kept.length);
    expect(batch.count).toBe(kept.length);
    expect(seen).toEqual(kept);
    expect(Array.from(batch, (r) => r.slice())).toEqual(kept);
  });

  it('release() hands it back once; after that every read is STALE', () => {
    const { batch, released } = batchOf(records([3, 4]));
    batch.release();
    expect(released.length).toBe(1);
    expect(released[0]).toBe(batch);
    expect(batch.released).toBe(true);
    expect(() => batch.view).toThrow(expect.objectContaining({ code: 'STALE', map: 'test' }));
    expect(() => batch.forEach(() => {})).toThrow(expect.objectContaining({ code: 'STALE' }));
    expect(() => [...batch]).toThrow(expect.objectContaining({ code: 'STALE' }));
  });

  it('an empty span is a batch of no records', () => {
    const { batch } = batchOf([]);
    expect([...batch]).toEqual([]);
    expect(batch.forEach(() => expect.unreachable())).toBe(0);
  });
});
