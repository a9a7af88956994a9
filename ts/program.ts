import type * as binding from './binding.js';
import { bigs, bytes, CPU, FD, num, nums, optBig, optNum, options as opts, optStr, PID, str, U32, U64 } from './check.js';
import { BpfError, native, nativeAsync } from './errors.js';
import { Link, MultiLink, type KprobeMultiMechanism, type TracingMultiMechanism, type UprobeMultiMechanism } from './link.js';
import { addon, type NativeLink, type NativeMultiLink, type NativeObject, type NativeProgress, type ProgramDesc } from './native.js';
import { progTypeName, type LinkOf, type ProgTypeName } from './types.js';

/** The object a program belongs to, as programs see it. */
export interface ProgramOwner {
  _native(): NativeObject;
  _track(l: NativeLink): Link;
  _trackMulti(l: NativeMultiLink, redo?: () => NativeMultiLink): MultiLink;
}

type Cookie = number | bigint;

/** A glob (`'vfs_*'`) or exact names. */
type Symbols = string | readonly string[];

function selection(param: string, s: Symbols | undefined): { pattern?: string; names?: string[] } {
  if (s === undefined) return {};
  if (typeof s === 'string') return { pattern: s };
  if (!Array.isArray(s)) throw new BpfError('EINVAL', `${param} must be a glob string or an array of names`);
  return { names: s.map((n, i) => str(`${param}[${i}]`, n)) };
}

export interface KprobeMultiOptions
  extends Pick<binding.KprobeMultiOptions, 'retprobe' | 'session' | 'module' | 'fallback' | 'forceFallback'> {
  /** A glob (`'vfs_*'`) or exact names; neither: every traceable function. */
  symbols?: Symbols;
  addresses?: readonly bigint[];
  /** One per target; default: the target's index. */
  cookies?: readonly Cookie[];
  /** 'skip' (default): leave out what cannot be attached, listed in `skipped`; 'error': fail instead. */
  onSkip?: 'skip' | 'error';
}

export interface UprobeMultiOptions
  extends Pick<binding.UprobeMultiOptions, 'binary' | 'retprobe' | 'session' | 'includeClones' | 'fallback' | 'forceFallback'> {
  /** A glob (`'uv_*'`) or exact names; or give `offsets`. */
  symbols?: Symbols;
  offsets?: readonly (number | bigint)[];
  /** Only this process. */
  pid?: number;
  cookies?: readonly Cookie[];
  /**
   * Watch the binary: when it is replaced on disk (a new inode), resolve again, move the
   * link to the new offsets and emit `'reattach'`.
   */
  reattach?: boolean;
}

export interface TracingMultiOptions extends Pick<binding.TracingMultiOptions, 'module' | 'fallback' | 'forceFallback'> {
  /** A glob (`'tcp_*'`) or exact names; neither: every function tracing_multi can take. `'overlay:ovl_*'` names a module. */
  functions?: Symbols;
  btfIds?: readonly number[];
  cookies?: readonly Cookie[];
}

/** Progress of a long batch attach (a fallback working per target). */
export interface Progress {
  onProgress?: (done: number, total: number) => void;
}

function usdtOptions(given: UsdtOptions): binding.UsdtOptions {
  const options = opts('usdt options', given, true);
  return {
    binary: str('binary', options.binary),
    provider: str('provider', options.provider),
    name: str('name', options.name),
    pid: optNum('pid', options.pid, PID),
    cookie: optBig('cookie', options.cookie, U64),
    forceFallback: options.forceFallback,
    forceAddressLookup: options.forceAddressLookup,
  };
}

function kprobeOptions(given: KprobeMultiOptions): binding.KprobeMultiOptions {
  const o = opts('kprobe_multi options', given);
  return {
    ...selection('symbols', o.symbols),
    addresses: bigs('addresses', o.addresses, U64),
    cookies: bigs('cookies', o.cookies, U64),
    retprobe: o.retprobe,
    session: o.session,
    module: optStr('module', o.module),
    strict: o.onSkip === 'error',
    fallback: o.fallback,
    forceFallback: o.forceFallback,
  };
}

