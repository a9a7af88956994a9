// CPU profiles: sampled stacks, symbolized, and the formats profilers are read in.
import { availableParallelism } from 'node:os';
import { gzipSync } from 'node:zlib';
import { Function as PFunction, Label, Line, Location, Mapping, Profile as PProfile, Sample, StringTable, ValueType } from 'pprof-format';

import { BpfError } from '../errors.js';
import { options as opts, optBig, optNum, optStr, PID } from '../check.js';
import { Sampler, type SampledEvent } from './sampler.js';

/** One frame of a stack. */
export interface Frame {
  name: string;
  /** The file's base name (`node`, `libc.so.6`), or `[kernel]`, `[jit]`, `[vdso]`, `[anon]`, `[unmapped]`. */
  module: string;
  /** `jit`: named by the process's perf map; `unknown`: `[unknown] 0x…` (a file offset, or an address). */
  kind: 'user' | 'kernel' | 'jit' | 'unknown';
}

/** How often one thread was seen in one stack. */
export interface ProfileSample {
  /** The process (tgid). */
  pid: number;
  /** The thread. */
  tid: number;
  /** The thread's name. */
  comm: string;
  count: number;
  /** Root first: the user stack, then the kernel stack it called into. */
  stack: Frame[];
}

/** What the sampling counted besides the samples. */
export interface ProfileTotals {
  /**
   * Samples the program took of the processes profiled (read just after the halves flip,
   * so a few of the next interval's may be in it).
   */
  samples: number;
  /** Samples of idle CPUs, left out. */
  idle: number;
  /** Stacks lost to a collision in the stack map (another stack in their bucket). */
  userCollided: number;
  kernelCollided: number;
  /** Stacks the kernel could not take for another reason. */
  userFailed: number;
  kernelFailed: number;
  /** Samples not counted: the count map was full. */
  countsFull: number;
  /** Samples whose stack filled the kernel's 127 frames: cut (their root frames missing). */
  truncated: number;
}

export interface ProfileOptions {
  /** One process (all its threads); default: every process. */
  pid?: number;
  /** The tasks of one cgroup v2 directory. */
  cgroup?: string;
  /** Samples per second per CPU (default 99). */
  frequency?: number;
  /**
   * Instead of a frequency: one sample every `period` nanoseconds of `cpu-clock`, as
   * `perf record -c` does (the event is then `cpu-clock`).
   */
  period?: number | bigint;
  /** How long, in milliseconds (default: until `signal` aborts). */
  duration?: number;
  signal?: AbortSignal;
  /** Kernel stacks (default true). */
  kernel?: boolean;
  /** User stacks (default true). */
  user?: boolean;
  /** What drives sampling: `cycles` needs a hardware PMU; `auto` (default) falls back to `cpu-clock` without one. */
  event?: 'cycles' | 'cpu-clock' | 'auto';
  /** Called once sampling has begun (the program is loaded and attached): start the work to profile then. */
  onStart?: () => void;
}

/** A symbolized CPU profile: samples, and what was lost on the way. */
export class Profile {
  constructor(
    readonly samples: ProfileSample[],
    readonly totals: ProfileTotals,
    /** The event that was sampled: `cycles`, `cpu-clock`, or `sched_switch` (off-CPU time). */
    readonly event: SampledEvent,
    /** Samples per second per CPU (CPU profiles; 0 for off-CPU time). */
    readonly frequency: number,
    /** Milliseconds since the epoch. */
    readonly startTime: number,
    /** Milliseconds. */
    readonly duration: number,
  ) {}

  /** What a sample's `count` is: `samples` (CPU profiles), or `microseconds` blocked (off-CPU). */
  get unit(): 'samples' | 'microseconds' {
    return this.event === 'sched_switch' ? 'microseconds' : 'samples';
  }

  /** Nanoseconds one count stands for. */
  get period(): number {
    return this.unit === 'microseconds' ? 1000 : 1e9 / this.frequency;
  }

