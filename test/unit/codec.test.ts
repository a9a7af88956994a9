// The map codecs: widths, little-endian byte order, signedness and range edges.
import { describe, expect, it } from 'vitest';

import { raw, resolveCodec, type Codec, type CodecName } from '../../ts/codec.js';

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

  it('an unknown name is a TypeError naming it', () => {
    expect(() => resolveCodec('u128' as CodecName)).toThrow(new TypeError("unknown codec 'u128'"));
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
