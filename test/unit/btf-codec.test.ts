// Codecs compiled from a BTF type table made by hand (the addon's table has this shape;
// test/btf-types.test.ts checks it against clang's BTF on the kernel): every kind, at the
// offsets the table gives, padding left alone, and encoding that refuses what does not fit.
import { describe, expect, it } from 'vitest';

import { BpfError, compileCodec, TypeTable, type BtfType } from '../../dist/index.js';

const base = { size: 0, typeId: 0, len: 0, bits: 0, signed: false, char: false, bool: false };
const int = (id: number, name: string, size: number, o: Partial<BtfType> = {}): BtfType => ({ ...base, id, kind: 'int', name, size, bits: size * 8, ...o });
const typedef = (id: number, name: string, typeId: number): BtfType => ({ ...base, id, kind: 'typedef', name, typeId });
const array = (id: number, typeId: number, len: number): BtfType => ({ ...base, id, kind: 'array', name: '', typeId, len });
const member = (name: string, typeId: number, byte: number, bitSize = 0, bit = 0) => ({ name, typeId, bitOffset: byte * 8 + bit, bitSize });

const TYPES: BtfType[] = [
  int(1, 'unsigned int', 4),
  typedef(2, '__u32', 1),
  int(3, 'int', 4, { signed: true }),
  typedef(4, '__s32', 3),
  int(5, 'unsigned long long', 8),
  typedef(6, '__u64', 5),
  int(7, 'long long', 8, { signed: true }),
  typedef(8, '__s64', 7),
  int(9, 'char', 1, { signed: true, char: true }),
  array(10, 9, 16),
  int(11, 'unsigned char', 1),
  typedef(12, '__u8', 11),
  array(13, 12, 4),
  int(14, 'unsigned short', 2),
  typedef(15, '__u16', 14),
  int(16, 'signed char', 1, { signed: true }),
  typedef(17, '__s8', 16),
  { ...base, id: 18, kind: 'struct', name: 'inner', size: 4, members: [member('a', 15, 0), member('b', 17, 2)] },
  array(19, 2, 3),
  { ...base, id: 20, kind: 'enum', name: 'kind', size: 4, signed: true, values: [{ name: 'K_NEG', value: '-1' }, { name: 'K_ONE', value: '1' }] },
  int(21, '_Bool', 1, { bool: true }),
  { ...base, id: 22, kind: 'union', name: 'u', size: 4, members: [member('x', 2, 0), member('raw', 13, 0)] },
  { ...base, id: 23, kind: 'ptr', name: '', typeId: 0 },
  { ...base, id: 24, kind: 'float', name: 'double', size: 8 },
  {
    ...base,
    id: 25,
    kind: 'struct',
    name: 'event',
    size: 96,
    members: [
      member('pid', 2, 0),
      member('ret', 4, 4),
      member('ts', 6, 8),
      member('delta', 8, 16),
      member('comm', 10, 24),
      member('addr', 13, 40),
      member('in', 18, 44),
      member('nums', 19, 48),
      member('k', 20, 60),
      member('ok', 21, 64),
      member('u', 22, 68),
      member('flag', 1, 72, 1, 0),
      member('mode', 3, 72, 3, 1),
      member('ptr', 23, 80),
      member('f', 24, 88),
    ],
  },
  { ...base, id: 26, kind: 'struct', name: '', size: 8, members: [member('v', 2, 0), member('', 27, 4)] },
  { ...base, id: 27, kind: 'union', name: '', size: 4, members: [member('w', 2, 0), member('h', 15, 0)] },
  typedef(28, 'pair_t', 26),
];

const table = new TypeTable(TYPES);
const event = compileCodec<Record<string, unknown>>(table.layout(table.find('struct event')!), 'struct event');

const EVENT = {
  pid: 4_294_967_295,
  ret: -2_147_483_648,
  ts: 18_446_744_073_709_551_615n,
  delta: -9_223_372_036_854_775_808n,
  comm: 'node',
  addr: new Uint8Array([127, 0, 0, 1]),
  in: { a: 65_535, b: -128 },
  nums: [1, 2, 3],
  k: -1,
  ok: true,
  u: { x: 0x01020304, raw: new Uint8Array([4, 3, 2, 1]) },
  flag: 1,
  mode: -4,
  ptr: 0xffff_8880_1234_5678n,
  f: 0.5,
};

