import { readFile } from 'node:fs/promises';
import { readFileSync, statSync } from 'node:fs';

import { BpfError, native, nativeAsync } from './errors.js';
import { resolveCodec, type Codec, type CodecSpec } from './codec.js';
import {
  addon,
  type LinkInfo,
  type MapDesc,
  type MultiSkipped,
  type MultiStats,
  type MultiTarget,
  type NativeLink,
  type NativeLoadOptions,
  type NativeMultiLink,
  type NativeObject,
  type NativeProgress,
  type ProgramDesc,
} from './native.js';
import { RingBuffer } from './ringbuf.js';

export type GlobalValue = number | bigint | boolean | Uint8Array;

export interface LoadOptions {
  /** `.rodata`/`.data`/`.bss` variables to set before load. Numbers are stored at the variable's width. */
  globals?: Record<string, GlobalValue>;
  /** Kernel BTF for CO-RE (default `/sys/kernel/btf/vmlinux`). */
  btfPath?: string;
  /** bpffs folder for maps declared with `LIBBPF_PIN_BY_NAME` (default `/sys/fs/bpf`). */
  pinPath?: string;
}

function nativeOptions(o: LoadOptions = {}): NativeLoadOptions {
  const globals: Record<string, Uint8Array> = {};
  const intGlobals: Record<string, bigint> = {};
  for (const [name, v] of Object.entries(o.globals ?? {})) {
    if (v instanceof Uint8Array) globals[name] = v;
    else if (typeof v === 'boolean') intGlobals[name] = v ? 1n : 0n;
    else intGlobals[name] = BigInt(v);
  }
  return { globals, intGlobals, btfPath: o.btfPath, pinPath: o.pinPath };
}

/** A link: the attachment stays while it is open. */
export class Link implements Disposable {
  #link: NativeLink;
  #closed = false;
  #onClose: () => void;

  /** @internal */
  constructor(link: NativeLink, onClose: () => void) {
    this.#link = link;
    this.#onClose = onClose;
  }

  info(): LinkInfo {
    return native(() => this.#link.info());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Detaches. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#link.close();
    this.#onClose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** How often a `reattach` link checks whether its binary was replaced. */
const REATTACH_POLL_MS = 250;

/** Sent by a `reattach` link after it moved to a replaced binary: `detail` has `path` and `targets`. */
export type ReattachEvent = CustomEvent<{ path: string; targets: MultiTarget[] }>;

/**
 * One link over many targets (kprobe_multi, uprobe_multi, tracing_multi, or their fallbacks).
 * With `reattach`, it emits `'reattach'` (a {@link ReattachEvent}) after moving to a replaced
 * binary, and `'error'` when that failed.
 */
export class MultiLink extends EventTarget implements Disposable {
  #link: NativeMultiLink;
  #closed = false;
  #onClose: () => void;
  #watch: ReturnType<typeof setInterval> | undefined;
  /** What was used: 'kprobe_multi' | 'kprobes' | 'uprobe_multi' | 'uprobes' | 'tracing_multi' | 'fentry' | 'fexit' ... */
  readonly mechanism: string;
  #targets: MultiTarget[] | undefined;
  #skipped: MultiSkipped[] | undefined;

  /** @internal */
  constructor(link: NativeMultiLink, onClose: () => void, redo?: () => NativeMultiLink) {
    super();
    this.#link = link;
    this.#onClose = onClose;
    this.mechanism = link.mechanism;
    const path = link.path();
    if (redo && path) this.#watchFile(path, redo);
  }

  /**
   * Stale offsets fire on the wrong code or not at all once a binary is replaced (new
   * inode, e.g. a package update): poll the path, and on a new file resolve again, attach
   * anew, then detach the old link.
   */
  #watchFile(path: string, redo: () => NativeMultiLink): void {
    const identity = () => {
      try {
        const st = statSync(path);
        return `${st.dev}:${st.ino}`;
      } catch {
        return undefined; // mid-replacement: try again next time
      }
    };
    let current = identity();
    this.#watch = setInterval(() => {
      const now = identity();
      if (now === undefined || now === current) return;
      try {
        const next = native(redo);
        const old = this.#link;
        this.#link = next;
        this.#targets = undefined;
        this.#skipped = undefined;
        old.close();
        current = now;
        this.dispatchEvent(new CustomEvent('reattach', { detail: { path, targets: this.targets } }));
      } catch (e) {
        current = now;
        this.dispatchEvent(new CustomEvent('error', { detail: e }));
      }
    }, REATTACH_POLL_MS);
    this.#watch.unref();
  }

