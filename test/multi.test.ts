// Batch attach: uprobe_multi natively; kprobe_multi and tracing_multi (or their
// fallbacks) where the kernel has kprobes / trampolines, i.e. in the kernel matrix.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { load, type BpfObject, type MultiLink, type ReattachEvent } from '../dist/index.js';
import { Child, fixture, funcArgHelpers, kernelFeatures as f, syscalls, waitFor } from './helpers.js';

const counts = (obj: BpfObject) => obj.map('counts', { key: 'u32', value: 'u64' });
const values = (obj: BpfObject) => obj.map('values', { key: 'u32', value: 'i64' });
const countOf = (obj: BpfObject, link: MultiLink, name: string) => {
  const t = link.targets.find((x) => x.name === name);
  if (!t) throw new Error(`${name} is not among the targets`);
  return counts(obj).get(Number(t.cookie));
};
const skipReason = (ok: boolean, why: string) => (ok ? '' : ` [skipped: ${f.kernel}: ${why}]`);
// Without attach cookies (before 5.15) every target's default cookie is 0: the fixtures'
// counts, keyed by the cookie, then add up at key 0.
const noCookies = skipReason(f.bpfCookie, 'no attach cookies (5.15): the counts per target are keyed by the cookie');
const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);

describe('uprobe_multi', () => {
  // 50,000 uprobes through one link; kernels without uprobe_multi fall back to one perf
  // uprobe per function, and the fallback case checks 200 of them (each perf uprobe costs
  // an RCU grace period to detach).
  const N = f.uprobeMulti ? 50_000 : 200;
  it(`attaches ${N} functions and counts every call exactly (${f.uprobeMulti ? 'uprobe_multi' : 'perf uprobe fallback'})`, { timeout: 300_000 }, async () => {
    const child = new Child(fixture('many'), []);
    using obj = await load(fixture('uprobe_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    const symbols = f.uprobeMulti ? 'many_*' : Array.from({ length: N }, (_, i) => `many_${i}`);
    using link = obj.program('on_entry').attachUprobeMulti({ binary: fixture('many'), symbols });
    expect(link.mechanism).toBe(f.uprobeMulti ? 'uprobe_multi' : 'uprobes');
    expect(link.targets).toHaveLength(N);
    expect(link.skipped).toEqual([]);
    expect((await child.run()).code).toBe(0);
    const c = counts(obj);
    const expected = (t: { name: string }) => BigInt((Number(t.name.slice('many_'.length)) % 3) + 1);
    if (!f.bpfCookie) {
      expect(link.targets.map((t) => t.cookie)).toEqual(link.targets.map(() => 0n));
      expect(c.get(0)).toBe(sum(link.targets.map(expected)));
      return;
    }
    const wrong = link.targets.filter((t) => c.get(Number(t.cookie)) !== expected(t));
    expect(wrong).toEqual([]);
    expect(link.targets.map((t) => t.cookie)).toEqual(link.targets.map((_, i) => BigInt(i)));
  });

  it.skipIf(!f.uprobeMulti)(`the perf-uprobe fallback gives the same counts as uprobe_multi${skipReason(f.uprobeMulti, 'no uprobe_multi: the test above already ran the fallback')}`, async () => {
    const symbols = Array.from({ length: 30 }, (_, i) => `many_${i * 7}`);
    const seen: bigint[][] = [];
    for (const forceFallback of [false, true]) {
      const child = new Child(fixture('many'), []);
      using obj = await load(fixture('uprobe_multi.bpf.o'), { globals: { target_tgid: child.pid } });
      using link = obj.program('on_entry').attachUprobeMulti({ binary: fixture('many'), symbols, forceFallback });
      expect(link.mechanism).toBe(forceFallback ? 'uprobes' : 'uprobe_multi');
      expect(link.kernelLinks).toBe(forceFallback ? 30 : 1);
      await child.run();
      seen.push(link.targets.map((t) => counts(obj).get(Number(t.cookie)) as bigint));
    }
    expect(seen[0]).toEqual(symbols.map((_, i) => BigInt(((i * 7) % 3) + 1)));
    expect(seen[1]).toEqual(seen[0]);
  });

  it('the per-uprobe fallback, attached off the JS thread, reports progress', async () => {
    const symbols = Array.from({ length: 40 }, (_, i) => `many_${i}`);
    const child = new Child(fixture('many'), []);
    using obj = await load(fixture('uprobe_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    const seen: [number, number][] = [];
    using link = await obj.program('on_entry').attachUprobeMultiAsync({
      binary: fixture('many'),
      symbols,
      forceFallback: true,
      onProgress: (done, total) => seen.push([done, total]),
    });
    expect(link.mechanism).toBe('uprobes');
    expect(seen.at(-1)).toEqual([40, 40]);
    await child.run();
    const expected = symbols.map((_, i) => BigInt((i % 3) + 1));
    if (f.bpfCookie) expect(link.targets.map((t) => counts(obj).get(Number(t.cookie)))).toEqual(expected);
    else expect(counts(obj).get(0)).toBe(sum(expected));
  });

  it.skipIf(f.bpfCookie)(`without attach cookies, cookies given are UNSUPPORTED naming the feature${skipReason(!f.bpfCookie, 'has attach cookies')}`, async () => {
    using obj = await load(fixture('uprobe_multi.bpf.o'));
    expect(() => obj.program('on_entry').attachUprobeMulti({ binary: fixture('target'), symbols: ['nodebpf_target'], cookies: [77] })).toThrow(
      expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringContaining('features().bpfCookie is false') }),
    );
  });

  it.skipIf(!f.bpfCookie)(`cookies, argument and return values, and skipped names${noCookies}`, async () => {
    const child = new Child(fixture('target'), ['5', '40']);
    using obj = await load(fixture('uprobe_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    const binary = fixture('target');
    using entry = obj.program('on_entry').attachUprobeMulti({ binary, symbols: ['nodebpf_target'], cookies: [77] });
    using ret = obj.program('on_return').attachUprobeMulti({
      binary,
      symbols: ['nodebpf_target', 'nodebpf_no_such'],
      retprobe: true,
      cookies: [78],
    });
    expect(entry.targets).toEqual([expect.objectContaining({ name: 'nodebpf_target', cookie: 77n })]);
    expect(ret.skipped).toEqual([{ name: 'nodebpf_no_such', reason: expect.stringContaining('no function') }]);
    await child.run();
    expect(counts(obj).get(77)).toBe(5n);
    expect(values(obj).get(77)).toBe(44n); // last argument: 40 + 4
    expect(counts(obj).get(78)).toBe(5n);
    expect(values(obj).get(78)).toBe(89n); // last return: 2 * 44 + 1
  });

  it.skipIf(!f.bpfCookie)(`a pid filter on a shared library counts only that process${noCookies}`, async () => {
    const a = new Child(fixture('libuser'), ['5']);
    const b = new Child(fixture('libuser'), ['9']);
    using obj = await load(fixture('uprobe_multi.bpf.o'));
    using link = obj.program('on_entry').attachUprobeMulti({
      binary: fixture('libnodebpf_test.so'),
      symbols: 'nodebpf_lib_*',
      pid: a.pid,
    });
    await Promise.all([a.run(), b.run()]);
    expect(countOf(obj, link, 'nodebpf_lib_fn')).toBe(5n);
  });

  it.skipIf(!f.bpfCookie)(`includeClones also attaches name.part.N and name.cold, which run the calls a plain probe misses${noCookies}`, async () => {
    const N = 4;
    const attachRun = async (includeClones: boolean) => {
      const child = new Child(fixture('clones'), [String(N)]);
      const obj = await load(fixture('uprobe_multi.bpf.o'), { globals: { target_tgid: child.pid } });
      const link = obj.program('on_entry').attachUprobeMulti({
        binary: fixture('clones'),
        symbols: ['nodebpf_split', 'nodebpf_cold'],
        includeClones,
      });
      await child.run();
      const seen = Object.fromEntries(link.targets.map((t) => [t.name, counts(obj).get(Number(t.cookie))]));
      obj.close();
      return seen;
    };
    expect(await attachRun(false)).toEqual({ nodebpf_split: 0n, nodebpf_cold: BigInt(N) });
    expect(await attachRun(true)).toEqual({
      nodebpf_split: 0n,
      'nodebpf_split.part.0': BigInt(2 * N),
      nodebpf_cold: BigInt(N),
      'nodebpf_cold.cold': BigInt(N),
    });
  });

  it.skipIf(!f.bpfCookie)(`reattach: a library replaced on disk is probed again at its new offsets${noCookies}`, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nodebpf-reattach-'));
    try {
      const lib = path.join(dir, 'libnodebpf_test.so');
      copyFileSync(fixture('libnodebpf_test.so'), lib);
      const env = { LD_LIBRARY_PATH: dir };
      using obj = await load(fixture('uprobe_multi.bpf.o'));
      using moving = obj.program('on_entry').attachUprobeMulti({ binary: lib, symbols: ['nodebpf_lib_fn'], reattach: true, cookies: [0] });
      using stale = obj.program('on_entry').attachUprobeMulti({ binary: lib, symbols: ['nodebpf_lib_fn'], cookies: [1] });
      const before = moving.targets[0].address;
      await new Child(fixture('libuser'), ['3'], env).run();
      expect([counts(obj).get(0), counts(obj).get(1)]).toEqual([3n, 3n]);

      const moved = new Promise<ReattachEvent>((resolve) => moving.addEventListener('reattach', (e) => resolve(e as ReattachEvent), { once: true }));
      // A new version, installed the way package managers do: write aside, rename over.
      copyFileSync(fixture('libnodebpf_test_v2.so'), `${lib}.new`);
      renameSync(`${lib}.new`, lib);
      const event = await moved;
      expect(event.detail.path).toBe(lib);
      expect(event.detail.targets[0].address).not.toBe(before);
      expect(moving.targets[0].address).toBe(event.detail.targets[0].address);

      await new Child(fixture('libuser'), ['4'], env).run();
      // The moved link sees the new library's calls; the stale one fires no more.
      expect([counts(obj).get(0), counts(obj).get(1)]).toEqual([7n, 3n]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('attaches from SEC("uprobe.multi/BINARY:PATTERN")', async () => {
    const child = new Child(fixture('target'), ['3', '1']);
    using obj = await load(fixture('uprobe_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    const link = obj.program('on_auto').attach() as MultiLink;
    expect(link.targets.map((t) => t.name)).toEqual(['nodebpf_target']);
    await child.run();
    expect(counts(obj).get(0)).toBe(3n);
  });

  it.skipIf(!f.uprobeSession)(`uprobe sessions run at entry and return${skipReason(f.uprobeSession, 'no uprobe sessions (6.13)')}`, async () => {
    const child = new Child(fixture('target'), ['6', '0']);
    using obj = await load(fixture('uprobe_session.bpf.o'), { globals: { target_tgid: child.pid } });
    using link = obj.program('on_session').attachUprobeMulti({ binary: fixture('target'), symbols: ['nodebpf_target'], session: true });
    expect(link.mechanism).toBe('uprobe_multi');
    await child.run();
    expect(counts(obj).get(0)).toBe(12n);
  });

  it.skipIf(!f.uprobeSession)(`sessions pair each return with its entry through the kfuncs bpf_session_cookie and bpf_session_is_return${skipReason(f.uprobeSession, 'no uprobe sessions (6.13)')}`, async () => {
    using obj = await load(fixture('session_kfuncs.bpf.o'));
    const bss = obj.maps.find((m) => m.name.endsWith('.bss'));
    if (!bss) throw new Error('no .bss');
    using _l = obj.program('on_add').attachUprobeMulti({ binary: fixture('cli_target'), symbols: ['cli_add'], session: true });
    await new Child(fixture('cli_target'), ['add', '4']).exited;
    const raw = obj.map(bss.name).get(new Uint8Array(4)) as Uint8Array;
    const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    // entries, returns, and returns whose value is 11 × the argument kept at the entry
    expect([0, 8, 16].map((o) => v.getBigUint64(o, true))).toEqual([4n, 4n, 4n]);
  });

  it('a function uprobes cannot take (int3 first: ENOTSUPP) is named, the others attach', async () => {
    // The kernel checks the instruction when it puts the probe into a process that maps
    // the file: keep one running.
    const loop = new Child(fixture('cli_target'), ['loop']);
    try {
      using obj = await load(fixture('uprobe_multi.bpf.o'));
      using link = obj.program('on_entry').attachUprobeMulti({ binary: fixture('cli_target'), symbols: ['cli_count_a', 'unprobeable_int3', 'cli_sleep'] });
      expect(link.targets.map((t) => [t.name, t.cookie])).toEqual([['cli_count_a', 0n], ['cli_sleep', f.bpfCookie ? 1n : 0n]]);
      expect(link.skipped).toEqual([{ name: 'unprobeable_int3', reason: expect.stringMatching(/524|not supported/i) }]);
      // The loop calls cli_count_a every 10 ms: wait for the first hit, however busy the machine.
      await waitFor('a hit on cli_count_a', () => (counts(obj).get(0) ?? 0n) > 0n, 20_000);
    } finally {
      loop.proc.kill();
    }
  });

  it.skipIf(f.uprobeMulti)(`without uprobe_multi, fallback: false is UNSUPPORTED naming the feature${skipReason(!f.uprobeMulti, 'has uprobe_multi')}`, async () => {
    using obj = await load(fixture('uprobe_multi.bpf.o'));
    expect(() =>
      obj.program('on_entry').attachUprobeMulti({ binary: fixture('target'), symbols: 'nodebpf_*', fallback: false }),
    ).toThrow(expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringContaining('uprobeMulti') }));
  });
});

const ARG = 999_999;
const ESRCH = -3n;
// Both take a pid and return -ESRCH for one that does not exist.
const SYSCALLS = ['__x64_sys_getpgid', '__x64_sys_getsid'];

describe('kprobe_multi', () => {
  const mechanism = f.kprobeMulti ? 'kprobe_multi' : 'kprobes';
  const noKprobes = skipReason(f.kprobe, 'no kprobes (features().kprobe is false)');

  it.skipIf(!f.kprobe)(`the perf-kprobe fallback leaves the kprobe blacklist out, naming it${noKprobes}`, async () => {
    // A function ftrace lists but kprobes may not touch (NOKPROBE_SYMBOL), e.g. __die.
    const listed = new Set(readFileSync('/sys/kernel/debug/kprobes/blacklist', 'utf8').split('\n').map((l) => l.split(/\s+/)[1]));
    const blacklisted = readFileSync('/sys/kernel/tracing/available_filter_functions', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[0])
      .find((n) => listed.has(n));
    expect(blacklisted).toBeDefined();
    const N = 3;
    const child = syscalls('getpgid', N, ARG);
    using obj = await load(fixture('kprobe_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    using link = obj.program('on_entry').attachKprobeMulti({ symbols: [blacklisted!, SYSCALLS[0]], forceFallback: true });
    expect(link.skipped).toEqual([{ name: blacklisted, reason: expect.stringContaining('kprobe blacklist') }]);
    expect(link.targets.map((t) => [t.name, t.cookie])).toEqual([[SYSCALLS[0], 0n]]);
    await child.run();
    expect(counts(obj).get(0)).toBe(BigInt(N));
  });

  // Where kprobe_multi exists, the perf-kprobe fallback runs too and must count the same.
  for (const forceFallback of f.kprobeMulti ? [false, true] : [false]) {
  it.skipIf(!f.kprobe)(`counts per function, with the argument (${forceFallback ? 'kprobes, forced' : mechanism})${noKprobes}`, async () => {
    const N = 7;
    const child = syscalls('mixed', N, ARG);
    using obj = await load(fixture('kprobe_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    using link = obj.program('on_entry').attachKprobeMulti({ symbols: SYSCALLS, forceFallback });
    expect(link.mechanism).toBe(forceFallback ? 'kprobes' : mechanism);
    expect(link.targets.map((t) => [t.name, t.cookie])).toEqual([[SYSCALLS[0], 0n], [SYSCALLS[1], f.bpfCookie ? 1n : 0n]]);
    await child.run();
    if (f.bpfCookie) {
      expect(counts(obj).get(0)).toBe(BigInt(N));
      expect(counts(obj).get(1)).toBe(BigInt(2 * N));
    } else expect(counts(obj).get(0)).toBe(BigInt(3 * N));
    expect(values(obj).get(0)).toBe(BigInt(ARG));
  });
  }

  it.skipIf(!f.kprobe)(`kretprobe_multi sees return values, with a glob${noKprobes}`, async () => {
    const N = 3;
    const child = syscalls('getpgid', N, ARG);
    using obj = await load(fixture('kprobe_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    using link = obj.program('on_return').attachKprobeMulti({ symbols: '__x64_sys_getpgi?', retprobe: true });
    expect(link.targets.map((t) => t.name)).toEqual(['__x64_sys_getpgid']);
    await child.run();
    expect(counts(obj).get(0)).toBe(BigInt(N));
    expect(values(obj).get(0)).toBe(ESRCH);
  });

  it.skipIf(!f.kprobe)(`attaches from SEC("kprobe.multi/PATTERN")${noKprobes}`, async () => {
    const child = syscalls('getpgid', 2, ARG);
    using obj = await load(fixture('kprobe_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    const link = obj.program('on_auto').attach() as MultiLink;
    expect(link.mechanism).toBe(mechanism);
    await child.run();
    expect(counts(obj).get(0)).toBe(2n);
  });

  it.skipIf(!f.kprobeSession)(`kprobe sessions run at entry and return${skipReason(f.kprobeSession, 'no kprobe sessions (6.10 with CONFIG_FPROBE)')}`, async () => {
    const child = syscalls('getpgid', 4, ARG);
    using obj = await load(fixture('kprobe_session.bpf.o'), { globals: { target_tgid: child.pid } });
    using _l = obj.program('on_session').attachKprobeMulti({ symbols: ['__x64_sys_getpgid'], session: true });
    await child.run();
    expect(counts(obj).get(0)).toBe(8n);
  });

  it.skipIf(!f.kprobeMulti)(`attaches every traceable kernel function and detaches${skipReason(f.kprobeMulti, 'no kprobe_multi')}`, { timeout: 600_000 }, async () => {
    using obj = await load(fixture('kprobe_multi.bpf.o'));
    const link = obj.program('on_any').attachKprobeMulti();
    expect(link.targets.length).toBeGreaterThan(20_000);
    for (const s of link.skipped) expect(s.reason).not.toBe('');
    await syscalls('getpgid', 1, ARG).run();
    expect(counts(obj).get(0)).toBeGreaterThan(0n);
    console.log(`kprobe_multi on every function: ${link.targets.length} attached, ${link.skipped.length} skipped, ${link.kernelLinks} kernel links`);
    link.close();
  });
});

describe('tracing_multi', () => {
  const mechanism = (kind: string) => (f.tracingMulti ? 'tracing_multi' : kind);
  const noTrampolines =
    skipReason(f.fentry, 'no BPF trampolines (features().fentry is false)') ||
    skipReason(funcArgHelpers, 'no bpf_get_func_arg/ret (5.17): the fixture reads arguments with them');
  const trampolines = f.fentry && funcArgHelpers;

  // Where tracing_multi exists, the per-function fentry fallback runs too and must count the same.
  for (const forceFallback of f.tracingMulti ? [false, true] : [false]) {
  it.skipIf(!trampolines)(`fentry.multi counts per function with bpf_get_func_arg (${forceFallback ? 'fentry, forced' : mechanism('fentry')})${noTrampolines}`, async () => {
    const N = 5;
    const child = syscalls('mixed', N, ARG);
    using obj = await load(fixture('tracing_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    using link = obj.program('on_entry').attachTracingMulti({ functions: SYSCALLS, forceFallback });
    expect(link.mechanism).toBe(forceFallback ? 'fentry' : mechanism('fentry'));
    await child.run();
    if (f.bpfCookie) {
      expect(counts(obj).get(0)).toBe(BigInt(N));
      expect(counts(obj).get(1)).toBe(BigInt(2 * N));
    } else expect(counts(obj).get(0)).toBe(BigInt(3 * N));
    expect(values(obj).get(0)).toBe(BigInt(ARG));
  });
  }

  it.skipIf(!trampolines)(`the per-function fallback, attached off the JS thread, reports progress${noTrampolines}`, async () => {
    const N = 3;
    const child = syscalls('mixed', N, ARG);
    using obj = await load(fixture('tracing_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    const seen: [number, number][] = [];
    using link = await obj.program('on_entry').attachTracingMultiAsync({
      functions: SYSCALLS,
      forceFallback: true,
      onProgress: (done, total) => seen.push([done, total]),
    });
    expect(link.mechanism).toBe('fentry');
    expect(link.kernelLinks).toBe(2);
    expect(seen.at(-1)).toEqual([2, 2]);
    await child.run();
    if (f.bpfCookie) {
      expect(counts(obj).get(0)).toBe(BigInt(N));
      expect(counts(obj).get(1)).toBe(BigInt(2 * N));
    } else expect(counts(obj).get(0)).toBe(BigInt(3 * N));
  });

  it.skipIf(f.fentry)(`the async attach rejects with UNSUPPORTED where there are no trampolines${skipReason(!f.fentry, 'has fentry')}`, async () => {
    using obj = await load(fixture('tracing_multi.bpf.o'));
    await expect(obj.program('on_entry').attachTracingMultiAsync({ functions: SYSCALLS })).rejects.toMatchObject({
      code: 'UNSUPPORTED',
      message: expect.stringContaining('tracingMulti'),
    });
  });

  it.skipIf(!trampolines)(`fexit.multi sees return values with bpf_get_func_ret${noTrampolines}`, async () => {
    const child = syscalls('getpgid', 3, ARG);
    using obj = await load(fixture('tracing_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    using link = obj.program('on_exit').attachTracingMulti({ functions: ['__x64_sys_getpgid'] });
    expect(link.mechanism).toBe(mechanism('fexit'));
    await child.run();
    expect(counts(obj).get(0)).toBe(3n);
    expect(values(obj).get(0)).toBe(ESRCH);
  });

  it.skipIf(!f.tracingMulti)(`fsession.multi runs at entry and return${skipReason(f.tracingMulti, 'no tracing_multi (7.2)')}`, async () => {
    const child = syscalls('getpgid', 3, ARG);
    using obj = await load(fixture('fsession_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    using _l = obj.program('on_session').attachTracingMulti({ functions: ['__x64_sys_getpgid'] });
    await child.run();
    expect(counts(obj).get(0)).toBe(6n);
  });

  // The guests' root is an overlay: ovl_llseek runs once per lseek() on a file there.
  const overlay = existsSync('/sys/kernel/btf/overlay') && execFileSync('stat', ['-f', '-c', '%T', fixture('syscalls')], { encoding: 'utf8' }).trim() === 'overlayfs';
  const noOverlay = skipReason(f.fentry && overlay, f.fentry ? 'the fixtures are not on an overlayfs with module BTF' : 'no BPF trampolines (features().fentry is false)');
  it.skipIf(!f.fentry || !overlay)(`a kernel module's functions by 'module:pattern', with exact counts (${mechanism('fentry')})${noOverlay}`, async () => {
    const N = 7;
    const child = syscalls('lseek', N);
    using obj = await load(fixture('tracing_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    // Without tracing_multi the fallback would load a program per function: name one.
    const functions = f.tracingMulti ? 'overlay:ovl_*' : 'overlay:ovl_llseek';
    using link = obj.program('on_call').attachTracingMulti({ functions });
    expect(link.mechanism).toBe(mechanism('fentry'));
    expect(link.kernelLinks).toBe(1);
    if (f.tracingMulti) expect(link.targets.length).toBeGreaterThan(50);
    expect(link.targets.filter((t) => !t.name.startsWith('ovl_'))).toEqual([]);
    await child.run();
    expect(countOf(obj, link, 'ovl_llseek')).toBe(BigInt(N));
  });

  it.skipIf(!f.fentry || !overlay || !f.bpfCookie)(`a module's function through the module option and per-function fentry, and plain fentry on it by name${noOverlay || noCookies}`, async () => {
    const N = 4;
    const child = syscalls('lseek', N);
    using obj = await load(fixture('tracing_multi.bpf.o'), { globals: { target_tgid: child.pid } });
    using link = obj.program('on_call').attachTracingMulti({ module: 'overlay', functions: ['ovl_llseek'], forceFallback: true, cookies: [2n] });
    expect(link.mechanism).toBe('fentry');
    // Plain fentry finds module functions as libbpf does: 'module:function', or by name after vmlinux.
    const single = obj.program('on_call_single');
    using _a = single.attachFentry({ function: 'overlay:ovl_llseek', cookie: 0 });
    using _b = single.attachFentry({ function: 'ovl_llseek', cookie: 1 });
    await child.run();
    expect([0, 1, 2].map((k) => counts(obj).get(k))).toEqual([BigInt(N), BigInt(N), BigInt(N)]);
    expect(() => obj.program('on_call').attachTracingMulti({ module: 'nodebpf_no_such_module' })).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining("'nodebpf_no_such_module' is not loaded") }),
    );
  });

  it.skipIf(!f.tracingMulti)(`skips what it cannot take and names it${skipReason(f.tracingMulti, 'no tracing_multi (7.2)')}`, async () => {
    using obj = await load(fixture('tracing_multi.bpf.o'));
    using link = obj.program('on_entry').attachTracingMulti({ functions: 'vfs_*' });
    expect(link.targets.length).toBeGreaterThan(5);
    expect(link.kernelLinks).toBe(1);
    for (const s of link.skipped) expect(s.reason).toMatch(/./);
  });
});
