// What compiled and generated codecs call: the reads and writes that are not one DataView
// call (strings, bytes, bitfields, 128-bit integers) and the checks every encoded value
// passes. Generated files import it as `btfRuntime`, so this is public, stable API.
import { BpfError } from '../errors.js';
import { int, range, type IntRange } from '../check.js';
import type { ReadonlyDataView } from '../ringbuf.js';

const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();
/** Beyond it a number is no longer exact (Number.MAX_SAFE_INTEGER). */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const U64_MASK = (1n << 64n) - 1n;

const ranges = {
  u8: range(8, false),
  u16: range(16, false),
  u32: range(32, false),
  u64: range(64, false),
  u128: range(128, false),
  i8: range(8, true),
  i16: range(16, true),
  i32: range(32, true),
  i64: range(64, true),
  i128: range(128, true),
} as const satisfies Record<string, IntRange>;

function missing(path: string, what: string, x: unknown): never {
  throw new BpfError('EINVAL', `${path} must be ${what}, got ${x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x}`);
}

/** `makeCodec`, reachable from generated code as `rt.codec` (hoisted: defined below). */
function makeCodecLazy<T>(
  decode: (v: ReadonlyDataView, o: number) => T,
  encode: (v: DataView, o: number, x: unknown, p: string) => void,
  size: number,
  type: string,
): TypeCodec<T> {
  return makeCodec(decode, encode, size, type);
}

export const btfRuntime = {
  /** The integer ranges by name (`u8` … `i128`). */
  ranges,

  /** `char[size]` at `at`: the text up to the first NUL (all of it when there is none). */
  str(v: ReadonlyDataView, at: number, size: number): string {
    const b = new Uint8Array(v.buffer, v.byteOffset + at, size);
    const end = b.indexOf(0);
    return utf8.decode(end < 0 ? b : b.subarray(0, end));
  },

  /** A copy of `size` bytes at `at` (a record's memory is the kernel's again once released). */
  bytes(v: ReadonlyDataView, at: number, size: number): Uint8Array {
    return new Uint8Array(v.buffer.slice(v.byteOffset + at, v.byteOffset + at + size));
  },

  /** A 64-bit integer as a number while it is a safe integer, else a bigint. */
  n64(x: bigint): number | bigint {
    return x <= MAX_SAFE && x >= -MAX_SAFE ? Number(x) : x;
  },

  i128(v: ReadonlyDataView, at: number, signed: boolean): bigint {
    const lo = v.getBigUint64(at, true);
    const hi = signed ? v.getBigInt64(at + 8, true) : v.getBigUint64(at + 8, true);
    return (hi << 64n) | lo;
  },

  /** A bitfield: `bitSize` bits from bit `bitOffset` after `at` (little-endian). */
  bits(v: ReadonlyDataView, at: number, bitOffset: number, bitSize: number, signed: boolean): bigint {
    const first = at + (bitOffset >> 3);
    const shift = BigInt(bitOffset & 7);
    const n = ((bitOffset & 7) + bitSize + 7) >> 3;
    let word = 0n;
    for (let i = n - 1; i >= 0; i--) word = (word << 8n) | BigInt(v.getUint8(first + i));
    const x = (word >> shift) & ((1n << BigInt(bitSize)) - 1n);
    return signed ? BigInt.asIntN(bitSize, x) : x;
  },

  /** An integer of at most 32 bits, checked: a `RANGE` error names `path`. */
  num(x: unknown, r: IntRange, path: string): number {
    return typeof x === 'number' && Number.isInteger(x) && x >= Number(r.min) && x <= Number(r.max) ? x : Number(int(path, x, r));
  },

  /** An integer of 64 or more bits, checked. */
  big(x: unknown, r: IntRange, path: string): bigint {
    return int(path, x, r);
  },

  bool(x: unknown, path: string): number {
    if (typeof x === 'boolean') return x ? 1 : 0;
    return Number(int(path, x, { min: 0n, max: 1n, name: 'bool' }));
  },

  float(x: unknown, path: string): number {
    if (typeof x !== 'number') missing(path, 'a number', x);
    return x;
  },

  /** Text into `char[size]`: refused when its UTF-8 is longer; the rest zeroed. */
  setStr(v: DataView, at: number, size: number, x: unknown, path: string): void {
    if (typeof x !== 'string') missing(path, 'a string', x);
    const b = utf8Encoder.encode(x);
    if (b.byteLength > size) throw new BpfError('RANGE', `${path} is ${b.byteLength} bytes of UTF-8, more than its char[${size}] holds`);
    new Uint8Array(v.buffer, v.byteOffset + at, size).set(b);
  },

  /** Bytes into `u8[size]`: refused when longer; the rest zeroed. */
  setBytes(v: DataView, at: number, size: number, x: unknown, path: string): void {
    if (!(x instanceof Uint8Array)) missing(path, 'a Uint8Array', x);
    if (x.byteLength > size) throw new BpfError('RANGE', `${path} is ${x.byteLength} bytes, more than its ${size}`);
    new Uint8Array(v.buffer, v.byteOffset + at, size).set(x);
  },

  setI128(v: DataView, at: number, x: unknown, signed: boolean, path: string): void {
    const b = int(path, x, ranges[signed ? 'i128' : 'u128']);
    v.setBigUint64(at, b & U64_MASK, true);
    v.setBigUint64(at + 8, (b >> 64n) & U64_MASK, true);
  },

  setBits(v: DataView, at: number, bitOffset: number, bitSize: number, signed: boolean, x: unknown, path: string): void {
    const b = BigInt.asUintN(bitSize, int(path, x, range(bitSize, signed)));
    const first = at + (bitOffset >> 3);
    const shift = BigInt(bitOffset & 7);
    const n = ((bitOffset & 7) + bitSize + 7) >> 3;
    let word = 0n;
    for (let i = n - 1; i >= 0; i--) word = (word << 8n) | BigInt(v.getUint8(first + i));
    const mask = ((1n << BigInt(bitSize)) - 1n) << shift;
    word = (word & ~mask) | (b << shift);
    for (let i = 0; i < n; i++) v.setUint8(first + i, Number((word >> BigInt(8 * i)) & 0xffn));
  },

  /** A struct's value: an object. */
  obj(x: unknown, path: string): Record<string, unknown> {
    if (typeof x !== 'object' || x === null || Array.isArray(x) || x instanceof Uint8Array) missing(path, 'an object', x);
    return x as Record<string, unknown>;
  },

  /** A fixed array's value: an array of at most `len` elements (the rest are zero). */
  list(x: unknown, len: number, path: string): readonly unknown[] {
    if (!Array.isArray(x)) missing(path, 'an array', x);
    if (x.length > len) throw new BpfError('RANGE', `${path} has ${x.length} elements, more than its ${len}`);
    return x;
  },

  /** A struct field that is not there. */
  missing(path: string): never {
    throw new BpfError('EINVAL', `${path} is missing`);
  },

  /** A union's value names none of its members. */
  noMember(path: string, members: string): never {
    throw new BpfError('EINVAL', `${path} sets none of the union's members (${members})`);
  },

  codec: makeCodecLazy,

  /** An object embedded in a generated file (`nodebpf gen --embed`). */
  base64(s: string): Uint8Array {
    return new Uint8Array(Buffer.from(s, 'base64'));
  },

  /** A record shorter than the type it is decoded as. */
  short(type: string, length: number, size: number): never {
    throw new BpfError('EINVAL', `a ${length}-byte record is decoded as ${type}, which is ${size} bytes`);
  },
};