  /**
   * Brendan Gregg's collapsed stacks (flamegraph.pl, inferno, speedscope read them): one
   * line per distinct stack, `comm;root;…;leaf count`, kernel frames marked `_[k]` and JIT
   * frames `_[j]` as perf's stackcollapse marks them.
   */
  toFolded(): string {
    const clean = (s: string) => s.replace(/[;\n\r]/g, '_');
    const counts = new Map<string, number>();
    for (const s of this.samples) {
      const frames = s.stack.map((f) => clean(f.name) + (f.kind === 'kernel' ? '_[k]' : f.kind === 'jit' ? '_[j]' : ''));
      const line = [clean(s.comm), ...frames].join(';');
      counts.set(line, (counts.get(line) ?? 0) + s.count);
    }
    return [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([line, n]) => `${line} ${n}\n`).join('');
  }

  /** pprof's profile.proto, gzipped (what `go tool pprof` and most profilers read). */
  toPprof(): Buffer {
    const strings = new StringTable();
    const functions = new Map<string, PFunction>();
    const locations = new Map<string, Location>();
    const mappings = new Map<string, Mapping>();
    const location = (f: Frame): Location => {
      const key = `${f.kind}\0${f.module}\0${f.name}`;
      let loc = locations.get(key);
      if (loc) return loc;
      let mapping = mappings.get(f.module);
      if (!mapping) {
        mapping = new Mapping({ id: mappings.size + 1, filename: strings.dedup(f.module), hasFunctions: true });
        mappings.set(f.module, mapping);
      }
      let fn = functions.get(key);
      if (!fn) {
        fn = new PFunction({ id: functions.size + 1, name: strings.dedup(f.name), systemName: strings.dedup(f.name), filename: strings.dedup(f.module) });
        functions.set(key, fn);
      }
      loc = new Location({ id: locations.size + 1, mappingId: mapping.id, line: [new Line({ functionId: fn.id })] });
      locations.set(key, loc);
      return loc;
    };
    const pidKey = strings.dedup('pid');
    const tidKey = strings.dedup('tid');
    const commKey = strings.dedup('comm');
    const period = Math.round(this.period);
    const samples = this.samples.map(
      (s) =>
        new Sample({
          // Leaf first.
          locationId: s.stack.map(location).map((l) => l.id).reverse(),
          value: [s.count, s.count * period],
          label: [new Label({ key: pidKey, num: s.pid }), new Label({ key: tidKey, num: s.tid }), new Label({ key: commKey, str: strings.dedup(s.comm) })],
        }),
    );
    const profile = new PProfile({
      sampleType:
        this.unit === 'samples'
          ? [new ValueType({ type: strings.dedup('samples'), unit: strings.dedup('count') }), new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') })]
          : [new ValueType({ type: strings.dedup('off-cpu'), unit: strings.dedup('microseconds') }), new ValueType({ type: strings.dedup('off-cpu'), unit: strings.dedup('nanoseconds') })],
      sample: samples,
      mapping: [...mappings.values()],
      location: [...locations.values()],
      function: [...functions.values()],
      stringTable: strings,
      timeNanos: BigInt(Math.round(this.startTime)) * 1_000_000n,
      durationNanos: BigInt(Math.round(this.duration)) * 1_000_000n,
      periodType: new ValueType({ type: strings.dedup(this.event), unit: strings.dedup('nanoseconds') }),
      period,
    });
    return gzipSync(profile.encode());
  }

  /** speedscope's file format: one sampled profile per process, weights in nanoseconds. */
  toSpeedscope(): SpeedscopeFile {
    const frames: { name: string; file?: string }[] = [];
    const index = new Map<string, number>();
    const frameIndex = (f: Frame) => {
      const key = `${f.kind}\0${f.module}\0${f.name}`;
      let i = index.get(key);
      if (i === undefined) {
        i = frames.length;
        frames.push(f.module ? { name: f.name, file: f.module } : { name: f.name });
        index.set(key, i);
      }
      return i;
    };
    const byPid = new Map<number, ProfileSample[]>();
    for (const s of this.samples) byPid.set(s.pid, [...(byPid.get(s.pid) ?? []), s]);
    const profiles = [...byPid].map(([pid, samples]) => {
      const weights = samples.map((s) => s.count * this.period);
      return {
        type: 'sampled' as const,
        name: `${samples[0].comm} (pid ${pid})`,
        unit: 'nanoseconds' as const,
        startValue: 0,
        endValue: weights.reduce((a, b) => a + b, 0),
        samples: samples.map((s) => s.stack.map(frameIndex)),
        weights,
      };
    });
    return {
      $schema: 'https://www.speedscope.app/file-format-schema.json',
      version: '0.6.0',
      name: 'nodebpf profile',
      activeProfileIndex: 0,
      exporter: 'nodebpf',
      shared: { frames },
      profiles,
    };
  }

  /** The functions most seen: as the leaf (self) and anywhere in the stack (total), as shares of all samples. */
  top(n = 10): { name: string; module: string; self: number; total: number }[] {
    const all = this.samples.reduce((s, x) => s + x.count, 0) || 1;
    const rows = new Map<string, { name: string; module: string; self: number; total: number }>();
    const row = (f: Frame) => {
      const key = `${f.module}\0${f.name}`;
      let r = rows.get(key);
      if (!r) rows.set(key, (r = { name: f.name, module: f.module, self: 0, total: 0 }));
      return r;
    };
    for (const s of this.samples) {
      if (s.stack.length) row(s.stack[s.stack.length - 1]).self += s.count;
      for (const key of new Set(s.stack.map((f) => `${f.module}\0${f.name}`))) {
        const f = s.stack.find((x) => `${x.module}\0${x.name}` === key);
        if (f) row(f).total += s.count;
      }
    }
    return [...rows.values()]
      .map((r) => ({ ...r, self: r.self / all, total: r.total / all }))
      .sort((a, b) => b.self - a.self || b.total - a.total)
      .slice(0, n);
  }
}

export interface SpeedscopeFile {
  $schema: string;
  version: string;
  name: string;
  activeProfileIndex: number;
  exporter: string;
  shared: { frames: { name: string; file?: string }[] };
  profiles: { type: 'sampled'; name: string; unit: 'nanoseconds'; startValue: number; endValue: number; samples: number[][]; weights: number[] }[];
}

const FREQUENCY = { min: 1n, max: 100_000n, name: 'frequency' } as const;
const PERIOD = { min: 1n, max: (1n << 63n) - 1n, name: 'period' } as const;
const DURATION = { min: 1n, max: BigInt(Number.MAX_SAFE_INTEGER), name: 'duration' } as const;

function checked(given: ProfileOptions | undefined) {
  const o = opts('profile options', given ?? {});
  const event = o.event ?? 'auto';
  if (!['auto', 'cycles', 'cpu-clock'].includes(event)) throw new BpfError('EINVAL', `event is '${String(event)}': 'auto', 'cycles' or 'cpu-clock'`);
  if (o.period !== undefined && o.frequency !== undefined) throw new BpfError('EINVAL', 'give frequency or period, not both');
  if (o.period !== undefined && event === 'cycles') throw new BpfError('EINVAL', 'a period is in nanoseconds of cpu-clock: give a frequency for cycles');
  const period = optBig('period', o.period, PERIOD);
  return {
    period,
    pid: optNum('pid', o.pid, PID),
    cgroup: optStr('cgroup', o.cgroup),
    // A period of cpu-clock nanoseconds is a frequency too.
    frequency: period === undefined ? (optNum('frequency', o.frequency, FREQUENCY) ?? 99) : 1e9 / Number(period),
    duration: optNum('duration', o.duration, DURATION),
    signal: o.signal,
    onStart: typeof o.onStart === 'function' ? o.onStart : undefined,
    user: o.user !== false,
    kernel: o.kernel !== false,
    event: period === undefined ? event : ('cpu-clock' as const),
  };
}

export interface OffCpuOptions {
  pid?: number;
  cgroup?: string;
  /** How long, in milliseconds (default: until `signal` aborts). */
  duration?: number;
  signal?: AbortSignal;
  kernel?: boolean;
  user?: boolean;
  /** Blocks shorter than this many microseconds are left out (default 1). */
  minBlock?: number;
  /** Called once the program is attached: start the work to look at then. */
  onStart?: () => void;
}

/**
 * Where threads wait: for `duration` ms or until `signal` aborts, the time each thread
 * (of every process, or of one) spent off CPU, by the stacks it blocked in, as a
 * `Profile` whose counts are microseconds. Threads still blocked at the end are not in it.
 */
export async function offcpu(given?: OffCpuOptions): Promise<Profile> {
  const o = opts('offcpu options', given ?? {});
  const pid = optNum('pid', o.pid, PID);
  const duration = optNum('duration', o.duration, DURATION);
  if (duration === undefined && !o.signal) throw new BpfError('EINVAL', 'offcpu needs a duration or a signal to end');
  const minBlockUs = optNum('minBlock', o.minBlock, { min: 0n, max: 1n << 40n, name: 'minBlock' }) ?? 1;
  const sampler = await Sampler.start({ pid, cgroup: optStr('cgroup', o.cgroup), user: o.user !== false, kernel: o.kernel !== false, offCpu: { minBlockUs } });
  if (typeof o.onStart === 'function') o.onStart();
  const start = Date.now();
  try {
    await wait(duration, o.signal);
    const { samples, totals } = await sampler.drain();
    return new Profile(samples, totals, sampler.event, 0, start, Date.now() - start);
  } finally {
    sampler.close();
  }
}

/** Waits `ms` (forever when undefined), or until `signal` aborts. */
function wait(ms: number | undefined, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = ms === undefined ? undefined : setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * How often a profile's maps are drained while it runs. A hot loop makes a new stack per
 * instruction sampled, and a stack whose hash bucket in the kernel's stack map (16,384)
 * is taken is lost: k distinct stacks lose about k²/32,768 of them, so the interval is
 * kept to ~160 samples per CPU (about 0.5 % lost at worst), between 100 ms and 1 s. The
 * count map never fills either.
 */
const drainMs = (frequency: number) => Math.min(1000, Math.max(100, (160_000 / (frequency * availableParallelism())) | 0));

/**
 * Samples the stacks of every CPU (or of one process, or cgroup) for `duration` ms or
 * until `signal` aborts, and resolves with them symbolized. Needs CAP_BPF and
 * CAP_PERFMON (root).
 */
export async function profile(given?: ProfileOptions): Promise<Profile> {
  const o = checked(given);
  if (o.duration === undefined && !o.signal) throw new BpfError('EINVAL', 'profile needs a duration or a signal to end');
  const sampler = await Sampler.start({ ...o, cpu: { frequency: o.frequency, period: o.period, event: o.event } });
  o.onStart?.();
  const start = Date.now();
  const end = o.duration === undefined ? Infinity : start + o.duration;
  try {
    // Drained as it runs, symbolized at the end (names a JIT writes late are in then).
    const collected = [];
    do {
      await wait(Math.min(drainMs(o.frequency), end - Date.now()), o.signal);
      collected.push(await sampler.collect());
    } while (!o.signal?.aborted && Date.now() < end);
    const { samples, totals } = await sampler.symbolize(collected);
    return new Profile(samples, totals, sampler.event, o.frequency, start, Date.now() - start);
  } finally {
    sampler.close();
  }
}

/**
 * Continuous profiling: a profile of each `interval` ms (default 1000) until `signal`
 * aborts or `duration` ms passed; the last one covers what was left.
 */
export async function* profileIntervals(given?: ProfileOptions & { interval?: number }): AsyncGenerator<Profile, void, undefined> {
  const o = checked(given);
  const interval = optNum('interval', given?.interval, DURATION) ?? 1000;
  const sampler = await Sampler.start({ ...o, cpu: { frequency: o.frequency, period: o.period, event: o.event } });
  o.onStart?.();
  const end = o.duration === undefined ? Infinity : Date.now() + o.duration;
  try {
    while (!o.signal?.aborted) {
      const start = Date.now();
      await wait(Math.min(interval, end - start), o.signal);
      const { samples, totals } = await sampler.drain();
      yield new Profile(samples, totals, sampler.event, o.frequency, start, Date.now() - start);
      if (Date.now() >= end) return;
    }
  } finally {
    sampler.close();
  }
}