function uprobeOptions(given: UprobeMultiOptions): binding.UprobeMultiOptions {
  const o = opts('uprobe_multi options', given, true);
  return {
    binary: str('binary', o.binary),
    ...selection('symbols', o.symbols),
    offsets: bigs('offsets', o.offsets, U64),
    pid: optNum('pid', o.pid, PID),
    cookies: bigs('cookies', o.cookies, U64),
    retprobe: o.retprobe,
    session: o.session,
    includeClones: o.includeClones,
    fallback: o.fallback,
    forceFallback: o.forceFallback,
  };
}

function tracingOptions(given: TracingMultiOptions): binding.TracingMultiOptions {
  const o = opts('tracing_multi options', given);
  return {
    ...selection('functions', o.functions),
    btfIds: nums('btfIds', o.btfIds, U32),
    module: optStr('module', o.module),
    cookies: bigs('cookies', o.cookies, U64),
    fallback: o.fallback,
    forceFallback: o.forceFallback,
  };
}

/** Expected attach types of the batch kinds (kprobe.multi, uprobe.multi, sessions, fentry.multi...). */
const MULTI_ATTACH_TYPES = new Set([42, 48, 56, 57, 59, 60, 61]);

/** `SEC("usdt/…")` and `SEC("usdt.s/…")`: a USDT probe may have many sites, so a `MultiLink`. */
const USDT_SECTION = /^usdt(\.s)?(\/|$)/;

/** How often `onProgress` is called while a batch attach runs. */
const PROGRESS_INTERVAL_MS = 100;

export interface UprobeOptions {
  /** Path, or a name looked up in PATH (programs) or the library folders (`libc.so.6`). */
  binary: string;
  symbol?: string;
  /** Offset added to the symbol, or a file offset when no symbol is given. */
  offset?: number | bigint;
  /** Only this process (default: every process running the binary). */
  pid?: number;
  retprobe?: boolean;
  cookie?: Cookie;
}

export interface UsdtOptions {
  /** Path, or a name looked up in PATH (programs) or the library folders (`libstdc++.so.6`). */
  binary: string;
  provider: string;
  name: string;
  /** Only this process (default: every process running the binary). */
  pid?: number;
  /** What the program's `bpf_usdt_cookie()` returns (default 0). */
  cookie?: Cookie;
  /** One perf uprobe per probe site even where the kernel has uprobe_multi (comparisons, tests). */
  forceFallback?: boolean;
  /**
   * Fill `__bpf_usdt_ip_to_spec_id` (specs by probe address) as on kernels without BPF
   * cookies, even where they exist: for tests, with an object that looks specs up so.
   * Libraries and PIEs then need a `pid`.
   */
  forceAddressLookup?: boolean;
}

export interface KprobeOptions {
  symbol: string;
  offset?: number | bigint;
  retprobe?: boolean;
  cookie?: Cookie;
}

/** A perf event by its `perf list` name, or a raw `{ type, config }`. */
export type PerfEventName =
  | 'cpu-clock' | 'task-clock' | 'page-faults' | 'faults' | 'context-switches' | 'cs'
  | 'cpu-migrations' | 'migrations' | 'minor-faults' | 'major-faults' | 'alignment-faults'
  | 'emulation-faults' | 'dummy' | 'bpf-output' | 'cgroup-switches'
  | 'cpu-cycles' | 'cycles' | 'instructions' | 'cache-references' | 'cache-misses'
  | 'branch-instructions' | 'branches' | 'branch-misses' | 'bus-cycles'
  | 'stalled-cycles-frontend' | 'stalled-cycles-backend' | 'ref-cycles';

export interface PerfEventOptions {
  event: PerfEventName | { type: number; config?: number | bigint };
  /** Samples per second (the kernel adjusts the period); or give `period`. */
  frequency?: number | bigint;
  /** One sample every `period` events (nanoseconds for the clocks). */
  period?: number | bigint;
  /** Only this CPU (default: every online CPU, or every CPU the process runs on). */
  cpu?: number;
  /** Only this process. */
  pid?: number;
  /** Only the tasks of this cgroup v2 directory (e.g. `/sys/fs/cgroup/my.slice`). */
  cgroup?: string;
}

