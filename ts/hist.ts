// Histograms a BPF program fills, read and drawn as bpftrace's hist() and lhist() draw
// theirs. A program counts values into slots (an array or hash map keyed by slot index,
// plain or per-CPU, or a global array), with the slot functions of include/nodebpf.bpf.h:
//   nodebpf_log2_slot(v):   0 for 0, else floor(log2(v)) + 1   → [2^(s-1), 2^s)
//   nodebpf_linear_slot(v, min, max, step): 0 below min, 1 + (v - min) / step, and
//                           1 + (max - min) / step from max on
import { int, options, type IntRange } from './check.js';
import { BpfError, native } from './errors.js';
import type { MapHandle } from './map.js';

/** Values in [from, to). A linear histogram's ends are open: `from` -Infinity, `to` Infinity. */
export interface HistogramBucket {
  from: number;
  to: number;
  count: number;
}

export interface Histogram {
  kind: 'log2' | 'linear';
  /** A linear histogram's step. */
  step?: number;
  /** All values counted. */
  count: number;
  /** From the first non-empty bucket to the last, the empty ones between included. */
  buckets: HistogramBucket[];
}

/** Where a histogram's counts are: a map keyed by slot, or the counts by slot index. */
export type HistogramSource = MapHandle | ArrayLike<number | bigint>;

export interface Log2HistogramOptions {
  /**
   * What slot `s` holds. `'log2+1'` (default): slot 0 holds 0 and slot s ≥ 1 holds
   * [2^(s-1), 2^s), as `nodebpf_log2_slot()` files values (and BCC's `bpf_log2l()` for values
   * from 1; it files 0 with 1). `'log2'`: slot s holds [2^s, 2^(s+1)) and slot 0 also 0, as
   * libbpf-tools' `log2l()` files them.
   */
  slots?: 'log2+1' | 'log2';
}

export interface LinearHistogramOptions {
  /** bpftrace's lhist(value, min, max, step): max - min a multiple of step. */
  min: number;
  max: number;
  step: number;
}

/** Slot counts are u64; a histogram's slots are far fewer than 2^32. */
const SAFE: IntRange = { min: -(2n ** 53n - 1n), max: 2n ** 53n - 1n, name: 'safe integer' };
/** Slot indexes in a map's keys (u32 or u64) are kept below this. */
const MAX_SLOTS = 1 << 20;

/**
 * The counts by slot of `source`. A map: keys are slot indexes (u32 or u64), values u64 or
 * u32 counts, per-CPU values summed over the CPUs.
 */
function slotCounts(source: HistogramSource): number[] {
  if (!isMap(source)) return Array.from(source, (n, i) => countOf(`counts[${i}]`, n));
  const { name, keySize, valueSize } = source;
  if ((keySize !== 4 && keySize !== 8) || (valueSize !== 4 && valueSize !== 8)) {
    throw new BpfError('EINVAL', `map '${name}': a histogram's keys are u32 or u64 slot indexes and its values u32 or u64 counts (this one: ${keySize}-byte keys, ${valueSize}-byte values)`, { map: name });
  }
  const e = native(() => source._native().lookupBatch(), { map: name });
  const counts: number[] = [];
  const keys = new DataView(e.keys.buffer, e.keys.byteOffset, e.keys.byteLength);
  const values = new DataView(e.values.buffer, e.values.byteOffset, e.values.byteLength);
  const perEntry = e.count === 0 ? 0 : e.values.byteLength / e.count;
  const slot = (valueSize + 7) & ~7;
  for (let i = 0; i < e.count; i++) {
    const key = keySize === 4 ? keys.getUint32(i * 4, true) : keys.getBigUint64(i * 8, true);
    if (key >= MAX_SLOTS) {
      throw new BpfError('EINVAL', `map '${name}': slot ${key} is beyond a histogram's ${MAX_SLOTS} slots`, { map: name });
    }
    // One value, or one 8-byte-aligned slot per CPU.
    let n = 0;
    for (let off = i * perEntry; off < (i + 1) * perEntry; off += slot) {
      n += valueSize === 4 ? values.getUint32(off, true) : Number(values.getBigUint64(off, true));
    }
    counts[Number(key)] = (counts[Number(key)] ?? 0) + n;
  }
  return Array.from(counts, (n) => n ?? 0);
}

function isMap(s: HistogramSource): s is MapHandle {
  return typeof (s as MapHandle)._native === 'function';
}

function countOf(param: string, n: unknown): number {
  const v = int(param, n, { min: 0n, max: 2n ** 64n - 1n, name: 'u64' });
  return Number(v);
}

/** The buckets from the first non-empty slot to the last. */
function histogram(kind: Histogram['kind'], counts: number[], bounds: (slot: number) => [number, number], step?: number): Histogram {
  const base = step === undefined ? { kind } : { kind, step };
  const first = counts.findIndex((n) => n > 0);
  if (first < 0) return { ...base, count: 0, buckets: [] };
  let last = counts.length - 1;
  while (counts[last] === 0) last--;
  const buckets = counts.slice(first, last + 1).map((count, i) => {
    const [from, to] = bounds(first + i);
    return { from, to, count };
  });
  return { ...base, count: buckets.reduce((s, b) => s + b.count, 0), buckets };
}

/**
 * A log2 histogram (bpftrace's hist()) from a map keyed by slot or from the counts by slot.
 * Bounds are exact (powers of two); counts beyond 2^53 lose precision.
 */
