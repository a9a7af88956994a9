// The profiler on the real kernel: a C program with frame pointers spending 3/4 of its
// time under hot_spin and 1/4 under cold_spin, a syscall loop whose time is in the kernel,
// a Node program whose hot function only its perf map names; and the formats, read back
// by decoders that are not ours (protobufjs with pprof's profile.proto).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { afterEach, describe, expect, it } from 'vitest';

import { offcpu, profile, profileIntervals, type Frame, type Profile } from '../dist/index.js';
import { fixture, inGuest, waitFor } from './helpers.js';

/** In a kernel-matrix guest (TCG): timers run late, sampling rates are not kept. */

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill();
});

/**
 * How targets are started: in a guest, at a lower priority (nice execs the target, so the
 * pid and the name are its own). A guest has one slow CPU, and a target spinning at full
 * priority there starves vitest's own processes until their calls to each other time out.
 */
const spawnTarget = (cmd: string, args: string[], options: Parameters<typeof spawn>[2]) =>
  inGuest ? spawn('nice', ['-n', '10', cmd, ...args], options) : spawn(cmd, args, options);

/** Starts `cmd` and gives it `settleMs` to get going. */
async function start(cmd: string, args: string[], settleMs = 300): Promise<number> {
  const child = spawnTarget(cmd, args, { stdio: 'ignore' });
  children.push(child);
  await new Promise((r) => setTimeout(r, settleMs));
  if (child.pid === undefined || child.exitCode !== null) throw new Error(`${cmd} did not start`);
  return child.pid;
}

const names = (stack: Frame[]) => stack.map((f) => f.name);
const share = (p: Profile, pred: (s: Profile['samples'][number]) => boolean) =>
  p.samples.filter(pred).reduce((n, s) => n + s.count, 0) / p.samples.reduce((n, s) => n + s.count, 0);

/** pprof's profile.proto, the fields nodebpf writes (github.com/google/pprof/proto/profile.proto). */
const PROFILE_PROTO = `
syntax = "proto3";
package perftools.profiles;
message Profile {
  repeated ValueType sample_type = 1; repeated Sample sample = 2; repeated Mapping mapping = 3;
  repeated Location location = 4; repeated Function function = 5; repeated string string_table = 6;
  int64 time_nanos = 9; int64 duration_nanos = 10; ValueType period_type = 11; int64 period = 12;
}
message ValueType { int64 type = 1; int64 unit = 2; }
message Sample { repeated uint64 location_id = 1; repeated int64 value = 2; repeated Label label = 3; }
message Label { int64 key = 1; int64 str = 2; int64 num = 3; int64 num_unit = 4; }
message Mapping { uint64 id = 1; uint64 memory_start = 2; uint64 memory_limit = 3; uint64 file_offset = 4; int64 filename = 5; int64 build_id = 6; bool has_functions = 7; }
message Location { uint64 id = 1; uint64 mapping_id = 2; uint64 address = 3; repeated Line line = 4; bool is_folded = 5; }
message Line { uint64 function_id = 1; int64 line = 2; }
message Function { uint64 id = 1; int64 name = 2; int64 system_name = 3; int64 filename = 4; int64 start_line = 5; }
`;