/**
 * freplace's target: a global function of another object's loaded program (a `Program`,
 * or a program fd), as libbpf's `bpf_program__set_attach_target(prog, target_fd, "func")`.
 * `function` defaults to the one the SEC() name gives (`SEC("freplace/func")`).
 */
/** `program.testRun()`'s options. */
export interface TestRunOptions {
  /** The packet the program runs on (`data_in`). */
  data?: Uint8Array;
  /** Its context (`ctx_in`). */
  ctx?: Uint8Array;
  /** How many runs (0 and 1: once); `duration` is their mean. */
  repeat?: number;
  /** Bytes of packet to read back; default its size plus a page to grow into. */
  dataOutSize?: number;
  /** The CPU a raw tracepoint program runs on. */
  cpu?: number;
}

/** What `program.testRun()` resolves with. */
export interface TestRunResult {
  /** The program's return value. */
  retval: number;
  /** The packet after the run. */
  data: Buffer;
  /** The context after the run (empty when none was given). */
  ctx: Buffer;
  /** Nanoseconds one run took, on average. */
  duration: number;
}

export interface FreplaceTarget {
  program: Program | number;
  function?: string;
}

/** @internal A freplace target program as the binding takes it: an fd. */
export function targetFd(param: string, program: unknown): number {
  if (program instanceof Program) return program.fd;
  if (typeof program === 'number') return num(param, program, FD);
  throw new BpfError('EINVAL', `${param} must be a loaded Program or a program fd, got ${program === null ? 'null' : typeof program}`);
}

/**
 * A program of a loaded object. `S` is its SEC() name where known statically (a generated
 * skeleton's `Program<'tp/syscalls/sys_enter_openat'>`), which types what `attach()`
 * returns ({@link LinkOf}); `obj.program(name)` gives `Program<string>`, and
 * `expectSection()` narrows it, checked.
 */
export class Program<S extends string = string> {
  readonly name: string;
  readonly section: S;
  readonly progType: number;
  readonly expectedAttachType: number;
  /** False for tracing programs whose SEC() names no target: they load on attach. */
  readonly loaded: boolean;
  /** Where it attaches: its SEC() target or the configured `attachTarget`. */
  readonly attachTarget: string | undefined;
  /** False when configured not to load (`programs: { name: { autoload: false } }`). */
  readonly autoload: boolean;
  #obj: ProgramOwner;

  /** @internal */
  constructor(obj: ProgramOwner, d: ProgramDesc) {
    this.#obj = obj;
    this.name = d.name;
    // Only `expectSection` narrows S, after comparing; a constructed Program is Program<string>.
    this.section = d.section as S;
    this.progType = d.progType;
    this.expectedAttachType = d.expectedAttachType;
    this.loaded = d.loaded;
    this.attachTarget = d.attachTarget ?? undefined;
    this.autoload = d.autoload;
  }

  /** libbpf's name of the program type (`'kprobe'`, `'tracing'`…); undefined for a number newer than this package. */
  get progTypeName(): ProgTypeName | undefined {
    return progTypeName(this.progType);
  }

  /**
   * This program typed by its SEC() name, so that `attach()` returns the link that section
   * gives: for generated skeletons, which know the section the object was compiled with.
   * Throws INCOMPATIBLE when the object's section is another one (the object was rebuilt
   * since the skeleton was generated).
   */
  expectSection<T extends string>(section: T): Program<T> {
    if ((this.section as string) !== section) {
      throw new BpfError('INCOMPATIBLE', `program '${this.name}' is SEC("${this.section}"), not SEC("${section}"); regenerate the skeleton for this object`, {
        program: this.name,
      });
    }
    return this as unknown as Program<T>;
  }

  /** @internal The loaded object the program is in (program arrays take it from there). */
  _object(): NativeObject {
    return this.#obj._native();
  }

