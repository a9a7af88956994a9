// Every number from JS is checked here, where it enters: out of range, NaN, fractional or
// of the wrong type is a `RANGE` error naming the parameter, the value and the range, and
// nothing is written.
import { BpfError } from './errors.js';

/** An integer type's bounds. */
export interface IntRange {
  readonly min: bigint;
  readonly max: bigint;
  readonly name: string;
}

export const range = (bits: number, signed: boolean): IntRange => ({
  min: signed ? -(1n << BigInt(bits - 1)) : 0n,
  max: signed ? (1n << BigInt(bits - 1)) - 1n : (1n << BigInt(bits)) - 1n,
  name: `${signed ? 'i' : 'u'}${bits}`,
});

export const U32 = range(32, false);
export const U64 = range(64, false);
export const I32 = range(32, true);
/** A map's `max_entries` or `value_size`: a u32, at least 1. */
export const MAX_ENTRIES = { min: 1n, max: (1n << 32n) - 1n, name: 'max_entries' } as const satisfies IntRange;
/** File descriptors: non-negative ints. */
export const FD = { min: 0n, max: (1n << 31n) - 1n, name: 'fd' } as const satisfies IntRange;
/** CPU numbers, as `perf_event_open` takes them. */
export const CPU = { min: 0n, max: (1n << 31n) - 1n, name: 'cpu' } as const satisfies IntRange;
/** Process ids: positive `pid_t`. */
export const PID = { min: 0n, max: (1n << 31n) - 1n, name: 'pid' } as const satisfies IntRange;

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

function refuse(param: string, value: unknown, r: IntRange, why = ''): never {
  throw new BpfError('RANGE', `${param} is ${show(value)}${why}, outside the allowed range ${r.min}..=${r.max} (${r.name})`);
}

/** `v` as a bigint in `r`: an integral number (safe) or a bigint. */
export function int(param: string, v: unknown, r: IntRange): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number') {
    if (!Number.isInteger(v)) refuse(param, v, r, ' (not an integer)');
    if (!Number.isSafeInteger(v)) refuse(param, v, r, ' (beyond 2^53: pass a bigint)');
    b = BigInt(v);
  } else if (typeof v === 'boolean' && r.name === 'bool') b = v ? 1n : 0n;
  else refuse(param, v, r, ` (a ${typeof v}, not a number or bigint)`);
  if (b < r.min || b > r.max) refuse(param, v, r);
  return b;
}

/** `v` as a JS number in `r` (for ranges within 2^53). */
export const num = (param: string, v: unknown, r: IntRange): number => Number(int(param, v, r));

export const optBig = (param: string, v: unknown, r: IntRange): bigint | undefined =>
  v === undefined ? undefined : int(param, v, r);

export const optNum = (param: string, v: unknown, r: IntRange): number | undefined =>
  v === undefined ? undefined : num(param, v, r);

export function bigs(param: string, v: readonly unknown[] | undefined, r: IntRange): bigint[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw new BpfError('EINVAL', `${param} must be an array, got ${typeof v}`);
  return v.map((x, i) => int(`${param}[${i}]`, x, r));
}

export function nums(param: string, v: readonly unknown[] | undefined, r: IntRange): number[] | undefined {
  return bigs(param, v, r)?.map(Number);
}

/** A string parameter (napi would otherwise throw its own untyped error). */
export function str(param: string, v: unknown): string {
  if (typeof v !== 'string') throw new BpfError('EINVAL', `${param} must be a string, got ${show(v)}`);
  return v;
}

export const optStr = (param: string, v: unknown): string | undefined => (v === undefined ? undefined : str(param, v));

/** Bytes: a Uint8Array (a Buffer is one). */
export function bytes(param: string, v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) {
    throw new BpfError('EINVAL', `${param} must be a Uint8Array, got ${v === null ? 'null' : typeof v}`);
  }
  return v;
}

/** An options object (napi would otherwise throw its own untyped error, or JS a TypeError). */
export function options<T extends object>(param: string, v: T | undefined, required = false): T {
  if (v === undefined && !required) return {} as T;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new BpfError('EINVAL', `${param} must be an options object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  }
  return v;
}
