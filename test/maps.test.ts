import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { load } from '../dist/index.js';
import { fixture, possibleCpus, syscalls } from './helpers.js';

const cpus = possibleCpus();

describe('maps', () => {
  it('hash: typed get/set/delete/iterate', async () => {
    using obj = await load(fixture('maps.bpf.o'));
    const m = obj.map('hash', { key: 'u32', value: 'u64' });
    expect(m.get(1)).toBeUndefined();
    m.set(1, 10n);
    m.set(2, 20n);
    m.set(3, 2n ** 64n - 1n);
    expect(m.get(3)).toBe(2n ** 64n - 1n);
    expect(() => m.set(1, 11n, 'noexist')).toThrow(expect.objectContaining({ code: 'EIO', errno: 17 }));
    m.set(1, 11n, 'exist');
    expect(new Map(m.entries())).toEqual(new Map([[1, 11n], [2, 20n], [3, 2n ** 64n - 1n]]));
    expect(m.delete(2)).toBe(true);
    expect(m.delete(2)).toBe(false);
    expect(m.keys().sort()).toEqual([1, 3]);
  });

  it('array: typed by its BTF without codecs; raw bytes with the raw codec; size checks', async () => {
    using obj = await load(fixture('maps.bpf.o'));
    const typed = obj.map('results');
    typed.set(3, 1n << 63n);
    expect(typed.get(3)).toBe(1n << 63n);
    expect(() => typed.set(3, -1n)).toThrow(expect.objectContaining({ code: 'RANGE' }));
    const m = obj.map('results', { key: 'raw', value: 'raw' });
    expect(m.keySize).toBe(4);
    expect(m.valueSize).toBe(8);
    const key = new Uint8Array([2, 0, 0, 0]);
    expect(m.get(key)).toEqual(new Uint8Array(8));
    m.set(key, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    expect(m.get(key)).toEqual(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    expect(m.keys()).toHaveLength(8);
    expect(() => m.set(new Uint8Array(3), new Uint8Array(8))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => obj.map('results', { key: 'u64' })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => obj.map('nope')).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('results') }));
  });

  it('per-CPU hash and array: one value per possible CPU', async () => {
    using obj = await load(fixture('maps.bpf.o'));
    expect(() => obj.map('percpu_hash', { key: 'u32', value: 'u32' })).toThrow(/map 'percpu_hash' is per-CPU .*: its values are arrays, one per possible CPU; say so with \{ perCpu: true \}/);
    expect(() => obj.map('results', { perCpu: true })).toThrow(/map 'results' is not per-CPU/);
    const h = obj.map('percpu_hash', { key: 'u32', value: 'u32', perCpu: true });
    expect(h.percpu).toBe(true);
    const values = Array.from({ length: cpus }, (_, i) => 100 + i);
    h.set(5, values);
    expect(h.get(5)).toEqual(values);
    h.set(6, 9); // one value for every CPU
    expect(h.get(6)).toEqual(new Array(cpus).fill(9));
    expect(() => h.set(7, new Array(cpus + 1).fill(1))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    const a = obj.map('percpu_array', { key: 'u32', value: 'u64', perCpu: true });
    expect(a.get(0)).toEqual(new Array(cpus).fill(0n));
  });

  it('LRU hash evicts beyond max_entries', async () => {
    using obj = await load(fixture('maps.bpf.o'));
    const m = obj.map('lru', { key: 'u64', value: 'u32' });
    for (let i = 0n; i < 64n; i++) m.set(i, Number(i));
    const keys = m.keys();
    expect(keys.length).toBeLessThan(64);
    for (const k of keys) expect(m.get(k)).toBe(Number(k));
  });

  it('a .rodata global set from JS changes what the program stores', async () => {
    for (const stored of [7n, 42n]) {
      const child = syscalls('getppid', 3);
      using obj = await load(fixture('maps.bpf.o'), {
        globals: { target_tgid: child.pid, ...(stored === 7n ? {} : { stored_value: stored }) },
      });
      using _l = obj.program('store').attach();
      await child.run();
      expect(obj.map('results', { key: 'u32', value: 'u64' }).get(0)).toBe(stored);
      const perCpu = obj.map('percpu_array', { key: 'u32', value: 'u64', perCpu: true }).get(0) ?? [];
      expect(perCpu.reduce((a, b) => a + b, 0n)).toBe(3n);
    }
  });

  it('unknown or mis-sized globals are refused by name', async () => {
    await expect(load(fixture('maps.bpf.o'), { globals: { no_such_global: 1 } })).rejects.toMatchObject({
      code: 'ENOENT',
      message: expect.stringContaining('no_such_global'),
    });
    await expect(load(fixture('maps.bpf.o'), { globals: { stored_value: new Uint8Array(3) } })).rejects.toMatchObject({
      code: 'EINVAL',
    });
  });

  it('LIBBPF_PIN_BY_NAME maps are pinned under pinPath and reused by the next load', async () => {
    const dir = mkdtempSync('/sys/fs/bpf/nodebpf-test-');
    try {
      {
        using first = await load(fixture('maps.bpf.o'), { pinPath: dir });
        const m = first.map('pinned_counts', { key: 'u32', value: 'u32' });
        expect(m.pinned).toBe(`${dir}/pinned_counts`);
        m.set(1, 1234);
      }
      expect(existsSync(`${dir}/pinned_counts`)).toBe(true);
      using second = await load(fixture('maps.bpf.o'), { pinPath: dir });
      expect(second.map('pinned_counts', { key: 'u32', value: 'u32' }).get(1)).toBe(1234);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