export type BtfRuntime = typeof btfRuntime;

/** Decodes a ring- or perf-buffer record: what `RingBuffer.events()` takes. */
export type RecordDecoder<T> = (view: ReadonlyDataView, offset: number, length: number) => T;

/** A codec of a BTF type: exact size, straight-line code, checked encoding. */
export interface TypeCodec<T> {
  readonly size: number;
  /** The type as C names it (`struct event`). */
  readonly type: string;
  decode(bytes: Uint8Array): T;
  /** Decodes the type at `offset` of a view (no copy of the record first). */
  decodeAt(view: ReadonlyDataView, offset: number): T;
  /** For `ringbuf.events(codec.record)`: a record shorter than the type is an `EINVAL` error. */
  readonly record: RecordDecoder<T>;
  /** `name`: what errors call the value (default: its type). */
  encode(value: T, name?: string): Uint8Array;
  /** Writes `value` at `offset` of `view`, checked (a value that does not fit is `RANGE`; what was written before it stays). */
  encodeInto(view: DataView, offset: number, value: T): void;
}

/** A codec of compiled or generated functions. */
export function makeCodec<T>(
  decode: (v: ReadonlyDataView, o: number) => T,
  encode: (v: DataView, o: number, x: unknown, p: string) => void,
  size: number,
  type: string,
): TypeCodec<T> {
  return {
    size,
    type,
    decode(b) {
      if (b.byteLength < size) btfRuntime.short(type, b.byteLength, size);
      return decode(new DataView(b.buffer, b.byteOffset, b.byteLength), 0);
    },
    decodeAt: decode,
    record: (view, offset, length) => (length < size ? btfRuntime.short(type, length, size) : decode(view, offset)),
    encode(value, name = type) {
      const b = new Uint8Array(size);
      encode(new DataView(b.buffer), 0, value, name);
      return b;
    },
    encodeInto(view, offset, value) {
      encode(view, offset, value, type);
    },
  };
}
