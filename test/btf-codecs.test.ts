// BTF codecs through the kernel: values a program wrote (every kind: integers at their
// extremes, negatives, bool, an enum with a negative enumerator, char and byte arrays,
// fixed arrays of scalars and structs, a union, an anonymous struct holding an anonymous
// union, bitfields, a pointer) decoded exactly from a hash map, a per-CPU map and a ring
// buffer; and values JS wrote read back the same.

import { describe, expect, it } from 'vitest';

import { load } from '../dist/index.js';
import { Child, fixture, possibleCpus } from './helpers.js';

/** What bc_kinds' fill() stores, as the codec decodes it. */
const FILLED = {
  u8v: 255,
  s8v: -128,
  u16v: 65535,
  s16v: -32768,
  u32v: 4294967295,
  s32v: -2147483648,
  u64v: 18446744073709551615n,
  s64v: -9223372036854775808n,
  flag: true,
  color: -2,
  name: 'kinds',
  raw: new Uint8Array([1, 2, 255]),
  list: [0, 10, 20, 30],
  points: [
    { x: -1, tag: 7 },
    { x: 300, tag: 8 },
  ],
  w: { whole: 0x04030201, bytes: new Uint8Array([1, 2, 3, 4]) },
  inner_a: 99,
  as_u16: 65533,
  as_s16: -3,
  low: 5,
  high: 8191,
  signed_bits: -16,
  ptr: 0xffff888012345678n,
};

interface Key {
  pid: number;
  comm: string;
}

/** The syscalls fixture pinned to CPU 0, making `n` getppids once started. */
const getppids = (n: number) => new Child('taskset', ['-c', '0', fixture('syscalls'), 'getppid', String(n)]);

describe('BTF codecs through the kernel', () => {
  it("decode what a program wrote: a hash map's struct keys and values, a per-CPU map, ring-buffer records", async () => {
    const child = getppids(1);
    await using obj = await load(fixture('btf_codecs.bpf.o'), { globals: { target_tgid: child.pid } });
    const rb = obj.ringbuf('records');
    using _l = obj.program('store').attach();
    await child.run();
    const things = obj.map<Key, typeof FILLED>('things');
    expect(things.keys()).toEqual([{ pid: child.pid, comm: 'syscalls' }]);
    expect(things.get({ pid: child.pid, comm: 'syscalls' })).toEqual(FILLED);
    const perCpu = obj.map<number, { a: number; b: bigint }, true>('per_cpu', { perCpu: true });
    const slots = perCpu.get(0)!;
    expect(slots).toHaveLength(possibleCpus());
    expect(slots[0]).toEqual({ a: -7, b: 18446744073709551615n });
    expect(slots.slice(1).every((s) => s.a === 0 && s.b === 0n)).toBe(true);
    const records: unknown[] = [];
    rb.poll()?.forEach((view, offset, length) => {
      records.push(obj.type('struct bc_kinds').record(view, offset, length));
    });
    expect(records).toEqual([FILLED]);
  });

  it('what JS writes, read back through the kernel the same; what does not fit refused by field', async () => {
    await using obj = await load(fixture('btf_codecs.bpf.o'));
    const things = obj.map<Key, typeof FILLED>('things');
    const zeroish = { ...FILLED, u64v: 0n, s64v: 9223372036854775807n, s32v: 2147483647, name: 'élan', color: 1, flag: false, signed_bits: 15, low: 0, high: 1, points: [{ x: 32767, tag: 255 }], list: [1] };
    // A union's members overlap: the last one given wins (as_s16 after as_u16).
    things.set({ pid: 1, comm: '' }, zeroish);
    expect(things.get({ pid: 1, comm: '' })).toEqual({ ...zeroish, points: [{ x: 32767, tag: 255 }, { x: 0, tag: 0 }], list: [1, 0, 0, 0], as_u16: 65533 });
    expect(() => things.set({ pid: 2, comm: 'x'.repeat(17) }, FILLED)).toThrow(expect.objectContaining({ code: 'RANGE', message: expect.stringContaining('struct thing_key.comm is 17 bytes') }));
    expect(() => things.set({ pid: 2, comm: 'a' }, { ...FILLED, s8v: -129 })).toThrow(expect.objectContaining({ code: 'RANGE', message: expect.stringContaining('struct bc_kinds.s8v is -129') }));
    expect(() => things.set({ pid: 2, comm: 'a' }, { ...FILLED, high: 8192 })).toThrow(expect.objectContaining({ code: 'RANGE', message: expect.stringContaining('struct bc_kinds.high is 8192') }));
    const { flag: _f, ...noFlag } = FILLED;
    expect(() => things.set({ pid: 2, comm: 'a' }, noFlag as typeof FILLED)).toThrow(expect.objectContaining({ code: 'EINVAL', message: 'struct bc_kinds.flag is missing' }));
    expect(things.keys()).toEqual([{ pid: 1, comm: '' }]);
    // Per-CPU: one value per CPU, or one for all.
    const perCpu = obj.map('per_cpu', { perCpu: true });
    perCpu.set(1, { a: -32768, b: 1n << 63n });
    expect(perCpu.get(1)).toEqual(Array.from({ length: possibleCpus() }, () => ({ a: -32768, b: 1n << 63n })));
    const codec = obj.type<typeof FILLED>('struct bc_kinds');
    expect(codec.size).toBe(codec.encode(FILLED).byteLength);
    expect(codec.decode(codec.encode(FILLED))).toEqual(FILLED);
    expect(() => obj.type('struct nope')).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('struct bc_kinds') }));
  });
});