  #link(f: (o: NativeObject) => NativeLink): Link {
    return this.#obj._track(native(() => f(this.#obj._native())));
  }

  /** `M`: the mechanisms this kind of batch attach can report (the core's, by kind). */
  #multi<M extends MultiLink['mechanism']>(f: (o: NativeObject) => NativeMultiLink, reattach = false): MultiLink<M> {
    const attach = () => f(this.#obj._native());
    return this.#obj._trackMulti(native(attach), reattach ? attach : undefined) as MultiLink<M>;
  }

  /** Whether `attach()` gives a `MultiLink` (kprobe.multi/…, uprobe.multi/…, fentry.multi/…, sessions, usdt/…). */
  get isMulti(): boolean {
    return MULTI_ATTACH_TYPES.has(this.expectedAttachType) || USDT_SECTION.test(this.section);
  }

  /**
   * Attaches where the SEC() name says: `tp/…`, `raw_tp/…`, `uprobe/BIN:SYM`, `kprobe/SYM`,
   * `fentry/FN`, … give a `Link`; `kprobe.multi/PATTERN`, `uprobe.multi/BIN:PATTERN`,
   * `fentry.multi/PATTERN`, the sessions and `usdt/BIN:PROVIDER:NAME` give a `MultiLink`.
   */
  attach(): LinkOf<S> {
    // What `LinkOf` says of S, by construction: the core attaches by the same SEC() name.
    if (this.isMulti) return this.#multi((o) => o.attachMulti(this.name)) as LinkOf<S>;
    return this.#link((o) => o.attach(this.name)) as LinkOf<S>;
  }

  /**
   * Every site of USDT probe `provider:name` in `binary`, for programs written with libbpf's
   * `<bpf/usdt.bpf.h>` (`BPF_USDT`, `bpf_usdt_arg`, `bpf_usdt_cookie`). Semaphore-guarded
   * probes are enabled while attached. `targets` lists the sites (file offsets).
   */
  attachUsdt(given: UsdtOptions): MultiLink<UprobeMultiMechanism> {
    const o = usdtOptions(given);
    return this.#multi((n) => n.attachUsdt(this.name, o));
  }

  /**
   * `attachUsdt` off the JS thread: reading a large binary's notes, and the per-site perf
   * uprobe fallback (kernels without uprobe_multi) for a probe with many sites, take long;
   * `onProgress(done, total)` reports the fallback. Closing the object meanwhile makes it
   * reject with CLOSED, having detached everything.
   */
  attachUsdtAsync(given: UsdtOptions & Progress): Promise<MultiLink<UprobeMultiMechanism>> {
    const o = usdtOptions(given);
    return this.#multiAsync((n, p) => n.attachUsdtAsync(this.name, o, p), given.onProgress);
  }

  attachKprobeMulti(options: KprobeMultiOptions = {}): MultiLink<KprobeMultiMechanism> {
    const o = kprobeOptions(options);
    return this.#multi((n) => n.attachKprobeMulti(this.name, o));
  }

  attachUprobeMulti(options: UprobeMultiOptions): MultiLink<UprobeMultiMechanism> {
    const o = uprobeOptions(options);
    return this.#multi((n) => n.attachUprobeMulti(this.name, o), options.reattach);
  }

  /**
   * `attachKprobeMulti` off the JS thread. Where the kernel has no kprobe_multi, the
   * fallback opens one perf kprobe per function: `onProgress(done, total)` reports it.
   * Closing the object meanwhile makes it reject with CLOSED, having detached everything.
   */
  attachKprobeMultiAsync(options: KprobeMultiOptions & Progress = {}): Promise<MultiLink<KprobeMultiMechanism>> {
    const o = kprobeOptions(options);
    return this.#multiAsync((n, p) => n.attachKprobeMultiAsync(this.name, o, p), options.onProgress);
  }

  /** `attachUprobeMulti` off the JS thread, with progress for the per-uprobe fallback. */
  attachUprobeMultiAsync(options: UprobeMultiOptions & Progress): Promise<MultiLink<UprobeMultiMechanism>> {
    const o = uprobeOptions(options);
    const redo = options.reattach ? () => this.#obj._native().attachUprobeMulti(this.name, o) : undefined;
    return this.#multiAsync((n, p) => n.attachUprobeMultiAsync(this.name, o, p), options.onProgress, redo);
  }

  /**
   * Runs a batch attach off the JS thread, calling `onProgress(done, total)` every 100 ms
   * (and once at the end) while a fallback works per target.
   */
  async #multiAsync<M extends MultiLink['mechanism']>(
    start: (o: NativeObject, progress: NativeProgress) => Promise<NativeMultiLink>,
    onProgress?: (done: number, total: number) => void,
    redo?: () => NativeMultiLink,
  ): Promise<MultiLink<M>> {
    const progress = new addon.NativeProgress();
    const report = () => {
      if (progress.total() > 0) onProgress?.(progress.done(), progress.total());
    };
    const timer = onProgress ? setInterval(report, PROGRESS_INTERVAL_MS) : undefined;
    try {
      const link = await nativeAsync(() => start(this.#obj._native(), progress));
      return this.#obj._trackMulti(link, redo) as MultiLink<M>;
    } finally {
      clearInterval(timer);
      report();
    }
  }

  /** fentry.multi / fexit.multi / fsession.multi, by the program's section. */
  attachTracingMulti(options: TracingMultiOptions = {}): MultiLink<TracingMultiMechanism> {
    const o = tracingOptions(options);
    return this.#multi((n) => n.attachTracingMulti(this.name, o));
  }

  /**
   * `attachTracingMulti` off the JS thread. Where the kernel has no tracing_multi, the
   * fallback loads the program once per function, which takes long for many functions:
   * `onProgress(done, total)` reports it (every 100 ms, and once at the end).
   */
  attachTracingMultiAsync(options: TracingMultiOptions & Progress = {}): Promise<MultiLink<TracingMultiMechanism>> {
    const o = tracingOptions(options);
    return this.#multiAsync((n, p) => n.attachTracingMultiAsync(this.name, o, p), options.onProgress);
  }

  attachTracepoint(category: string, name: string, given: { cookie?: Cookie } = {}): Link {
    const options = opts('tracepoint options', given);
    const args = [str('category', category), str('name', name), optBig('cookie', options.cookie, U64)] as const;
    return this.#link((o) => o.attachTracepoint(this.name, ...args));
  }

  attachRawTracepoint(name: string): Link {
    const n = str('name', name);
    return this.#link((o) => o.attachRawTracepoint(this.name, n));
  }

  attachUprobe(given: UprobeOptions): Link {
    const options = opts('uprobe options', given, true);
    const o: binding.UprobeOptions = {
      binary: str('binary', options.binary),
      symbol: optStr('symbol', options.symbol),
      offset: optBig('offset', options.offset, U64),
      pid: optNum('pid', options.pid, PID),
      retprobe: options.retprobe,
      cookie: optBig('cookie', options.cookie, U64),
    };
    return this.#link((n) => n.attachUprobe(this.name, o));
  }

  attachKprobe(given: KprobeOptions): Link {
    const options = opts('kprobe options', given, true);
    const o: binding.KprobeOptions = {
      symbol: str('symbol', options.symbol),
      offset: optBig('offset', options.offset, U64),
      retprobe: options.retprobe,
      cookie: optBig('cookie', options.cookie, U64),
    };
    return this.#link((n) => n.attachKprobe(this.name, o));
  }

  /**
   * A `SEC("perf_event")` program on sampling perf events: one per online CPU, or one for
   * `pid`, or one per CPU for a `cgroup`. The returned link owns them all.
   */
  attachPerfEvent(given: PerfEventOptions): Link {
    const options = opts('perf event options', given, true);
    const ev: unknown = options.event;
    const raw = typeof ev === 'object' && ev !== null ? opts('perf event', ev as { type: number; config?: number | bigint }) : undefined;
    const o: binding.PerfEventOptions = {
      event: raw ? undefined : str('event', ev),
      eventType: raw ? num('event.type', raw.type, U32) : undefined,
      config: raw ? optBig('event.config', raw.config, U64) : undefined,
      frequency: optBig('frequency', options.frequency, U64),
      period: optBig('period', options.period, U64),
      cpu: optNum('cpu', options.cpu, CPU),
      pid: optNum('pid', options.pid, PID),
      cgroup: optStr('cgroup', options.cgroup),
    };
    return this.#link((n) => n.attachPerfEvent(this.name, o));
  }

  /**
   * Runs an `iter/…` program (a BPF iterator) once and yields what it printed
   * (`bpf_seq_printf`), in chunks as the kernel produces them; `map` names the map an
   * `iter/bpf_map_elem` program walks. Each call is a fresh iteration; leaving the loop
   * early ends it.
   */
  async *iterate(given: { map?: string } = {}): AsyncGenerator<Buffer, void, undefined> {
    const options = opts('iterate options', given);
    const map = optStr('map', options.map);
    const it = native(() => this.#obj._native().openIter(this.name, map));
    try {
      for (;;) {
        const chunk = await nativeAsync(() => it.read());
        if (chunk.length === 0) return;
        yield chunk;
      }
    } finally {
      it.close();
    }
  }

  /** All of one iteration of an `iter/…` program, as one buffer (see `iterate`). */
  async readIter(options: { map?: string } = {}): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.iterate(options)) chunks.push(c);
    return Buffer.concat(chunks);
  }

  /**
   * Runs the loaded program without attaching it (libbpf's `bpf_prog_test_run_opts`,
   * `BPF_PROG_TEST_RUN`): on a packet (`data`) and/or a context (`ctx`: `struct
   * __sk_buff`, `struct xdp_md`, a raw tracepoint's arguments), `repeat` times. Resolves
   * with what it returned, the packet and context after the run, and the mean nanoseconds
   * of one run. XDP, TC, socket filter, flow dissector, raw tracepoint and syscall
   * programs take it; others reject with `UNSUPPORTED`.
   */
  async testRun(given: TestRunOptions = {}): Promise<TestRunResult> {
    const options = opts('testRun options', given);
    const buf = (param: string, v: Uint8Array | undefined) =>
      v === undefined ? undefined : Buffer.from(bytes(param, v));
    const o: binding.TestRunOptions = {
      data: buf('data', options.data),
      ctx: buf('ctx', options.ctx),
      repeat: optNum('repeat', options.repeat, U32),
      dataOutSize: optNum('dataOutSize', options.dataOutSize, U32),
      cpu: optNum('cpu', options.cpu, CPU),
    };
    const out = await nativeAsync(() => this.#obj._native().testRun(this.name, o));
    return { retval: out.retval, data: out.data, ctx: out.ctx, duration: out.duration };
  }

  /**
   * The program's fd (libbpf's `bpf_program__fd`), valid while its object is open: e.g. the
   * target of another object's freplace program.
   */
  get fd(): number {
    return native(() => this.#obj._native().programFd(this.name));
  }

  /**
   * An freplace program in place of a global function of another loaded program (libbpf's
   * `bpf_program__attach_freplace`). `program` and `function` default to the configured
   * `attachTarget` and the SEC() name's function; a program loaded for no target yet is
   * loaded for this one, owned by the link.
   */
  attachFreplace(given: Partial<FreplaceTarget> = {}): Link {
    const options = opts('freplace options', given);
    const target = options.program === undefined ? undefined : targetFd('program', options.program);
    const fn = optStr('function', options.function);
    return this.#link((o) => o.attachFreplace(this.name, target, fn));
  }

  /** fentry/fexit/fmod_ret/tp_btf/lsm, by the program's section; `function` overrides the SEC() target. */
  attachFentry(given: { function?: string; cookie?: Cookie } = {}): Link {
    const options = opts('fentry options', given);
    const fn = optStr('function', options.function);
    const cookie = optBig('cookie', options.cookie, U64);
    return this.#link((o) => o.attachFentry(this.name, fn, cookie));
  }
}