  /** What is attached, in cookie order (the default cookie is the index here). Built on first use. */
  get targets(): MultiTarget[] {
    this.#targets ??= native(() => this.#link.targets());
    return this.#targets;
  }

  /** What the selection matched but could not be attached, and why. */
  get skipped(): MultiSkipped[] {
    this.#skipped ??= native(() => this.#link.skipped());
    return this.#skipped;
  }

  /** Kernel links behind this one: 1 for a multi link, more when split or per target. */
  get kernelLinks(): number {
    return native(() => this.#link.kernelLinks());
  }

  stats(): MultiStats {
    return native(() => this.#link.stats());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Detaches every target (and stops watching the binary). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watch);
    this.#link.close();
    this.#onClose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

type Cookie = number | bigint;
const bigs = (v: readonly Cookie[] | undefined) => v?.map((x) => BigInt(x));
const selection = (s: string | readonly string[] | undefined) =>
  typeof s === 'string' ? { pattern: s } : s ? { names: [...s] } : {};

export interface KprobeMultiOptions {
  /** A glob (`'vfs_*'`) or exact names; neither: every traceable function. */
  symbols?: string | readonly string[];
  addresses?: readonly bigint[];
  cookies?: readonly Cookie[];
  retprobe?: boolean;
  session?: boolean;
  /** Only this module's functions (`'vmlinux'` for the kernel proper). */
  module?: string;
  /** 'skip' (default): leave out what cannot be attached, listed in `skipped`; 'error': fail instead. */
  onSkip?: 'skip' | 'error';
  /** false: UNSUPPORTED instead of one perf kprobe per function on kernels without kprobe_multi. */
  fallback?: boolean;
  /** Use the per-target fallback even where the multi link exists (comparisons, tests). */
  forceFallback?: boolean;
}

export interface UprobeMultiOptions {
  binary: string;
  /** A glob (`'uv_*'`) or exact names; or give `offsets`. */
  symbols?: string | readonly string[];
  offsets?: readonly bigint[];
  pid?: number;
  cookies?: readonly Cookie[];
  retprobe?: boolean;
  session?: boolean;
  /** Also attach the compiler's clones: `name.part.N`, `name.cold`, `name.isra.N`, `name.constprop.N`. */
  includeClones?: boolean;
  /**
   * Watch the binary: when it is replaced on disk (a new inode), resolve again, move the
   * link to the new offsets and emit `'reattach'`.
   */
  reattach?: boolean;
  /** false: UNSUPPORTED instead of one perf uprobe per target on kernels without uprobe_multi. */
  fallback?: boolean;
  /** Use the per-target fallback even where the multi link exists (comparisons, tests). */
  forceFallback?: boolean;
}

export interface TracingMultiOptions {
  /** A glob (`'tcp_*'`) or exact names; neither: every function tracing_multi can take. */
  functions?: string | readonly string[];
  btfIds?: readonly number[];
  /**
   * A kernel module's functions (`'overlay'`) instead of vmlinux's; `functions:
   * 'overlay:ovl_*'` says the same. One link covers one module.
   */
  module?: string;
  cookies?: readonly Cookie[];
  /** false: UNSUPPORTED instead of one fentry/fexit per function on kernels without tracing_multi. */
  fallback?: boolean;
  /** Use the per-function fallback even where tracing_multi exists (comparisons, tests). */
  forceFallback?: boolean;
}

/** Progress of a long batch attach (a fallback working per target). */
export interface Progress {
  onProgress?: (done: number, total: number) => void;
}

function kprobeOptions(o: KprobeMultiOptions) {
  return {
    ...selection(o.symbols),
    addresses: o.addresses && [...o.addresses],
    cookies: bigs(o.cookies),
    retprobe: o.retprobe,
    session: o.session,
    module: o.module,
    strict: o.onSkip === 'error',
    fallback: o.fallback,
    forceFallback: o.forceFallback,
  };
}

function uprobeOptions(o: UprobeMultiOptions) {
  return {
    binary: o.binary,
    ...selection(o.symbols),
    offsets: o.offsets && [...o.offsets],
    pid: o.pid,
    cookies: bigs(o.cookies),
    retprobe: o.retprobe,
    session: o.session,
    includeClones: o.includeClones,
    fallback: o.fallback,
    forceFallback: o.forceFallback,
  };
}

function tracingOptions(o: TracingMultiOptions) {
  return {
    ...selection(o.functions),
    btfIds: o.btfIds && [...o.btfIds],
    module: o.module,
    cookies: bigs(o.cookies),
    fallback: o.fallback,
    forceFallback: o.forceFallback,
  };
}

/** Expected attach types of the batch kinds (kprobe.multi, uprobe.multi, sessions, fentry.multi...). */
const MULTI_ATTACH_TYPES = new Set([42, 48, 56, 57, 59, 60, 61]);
const big = (v: Cookie | undefined) => (v === undefined ? undefined : BigInt(v));

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

export interface KprobeOptions {
  symbol: string;
  offset?: number | bigint;
  retprobe?: boolean;
  cookie?: Cookie;
}

export class Program {
  readonly name: string;
  readonly section: string;
  readonly progType: number;
  readonly expectedAttachType: number;
  /** False for tracing programs whose SEC() names no target: they load on attach. */
  readonly loaded: boolean;
  #obj: BpfObject;

  /** @internal */
  constructor(obj: BpfObject, d: ProgramDesc) {
    this.#obj = obj;
    this.name = d.name;
    this.section = d.section;
    this.progType = d.progType;
    this.expectedAttachType = d.expectedAttachType;
    this.loaded = d.loaded;
  }

  #link(f: (o: NativeObject) => NativeLink): Link {
    return this.#obj._track(native(() => f(this.#obj._native())));
  }

  #multi(f: (o: NativeObject) => NativeMultiLink, reattach = false): MultiLink {
    const attach = () => f(this.#obj._native());
    return this.#obj._trackMulti(native(attach), reattach ? attach : undefined);
  }

  /** Whether `attach()` gives a `MultiLink` (kprobe.multi/…, uprobe.multi/…, fentry.multi/…, sessions). */
  get isMulti(): boolean {
    return MULTI_ATTACH_TYPES.has(this.expectedAttachType);
  }

  /**
   * Attaches where the SEC() name says: `tp/…`, `raw_tp/…`, `uprobe/BIN:SYM`, `kprobe/SYM`,
   * `fentry/FN`, … give a `Link`; `kprobe.multi/PATTERN`, `uprobe.multi/BIN:PATTERN`,
   * `fentry.multi/PATTERN` and the sessions give a `MultiLink`.
   */
  attach(): Link | MultiLink {
    if (this.isMulti) return this.#multi((o) => o.attachMulti(this.name));
    return this.#link((o) => o.attach(this.name));
  }

  attachKprobeMulti(options: KprobeMultiOptions = {}): MultiLink {
    return this.#multi((o) => o.attachKprobeMulti(this.name, kprobeOptions(options)));
  }

  attachUprobeMulti(options: UprobeMultiOptions): MultiLink {
    return this.#multi((o) => o.attachUprobeMulti(this.name, uprobeOptions(options)), options.reattach);
  }

  /**
   * `attachKprobeMulti` off the JS thread. Where the kernel has no kprobe_multi, the
   * fallback opens one perf kprobe per function: `onProgress(done, total)` reports it.
   */
  attachKprobeMultiAsync(options: KprobeMultiOptions & Progress = {}): Promise<MultiLink> {
    return this.#multiAsync((o, p) => o.attachKprobeMultiAsync(this.name, kprobeOptions(options), p), options.onProgress);
  }

  /** `attachUprobeMulti` off the JS thread, with progress for the per-uprobe fallback. */
  attachUprobeMultiAsync(options: UprobeMultiOptions & Progress): Promise<MultiLink> {
    const redo = options.reattach ? () => this.#obj._native().attachUprobeMulti(this.name, uprobeOptions(options)) : undefined;
    return this.#multiAsync((o, p) => o.attachUprobeMultiAsync(this.name, uprobeOptions(options), p), options.onProgress, redo);
  }

  /**
   * Runs a batch attach off the JS thread, calling `onProgress(done, total)` every 100 ms
   * (and once at the end) while a fallback works per target.
   */
  async #multiAsync(
    start: (o: NativeObject, progress: NativeProgress) => Promise<NativeMultiLink>,
    onProgress?: (done: number, total: number) => void,
    redo?: () => NativeMultiLink,
  ): Promise<MultiLink> {
    const progress = new addon.NativeProgress();
    const report = () => {
      if (progress.total() > 0) onProgress?.(progress.done(), progress.total());
    };
    const timer = onProgress ? setInterval(report, 100) : undefined;
    try {
      const link = await nativeAsync(() => start(this.#obj._native(), progress));
      return this.#obj._trackMulti(link, redo);
    } finally {
      clearInterval(timer);
      report();
    }
  }

  /** fentry.multi / fexit.multi / fsession.multi, by the program's section. */
  attachTracingMulti(options: TracingMultiOptions = {}): MultiLink {
    return this.#multi((o) => o.attachTracingMulti(this.name, tracingOptions(options)));
  }

  /**
   * `attachTracingMulti` off the JS thread. Where the kernel has no tracing_multi, the
   * fallback loads the program once per function, which takes long for many functions:
   * `onProgress(done, total)` reports it (every 100 ms, and once at the end).
   */
  attachTracingMultiAsync(options: TracingMultiOptions & Progress = {}): Promise<MultiLink> {
    return this.#multiAsync((o, p) => o.attachTracingMultiAsync(this.name, tracingOptions(options), p), options.onProgress);
  }

  attachTracepoint(category: string, name: string, options: { cookie?: Cookie } = {}): Link {
    return this.#link((o) => o.attachTracepoint(this.name, category, name, big(options.cookie)));
  }

  attachRawTracepoint(name: string): Link {
    return this.#link((o) => o.attachRawTracepoint(this.name, name));
  }

  attachUprobe(options: UprobeOptions): Link {
    const { binary, symbol, offset, pid, retprobe, cookie } = options;
    return this.#link((o) =>
      o.attachUprobe(this.name, { binary, symbol, offset: big(offset), pid, retprobe, cookie: big(cookie) }),
    );
  }

  attachKprobe(options: KprobeOptions): Link {
    const { symbol, offset, retprobe, cookie } = options;
    return this.#link((o) => o.attachKprobe(this.name, { symbol, offset: big(offset), retprobe, cookie: big(cookie) }));
  }

  /** fentry/fexit/fmod_ret/tp_btf/lsm, by the program's section; `function` overrides the SEC() target. */
  attachFentry(options: { function?: string; cookie?: Cookie } = {}): Link {
    return this.#link((o) => o.attachFentry(this.name, options.function, big(options.cookie)));
  }
}

export interface MapCodecs<K, V> {
  key?: CodecSpec<K>;
  value?: CodecSpec<V>;
}

/** A map with typed keys and values. For per-CPU maps values are arrays, one per possible CPU. */
export class BpfMap<K = Uint8Array, V = Uint8Array> {
  readonly name: string;
  readonly mapType: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly percpu: boolean;
  readonly pinned: string | undefined;
  #obj: BpfObject;
  #key: Codec<K>;
  #value: Codec<V>;

  /** @internal */
  constructor(obj: BpfObject, d: MapDesc, key: Codec<K>, value: Codec<V>) {
    this.#obj = obj;
    this.name = d.name;
    this.mapType = d.mapType;
    this.keySize = d.keySize;
    this.valueSize = d.valueSize;
    this.maxEntries = d.maxEntries;
    this.percpu = d.percpu;
    this.pinned = d.pinned;
    this.#key = key;
    this.#value = value;
  }

  #slot(): number {
    return (this.valueSize + 7) & ~7;
  }

  #decodeValue(buf: Uint8Array): V | V[] {
    if (!this.percpu) return this.#value.decode(buf);
    const slot = this.#slot();
    const out: V[] = [];
    for (let off = 0; off < buf.byteLength; off += slot) {
      out.push(this.#value.decode(buf.subarray(off, off + this.valueSize)));
    }
    return out;
  }

  #encodeValue(v: V | V[]): Uint8Array {
    if (!this.percpu) return this.#value.encode(v as V);
    const cpus = addon.possibleCpus();
    const values = Array.isArray(v) ? (v as V[]) : new Array<V>(cpus).fill(v as V);
    if (values.length !== cpus) {
      throw new BpfError('EINVAL', `map '${this.name}': per-CPU value needs ${cpus} entries, got ${values.length}`);
    }
    const slot = this.#slot();
    const out = new Uint8Array(slot * cpus);
    values.forEach((x, i) => out.set(this.#value.encode(x), i * slot));
    return out;
  }

  /** The value (per-CPU maps: one per possible CPU), or `undefined`. */
  get(key: K): V | V[] | undefined {
    const buf = native(() => this.#obj._native().mapLookup(this.name, this.#key.encode(key)));
    return buf ? this.#decodeValue(buf) : undefined;
  }

  /** Per-CPU maps take an array (one per possible CPU) or one value for all CPUs. */
  set(key: K, value: V | V[], flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    const f = { any: 0, noexist: 1, exist: 2 }[flags];
    native(() => this.#obj._native().mapUpdate(this.name, this.#key.encode(key), this.#encodeValue(value), f));
  }

  /** Returns whether the key was present. */
  delete(key: K): boolean {
    return native(() => this.#obj._native().mapDelete(this.name, this.#key.encode(key)));
  }

  keys(): K[] {
    return native(() => this.#obj._native().mapKeys(this.name)).map((k) => this.#key.decode(k));
  }

  *entries(): IterableIterator<[K, V | V[]]> {
    for (const k of this.keys()) {
      const v = this.get(k);
      if (v !== undefined) yield [k, v];
    }
  }

  [Symbol.iterator](): IterableIterator<[K, V | V[]]> {
    return this.entries();
  }
}

/** A loaded BPF object: its programs, maps, and every link and ring buffer made from it. */
export class BpfObject implements Disposable {
  #native: NativeObject | null;
  #programs: Map<string, Program>;
  #maps: Map<string, MapDesc>;
  #open = new Set<{ close(): void }>();

  /** @internal */
  constructor(n: NativeObject) {
    this.#native = n;
    this.#programs = new Map(n.programs().map((d) => [d.name, new Program(this, d)]));
    this.#maps = new Map(n.maps().map((d) => [d.name, d]));
  }

  /** @internal */
  _native(): NativeObject {
    if (!this.#native) throw new BpfError('CLOSED', 'the BPF object is closed');
    return this.#native;
  }

  /** @internal */
  _track(l: NativeLink): Link {
    const link: Link = new Link(l, () => this.#open.delete(link));
    this.#open.add(link);
    return link;
  }

  /** @internal */
  _trackMulti(l: NativeMultiLink, redo?: () => NativeMultiLink): MultiLink {
    const link: MultiLink = new MultiLink(l, () => this.#open.delete(link), redo);
    this.#open.add(link);
    return link;
  }

  get programs(): Program[] {
    return [...this.#programs.values()];
  }

  get maps(): MapDesc[] {
    return [...this.#maps.values()];
  }

  program(name: string): Program {
    const p = this.#programs.get(name);
    if (!p) {
      throw new BpfError('ENOENT', `no program named '${name}'; programs: ${[...this.#programs.keys()].join(', ')}`);
    }
    return p;
  }

  map<K = Uint8Array, V = Uint8Array>(name: string, codecs: MapCodecs<K, V> = {}): BpfMap<K, V> {
    const d = this.#maps.get(name);
    if (!d) throw new BpfError('ENOENT', `no map named '${name}'; maps: ${[...this.#maps.keys()].join(', ')}`);
    const key = resolveCodec(codecs.key);
    const value = resolveCodec(codecs.value);
    for (const [what, c, size] of [['key', key, d.keySize], ['value', value, d.valueSize]] as const) {
      if (c.size !== undefined && c.size !== size) {
        throw new BpfError('EINVAL', `map '${name}': ${what} codec is ${c.size} bytes, the map's ${what}s are ${size} bytes`);
      }
    }
    return new BpfMap<K, V>(this, d, key, value);
  }

  ringbuf(name: string): RingBuffer {
    const ring = native(() => this._native().ringbuf(name));
    const rb: RingBuffer = new RingBuffer(name, ring, () => this.#open.delete(rb));
    this.#open.add(rb);
    return rb;
  }

  /** Closes every link and ring buffer made from this object, then its programs and maps. Idempotent. */
  close(): void {
    for (const r of [...this.#open]) r.close();
    this.#native?.close();
    this.#native = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export async function load(source: string | Uint8Array, options?: LoadOptions): Promise<BpfObject> {
  const data = typeof source === 'string' ? await readBytes(source) : source;
  return new BpfObject(await nativeAsync(() => addon.loadObject(data, nativeOptions(options))));
}

export function loadSync(source: string | Uint8Array, options?: LoadOptions): BpfObject {
  const data = typeof source === 'string' ? readBytesSync(source) : source;
  return new BpfObject(native(() => addon.loadObjectSync(data, nativeOptions(options))));
}

function fileError(path: string, e: unknown): BpfError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return new BpfError('ENOENT', `BPF object '${path}' does not exist`, 2);
  if (err.code === 'EACCES') return new BpfError('EPERM', `BPF object '${path}': permission denied`, 13);
  return new BpfError('EIO', `reading BPF object '${path}': ${err.message}`);
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw fileError(path, e);
  }
}

function readBytesSync(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw fileError(path, e);
  }
}
