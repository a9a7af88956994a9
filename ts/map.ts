import { num, optNum, options, PID, str, U32 } from './check.js';
import { BpfError, native } from './errors.js';
import { resolveCodec, type Codec, type CodecName, type CodecSpec, type Decoded } from './codec.js';
import type { MapEntries } from './binding.js';
import { addon, type MapDesc, type NativeMap } from './native.js';
import type { Program } from './program.js';
import { describeMapType, mapTypeName, mapTypeOf, type MapTypeName } from './types.js';

/** `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`. */
const UPDATE_FLAGS: Record<string, number | undefined> = { any: 0, noexist: 1, exist: 2 };

/** Map types (`enum bpf_map_type`), for `mapType` and `createMap`. */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  STACK_TRACE: 7,
  CGROUP_ARRAY: 8,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  QUEUE: 22,
  STACK: 23,
  SK_STORAGE: 24,
  RINGBUF: 27,
  INODE_STORAGE: 28,
  TASK_STORAGE: 29,
  BLOOM_FILTER: 30,
  CGRP_STORAGE: 32,
} as const;

function perCpuNumbers(what: string, values: readonly unknown[]): 'number' | 'bigint' {
  const kind = typeof values[0];
  if (values.length === 0 || (kind !== 'number' && kind !== 'bigint') || values.some((v) => typeof v !== kind)) {
    throw new BpfError('EINVAL', `${what} takes a non-empty array of numbers or of bigints (a per-CPU value decoded by a number codec)`);
  }
  return kind;
}

/** A per-CPU value (one per possible CPU) summed: numbers give a number, bigints a bigint. */
export function sumPerCpu(values: readonly number[]): number;
export function sumPerCpu(values: readonly bigint[]): bigint;
export function sumPerCpu(values: readonly (number | bigint)[]): number | bigint {
  if (perCpuNumbers('sumPerCpu', values) === 'bigint') return (values as bigint[]).reduce((a, b) => a + b, 0n);
  return (values as number[]).reduce((a, b) => a + b, 0);
}

/** A per-CPU value's largest (one per possible CPU): numbers give a number, bigints a bigint. */
export function maxPerCpu(values: readonly number[]): number;
export function maxPerCpu(values: readonly bigint[]): bigint;
export function maxPerCpu(values: readonly (number | bigint)[]): number | bigint {
  perCpuNumbers('maxPerCpu', values);
  return values.reduce((a, b) => (b > a ? b : a));
}

/** Any `BpfMap`, whatever its codecs. */
export interface MapHandle {
  readonly name: string;
  readonly mapType: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly fd: number;
  /** @internal */
  _native(): NativeMap;
}

export interface MapCodecs<K, V, P extends boolean = boolean> {
  key?: CodecSpec<K>;
  value?: CodecSpec<V>;
  /**
   * Says the map is per-CPU (its values are arrays, one per possible CPU), and types it so;
   * checked against the map: omitted or false for a per-CPU map is an `EINVAL` error.
   */
  perCpu?: P;
}

/** The per-CPU map types (`BPF_MAP_TYPE_PERCPU_*`): their values are one per possible CPU. */
type PerCpuType =
  | typeof MapType.PERCPU_HASH
  | typeof MapType.PERCPU_ARRAY
  | typeof MapType.LRU_PERCPU_HASH
  | 21 // BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
  | 'percpu_hash'
  | 'percpu_array'
  | 'lru_percpu_hash'
  | 'percpu_cgroup_storage';
/**
 * Whether a map of type `T` is per-CPU: known for a literal type (`MapType.PERCPU_ARRAY`,
 * `'percpu_array'`), else `boolean`.
 */
export type PerCpuOf<T extends number | MapTypeName> = number extends T ? boolean : string extends T ? boolean : T extends PerCpuType ? true : false;
/** A named codec's type; bytes without one (a map made by `createMap` has no BTF). */
type RawDecoded<N> = N extends undefined ? Uint8Array : Decoded<N>;

/** A value as a map of per-CPU-ness `P` holds it: one per possible CPU for per-CPU maps. */
export type MapValue<V, P extends boolean> = P extends true ? V[] : V;
/** What `set()` takes: per-CPU maps also take one value for every CPU. */
export type MapValueInput<V, P extends boolean> = P extends true ? V | V[] : V;

