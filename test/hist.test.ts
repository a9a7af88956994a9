import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { linearHistogram, load, log2Histogram, renderHistogram, type BpfObject, type Histogram } from '../dist/index.js';
import { fixture, syscalls } from './helpers.js';

/** getpgid(ARG) calls the target makes: ARG, how many times. */
const CALLS: [arg: bigint, times: number][] = [
  [0n, 3],
  [1n, 2],
  [2n, 1],
  [3n, 4],
  [5n, 2],
  [99n, 1],
  [100n, 1],
  [150n, 2],
  [1000n, 5],
  [1024n, 1],
  [2n ** 40n + 1n, 2],
];

/** Nonzero buckets as [from, to, count]. */
const nonzero = (h: Histogram) => h.buckets.filter((b) => b.count > 0).map((b) => [b.from, b.to, b.count]);

describe('histograms filled by a BPF program', () => {
  let obj: BpfObject;
  beforeAll(async () => {
    obj = await load(fixture('hist.bpf.o'));
    using _link = obj.program('count').attach();
    const target = obj.map('target', { key: 'u32', value: 'u32' });
    for (const [arg, times] of CALLS) {
      const child = syscalls('getpgid', times, arg.toString());
      target.set(0, child.pid);
      expect((await child.run()).code).toBe(0);
    }
  });
  afterAll(() => obj?.close());

  it('log2: every value in its bucket, exact counts, read from an array, a per-CPU array and a hash', () => {
    const h = log2Histogram(obj.map('log2_array'));
    expect(h.kind).toBe('log2');
    expect(h.count).toBe(CALLS.reduce((n, [, t]) => n + t, 0));
    expect(nonzero(h)).toEqual([
      [0, 1, 3], // 0
      [1, 2, 2], // 1
      [2, 4, 5], // 2, 3
      [4, 8, 2], // 5
      [64, 128, 2], // 99, 100
      [128, 256, 2], // 150
      [512, 1024, 5], // 1000
      [1024, 2048, 1], // 1024
      [2 ** 40, 2 ** 41, 2], // 2^40 + 1
    ]);
    // Empty buckets between the first and the last are there, for the shape.
    expect(h.buckets).toHaveLength(42);
    expect(log2Histogram(obj.map('log2_percpu', { perCpu: true }))).toEqual(h);
    expect(log2Histogram(obj.map('log2_hash'))).toEqual(h);
  });

  it("log2: drawn as bpftrace's hist() draws it", () => {
    const text = renderHistogram(log2Histogram(obj.map('log2_array')));
    const lines = text.split('\n');
    expect(lines.slice(0, 12).join('\n')).toBe(
      [
        '[0]                    3 |###############################                     |',
        '[1]                    2 |####################                                |',
        '[2, 4)                 5 |####################################################|',
        '[4, 8)                 2 |####################                                |',
        '[8, 16)                0 |                                                    |',
        '[16, 32)               0 |                                                    |',
        '[32, 64)               0 |                                                    |',
        '[64, 128)              2 |####################                                |',
        '[128, 256)             2 |####################                                |',
        '[256, 512)             0 |                                                    |',
        '[512, 1K)              5 |####################################################|',
        '[1K, 2K)               1 |##########                                          |',
      ]
        .join('\n')
        .replaceAll('#', '@'),
    );
    expect(lines.slice(-3)).toEqual([
      '[512G, 1T)             0 |                                                    |',
      '[1T, 2T)               2 |@@@@@@@@@@@@@@@@@@@@                                |',
      '',
    ]);
    expect(lines).toHaveLength(43);
  });

  it("linear: bpftrace's lhist(v, 0, 100, 10), the ends open", () => {
    const h = linearHistogram(obj.map('linear'), { min: 0, max: 100, step: 10 });
    expect(nonzero(h)).toEqual([
      [0, 10, 12], // 0, 1, 2, 3, 5
      [90, 100, 1], // 99
      [100, Infinity, 11], // 100 and beyond
    ]);
    expect(renderHistogram(h)).toBe(
      [
        '[0, 10)               12 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|',
        '[10, 20)               0 |                                                    |',
        '[20, 30)               0 |                                                    |',
        '[30, 40)               0 |                                                    |',
        '[40, 50)               0 |                                                    |',
        '[50, 60)               0 |                                                    |',
        '[60, 70)               0 |                                                    |',
        '[70, 80)               0 |                                                    |',
        '[80, 90)               0 |                                                    |',
        '[90, 100)              1 |@@@@                                                |',
        '[100, ...)            11 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@     |',
        '',
      ].join('\n'),
    );
  });
});

describe('histograms from counts', () => {
  it("libbpf-tools' log2l() slots, a linear histogram's lower end, an empty one", () => {
    // log2l(): slot 0 holds 0 and 1, slot s [2^s, 2^(s+1)).
    expect(nonzero(log2Histogram([4, 0, 1n], { slots: 'log2' }))).toEqual([
      [0, 2, 4],
      [4, 8, 1],
    ]);
    const low = linearHistogram([2, 1], { min: -10, max: 10, step: 5 });
    expect(low.step).toBe(5);
    expect(low.buckets).toEqual([
      { from: -Infinity, to: -10, count: 2 },
      { from: -10, to: -5, count: 1 },
    ]);
    expect(renderHistogram(low)).toBe(
      '(..., -10)             2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n[-10, -5)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n',
    );
    // A step of 1024: bounds in K and M, as bpftrace's lhist() writes them.
    const kilo = linearHistogram([0, 1, 0, 2], { min: 0, max: 3 * 1024, step: 1024 });
    expect(kilo.step).toBe(1024);
    expect(renderHistogram(kilo).split('\n').map((l) => l.slice(0, 16).trimEnd())).toEqual(['[0, 1K)', '[1K, 2K)', '[2K, 3K)', '']);
    const empty = log2Histogram([0, 0]);
    expect(empty).toEqual({ kind: 'log2', count: 0, buckets: [] });
    expect(renderHistogram(empty)).toBe('');
  });

  it('checks what it is given', () => {
    expect(() => linearHistogram([1], { min: 0, max: 10, step: 3 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => linearHistogram([1], { min: 0, max: 10, step: 0 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    // 10 ranges and the two ends: 12 slots, not 13.
    expect(() => linearHistogram(new Array(13).fill(1), { min: 0, max: 100, step: 10 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => log2Histogram([-1])).toThrow(expect.objectContaining({ code: 'RANGE' }));
    expect(() => log2Histogram([1.5])).toThrow(expect.objectContaining({ code: 'RANGE' }));
    expect(() => log2Histogram([1], { slots: 'log10' as 'log2' })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => renderHistogram(log2Histogram([1]), { width: -1 })).toThrow(expect.objectContaining({ code: 'RANGE' }));
  });
});