describe('profile', () => {
  it('a C program: the known shares of hot_spin and cold_spin, every stack down to main', async () => {
    const pid = await start(fixture('profile_target'), ['4000']);
    const p = await profile({ pid, duration: 1500, frequency: 999 });
    expect(['cycles', 'cpu-clock']).toContain(p.event);
    expect(p.totals.samples).toBeGreaterThan(500);
    expect(p.samples.every((s) => s.pid === pid && s.comm === 'profile_target')).toBe(true);
    const inSpin = (s: Profile['samples'][number]) => names(s.stack).includes('spin');
    expect(share(p, inSpin)).toBeGreaterThan(0.95);
    const hot = share(p, (s) => names(s.stack).includes('hot_spin'));
    const cold = share(p, (s) => names(s.stack).includes('cold_spin'));
    expect(Math.abs(hot - 0.75)).toBeLessThan(0.06);
    expect(Math.abs(cold - 0.25)).toBeLessThan(0.06);
    // main, work, hot_spin or cold_spin, spin: in this order, spin the leaf (kernel frames
    // may follow). A sample on spin's first instruction, before it pushed its frame, skips
    // its caller: rare natively, less so under TCG (whose interrupts land on block starts).
    const whole = (s: Profile['samples'][number]) => {
      const n = names(s.stack);
      const at = n.indexOf('main');
      return at >= 0 && n[at + 1] === 'work' && ['hot_spin', 'cold_spin'].includes(n[at + 2]) && n[at + 3] === 'spin' && s.stack[at + 3].module === 'profile_target';
    };
    expect(p.samples.filter(inSpin).every((s) => names(s.stack).includes('main'))).toBe(true);
    expect(share(p, whole) / share(p, inSpin)).toBeGreaterThan(0.95);
    const top = p.top(1)[0];
    expect(top).toMatchObject({ name: 'spin', module: 'profile_target' });
    expect(top.self).toBeGreaterThan(0.95);
  });

  it('a syscall loop: kernel frames under the user stack that made the call', async () => {
    const pid = await start(fixture('profile_target'), ['4000', 'sys']);
    const p = await profile({ pid, duration: 1000, frequency: 999 });
    const kernel = p.samples.filter((s) => s.stack.some((f) => f.kind === 'kernel'));
    expect(share(p, (s) => kernel.includes(s))).toBeGreaterThan(0.5);
    expect(kernel.some((s) => s.stack.some((f) => f.kind === 'kernel' && f.name === 'vfs_read'))).toBe(true);
    const userPart = (st: Frame[]) => names(st.slice(0, st.findIndex((f) => f.kind === 'kernel')));
    for (const s of kernel) {
      // User frames first (root first), then the kernel's.
      const firstKernel = s.stack.findIndex((f) => f.kind === 'kernel');
      expect(s.stack.slice(firstKernel).every((f) => f.kind === 'kernel' || f.kind === 'unknown')).toBe(true);
      expect(userPart(s.stack)).toContain('main');
    }
    // libc's syscall() sets up no frame: its caller (syscalls) is skipped, main is not. Not
    // every kernel sample is a read: under TCG clock_gettime has no vDSO clock and enters
    // the kernel too (seen on 7.2), so nearly all, not all.
    expect(share(p, (s) => kernel.includes(s) && userPart(s.stack).includes('syscall')) / share(p, (s) => kernel.includes(s))).toBeGreaterThan(0.8);
    const noKernel = await profile({ pid, duration: 300, frequency: 999, kernel: false });
    expect(noKernel.samples.every((s) => s.stack.every((f) => f.kind !== 'kernel'))).toBe(true);
  });

  it("a Node program: its hot JS function named through V8's perf map", async () => {
    const script = 'function hotLeaf(n){let x=0;for(let i=0;i<n;i++)x+=Math.sqrt(i);return x}function middle(){return hotLeaf(1e5)}const t=Date.now();while(Date.now()-t<4000)middle();';
    const pid = await start(process.execPath, ['--perf-basic-prof-only-functions', '--interpreted-frames-native-stack', '--no-turbo-inlining', '-e', script], 800);
    const p = await profile({ pid, duration: 1500, frequency: 499 });
    const top = p.top(1)[0];
    expect(top.name).toMatch(/^JS:.hotLeaf /);
    expect(top.module).toBe('[jit]');
    // Under TCG, V8's own threads (the compiler, the GC) take more of the process's time:
    // 0.72 on 5.10 in one matrix run.
    expect(top.self).toBeGreaterThan(inGuest ? 0.5 : 0.8);
    // Through the JS frames down to node's main.
    const hot = p.samples.filter((s) => /hotLeaf/.test(s.stack.at(-1)?.name ?? ''));
    expect(hot.some((s) => names(s.stack).some((n) => /middle/.test(n)) && names(s.stack).includes('node::Start(int, char**)'))).toBe(true);
  });

  it("a Node program with --perf-prof: its JS functions named through V8's jitdump (no perf map)", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nodebpf-jit-'));
    const script = 'function hotLeaf(n){let x=0;for(let i=0;i<n;i++)x+=Math.sqrt(i);return x}const t=Date.now();while(Date.now()-t<2500)hotLeaf(1e5);';
    const child = spawnTarget(process.execPath, ['--perf-prof', '--interpreted-frames-native-stack', '--no-turbo-inlining', '-e', script], { cwd: dir, stdio: 'ignore' });
    children.push(child);
    await new Promise((r) => setTimeout(r, 800));
    const stop = new AbortController();
    const exited = new Promise((r) => child.on('exit', r));
    const running = profile({ pid: child.pid, frequency: 499, signal: stop.signal });
    // Until it exits: V8 buffers its jitdump and writes the rest at exit.
    await exited;
    stop.abort();
    const p = await running;
    expect(readdirSync(dir).some((f) => /^jit-\d+\.dump$/.test(f))).toBe(true);
    expect(readdirSync('/tmp').includes(`perf-${child.pid}.map`)).toBe(false);
    const top = p.top(1)[0];
    expect(top.name).toMatch(/hotLeaf/);
    expect(top.module).toBe('[jit]');
    expect(top.self).toBeGreaterThan(0.7);
  });

  it('every process (no pid): the target among the others, its samples its own', async () => {
    const pid = await start(fixture('profile_target'), ['3000']);
    const p = await profile({ duration: 800, frequency: 499 });
    const mine = p.samples.filter((s) => s.pid === pid);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((s) => s.comm === 'profile_target')).toBe(true);
    // At nice 10 on a guest's one CPU the target gets what vitest leaves it (0.28 on 5.10).
    expect(share(p, (s) => s.pid === pid)).toBeGreaterThan(inGuest ? 0.1 : 0.3);
    expect(p.samples.filter((s) => s.pid !== pid).every((s) => !names(s.stack).includes('hot_spin'))).toBe(true);
  });

  it.skipIf(inGuest)('every process: one that lives 150 ms keeps its names (its first sample has its mappings taken in) [skipped in TCG guests: too slow to sample 150 ms]', async () => {
    const stop = new AbortController();
    let started!: () => void;
    const attached = new Promise<void>((r) => (started = r));
    const running = profile({ frequency: 999, signal: stop.signal, onStart: started });
    await attached;
    const child = spawn(fixture('profile_target'), ['150'], { stdio: 'ignore' });
    await new Promise((r) => child.on('exit', r));
    await new Promise((r) => setTimeout(r, 100));
    stop.abort();
    const p = await running;
    const mine = p.samples.filter((s) => s.pid === child.pid);
    expect(mine.reduce((n, s) => n + s.count, 0)).toBeGreaterThan(50);
    expect(share(p, (s) => s.pid === child.pid && names(s.stack).includes('hot_spin'))).toBeGreaterThan(0);
    const named = mine.filter((s) => names(s.stack).includes('spin')).reduce((n, s) => n + s.count, 0);
    expect(named / mine.reduce((n, s) => n + s.count, 0)).toBeGreaterThan(0.8);
  });

  it('a period of cpu-clock nanoseconds instead of a frequency', async () => {
    const pid = await start(fixture('profile_target'), ['3000']);
    const p = await profile({ pid, duration: 1000, period: 2_000_000 });
    expect(p.event).toBe('cpu-clock');
    expect(p.frequency).toBe(500);
    const n = p.samples.reduce((s, x) => s + x.count, 0);
    // 500 a second; fewer in a TCG guest, whose timers run late.
    expect(n).toBeGreaterThan(inGuest ? 100 : 350);
    expect(n).toBeLessThan(650);
    await expect(profile({ pid, duration: 10, period: 1000, frequency: 99 })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(profile({ pid, duration: 10, period: 1000, event: 'cycles' })).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('stripped binaries: names from a separate debug file (debug link), and from MiniDebugInfo', async () => {
    for (const kind of ['debuglink', 'minidebug']) {
      const pid = await start(fixture(`${kind}/profile_target`), ['3000'], 200);
      const p = await profile({ pid, duration: 700, frequency: 499 });
      expect(p.toFolded(), kind).toMatch(/^profile_target;.*;main;work;hot_spin;spin \d+$/m);
      expect(share(p, (s) => names(s.stack).includes('spin')), kind).toBeGreaterThan(0.9);
    }
  });

  it('a binary only its own mount namespace sees (a tmpfs mounted there): named through /proc/PID/map_files', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nodebpf-ns-'));
    const src = fixture('profile_target');
    const pid = await start('unshare', ['-m', 'sh', '-c', `mount -t tmpfs none ${dir} && cp ${src} ${dir}/hidden && exec ${dir}/hidden 3000`], 0);
    // Until the shell has exec'd it (slow in a TCG guest).
    await waitFor('the hidden binary running', () => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'hidden', 20_000);
    expect(readdirSync(dir)).toEqual([]);
    const p = await profile({ pid, duration: 700, frequency: 499 });
    expect(p.samples.every((s) => s.comm === 'hidden')).toBe(true);
    expect(p.toFolded()).toMatch(/^hidden;.*;main;work;hot_spin;spin \d+$/m);
    expect(p.top(1)[0]).toMatchObject({ name: 'spin', module: 'hidden' });
  });

  it('formats: folded lines flamegraph tools take, pprof a protobuf decoder reads, speedscope', async () => {
    const pid = await start(fixture('profile_target'), ['3000']);
    const p = await profile({ pid, duration: 800, frequency: 999 });
    const total = p.samples.reduce((n, s) => n + s.count, 0);

    const folded = p.toFolded().trimEnd().split('\n');
    const parsed = folded.map((l) => /^(.*) (\d+)$/.exec(l));
    expect(parsed.every((m) => m !== null)).toBe(true);
    expect(parsed.reduce((n, m) => n + Number(m![2]), 0)).toBe(total);
    expect(parsed.every((m) => m![1].split(';')[0] === 'profile_target')).toBe(true);
    expect(folded.some((l) => l.includes(';main;work;hot_spin;spin '))).toBe(true);

    const Profile = protobuf.parse(PROFILE_PROTO).root.lookupType('perftools.profiles.Profile');
    const decoded = Profile.toObject(Profile.decode(gunzipSync(p.toPprof())), { longs: Number }) as {
      sample: { locationId: number[]; value: number[] }[];
      location: { id: number; line: { functionId: number }[] }[];
      function: { id: number; name: number }[];
      stringTable: string[];
      sampleType: { type: number; unit: number }[];
      period: number;
    };
    const str = decoded.stringTable;
    expect(decoded.sampleType.map((t) => `${str[t.type]}/${str[t.unit]}`)).toEqual(['samples/count', 'cpu/nanoseconds']);
    expect(decoded.sample.reduce((n, s) => n + s.value[0], 0)).toBe(total);
    const fn = new Map(decoded.function.map((f) => [f.id, str[f.name]]));
    const loc = new Map(decoded.location.map((l) => [l.id, fn.get(l.line[0].functionId)]));
    // Leaf first in pprof.
    const leafs = decoded.sample.map((s) => loc.get(s.locationId[0]));
    expect(leafs.filter((n) => n === 'spin').length).toBeGreaterThan(0);
    expect(decoded.sample.some((s) => s.locationId.map((id) => loc.get(id)).join(' < ').startsWith('spin < hot_spin < work < main'))).toBe(true);

    const ss = p.toSpeedscope();
    expect(ss.profiles).toHaveLength(1);
    const sp = ss.profiles[0];
    expect(sp.samples).toHaveLength(sp.weights.length);
    expect(sp.samples.flat().every((i) => i >= 0 && i < ss.shared.frames.length)).toBe(true);
    expect(sp.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(total * p.period, 0);
    expect(sp.samples.some((s) => s.map((i) => ss.shared.frames[i].name).join(';').endsWith('main;work;hot_spin;spin'))).toBe(true);
  });

  it('intervals: a profile per interval, each with its own samples', async () => {
    const pid = await start(fixture('profile_target'), ['4000']);
    const got: Profile[] = [];
    for await (const p of profileIntervals({ pid, duration: 2200, interval: 700, frequency: 499 })) got.push(p);
    // A TCG guest's timers may fold intervals into one (its drains take long too); its
    // sampling runs slow.
    expect(got.length).toBeGreaterThanOrEqual(inGuest ? 1 : 3);
    for (const p of got.slice(0, 3)) {
      const n = p.samples.reduce((s, x) => s + x.count, 0);
      // 499 Hz for ~0.7 s on one busy thread.
      expect(n).toBeGreaterThan(inGuest ? 30 : 150);
      expect(n).toBeLessThan(inGuest ? 1200 : 600);
      // The counters are read just after the halves flip: a few samples of the next
      // interval may be in them.
      expect(Math.abs(p.totals.samples - n - p.totals.countsFull)).toBeLessThanOrEqual(Math.max(5, n * 0.05));
    }
  });

  it('off-CPU: the time a thread slept, by the stack it slept in, the tracing glue trimmed', async () => {
    const pid = await start(fixture('profile_target'), ['4000', 'nap']);
    const p = await offcpu({ pid, duration: 1000 });
    expect(p.event).toBe('sched_switch');
    expect(p.unit).toBe('microseconds');
    const inNap = p.samples.filter((s) => names(s.stack).includes('nap'));
    const us = inNap.reduce((n, s) => n + s.count, 0);
    // 20 ms naps back to back: nearly all of the second, asleep.
    expect(us).toBeGreaterThan(800_000);
    // TCG guests' clocks let the last nap run past the window: 1.056 s seen on 6.1.
    expect(us).toBeLessThan(inGuest ? 1_150_000 : 1_050_000);
    // About 50 waits of 20 ms.
    expect(p.totals.samples).toBeGreaterThan(35);
    expect(p.totals.samples).toBeLessThan(60);
    for (const s of inNap) expect(names(s.stack).slice(names(s.stack).indexOf('main'), names(s.stack).indexOf('nap') + 1)).toEqual(['main', 'nap']);
    // The kernel's half of a wait's stack: under load a kernel stack can be lost (counted in
    // totals as failed or collided), so nearly all of the time, not every wait.
    const kernelHalf = (s: (typeof inNap)[number]) => s.stack.some((f) => f.kind === 'kernel' && /nanosleep/.test(f.name)) && /schedule/.test(s.stack.at(-1)?.name ?? '');
    expect(share(p, (s) => inNap.includes(s) && kernelHalf(s)) / share(p, (s) => inNap.includes(s))).toBeGreaterThan(0.95);
    expect(p.toFolded()).toMatch(/;main;nap;.*do_nanosleep_\[k\];.*schedule_\[k\] \d+\n/);
    await expect(offcpu({ pid })).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('examples/profiling: an app profiles itself through the helper and gets its own functions back', () => {
    const app = path.join(import.meta.dirname, '..', 'examples', 'profiling', 'app.mjs');
    const r = spawnSync(process.execPath, ['--perf-basic-prof-only-functions', '--interpreted-frames-native-stack', app], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\d+ samples \((cycles|cpu-clock)\); the profile is in /);
    expect(r.stdout).toMatch(/%\s+JS:.render file:\/\/.*work\.mjs/);
  });

  it('options are checked where they enter', async () => {
    await expect(profile({ pid: 1 })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(profile({ duration: 10, frequency: 0 })).rejects.toMatchObject({ code: 'RANGE' });
    await expect(profile({ duration: 10, pid: -1 })).rejects.toMatchObject({ code: 'RANGE' });
    await expect(profile({ duration: 10, event: 'instructions' as 'cycles' })).rejects.toMatchObject({ code: 'EINVAL' });
  });
});
