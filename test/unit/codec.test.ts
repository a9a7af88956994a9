// The map codecs: widths, little-endian byte order, signedness and range edges.
import { describe, expect, it } from 'vitest';

import { raw, resolveCodec, type Codec, type CodecName } from '../../ts/codec.js';
import { BpfError } from '../../ts/errors.js';

const bytes = (...b: number[]) => Uint8Array.from(b);

describe('named codecs', () => {
  const cases: [CodecName, number | bigint, Uint8Array][] = [
    ['u8', 0xff, bytes(0xff)],
    ['i8', -1, bytes(0xff)],
    ['i8', -128, bytes(0x80)],
    ['u16', 0x1234, bytes(0x34, 0x12)],
    ['i16', -2, bytes(0xfe, 0xff)],
    ['u32', 0xdeadbeef, bytes(0xef, 0xbe, 0xad, 0xde)],
    ['i32', -2_147_483_648, bytes(0, 0, 0, 0x80)],
    ['u64', 0xffff_ffff_ffff_ffffn, bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)],
    ['i64', -3n, bytes(0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)],
    ['u64', 1n << 40n, bytes(0, 0, 0, 0, 0, 1, 0, 0)],
  ];
  for (const [name, value, encoded] of cases) {
    it(`${name}: ${value} is ${Buffer.from(encoded).toString('hex')} (little-endian) and back`, () => {
      const c = resolveCodec<number | bigint>(name);
      expect(c.size).toBe(encoded.length);
      expect(c.encode(value)).toEqual(encoded);
      expect(c.decode(encoded)).toBe(value);
    });
  }

  it('decodes from a view at an offset into a larger buffer', () => {
    const backing = bytes(0xaa, 0x78, 0x56, 0x34, 0x12, 0xbb);
    expect(resolveCodec<number>('u32').decode(backing.subarray(1, 5))).toBe(0x12345678);
  });

  it('an unknown name is a BpfError EINVAL naming it', () => {
    expect(() => resolveCodec('u128' as CodecName)).toThrow(BpfError);
    expect(() => resolveCodec('u128' as CodecName)).toThrow(/unknown codec 'u128'/);
  });

  // Every width refuses what does not fit instead of wrapping it (2^32 would overwrite key 0).
  const outOfRange: [CodecName, unknown][] = [
    ['u8', 256],
    ['u8', -1],
    ['i8', 128],
    ['i8', -129],
    ['u16', 65536],
    ['i16', -32769],
    ['u32', 2 ** 32],
    ['u32', -1],
    ['u32', NaN],
    ['u32', 1.5],
    ['u32', 'x'],
    ['i32', 2 ** 31],
    ['u64', 2n ** 64n],
    ['u64', -1n],
    ['u64', 0.5],
    ['i64', 2n ** 63n],
    ['i64', -(2n ** 63n) - 1n],
  ];
  for (const [name, value] of outOfRange) {
    it(`${name} refuses ${typeof value === 'bigint' ? `${value}n` : String(value)} with RANGE`, () => {
      const c = resolveCodec<unknown>(name);
      let error: unknown;
      try {
        c.encode(value);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(BpfError);
      expect((error as BpfError).code).toBe('RANGE');
      expect((error as BpfError).message).toContain(name);
    });
  }

  it('64-bit codecs take safe-integer numbers too, and the edges fit', () => {
    expect(resolveCodec<number | bigint>('u64').encode(5)).toEqual(bytes(5, 0, 0, 0, 0, 0, 0, 0));
    expect(resolveCodec<number>('i8').encode(-128)).toEqual(bytes(0x80));
    expect(resolveCodec<number>('u32').encode(2 ** 32 - 1)).toEqual(bytes(0xff, 0xff, 0xff, 0xff));
  });
});

describe('raw and custom codecs', () => {
  it('without a codec, bytes pass through and decode to a view of the same memory', () => {
    const c = resolveCodec<Uint8Array>(undefined);
    expect(c).toBe(raw);
    const b = bytes(1, 2, 3, 4).subarray(1, 3);
    const d = c.decode(b);
    expect(d).toEqual(bytes(2, 3));
    expect(d.buffer).toBe(b.buffer);
    expect(c.encode(b)).toBe(b);
  });

  it('a codec object is used as given', () => {
    const pair: Codec<[number, number]> = {
      size: 2,
      encode: ([a, b]) => bytes(a, b),
      decode: (b) => [b[0], b[1]],
    };
    expect(resolveCodec(pair)).toBe(pair);
  });
});
