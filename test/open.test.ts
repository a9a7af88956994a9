// open → configure → load, the way libbpf's front-ends do it: autoload off for a program
// the kernel would refuse, max_entries set at run time, checked names and numbers.
import { describe, expect, it } from 'vitest';

import { BpfError, load, open } from '../dist/index.js';
import { fixture, kernelFeatures, openFds, rejects, syscalls } from './helpers.js';


describe('open → configure → load', () => {
  it('open() lists programs, maps and globals and makes no kernel object', async () => {
    const before = openFds();
    const o = await open(fixture('ringbuf.bpf.o'));
    expect(openFds()).toBe(before);
    expect(o.programs.map((p) => [p.name, p.section, p.autoload])).toEqual([['produce', 'tp/syscalls/sys_enter_getppid', true]]);
    expect(o.map('records')).toMatchObject({ mapType: 27, maxEntries: 1 << 20 });
    expect(o.globalSpecs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'target_tgid', section: '.rodata', size: 4, typeName: 'const volatile __u32' }),
        expect.objectContaining({ name: 'per_trigger', section: '.rodata', size: 4, typeName: 'const volatile __u32' }),
        expect.objectContaining({ name: 'produced', section: '.bss', size: 8, typeName: '__u64' }),
      ]),
    );
  });

  it('max_entries set before load is what the kernel creates (a ring buffer sized at run time)', async () => {
    const o = await open(fixture('ringbuf.bpf.o'));
    o.map('records').maxEntries = 16384;
    await using obj = await o.load({ globals: { per_trigger: 3 } });
    expect(obj.maps.find((m) => m.name === 'records')?.maxEntries).toBe(16384);

    await using small = await load(fixture('maps.bpf.o'), { maps: { hash: { maxEntries: 3 } } });
    const hash = small.map<number, bigint>('hash', { key: 'u32', value: 'u64' });
    for (const k of [1, 2, 3]) hash.set(k, BigInt(k));
    const full = await rejects(() => hash.set(4, 4n));
    expect(full.map).toBe('hash');
    expect(hash.keys().sort()).toEqual([1, 2, 3]);
  });

  it('autoload off leaves out a program the verifier would refuse; attaching it says why', async () => {
    expect((await rejects(load(fixture('bad.bpf.o')))).code).toBe('VERIFIER');
    const o = await open(fixture('bad.bpf.o'));
    o.program('unchecked').autoload = false;
    await using obj = await o.load();
    const p = obj.program('unchecked');
    expect([p.loaded, p.autoload]).toEqual([false, false]);
    const e = await rejects(() => p.attach());
    expect(e).toMatchObject({ code: 'EINVAL', program: 'unchecked' });
    expect(e.message).toContain('autoload is off');
    // The same through load()'s options.
    await using again = await load(fixture('bad.bpf.o'), { programs: { unchecked: { autoload: false } } });
    expect(again.program('unchecked').loaded).toBe(false);
  });

  it('SEC("?…") programs start with autoload off (libbpf): left out unless configured on, then loaded, attached and run', async () => {
    const hits = (obj: { map(n: string): { get(k: Uint8Array): unknown } }) => {
      const v = obj.map('.bss').get(new Uint8Array(4)) as Uint8Array;
      const d = new DataView(v.buffer, v.byteOffset, v.byteLength);
      return [d.getBigUint64(0, true), d.getBigUint64(8, true)];
    };
    const child = syscalls('getppid', 2);
    const o = await open(fixture('optional.bpf.o'));
    expect(o.programs.map((p) => [p.name, p.section, p.autoload])).toEqual([
      ['always', 'tp/syscalls/sys_enter_getppid', true],
      ['unchecked', '?tp/syscalls/sys_enter_getppid', false],
      ['variant', '?tp/syscalls/sys_enter_getppid', false],
    ]);
    o.program('variant').autoload = true;
    await using obj = await o.load({ globals: { target_tgid: child.pid } });
    expect(obj.programs.map((p) => [p.name, p.loaded, p.autoload])).toEqual([
      ['always', true, true],
      ['unchecked', false, false],
      ['variant', true, true],
    ]);
    const links = [obj.program('always').attach(), obj.program('variant').attach()];
    await child.run();
    for (const l of links) await l.closeAsync();
    expect(hits(obj)).toEqual([2n, 2n]);
    expect((await rejects(() => obj.program('unchecked').attach())).message).toContain('autoload is off');
    // Through load()'s options: left out by default, refused by the verifier when on.
    await using plain = await load(fixture('optional.bpf.o'));
    expect(plain.programs.filter((p) => p.loaded).map((p) => p.name)).toEqual(['always']);
    expect(await rejects(load(fixture('optional.bpf.o'), { programs: { unchecked: { autoload: true } } }))).toMatchObject({ code: 'VERIFIER', program: 'unchecked' });
  });

  it('configuration is checked: names, numbers, types', async () => {
    const missing = await rejects(load(fixture('maps.bpf.o'), { maps: { nope: { maxEntries: 1 } } }));
    expect(missing.code).toBe('ENOENT');
    expect(missing.message).toContain("no map named 'nope'");
    expect((await rejects(load(fixture('bad.bpf.o'), { programs: { nope: { autoload: false } } }))).code).toBe('ENOENT');
    for (const n of [0, -1, 1.5, NaN, 2 ** 32]) {
      expect((await rejects(load(fixture('maps.bpf.o'), { maps: { hash: { maxEntries: n } } }))).code).toBe('RANGE');
    }
    const o = await open(fixture('maps.bpf.o'));
    expect((await rejects(() => (o.map('hash').maxEntries = -5))).code).toBe('RANGE');
    expect((await rejects(() => o.map('nope'))).code).toBe('ENOENT');
    expect((await rejects(load(fixture('bad.bpf.o'), { programs: { unchecked: { autoload: 'no' as unknown as boolean } } }))).code).toBe('EINVAL');
    expect((await rejects(open(new Uint8Array([1, 2, 3])))).code).toBe('BAD_OBJECT');
  });
});

