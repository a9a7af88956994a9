import { int, range } from './check.js';
import { BpfError } from './errors.js';

/** Encodes and decodes map keys and values. Encoding checks the value: a number that does not fit is a `RANGE` error. */
export interface Codec<T> {
  readonly size?: number;
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** Integers by width and sign; `'raw'`: the bytes as they are. */
export type CodecName = 'u8' | 'u16' | 'u32' | 'u64' | 'i8' | 'i16' | 'i32' | 'i64' | 'raw';
export type CodecSpec<T> = CodecName | Codec<T>;

/** The JS type a named codec decodes to. */
export type Decoded<N> = N extends 'u64' | 'i64' ? bigint : N extends 'raw' ? Uint8Array : N extends CodecName ? number : N extends Codec<infer T> ? T : unknown;

function intCodec(size: 1 | 2 | 4, signed: boolean): Codec<number> {
  const r = range(size * 8, signed);
  return {
    size,
    encode(value) {
      const v = Number(int(`a ${r.name} key or value`, value, r));
      const b = new Uint8Array(size);
      const dv = new DataView(b.buffer);
      if (size === 1) signed ? dv.setInt8(0, v) : dv.setUint8(0, v);
      else if (size === 2) signed ? dv.setInt16(0, v, true) : dv.setUint16(0, v, true);
      else signed ? dv.setInt32(0, v, true) : dv.setUint32(0, v, true);
      return b;
    },
    decode(b) {
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      if (size === 1) return signed ? dv.getInt8(0) : dv.getUint8(0);
      if (size === 2) return signed ? dv.getInt16(0, true) : dv.getUint16(0, true);
      return signed ? dv.getInt32(0, true) : dv.getUint32(0, true);
    },
  };
}

function bigCodec(signed: boolean): Codec<bigint> {
  const r = range(64, signed);
  return {
    size: 8,
    encode(value) {
      const v = int(`a ${r.name} key or value`, value, r);
      const b = new Uint8Array(8);
      const dv = new DataView(b.buffer);
      signed ? dv.setBigInt64(0, v, true) : dv.setBigUint64(0, v, true);
      return b;
    },
    decode(b) {
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      return signed ? dv.getBigInt64(0, true) : dv.getBigUint64(0, true);
    },
  };
}

const NAMED: Record<Exclude<CodecName, 'raw'>, Codec<number> | Codec<bigint>> = {
  u8: intCodec(1, false),
  u16: intCodec(2, false),
  u32: intCodec(4, false),
  i8: intCodec(1, true),
  i16: intCodec(2, true),
  i32: intCodec(4, true),
  u64: bigCodec(false),
  i64: bigCodec(true),
};

/** Bytes as they are; decoded values are plain `Uint8Array` views. */
export const raw: Codec<Uint8Array> = {
  encode: (v) => {
    if (!(v instanceof Uint8Array)) throw new BpfError('EINVAL', `raw keys and values are Uint8Arrays, got ${typeof v}`);
    return v;
  },
  decode: (b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
};

export function resolveCodec<T>(spec: CodecSpec<T> | undefined): Codec<T> {
  if (spec === undefined) return raw as unknown as Codec<T>;
  if (typeof spec === 'string') {
    if (spec === 'raw') return raw as unknown as Codec<T>;
    const c = NAMED[spec as Exclude<CodecName, 'raw'>];
    if (!c) throw new BpfError('EINVAL', `unknown codec '${String(spec)}'; codecs: ${Object.keys(NAMED).join(', ')}`);
    return c as unknown as Codec<T>;
  }
  return spec;
}