export function log2Histogram(source: HistogramSource, o: Log2HistogramOptions = {}): Histogram {
  const { slots = 'log2+1' } = options('log2Histogram options', o);
  if (slots !== 'log2+1' && slots !== 'log2') {
    throw new BpfError('EINVAL', `log2Histogram slots is ${String(slots)}; one of log2+1, log2`);
  }
  const bounds =
    slots === 'log2+1'
      ? (s: number): [number, number] => (s === 0 ? [0, 1] : [2 ** (s - 1), 2 ** s])
      : (s: number): [number, number] => (s === 0 ? [0, 2] : [2 ** s, 2 ** (s + 1)]);
  return histogram('log2', slotCounts(source), bounds);
}

/**
 * A linear histogram (bpftrace's lhist(value, min, max, step)): slot 0 counts values below
 * `min`, slot i ≥ 1 [min + (i-1)·step, min + i·step), and the last slot values from `max` on.
 */
export function linearHistogram(source: HistogramSource, o: LinearHistogramOptions): Histogram {
  const opts = options('linearHistogram options', o, true);
  const min = Number(int('linearHistogram min', opts.min, SAFE));
  const max = Number(int('linearHistogram max', opts.max, SAFE));
  const step = Number(int('linearHistogram step', opts.step, SAFE));
  if (step <= 0 || max <= min || (max - min) % step !== 0) {
    throw new BpfError('EINVAL', `linearHistogram: min ${min}, max ${max}, step ${step}: step > 0, max > min and max - min a multiple of step`);
  }
  const ranges = (max - min) / step;
  const counts = slotCounts(source);
  if (counts.length > ranges + 2) {
    throw new BpfError('EINVAL', `linearHistogram: a count in slot ${counts.length - 1}, beyond the ${ranges + 2} slots of min ${min}, max ${max}, step ${step}`);
  }
  const bounds = (s: number): [number, number] => {
    if (s === 0) return [-Infinity, min];
    if (s > ranges) return [max, Infinity];
    return [min + (s - 1) * step, min + s * step];
  };
  return histogram('linear', counts, bounds, step);
}

/** 1024-based like bpftrace's hist() labels: 1K = 1024, 2M = 2·1024². */
export function pow2Label(n: number): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P', 'E'];
  let i = 0;
  while (n >= 1024 && n % 1024 === 0 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n}${units[i]}`;
}

const KILO = 1024;
const MEGA = KILO * KILO;

/** A linear histogram's bound as bpftrace writes it: with K or M when the step is a multiple of 1024. */
function linearLabel(n: number, step: number | undefined): string {
  if (step === undefined || step % KILO !== 0 || n === 0) return String(n);
  if (n % MEGA === 0) return `${n / MEGA}M`;
  if (n % KILO === 0) return `${n / KILO}K`;
  return String(n);
}

/** A bucket's label as bpftrace writes it: `[1]`, `[2, 4)`, `[1K, 2K)`; `(..., 0)`, `[10, 20)`, `[100, ...)`. */
export function bucketLabel(b: HistogramBucket, h: Histogram): string {
  if (h.kind === 'linear') {
    const at = (n: number) => linearLabel(n, h.step);
    if (b.from === -Infinity) return `(..., ${at(b.to)})`;
    if (b.to === Infinity) return `[${at(b.from)}, ...)`;
    return `[${at(b.from)}, ${at(b.to)})`;
  }
  return b.to - b.from === 1 ? `[${pow2Label(b.from)}]` : `[${pow2Label(b.from)}, ${pow2Label(b.to)})`;
}

export interface RenderHistogramOptions {
  /** Characters of the longest bar (52, bpftrace's). */
  width?: number;
  /** The label column's width (16, bpftrace's; a longer label pushes its row right). */
  labelWidth?: number;
  /** The count column's width (8, bpftrace's). */
  countWidth?: number;
  /** Bars rounded to the nearest character rather than down, as bpftrace does. */
  roundBars?: boolean;
  /** A bucket's label (default `bucketLabel`). */
  label?: (b: HistogramBucket, h: Histogram) => string;
}

const COLUMN: IntRange = { min: 0n, max: 1000n, name: 'column width' };

/**
 * The histogram as bpftrace prints hist() and lhist(): a line per bucket, from the first
 * non-empty one to the last, each `label count |@@@@   |`, ending in a newline; empty
 * for an empty histogram.
 */
export function renderHistogram(h: Histogram, o: RenderHistogramOptions = {}): string {
  const opts = options('renderHistogram options', o);
  const width = Number(int('renderHistogram width', opts.width ?? 52, COLUMN));
  const labelWidth = Number(int('renderHistogram labelWidth', opts.labelWidth ?? 16, COLUMN));
  const countWidth = Number(int('renderHistogram countWidth', opts.countWidth ?? 8, COLUMN));
  const label = opts.label ?? bucketLabel;
  const round = opts.roundBars ? Math.round : Math.floor;
  const most = Math.max(0, ...h.buckets.map((b) => b.count));
  return h.buckets
    .map((b) => {
      const bar = '@'.repeat(most === 0 ? 0 : round((b.count / most) * width));
      return `${label(b, h).padEnd(labelWidth)}${String(b.count).padStart(countWidth)} |${bar.padEnd(width)}|\n`;
    })
    .join('');
}