describe('codecs from BTF', () => {
  it('decode every kind at the offsets the BTF gives', () => {
    const b = new Uint8Array(96).fill(0xee);
    const v = new DataView(b.buffer);
    v.setUint32(0, 7, true);
    v.setInt32(4, -100, true);
    v.setBigUint64(8, 1n << 63n, true);
    v.setBigInt64(16, -5n, true);
    b.set(new TextEncoder().encode('cat\0garbage'), 24);
    b.set([10, 0, 0, 1], 40);
    v.setUint16(44, 513, true);
    v.setInt8(46, -3);
    [9, 8, 7].forEach((n, i) => v.setUint32(48 + 4 * i, n, true));
    v.setInt32(60, 1, true);
    v.setUint8(64, 1);
    v.setUint32(68, 0xaabbccdd, true);
    v.setUint8(72, 0b1011); // flag = 1, mode = 0b101 = -3 as 3 signed bits
    v.setBigUint64(80, 0xdeadbeefn, true);
    v.setFloat64(88, -1.25, true);
    expect(event.decode(b)).toEqual({
      pid: 7,
      ret: -100,
      ts: 1n << 63n,
      delta: -5n,
      comm: 'cat',
      addr: new Uint8Array([10, 0, 0, 1]),
      in: { a: 513, b: -3 },
      nums: [9, 8, 7],
      k: 1,
      ok: true,
      u: { x: 0xaabbccdd, raw: new Uint8Array([0xdd, 0xcc, 0xbb, 0xaa]) },
      flag: 1,
      mode: -3,
      ptr: 0xdeadbeefn,
      f: -1.25,
    });
  });

  it('round-trip extremes; padding stays zero', () => {
    const { u: _u, ...rest } = EVENT;
    const bytes = event.encode({ ...rest, u: { x: 0x01020304 } });
    expect(bytes.byteLength).toBe(96);
    expect(event.decode(bytes)).toEqual({ ...rest, u: { x: 0x01020304, raw: new Uint8Array([4, 3, 2, 1]) } });
    expect([...bytes.subarray(47, 48), ...bytes.subarray(65, 68), ...bytes.subarray(73, 80)].every((x) => x === 0)).toBe(true);
  });

  it('a record read in place at an offset, and a short one refused', () => {
    const buf = new Uint8Array(200);
    buf.set(event.encode({ ...EVENT, u: { x: 1 } }), 100);
    expect(event.decodeAt(new DataView(buf.buffer), 100)).toMatchObject({ pid: EVENT.pid, comm: 'node' });
    expect(() => event.record(new DataView(buf.buffer), 100, 95)).toThrow(/a 95-byte record is decoded as struct event, which is 96 bytes/);
  });

  it('anonymous members flattened; a typedef names an anonymous struct; 64-bit as numbers while exact', () => {
    expect(table.layout(table.find('pair_t')!)).toMatchObject({ kind: 'struct', name: 'pair_t' });
    const pair = compileCodec(table.layout(table.find('pair_t')!), 'pair_t', 'number-if-safe');
    expect(pair.decode(pair.encode({ v: 1, w: 0x10002 }))).toEqual({ v: 1, w: 0x10002, h: 2 });
    const wide = compileCodec(table.layout(6), '__u64', 'number-if-safe');
    expect(wide.decode(wide.encode(2 ** 53 - 1))).toBe(2 ** 53 - 1);
    expect(wide.decode(wide.encode(2n ** 53n))).toBe(2n ** 53n);
  });

  it('encoding refuses what does not fit, naming the field', () => {
    const bad = (patch: Record<string, unknown>) => {
      try {
        event.encode({ ...EVENT, ...patch });
      } catch (e) {
        expect(e).toBeInstanceOf(BpfError);
        return `${(e as BpfError).code}: ${(e as BpfError).message}`;
      }
      throw new Error('encoded');
    };
    expect(bad({ pid: -1 })).toMatch(/^RANGE: struct event\.pid is -1, outside the allowed range 0\.\.=4294967295 \(u32\)/);
    expect(bad({ ts: 1n << 64n })).toMatch(/^RANGE: struct event\.ts /);
    expect(bad({ pid: 1.5 })).toMatch(/^RANGE: .*not an integer/);
    expect(bad({ comm: 'x'.repeat(17) })).toMatch(/^RANGE: struct event\.comm is 17 bytes of UTF-8, more than its char\[16\] holds/);
    expect(bad({ nums: [1, 2, 3, 4] })).toMatch(/^RANGE: struct event\.nums has 4 elements, more than its 3/);
    expect(bad({ in: { a: 1 } })).toMatch(/^EINVAL: struct event\.in\.b is missing/);
    expect(bad({ in: { a: 1, b: 128 } })).toMatch(/^RANGE: struct event\.in\.b is 128/);
    expect(bad({ u: {} })).toMatch(/^EINVAL: struct event\.u sets none of the union's members \(x, raw\)/);
    expect(bad({ mode: 4 })).toMatch(/^RANGE: struct event\.mode is 4, outside the allowed range -4\.\.=3 \(i3\)/);
    expect(bad({ ok: 2 })).toMatch(/^RANGE: struct event\.ok is 2/);
    expect(bad({ addr: [1, 2] })).toMatch(/^EINVAL: struct event\.addr must be a Uint8Array, got an array/);
  });

  it('hostile tables fail with EINVAL, not a crash or a hang', () => {
    const loop = new TypeTable([typedef(1, 'a', 2), typedef(2, 'b', 1)]);
    expect(() => loop.layout(1)).toThrow(/loop of typedefs/);
    const dangling = new TypeTable([typedef(1, 'a', 99)]);
    expect(() => dangling.layout(1)).toThrow(/refers to a type the BTF does not have/);
    const nest = new TypeTable([{ ...base, id: 1, kind: 'struct', name: 's', size: 4, members: [member('self', 1, 0)] }]);
    expect(() => nest.layout(1)).toThrow(/nests deeper/);
    const huge = new TypeTable([int(1, 'int', 4), array(2, 1, 2 ** 31)]);
    expect(() => huge.layout(2)).toThrow(/too large/);
  });
});
