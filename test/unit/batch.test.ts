// Batch parsing over hand-made buffers in the binding's layout: per record a u32 length
// (little-endian), 4 bytes of padding, then the data padded to 8 bytes.
import { describe, expect, it } from 'vitest';

import { Batch } from '../../dist/index.js';

const HEADER = 8;
const ALIGN = 8;
const padded = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** A batch buffer holding `records`, with the padding filled with 0xee so a parser that reads it shows. */
function batchOf(records: Uint8Array[], offset = 0): Uint8Array {
  const size = records.reduce((s, r) => s + HEADER + padded(r.length), 0);
  // At `offset` into a larger allocation: the binding's buffers need not start at 0.
  const backing = new Uint8Array(offset + size).fill(0xee);
  const out = backing.subarray(offset);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let off = 0;
  for (const r of records) {
    view.setUint32(off, r.length, true);
    out.set(r, off + HEADER);
    off += HEADER + padded(r.length);
  }
  return out;
}

/** Records whose bytes say which record and which byte they are. */
const records = (lengths: number[]) => lengths.map((n, i) => Uint8Array.from({ length: n }, (_, j) => (i * 31 + j) & 0xff));

describe('Batch', () => {
  // Lengths around the 8-byte alignment, an empty record, and a large one.
  const LENGTHS = [1, 7, 8, 9, 0, 16, 17, 4096 + 3];

  it('iterating yields every record with its exact length and bytes, in order', () => {
    const input = records(LENGTHS);
    const got = [...new Batch(batchOf(input, 3))];
    expect(got).toEqual(input);
  });

  it('iterating yields views into the batch buffer, not copies', () => {
    const buffer = batchOf(records([5, 12]));
    const [first, second] = new Batch(buffer);
    expect(first.buffer).toBe(buffer.buffer);
    expect(second.byteOffset - buffer.byteOffset).toBe(HEADER + padded(5) + HEADER);
  });

  it('forEach sees the same records as the iterator and returns their count', () => {
    const input = records(LENGTHS);
    const batch = new Batch(batchOf(input, 5));
    const seen: Uint8Array[] = [];
    const n = batch.forEach((view, offset, length) => {
      seen.push(new Uint8Array(view.buffer, view.byteOffset + offset, length).slice());
    });
    expect(n).toBe(input.length);
    expect(seen).toEqual(input);
  });

  it('an empty buffer is a batch of no records', () => {
    const batch = new Batch(new Uint8Array(0));
    expect([...batch]).toEqual([]);
    expect(batch.forEach(() => expect.unreachable())).toBe(0);
  });
});