/**
 * A map with typed keys and values. `P` says whether it is per-CPU: then values are arrays,
 * one per possible CPU (`obj.map(name, { perCpu: true })`, checked against the map).
 * Local storage maps (task, socket, inode, cgroup) are keyed by an fd of their owner (a pidfd,
 * a socket, a file, a cgroup directory): use the `'i32'` key codec.
 */
export class BpfMap<K = Uint8Array, V = Uint8Array, P extends boolean = false> implements Disposable, MapHandle {
  readonly name: string;
  readonly mapType: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly percpu: boolean;
  readonly pinned: string | undefined;
  #native: NativeMap;
  #key: Codec<K>;
  #value: Codec<V>;

  /** @internal */
  constructor(n: NativeMap, d: MapDesc, codecs: MapCodecs<K, V, P>) {
    if ((codecs.perCpu ?? false) !== d.percpu) {
      throw new BpfError(
        'EINVAL',
        d.percpu
          ? `map '${d.name}' is per-CPU (${describeMapType(d.mapType)}): its values are arrays, one per possible CPU; say so with { perCpu: true }`
          : `map '${d.name}' is not per-CPU (${describeMapType(d.mapType)}): perCpu is ${String(codecs.perCpu)}`,
        { map: d.name },
      );
    }
    this.#native = n;
    this.name = d.name;
    this.mapType = d.mapType;
    this.keySize = d.keySize;
    this.valueSize = d.valueSize;
    this.maxEntries = d.maxEntries;
    this.flags = d.flags;
    this.percpu = d.percpu;
    this.pinned = d.pinned;
    this.#key = resolveCodec(codecs.key);
    this.#value = resolveCodec(codecs.value);
    for (const [what, c, size] of [['key', this.#key, d.keySize], ['value', this.#value, d.valueSize]] as const) {
      if (c.size !== undefined && c.size !== size) {
        throw new BpfError('EINVAL', `map '${d.name}': ${what} codec is ${c.size} bytes, the map's ${what}s are ${size} bytes`, { map: d.name });
      }
    }
  }

  /** libbpf's name of the map type (`'percpu_array'`); undefined for a type newer than this package. */
  get typeName(): MapTypeName | undefined {
    return mapTypeName(this.mapType);
  }

  /** @internal */
  _native(): NativeMap {
    return this.#native;
  }

  #call<T>(f: (n: NativeMap) => T): T {
    return native(() => f(this.#native), { map: this.name });
  }

  #slot(): number {
    return (this.valueSize + 7) & ~7;
  }

  #decodeValue(buf: Uint8Array): MapValue<V, P> {
    // The constructor checked `percpu` against P: the casts say what it found.
    if (!this.percpu) return this.#value.decode(buf) as MapValue<V, P>;
    const slot = this.#slot();
    const out: V[] = [];
    for (let off = 0; off < buf.byteLength; off += slot) {
      out.push(this.#value.decode(buf.subarray(off, off + this.valueSize)));
    }
    return out as MapValue<V, P>;
  }

  #encodeValue(v: MapValueInput<V, P>): Uint8Array {
    if (!this.percpu) {
      const b = this.#value.encode(v as V);
      if (b.byteLength !== this.valueSize) {
        throw new BpfError('EINVAL', `map '${this.name}': values are ${this.valueSize} bytes, got ${b.byteLength}`, { map: this.name });
      }
      return b;
    }
    const cpus = addon.possibleCpus();
    const values = Array.isArray(v) ? (v as V[]) : new Array<V>(cpus).fill(v as V);
    if (values.length !== cpus) {
      throw new BpfError('EINVAL', `map '${this.name}': per-CPU value needs ${cpus} entries, got ${values.length}`, { map: this.name });
    }
    const slot = this.#slot();
    const out = new Uint8Array(slot * cpus);
    values.forEach((x, i) => out.set(this.#value.encode(x), i * slot));
    return out;
  }

  #encodeKey(key: K): Uint8Array {
    const k = this.#key.encode(key);
    if (k.byteLength !== this.keySize) {
      throw new BpfError('EINVAL', `map '${this.name}': keys are ${this.keySize} bytes, got ${k.byteLength}`, { map: this.name });
    }
    return k;
  }

  #flags(flags: 'any' | 'noexist' | 'exist'): number {
    const f = UPDATE_FLAGS[flags];
    if (f === undefined) {
      throw new BpfError('EINVAL', `map '${this.name}': flags is ${String(flags)}; one of ${Object.keys(UPDATE_FLAGS).join(', ')}`, { map: this.name });
    }
    return f;
  }

  /** The value (per-CPU maps: one per possible CPU), or `undefined`. */
  get(key: K): MapValue<V, P> | undefined {
    const k = this.#encodeKey(key);
    const buf = this.#call((n) => n.lookup(k));
    return buf ? this.#decodeValue(buf) : undefined;
  }

  /** Per-CPU maps take an array (one per possible CPU) or one value for all CPUs. */
  set(key: K, value: MapValueInput<V, P>, flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    const f = this.#flags(flags);
    const k = this.#encodeKey(key);
    const v = this.#encodeValue(value);
    this.#call((n) => n.update(k, v, f));
  }

  /** Returns whether the key was present. */
  delete(key: K): boolean {
    const k = this.#encodeKey(key);
    return this.#call((n) => n.delete(k));
  }

  keys(): K[] {
    return this.#call((n) => n.keys()).map((k) => this.#key.decode(k));
  }

  /**
   * Every entry, read at the first step by one `lookupBatch()` (so a key deleted meanwhile
   * is left out and none is seen twice, where walking key by key starts over), decoded as
   * iterated.
   */
  *entries(): IterableIterator<[K, MapValue<V, P>]> {
    const e = this.#call((n) => n.lookupBatch());
    for (let i = 0; i < e.count; i++) yield this.#entryAt(e, i);
  }

  [Symbol.iterator](): IterableIterator<[K, MapValue<V, P>]> {
    return this.entries();
  }

  #entryAt(e: MapEntries, i: number): [K, MapValue<V, P>] {
    const vs = e.values.byteLength / e.count;
    return [
      this.#key.decode(e.keys.subarray(i * this.keySize, (i + 1) * this.keySize)),
      this.#decodeValue(e.values.subarray(i * vs, (i + 1) * vs)),
    ];
  }

