// The sampling side of the profilers: bpf/profile.bpf.c on a perf event on every online
// CPU (the process filter is in the program: a perf event opened for a pid follows one
// thread), or bpf/offcpu.bpf.c on sched_switch; their two halves drained in turn, the
// stacks symbolized in Rust.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { bpfObjectPath } from '../bpf-objects.js';
import { BpfError } from '../errors.js';
import type { Link, MultiLink } from '../link.js';
import { addon, type NativeSymbolizer } from '../native.js';
import { load, type BpfObject } from '../object.js';
import type { Frame, ProfileSample, ProfileTotals } from './profile.js';

const BPF_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bpf');

/** bpf/profile.h: frames a stack holds at most (one that fills them was cut). */
const MAX_DEPTH = 127;
/** A stack not asked for. */
const NOT_TAKEN = -1000;
const EFAULT = -14;
const EEXIST = -17;
/** enum profile_stat, in order. */
const STATS = ['samples', 'idle', 'userCollided', 'userFailed', 'kernelCollided', 'kernelFailed', 'countsFull'] as const;
/** How long a flip of the halves waits for programs still running on the old one (they run for microseconds). */
const FLIP_SETTLE_MS = 5;
/**
 * How often the mappings and perf maps of the processes sampled are taken in while
 * sampling: a process that exits (or execs) before the drain keeps the ones it had.
 */
const SNAPSHOT_MS = 500;

export type SampledEvent = 'cycles' | 'cpu-clock' | 'sched_switch';

export interface SamplerOptions {
  pid?: number;
  cgroup?: string;
  user: boolean;
  kernel: boolean;
  /** CPU samples: this often, driven by this event. */
  cpu?: { frequency: number; period?: bigint; event: 'cycles' | 'cpu-clock' | 'auto' };
  /** Off-CPU time: blocks from this long (µs). */
  offCpu?: { minBlockUs: number };
}

/** `struct sample_key` of bpf/profile.h, as its BTF decodes it. */
interface SampleKey {
  tgid: number;
  pid: number;
  user_stack: number;
  kernel_stack: number;
  comm: string;
}

interface RawSample {
  tgid: number;
  tid: number;
  comm: string;
  /** The stack's addresses (leaf first), or why there is none (a negative errno). */
  user: bigint[] | number;
  kernel: bigint[] | number;
  count: number;
}