describe('maps sized at run time, as libbpf-tools front-ends do', () => {
  it('a stack map and a hash declared without sizes load once configured, and count user stacks', async () => {
    // Unconfigured, the kernel refuses the empty stack map.
    expect((await rejects(load(fixture('configure.bpf.o'), { programs: { only_with_trampolines: { autoload: false } } }))).code).toBe('EINVAL');
    const child = syscalls('getppid', 5);
    const o = await open(fixture('configure.bpf.o'));
    expect([o.map('stacks').maxEntries, o.map('stacks').valueSize, o.map('counts').maxEntries]).toEqual([0, 0, 0]);
    o.map('stacks').maxEntries = 1024;
    o.map('stacks').valueSize = 127 * 8; // perf_event_max_stack frames of 8 bytes
    o.map('counts').maxEntries = 64;
    // libbpf-tools turn the fentry variant off where the kernel has no trampolines.
    if (!kernelFeatures.fentry) o.program('only_with_trampolines').autoload = false;
    await using obj = await o.load({ globals: { target_tgid: child.pid } });
    expect(obj.maps.find((m) => m.name === 'stacks')).toMatchObject({ maxEntries: 1024, valueSize: 1016 });
    const link = obj.program('count_stacks').attach();
    await child.run();
    await link.closeAsync();
    const counts = obj.map<number, bigint>('counts', { key: 'u32', value: 'u64' });
    const bss = obj.map('.bss').get(new Uint8Array(4)) as Uint8Array;
    expect(new DataView(bss.buffer, bss.byteOffset).getBigInt64(0, true)).toBe(0n); // no bpf_get_stackid error
    const ids = counts.keys();
    // One call site in the child: every getppid has the same user stack.
    expect(ids.length).toBe(1);
    expect(counts.get(ids[0])).toBe(5n);
    const frames = obj.map('stacks').get(new Uint8Array(new Uint32Array([ids[0]]).buffer)) as Uint8Array;
    const addrs = new BigUint64Array(frames.buffer, frames.byteOffset, frames.byteLength / 8).filter((a) => a !== 0n);
    // The first frame is where the child entered the kernel, in user space (the ones after
    // it are frame-pointer guesses through code built without frame pointers).
    expect(addrs.length).toBeGreaterThan(0);
    expect(addrs[0] > 0n && addrs[0] < 1n << 47n).toBe(true);
  });

  it("setGlobal() gives globals of any .rodata.*/.data.* section their values before load, as a skeleton's rodata does", async () => {
    const o = await open(fixture('sections.bpf.o'));
    expect(o.globalSpecs.find((g) => g.name === 'step')).toMatchObject({ name: 'step', section: '.rodata.limits', size: 8, typeName: 'const volatile __u64' });
    const child = syscalls('mixed', 1);
    o.setGlobal('target_tgid', child.pid).setGlobal('step', 7n);
    expect(() => o.setGlobal('nodebpf_no_such_global', 1)).toThrow(expect.objectContaining({ code: 'ENOENT', symbol: 'nodebpf_no_such_global' }));
    await using obj = await o.load();
    const link = obj.program('on_getpgid').attach();
    await child.run();
    await link.closeAsync();
    const counters = obj.map('.data.counters', { key: 'raw', value: 'raw' }).get(new Uint8Array(4));
    expect(new DataView(counters!.buffer).getBigUint64(0, true)).toBe(7n);
    expect(obj.globals.pgid_calls).toBe(7n);
  });

  it('globals as typed properties: set before load (checked), read and written live after', async () => {
    const o = await open(fixture('sections.bpf.o'));
    expect(o.globals.step).toBeUndefined();
    expect(() => {
      o.globals.step = -1n;
    }).toThrow(expect.objectContaining({ code: 'RANGE', message: expect.stringContaining('step') }));
    expect(() => {
      o.globals.target_tgid = 2 ** 32;
    }).toThrow(expect.objectContaining({ code: 'RANGE' }));
    expect(() => {
      (o.globals as Record<string, unknown>).nodebpf_typo = 1;
    }).toThrow(TypeError);
    const child = syscalls('mixed', 1);
    o.globals.target_tgid = child.pid;
    o.globals.step = 5n;
    expect(o.globals.step).toBe(5n);
    await using obj = await o.load();
    expect(obj.globals.step).toBe(5n);
    expect(obj.globals.sid_calls).toBe(100n);
    expect(() => {
      obj.globals.step = 6n;
    }).toThrow(expect.objectContaining({ code: 'EPERM', message: expect.stringContaining('.rodata.limits, which is frozen once loaded') }));
    obj.globals.pgid_calls = 1000n;
    const link = obj.program('on_getpgid').attach();
    await child.run();
    await link.closeAsync();
    // The program added 5 per getpgid to what JS wrote: both see the same memory.
    expect(obj.globals.pgid_calls).toBe(1005n);
    expect(Object.keys(obj.globals)).toEqual(expect.arrayContaining(['target_tgid', 'step', 'pgid_calls', 'sid_calls', 'last_sum']));
    obj.close();
    expect(() => obj.globals.pgid_calls).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });
});