  #entries(e: MapEntries): [K, MapValue<V, P>][] {
    return Array.from({ length: e.count }, (_, i) => this.#entryAt(e, i));
  }

  /**
   * Every entry, with `BPF_MAP_LOOKUP_BATCH` (libbpf's `bpf_map_lookup_batch`, cilium's
   * `BatchLookup`), in one call to the binding: keys and values cross it as two buffers.
   * A hash map is read bucket by bucket, so a key deleted meanwhile is missing and every
   * other key is there once. Where the kernel (before 5.6) or the map type has no batch
   * lookup (on 5.10 per-CPU arrays, maps of maps and LPM tries; program arrays and stack
   * trace maps on any kernel), key by key, each key once.
   * `batchSize`: entries per kernel call (default: about 1 MiB of keys and values).
   */
  lookupBatch(o: { batchSize?: number } = {}): [K, MapValue<V, P>][] {
    const size = optNum('batchSize', options('lookupBatch options', o).batchSize, U32);
    return this.#entries(this.#call((n) => n.lookupBatch(size)));
  }

  /**
   * Hash maps: every entry, taken out as it is read (`BPF_MAP_LOOKUP_AND_DELETE_BATCH`,
   * cilium's `BatchLookupAndDelete`): what a program adds meanwhile stays for the next
   * drain. Key by key (a lookup, then a delete) where the kernel or map type has no such
   * command. Arrays refuse (`EINVAL`): their elements cannot be deleted.
   */
  drain(o: { batchSize?: number } = {}): [K, MapValue<V, P>][] {
    const size = optNum('batchSize', options('drain options', o).batchSize, U32);
    return this.#entries(this.#call((n) => n.lookupAndDeleteBatch(size)));
  }

