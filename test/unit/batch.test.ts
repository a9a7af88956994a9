// Batches over hand-made buffers: the addon writes each record's data offset and length
// into an index (it alone knows the kernel's record layouts, tested in Rust); a batch
// walks that index over its view. Records can be anywhere in the buffer.
import { describe, expect, it } from 'vitest';

import { Batch } from '../../dist/index.js';

/** `records` laid out at `offset` of a buffer whose other bytes are 0xee, 5 bytes apart, and their index. */
function batchOf(records: Uint8Array[], offset = 0): { batch: Batch; released: Batch[]; current: { gen: number } } {
  const backing = new Uint8Array(offset + records.reduce((s, r) => s + r.length + 5, 0) + 16).fill(0xee);
  const index = new Uint32Array(2 * records.length + 6).fill(0xdead);
  let off = offset;
  records.forEach((r, i) => {
    backing.set(r, off);
    index[2 * i] = off;
    index[2 * i + 1] = r.length;
    off += r.length + 5;
  });
  const current = { gen: 1 };
  const released: Batch[] = [];
  const batch = new Batch('test', current, new DataView(backing.buffer), index, records.length, off - offset, (b) => {
    released.push(b);
    current.gen++;
  });
  return { batch, released, current };
}

/** Records whose bytes say which record and which byte they are. */
const records = (lengths: number[]) => lengths.map((n, i) => Uint8Array.from({ length: n }, (_, j) => (i * 31 + j) & 0xff));

describe('Batch', () => {
  // An empty record, and a large one.
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

  it('records are views into the buffer, not copies', () => {
    const input = records([5, 12]);
    const { batch } = batchOf(input, 16);
    expect(Array.from(batch, (r) => r.offset)).toEqual([16, 16 + 5 + 5]);
    expect(Array.from(batch, (r) => r.bytes().buffer === batch.view.buffer)).toEqual([true, true]);
  });

  it('forEach sees the same records as the iterator and returns their count', () => {
    const input = records(LENGTHS);
    const { batch } = batchOf(input, 8);
    const seen: Uint8Array[] = [];
    const n = batch.forEach((view, offset, length) => {
      seen.push(new Uint8Array(view.buffer, view.byteOffset + offset, length).slice());
    });
    expect(n).toBe(input.length);
    expect(batch.count).toBe(input.length);
    expect(seen).toEqual(input);
  });

  it('release() hands it back once; after that every read is STALE, also an iteration under way', () => {
    const { batch, released } = batchOf(records([3, 4, 5]));
    const it = batch[Symbol.iterator]();
    expect(it.next().done).toBe(false);
    batch.release();
    batch.release();
    expect(released.length).toBe(1);
    expect(released[0]).toBe(batch);
    expect(batch.released).toBe(true);
    expect(() => it.next()).toThrow(expect.objectContaining({ code: 'STALE', map: 'test' }));
    expect(() => batch.view).toThrow(expect.objectContaining({ code: 'STALE', map: 'test' }));
    expect(() => batch.forEach(() => {})).toThrow(expect.objectContaining({ code: 'STALE' }));
    expect(() => [...batch]).toThrow(expect.objectContaining({ code: 'STALE' }));
  });

  it('an iteration that reached its end before the release stays ended', () => {
    const { batch } = batchOf(records([3]));
    const it = batch[Symbol.iterator]();
    expect(it.next().done).toBe(false);
    expect(it.next().done).toBe(true);
    batch.release();
    expect(() => it.next()).toThrow(expect.objectContaining({ code: 'STALE' }));
  });

  it('a batch of no records', () => {
    const { batch } = batchOf([]);
    expect([...batch]).toEqual([]);
    expect(batch.forEach(() => expect.unreachable())).toBe(0);
  });
});