/** One drain, not yet symbolized. */
export interface Collected {
  raw: RawSample[];
  totals: ProfileTotals;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Sampler {
  readonly event: SampledEvent;
  readonly #obj: BpfObject;
  readonly #link: Link | MultiLink;
  readonly #symbolizer: NativeSymbolizer;
  readonly #options: SamplerOptions;
  #generation = 0;
  #stats: bigint[] = STATS.map(() => 0n);
  readonly #watch: NodeJS.Timeout;
  /** Ends the reading of new-process notices. */
  readonly #stopNotices = new AbortController();

  private constructor(obj: BpfObject, link: Link | MultiLink, event: SampledEvent, options: SamplerOptions) {
    this.#obj = obj;
    this.#link = link;
    this.event = event;
    this.#options = options;
    this.#symbolizer = new addon.NativeSymbolizer();
    this.#watch = setInterval(() => this.#snapshotSeen(), SNAPSHOT_MS);
    // Sampling keeps no process alive.
    this.#watch.unref();
    if (obj.maps.some((m) => m.name === 'new_processes')) void this.#readNotices();
  }

  /** A process's first sample: its mappings now, before it may exit. */
  async #readNotices(): Promise<void> {
    const rb = this.#obj.ringbuf('new_processes');
    try {
      for await (const batch of rb.batches({ signal: this.#stopNotices.signal })) {
        batch.forEach((view, offset) => this.#symbolizer.snapshot(view.getUint32(offset, true)));
      }
    } catch {
      // Closed under the iteration: the sampler is done.
    }
  }

  /** The processes sampled so far (in the half being written), taken in again. */
  #snapshotSeen(): void {
    if (this.#options.pid !== undefined) {
      this.#symbolizer.snapshot(this.#options.pid);
      return;
    }
    const tgids = new Set<number>();
    for (const key of this.#obj.map<SampleKey, bigint>(`counts${this.#generation & 1}`).keys()) tgids.add(key.tgid);
    for (const tgid of tgids) this.#symbolizer.snapshot(tgid);
  }

  static async start(options: SamplerOptions): Promise<Sampler> {
    const globals = { target_tgid: options.pid ?? 0, user_stacks: options.user, kernel_stacks: options.kernel };
    const obj = options.offCpu
      ? await load(bpfObjectPath(BPF_DIR, 'offcpu'), { globals: { ...globals, min_block_us: options.offCpu.minBlockUs } })
      : await load(bpfObjectPath(BPF_DIR, 'profile'), { globals });
    try {
      let event: SampledEvent;
      let link: Link | MultiLink;
      if (options.offCpu) {
        event = 'sched_switch';
        link = obj.program('on_switch').attach();
      } else {
        const cpu = options.cpu ?? { frequency: 99, event: 'auto' };
        const prog = obj.program('sample');
        const rate = cpu.period === undefined ? { frequency: cpu.frequency } : { period: cpu.period };
        const attach = (e: 'cycles' | 'cpu-clock') => prog.attachPerfEvent({ event: e, ...rate, cgroup: options.cgroup });
        event = cpu.event === 'auto' ? 'cycles' : cpu.event;
        try {
          link = attach(event as 'cycles' | 'cpu-clock');
        } catch (e) {
          // No hardware PMU (VMs): the CPU clock samples as well, by time rather than cycles.
          if (cpu.event !== 'auto' || !(e instanceof BpfError) || e.code !== 'UNSUPPORTED') throw e;
          event = 'cpu-clock';
          link = attach(event);
        }
      }
      const s = new Sampler(obj, link, event, options);
      if (options.pid !== undefined) s.#symbolizer.snapshot(options.pid);
      return s;
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /** Takes in the processes' mappings now (for those that may exit before the next drain). */
  snapshot(pid: number): void {
    this.#symbolizer.snapshot(pid);
  }

  /** What was sampled since the last drain, symbolized, and the counters' changes. */
  async drain(): Promise<{ samples: ProfileSample[]; totals: ProfileTotals }> {
    return this.symbolize([await this.collect()]);
  }

  /**
   * What was sampled since the last drain, as addresses (symbolized later: a JIT's names
   * may come only later, as its jitdump is flushed at exit).
   */
  async collect(): Promise<Collected> {
    const half = this.#generation & 1;
    this.#generation++;
    this.#obj.globals.generation = this.#generation;
    await sleep(FLIP_SETTLE_MS);

    const counts = this.#obj.map<SampleKey, bigint>(`counts${half}`);
    const stackMap = this.#obj.map<number, Uint8Array>(`stacks${half}`, { key: 'u32', value: 'raw' });
    const stacks = new Map<number, bigint[]>();
    // A stack id resolves in its own half only: to addresses now.
    const stack = (id: number): bigint[] | number => {
      if (id < 0) return id;
      let s = stacks.get(id);
      if (!s) stacks.set(id, (s = stackMap.stack(id) ?? []));
      return s;
    };
    const raw: RawSample[] = [];
    // Taken out as read: a key is never encoded back (its comm need not be UTF-8).
    for (const [key, count] of counts.drain()) {
      raw.push({ tgid: key.tgid, tid: key.pid, user: stack(key.user_stack), kernel: stack(key.kernel_stack), comm: key.comm, count: Number(count) });
    }
    for (const key of stackMap.keys()) stackMap.delete(key);
    for (const tgid of new Set(raw.map((r) => r.tgid))) this.#symbolizer.snapshot(tgid);
    return { raw, totals: this.#totals() };
  }

  #totals(): ProfileTotals {
    const stats = this.#obj.map('stats', { key: 'u32', value: 'u64', perCpu: true });
    const now = STATS.map((_, i) => (stats.get(i) ?? []).reduce((s, n) => s + n, 0n));
    const delta = now.map((n, i) => Number(n - this.#stats[i]));
    this.#stats = now;
    const t = Object.fromEntries(STATS.map((name, i) => [name, delta[i]])) as Record<(typeof STATS)[number], number>;
    return { ...t, truncated: 0 };
  }

  /** Collected samples (of one drain or several), symbolized; their totals summed. */
  async symbolize(collected: Collected[]): Promise<{ samples: ProfileSample[]; totals: ProfileTotals }> {
    const raw = collected.flatMap((c) => c.raw);
    const totals = collected
      .map((c) => c.totals)
      .reduce((a, b) => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v + b[k as keyof ProfileTotals]])) as unknown as ProfileTotals);
    // Each distinct user stack (per process) and kernel stack once.
    const userKey = (r: RawSample) => `${r.tgid}:${(r.user as bigint[]).join(',')}`;
    const kernelKey = (r: RawSample) => (r.kernel as bigint[]).join(',');
    const users = new Map<string, { pid: number; addrs: bigint[] }>();
    const kernels = new Map<string, bigint[]>();
    for (const r of raw) {
      if (Array.isArray(r.user)) users.set(userKey(r), { pid: r.tgid, addrs: r.user });
      if (Array.isArray(r.kernel)) kernels.set(kernelKey(r), r.kernel);
    }
    const entries = [
      ...[...users.values()].map((u) => ({ pid: u.pid, user: u.addrs, kernel: [] as bigint[] })),
      ...[...kernels.values()].map((k) => ({ pid: 0, user: [] as bigint[], kernel: k })),
    ];
    const out = await this.#symbolizer.symbolize(
      Uint32Array.from(entries.map((e) => e.pid)),
      BigUint64Array.from(entries.flatMap((e) => e.user)),
      Uint32Array.from(entries.map((e) => e.user.length)),
      BigUint64Array.from(entries.flatMap((e) => e.kernel)),
      Uint32Array.from(entries.map((e) => e.kernel.length)),
    );
    const frames: Frame[] = out.frames.map((f) => ({ name: f.name, module: f.module, kind: f.kind as Frame['kind'] }));
    // Root first: the symbolizer gives leaf first.
    const userFrames = new Map<string, Frame[]>();
    const kernelFrames = new Map<string, Frame[]>();
    const userKeys = [...users.keys()];
    const kernelKeys = [...kernels.keys()];
    let u = 0;
    let k = 0;
    entries.forEach((e, i) => {
      const take = (from: number, n: number, idx: number[]) => idx.slice(from, from + n).map((j) => frames[j]).reverse();
      if (i < userKeys.length) userFrames.set(userKeys[i], take(u, e.user.length, out.user));
      else kernelFrames.set(kernelKeys[i - userKeys.length], take(k, e.kernel.length, out.kernel));
      u += e.user.length;
      k += e.kernel.length;
    });
    const marker = (id: number, side: 'user' | 'kernel'): Frame[] => {
      if (id === NOT_TAKEN || id === EFAULT) return [];
      const name = id === EEXIST ? `[lost ${side} stack: stack map collision]` : `[missing ${side} stack]`;
      return [{ name, module: '', kind: 'unknown' }];
    };
    const cut: Frame = { name: '[truncated]', module: '', kind: 'unknown' };
    // Off-CPU kernel stacks end in the tracing that ran the program: not where the thread waited.
    const glue = (f: Frame) => f.kind === 'kernel' && /^(__traceiter_sched_switch|bpf_trace_run\d+|bpf_prog_[0-9a-f]+_.*)$/.test(f.name);
    const trim = (frames: Frame[]) => {
      let end = frames.length;
      while (end > 0 && glue(frames[end - 1])) end--;
      return end === frames.length ? frames : frames.slice(0, end);
    };
    const samples = raw.map((r) => {
      const user = Array.isArray(r.user) ? (userFrames.get(userKey(r)) ?? []) : marker(r.user, 'user');
      const kernel = Array.isArray(r.kernel) ? trim(kernelFrames.get(kernelKey(r)) ?? []) : marker(r.kernel, 'kernel');
      const truncated = (Array.isArray(r.user) && r.user.length === MAX_DEPTH) || (Array.isArray(r.kernel) && r.kernel.length === MAX_DEPTH);
      if (truncated) totals.truncated += r.count;
      return { pid: r.tgid, tid: r.tid, comm: r.comm, count: r.count, stack: [...(truncated ? [cut] : []), ...user, ...kernel] };
    });
    return { samples, totals };
  }

  /** Detaches, and frees the maps and the symbolizer. Idempotent. */
  close(): void {
    clearInterval(this.#watch);
    this.#stopNotices.abort();
    this.#link.close();
    this.#obj.close();
    this.#symbolizer.close();
  }
}
