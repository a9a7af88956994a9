import { BpfError, native } from './errors.js';
import type { Codec, CodecSpec } from './codec.js';
import { addon, type MapDesc, type NativeObject } from './native.js';

/** `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`. */
const UPDATE_FLAGS: Record<string, number | undefined> = { any: 0, noexist: 1, exist: 2 };

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
  #obj: { _native(): NativeObject };
  #key: Codec<K>;
  #value: Codec<V>;

  /** @internal */
  constructor(obj: { _native(): NativeObject }, d: MapDesc, key: Codec<K>, value: Codec<V>) {
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

  /** The value (per-CPU maps: one per possible CPU), or `undefined`. */
  get(key: K): V | V[] | undefined {
    const k = this.#encodeKey(key);
    const buf = native(() => this.#obj._native().mapLookup(this.name, k));
    return buf ? this.#decodeValue(buf) : undefined;
  }

  /** Per-CPU maps take an array (one per possible CPU) or one value for all CPUs. */
  set(key: K, value: V | V[], flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    const f = UPDATE_FLAGS[flags];
    if (f === undefined) {
      throw new BpfError('EINVAL', `map '${this.name}': flags is ${String(flags)}; one of ${Object.keys(UPDATE_FLAGS).join(', ')}`, { map: this.name });
    }
    const k = this.#encodeKey(key);
    const v = this.#encodeValue(value);
    if (!this.percpu && v.byteLength !== this.valueSize) {
      throw new BpfError('EINVAL', `map '${this.name}': values are ${this.valueSize} bytes, got ${v.byteLength}`, { map: this.name });
    }
    native(() => this.#obj._native().mapUpdate(this.name, k, v, f));
  }

  /** Returns whether the key was present. */
  delete(key: K): boolean {
    const k = this.#encodeKey(key);
    return native(() => this.#obj._native().mapDelete(this.name, k));
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