  /**
   * Writes every entry (`BPF_MAP_UPDATE_BATCH`, cilium's `BatchUpdate`) in one call to the
   * binding; returns how many. An entry the kernel refuses stops it with an error naming the
   * entry (those before it are written). `'noexist'` and `'exist'` go key by key: no kernel
   * takes them in a batch. Synchronous, as every map call: on older kernels each inner map
   * put into or taken out of a map of maps waits for an RCU grace period (6.1: 12 ms each in
   * a TCG guest, 12,000 took 146 s; 6.18: 94 ms for all 12,000), so write thousands from a
   * worker thread (`maps: { name: { reuseFd } }` there) where that matters.
   */
  setMany(entries: Iterable<readonly [K, MapValueInput<V, P>]>, flags: 'any' | 'noexist' | 'exist' = 'any'): number {
    const f = this.#flags(flags);
    const keys: Uint8Array[] = [];
    const values: Uint8Array[] = [];
    for (const [k, v] of entries) {
      keys.push(this.#encodeKey(k));
      values.push(this.#encodeValue(v));
    }
    if (keys.length === 0) return 0;
    return this.#call((n) => n.updateBatch(Buffer.concat(keys), Buffer.concat(values), f));
  }

  /**
   * Deletes the keys (`BPF_MAP_DELETE_BATCH`, cilium's `BatchDelete`) in one call to the
   * binding; keys not in the map are skipped. Returns how many were deleted. Arrays refuse
   * (`EINVAL`): use `clear()`.
   */
  deleteMany(keys: Iterable<K>): number {
    const encoded = Array.from(keys, (k) => this.#encodeKey(k));
    if (encoded.length === 0) return 0;
    return this.#call((n) => n.deleteBatch(Buffer.concat(encoded)));
  }

  /**
   * Empties the map; returns how many elements it took out. Hash maps: one pass of
   * `BPF_MAP_LOOKUP_AND_DELETE_BATCH`; what a program adds meanwhile may stay. Arrays
   * (`ARRAY`, `PERCPU_ARRAY`) cannot delete: every value is set to zeros instead, and the
   * count is `maxEntries`.
   */
  clear(): number {
    return this.#call((n) => n.clear());
  }

  /**
   * Per-CPU maps: the value at `key` summed over the CPUs (`undefined` when absent); the
   * value codec must decode numbers or bigints (`'u64'`: bigints). A map that is not
   * per-CPU gives its value as it is.
   */
  sum(key: K): V | undefined {
    const v = this.get(key);
    return v === undefined || !this.percpu ? (v as V | undefined) : (sumPerCpu(v as unknown as number[]) as V);
  }

  /** Per-CPU maps: the largest of the CPUs' values at `key` (see `sum`). */
  max(key: K): V | undefined {
    const v = this.get(key);
    return v === undefined || !this.percpu ? (v as V | undefined) : (maxPerCpu(v as unknown as number[]) as V);
  }

  /**
   * Queue and stack: adds a value (`'exist'`: a full one drops its oldest, else it is `EINVAL`
   * with errno E2BIG). Bloom filter: adds the value to the set.
   */
  push(value: V, flags: 'any' | 'exist' = 'any'): void {
    const f = this.#flags(flags);
    const v = this.#encodeValue(value);
    this.#call((n) => n.push(v, f));
  }

  /** Queue and stack: takes the next value out (a queue's oldest, a stack's newest); `undefined` when empty. */
  pop(): V | undefined {
    const buf = this.#call((n) => n.pop(true));
    return buf ? (this.#decodeValue(buf) as V) : undefined;
  }

  /** Queue and stack: the next value, left in; `undefined` when empty. */
  peek(): V | undefined {
    const buf = this.#call((n) => n.pop(false));
    return buf ? (this.#decodeValue(buf) as V) : undefined;
  }

  /** Bloom filter: whether the value may be in the set (false: it certainly is not). */
  has(value: V): boolean {
    const v = this.#encodeValue(value);
    return this.#call((n) => n.pop(false, v)) !== null;
  }

  /**
   * Stack trace map: the stack `bpf_get_stackid` returned `id` for, as addresses (innermost
   * first); `undefined` when there is none.
   */
  stack(id: number): bigint[] | undefined {
    const key = new Uint8Array(4);
    new DataView(key.buffer).setUint32(0, num('stack id', id, U32), true);
    const buf = this.#call((n) => n.lookup(key));
    if (!buf) return undefined;
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const out: bigint[] = [];
    for (let off = 0; off + 8 <= buf.byteLength; off += 8) {
      const ip = dv.getBigUint64(off, true);
      if (ip === 0n) break;
      out.push(ip);
    }
    return out;
  }

  /** Program array: the program tail calls to slot `key` run (it must be loaded). */
  setProgram(key: K, program: Program): void {
    const k = this.#encodeKey(key);
    this.#call((n) => n.setProgram(k, program._object(), str('program', program.name)));
  }

  /** Map of maps: `inner` at `key` (the kernel keeps the map: closing `inner` afterwards leaves it there). */
  setMap(key: K, inner: MapHandle): void {
    const k = this.#encodeKey(key);
    this.#call((n) => n.setMap(k, inner._native()));
  }

  /** The map's file descriptor, for `reuseFd` (valid while the map is open). */
  get fd(): number {
    return this.#call((n) => n.fd());
  }

  /** Closes a map made by `createMap` (an object's maps close with the object). Idempotent. */
  close(): void {
    this.#native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export interface CreateMapOptions {
  /** A `MapType` value, or libbpf's name of it (`'percpu_array'`). */
  type: number | MapTypeName;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** Shown in `bpftool map` (15 characters; default `'nodebpf'`). */
  name?: string;
  flags?: number;
  /** A bloom filter's number of hash functions. */
  mapExtra?: number;
  numaNode?: number;
  /** A map of maps' template for its values (any map with the inner maps' definition). */
  innerMap?: MapHandle;
}

/** @internal The definition `createMap` and `innerMap` pass to the binding, checked. */
export function mapDefinition(param: string, d: CreateMapOptions) {
  const o = options(param, d, true);
  return {
    mapType: mapTypeOf(`${param} type`, o.type),
    keySize: num(`${param} keySize`, o.keySize, U32),
    valueSize: num(`${param} valueSize`, o.valueSize, U32),
    maxEntries: num(`${param} maxEntries`, o.maxEntries, U32),
    flags: optNum(`${param} flags`, o.flags, U32),
    mapExtra: optNum(`${param} mapExtra`, o.mapExtra, U32),
    numaNode: optNum(`${param} numaNode`, o.numaNode, U32),
  };
}

/**
 * A map of its own, outside any object (libbpf's `bpf_map_create`): e.g. an inner map to put
 * in a map of maps. Close it (or `using`) when done; a map of maps keeps what was put in it.
 */
export function createMap<T extends number | MapTypeName, KS extends CodecName | undefined = undefined, VS extends CodecName | undefined = undefined>(
  o: CreateMapOptions & { type: T },
  codecs?: { key?: KS; value?: VS; perCpu?: PerCpuOf<T> },
): BpfMap<RawDecoded<KS>, RawDecoded<VS>, PerCpuOf<T>>;
export function createMap<T extends number | MapTypeName, K = Uint8Array, V = Uint8Array>(o: CreateMapOptions & { type: T }, codecs?: MapCodecs<K, V, PerCpuOf<T>>): BpfMap<K, V, PerCpuOf<T>>;
export function createMap<K = Uint8Array, V = Uint8Array>(o: CreateMapOptions, codecs: MapCodecs<K, V> = {}): BpfMap<K, V, boolean> {
  const def = mapDefinition('createMap', o);
  const name = o.name === undefined ? 'nodebpf' : str('createMap name', o.name);
  const n = native(() => addon.createMap(name, def, o.innerMap?._native()), { map: name });
  try {
    const d = native(() => n.desc());
    // The type says whether it is per-CPU (PerCpuOf); a perCpu given is checked.
    return new BpfMap<K, V, boolean>(n, d, { ...codecs, perCpu: codecs.perCpu ?? d.percpu });
  } catch (e) {
    n.close();
    throw e;
  }
}

/**
 * A pidfd for `pid` (`pidfd_open(2)`): the key of a task storage map from user space
 * (`{ key: 'i32' }`). Close it with `fs.closeSync` when done.
 */
export function pidfdOpen(pid: number): number {
  return native(() => addon.pidfdOpen(num('pid', pid, PID)), { operation: 'pidfdOpen' });
}
