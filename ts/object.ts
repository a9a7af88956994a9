import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';

import { bytes, FD, MAX_ENTRIES, optNum, options, optStr, str, U32 } from './check.js';
import { resolveCodec } from './codec.js';
import { BpfError, native, nativeAsync } from './errors.js';
import { Link, MultiLink } from './link.js';
import { BpfMap, MapType, type MapCodecs, type MapHandle } from './map.js';
import type { Codec, CodecName, Decoded } from './codec.js';
import { TypeCodecs, TypeTable, type TypeCodec, type TypeOptions } from './btf/index.js';
import { frozen, globalsObject, isReadOnlySection } from './globals.js';

/** The definition of a map, as an inner map template. */
function definitionOf(m: MapHandle): binding.MapDefinition {
  return { mapType: m.mapType, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, flags: m.flags };
}
import { addon, type MapDesc, type NativeLink, type NativeMultiLink, type NativeObject } from './native.js';
import { Program, targetFd, type FreplaceTarget } from './program.js';
import { PerfBuffer, RingBuffer, type PerfBufferOptions, type RingBufferOptions } from './ringbuf.js';
import type * as binding from './binding.js';
import { attachTypeOf, describeMapType, progTypeOf, type AttachTypeName, type ProgTypeName } from './types.js';

export type GlobalValue = number | bigint | boolean | Uint8Array;

export interface LoadOptions {
  /**
   * `.rodata`/`.data`/`.bss` variables to set before load. Numbers are checked against the
   * variable's size and BTF signedness (a value that does not fit is a `RANGE` error).
   */
  globals?: Record<string, GlobalValue>;
  /** Kernel BTF for CO-RE (default `/sys/kernel/btf/vmlinux`). */
  btfPath?: string;
  /** bpffs folder for maps declared with `LIBBPF_PIN_BY_NAME` (default `/sys/fs/bpf`). */
  pinPath?: string;
  /**
   * Per map, what to change before it is created: `{ counts: { maxEntries: 10240 } }`
   * (libbpf's `bpf_map__set_max_entries`; a ring buffer's size in bytes).
   */
  maps?: Record<string, MapConfig>;
  /**
   * Per program, what to change before loading: `{ handle_fentry: { autoload: false } }`
   * (libbpf's `bpf_program__set_autoload`).
   */
  programs?: Record<string, ProgramConfig>;
}

export interface MapConfig {
  maxEntries?: number;
  /** libbpf's `bpf_map__set_value_size` (e.g. a stack map sized for the stack depth). */
  valueSize?: number;
  /** libbpf's `bpf_map__set_map_flags` (`BPF_F_*`). */
  mapFlags?: number;
  /** libbpf's `bpf_map__set_numa_node` (adds `BPF_F_NUMA_NODE`). */
  numaNode?: number;
  /** A map of maps' inner template: another map of the object by name, or a map (`createMap`). */
  innerMap?: string | MapHandle;
  /** libbpf's `bpf_map__reuse_fd`: this map (an fd, or a `BpfMap`) instead of a new one; `INCOMPATIBLE` unless it matches. */
  reuseFd?: number | MapHandle;
  /** libbpf's `bpf_map__set_pin_path`: reuse the map pinned there (`INCOMPATIBLE` unless it matches), or create and pin it there. */
  pinPath?: string;
}

export interface ProgramConfig {
  autoload?: boolean;
  /**
   * libbpf's `bpf_program__set_attach_target`: the function, tracepoint, LSM hook or
   * iterator an fentry/fexit/fmod_ret/tp_btf/lsm/iter program is loaded for; for freplace,
   * `{ program, function }`, a global function of another object's loaded program.
   */
  attachTarget?: string | FreplaceTarget;
  /** libbpf's `bpf_program__set_type`: a libbpf name (`'tracepoint'`, `'kprobe'`…) or a number. */
  type?: ProgTypeName | number;
  /** libbpf's `bpf_program__set_expected_attach_type`: a libbpf name (`'trace_fentry'`…) or a number. */
  expectedAttachType?: AttachTypeName | number;
}

function mapOptions(maps: Record<string, MapConfig> | undefined): binding.LoadOptions['maps'] {
  if (maps === undefined) return undefined;
  return Object.fromEntries(
    Object.entries(options('maps', maps)).map(([name, c]) => {
      const config = options(`map '${name}' options`, c, true);
      const inner = config.innerMap;
      const reuse = config.reuseFd;
      return [
        name,
        {
          maxEntries: optNum(`map '${name}' maxEntries`, config.maxEntries, MAX_ENTRIES),
          valueSize: optNum(`map '${name}' valueSize`, config.valueSize, MAX_ENTRIES),
          mapFlags: optNum(`map '${name}' mapFlags`, config.mapFlags, U32),
          numaNode: optNum(`map '${name}' numaNode`, config.numaNode, U32),
          innerMap: typeof inner === 'object' ? undefined : optStr(`map '${name}' innerMap`, inner),
          innerMapDef: typeof inner === 'object' && inner !== null ? definitionOf(inner) : undefined,
          reuseFd: typeof reuse === 'object' && reuse !== null ? reuse.fd : optNum(`map '${name}' reuseFd`, reuse, FD),
          pinPath: optStr(`map '${name}' pinPath`, config.pinPath),
        },
      ];
    }),
  );
}

/** `attachTarget` as the binding takes it: a name, and for freplace the target program's fd. */
function attachTargetOptions(name: string, t: unknown): { attachTarget?: string; attachProgFd?: number } {
  const param = `program '${name}' attachTarget`;
  if (typeof t !== 'object' || t === null) return { attachTarget: optStr(param, t) };
  const o = options(param, t as FreplaceTarget, true);
  return { attachTarget: optStr(`${param}.function`, o.function), attachProgFd: targetFd(`${param}.program`, o.program) };
}

function programOptions(programs: Record<string, ProgramConfig> | undefined): binding.LoadOptions['programs'] {
  if (programs === undefined) return undefined;
  return Object.fromEntries(
    Object.entries(options('programs', programs)).map(([name, c]) => {
      const { autoload, attachTarget, type, expectedAttachType } = options(`program '${name}' options`, c, true);
      if (autoload !== undefined && typeof autoload !== 'boolean') {
        throw new BpfError('EINVAL', `program '${name}' autoload must be a boolean, got ${typeof autoload}`, { program: name });
      }
      return [
        name,
        {
          autoload,
          ...attachTargetOptions(name, attachTarget),
          progType: type === undefined ? undefined : progTypeOf(`program '${name}' type`, type),
          expectedAttachType: expectedAttachType === undefined ? undefined : attachTypeOf(`program '${name}' expectedAttachType`, expectedAttachType),
        },
      ];
    }),
  );
}

/** @internal */
export function nativeOptions(given: LoadOptions | undefined): binding.LoadOptions {
  const o = options('load options', given);
  const globals: Record<string, Uint8Array> = {};
  const intGlobals: Record<string, bigint> = {};
  for (const [name, v] of Object.entries(o.globals ?? {})) {
    const param = `global '${name}'`;
    if (v instanceof Uint8Array) globals[name] = v;
    else if (typeof v === 'boolean') intGlobals[name] = v ? 1n : 0n;
    else if (typeof v === 'bigint') intGlobals[name] = v;
    else if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) {
        throw new BpfError('RANGE', `${param} is ${v}: ${Number.isInteger(v) ? 'beyond 2^53, pass a bigint' : 'not an integer'}`);
      }
      intGlobals[name] = BigInt(v);
    } else {
      throw new BpfError('EINVAL', `${param} must be a number, bigint, boolean or Uint8Array, got ${v === null ? 'null' : typeof v}`);
    }
  }
  return {
    globals,
    intGlobals,
    btfPath: o.btfPath === undefined ? undefined : str('btfPath', o.btfPath),
    pinPath: o.pinPath === undefined ? undefined : str('pinPath', o.pinPath),
    maps: mapOptions(o.maps),
    programs: programOptions(o.programs),
  };
}

/** A loaded BPF object: its programs, maps, and every link and ring buffer made from it. */
export class BpfObject implements Disposable {
  #native: NativeObject | null;
  #programs: Map<string, Program>;
  #maps: Map<string, MapDesc>;
  #open = new Set<{ close(): void; closeAsync(): Promise<void> }>();
  /** What `close()` closed, for `closeAsync()` to wait on. */
  #closing: { closeAsync(): Promise<void> }[] = [];
  /** The open consumer of each ring buffer: one per map. */
  #rings = new Map<string, RingBuffer>();
  /** The object's BTF codecs, made on first use (null: the object has no BTF). */
  #types: TypeCodecs | null | undefined;
  #globals: Record<string, unknown> | undefined;
  /** Per data section, its mapped value (null: not mappable, read through the map). */
  #sections = new Map<string, DataView | null>();

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
      throw new BpfError('ENOENT', `no program named '${name}'; programs: ${[...this.#programs.keys()].join(', ')}`, { program: name });
    }
    return p;
  }

  /**
   * A map with typed keys and values. Without codecs, keys and values decode by the map's
   * BTF types (`__u32` → number, `__u64` → bigint, `struct x` → an object; `int64:
   * 'number-if-safe'` for numbers while exact), or are bytes where the map has none. Named
   * codecs (`{ key: 'u32', value: 'u64' }`) type the map by them (`number`, `bigint`).
   */
  map<KS extends CodecName | undefined = undefined, VS extends CodecName | undefined = undefined, P extends boolean = false>(
    name: string,
    codecs?: { key?: KS; value?: VS; perCpu?: P } & TypeOptions,
  ): BpfMap<Decoded<KS>, Decoded<VS>, P>;
  map<K = unknown, V = unknown, P extends boolean = false>(name: string, codecs?: MapCodecs<K, V, P> & TypeOptions): BpfMap<K, V, P>;
  map<K = unknown, V = unknown, P extends boolean = false>(name: string, codecs: MapCodecs<K, V, P> & TypeOptions = {}): BpfMap<K, V, P> {
    const d = this.#maps.get(name);
    if (!d) throw new BpfError('ENOENT', `no map named '${name}'; maps: ${[...this.#maps.keys()].join(', ')}`, { map: name });
    const o = options('map codecs', codecs);
    const btf = (id: number, size: number) => {
      const c = id ? this.#typeCodecs()?.byId(id, { int64: o.int64 }) : undefined;
      // A BTF type of another size than the map's (a hand-made inner map) is not its codec.
      return c?.size === size ? c : undefined;
    };
    const resolved: MapCodecs<K, V, P> = {
      key: o.key ?? (btf(d.btfKeyTypeId, d.keySize) as Codec<K> | undefined),
      value: o.value ?? (btf(d.btfValueTypeId, d.valueSize) as Codec<V> | undefined),
      ...(o.perCpu === undefined ? {} : { perCpu: o.perCpu }),
    };
    return new BpfMap<K, V, P>(native(() => this._native().map(name), { map: name }), d, resolved);
  }

  #typeCodecs(): TypeCodecs | undefined {
    if (this.#types === undefined) {
      const types = native(() => this._native().types());
      this.#types = types.length > 0 ? new TypeCodecs(new TypeTable(types)) : null;
    }
    return this.#types ?? undefined;
  }

  /**
   * A codec of one of the object's BTF types by its C name (`'struct event'`, `'event_t'`):
   * for ring-buffer records, `for await (const e of rb.events(obj.type('struct event').record))`.
   */
  type<T = unknown>(name: string, options: TypeOptions = {}): TypeCodec<T> {
    const types = this.#typeCodecs();
    if (!types) throw new BpfError('ENOENT', `the object has no BTF, so no type '${String(name)}': build it with clang -g`, { symbol: String(name) });
    return types.byName<T>(str('type name', name), options);
  }

  /**
   * The `.rodata`/`.data`/`.bss` variables as properties, typed by their BTF: reading one
   * reads the live map (`obj.globals.hits` is a counter the program increments), setting
   * one writes it (checked: a value that does not fit is `RANGE`). `.rodata` is frozen once
   * loaded: setting it is `EPERM` (set it before, with `load(…, { globals })` or `open()`).
   */
  get globals(): Record<string, unknown> {
    this.#globals ??= globalsObject(native(() => this._native().globals()), this.#typeCodecs(), {
      read: (g, codec) => {
        const view = this.#section(g.section);
        if (view) return codec.decodeAt(view, g.offset);
        return codec.decode(this.#sectionBytes(g.section).subarray(g.offset, g.offset + g.size));
      },
      write: (g, bytes) => {
        if (isReadOnlySection(g.section)) throw frozen(g);
        const view = this.#section(g.section);
        if (view) {
          new Uint8Array(view.buffer, view.byteOffset + g.offset, g.size).set(bytes);
          return;
        }
        const value = this.#sectionBytes(g.section);
        value.set(bytes, g.offset);
        this.map(g.section, { key: 'u32', value: 'raw' }).set(0, value);
      },
    });
    return this.#globals;
  }

  /** A data section's value as mapped, or null when it is not mappable. Throws CLOSED once closed. */
  #section(section: string): DataView | null {
    const n = this._native();
    let view = this.#sections.get(section);
    if (view === undefined) {
      const buf = native(() => n.globalData(section), { map: section });
      view = buf ? new DataView(buf) : null;
      this.#sections.set(section, view);
    }
    return view;
  }

  /** A data section's value, read through its map (kernels that cannot map it). */
  #sectionBytes(section: string): Uint8Array {
    const v = this.map(section, { key: 'u32', value: 'raw' }).get(0);
    if (!(v instanceof Uint8Array)) throw new BpfError('EIO', `data section ${section} has no value`, { map: section });
    return new Uint8Array(v);
  }

  /**
   * The map's ring-buffer consumer: the same one while it is open (records are delivered
   * once, to one consumer), a new one after it was closed. Options apply to a new one.
   * A map of ring buffers (`ARRAY_OF_MAPS`/`HASH_OF_MAPS` whose inner map is a ring
   * buffer) is a fan-in: a ring per online CPU is made, put in the CPU's slot, and read
   * as one stream; closing the consumer takes them out again.
   */
  ringbuf(name: string, given: RingBufferOptions = {}): RingBuffer {
    const o = options('ringbuf options', given);
    const open = this.#rings.get(name);
    if (open && !open.closed && !(open instanceof PerfBuffer)) return open;
    const ring = native(() => this._native().ringbuf(str('name', name)), { map: name });
    const rb: RingBuffer = new RingBuffer(
      name,
      ring,
      () => {
        this.#open.delete(rb);
        if (this.#rings.get(name) === rb) this.#rings.delete(name);
      },
      { copy: o.copy === true },
      () => this.#ringLost(name),
    );
    this.#open.add(rb);
    this.#rings.set(name, rb);
    return rb;
  }

  /**
   * The map's perf-buffer consumer (a `PERF_EVENT_ARRAY`): the same one while it is open,
   * a new one after it was closed. Options apply to a new one.
   */
  perfbuf(name: string, given: PerfBufferOptions = {}): PerfBuffer {
    const o = options('perfbuf options', given);
    const open = this.#rings.get(name);
    if (open instanceof PerfBuffer && !open.closed) return open;
    const pages = optNum('pagesPerCpu', o.pagesPerCpu, { min: 1n, max: 1n << 20n, name: 'pages' });
    if (pages !== undefined && (pages & (pages - 1)) !== 0) {
      throw new BpfError('RANGE', `pagesPerCpu is ${pages}, not a power of two`, { map: name });
    }
    const perf = native(() => this._native().perfbuf(str('name', name), pages), { map: name });
    const pb: PerfBuffer = new PerfBuffer(
      name,
      perf,
      () => {
        this.#open.delete(pb);
        if (this.#rings.get(name) === pb) this.#rings.delete(name);
      },
      { copy: o.copy === true },
    );
    this.#open.add(pb);
    this.#rings.set(name, pb);
    return pb;
  }

  /**
   * The consumer of an event map, whichever kind it is: `ringbuf(name)` for a ring buffer
   * or a map of ring buffers (a fan-in), `perfbuf(name)` for a perf event array. All read
   * the same way.
   */
  events(name: string): RingBuffer {
    const d = this.#maps.get(name);
    if (!d) throw new BpfError('ENOENT', `no map named '${name}'; maps: ${[...this.#maps.keys()].join(', ')}`, { map: name });
    if (d.mapType === MapType.PERF_EVENT_ARRAY) return this.perfbuf(name);
    if (d.mapType === MapType.RINGBUF || d.mapType === MapType.ARRAY_OF_MAPS || d.mapType === MapType.HASH_OF_MAPS) return this.ringbuf(name);
    throw new BpfError('EINVAL', `map '${name}' is neither a ring buffer (or a map of them) nor a perf event array: its type is ${describeMapType(d.mapType)}`, { map: name });
  }

  /** The records ring `name` refused, from nodebpf.bpf.h's per-CPU `<name>__lost` counter. */
  #ringLost(name: string): number | undefined {
    const d = this.#maps.get(`${name}__lost`);
    if (!d) return undefined;
    const counts = this.map(d.name, { key: 'u32', value: 'u64', perCpu: d.percpu }).get(0);
    if (counts === undefined) return undefined;
    return (Array.isArray(counts) ? counts : [counts]).reduce((sum: number, n) => sum + Number(n), 0);
  }

  /**
   * Closes every link and ring buffer made from this object, then its programs and maps,
   * without blocking the event loop (perf-event links detach in the background); an
   * attach still running rejects with CLOSED. Idempotent.
   */
  close(): void {
    const open = [...this.#open];
    this.#closing.push(...open);
    for (const r of open) r.close();
    this.#native?.close();
    this.#native = null;
  }

  /** `close()`, resolving once every link it closed is detached. Idempotent. */
  async closeAsync(): Promise<void> {
    this.close();
    const closing = this.#closing.splice(0);
    await Promise.all(closing.map((r) => r.closeAsync()));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.closeAsync();
  }
}

/** The subject of a load's errors: the file, when it came from one. */
export const subject = (source: unknown) => (typeof source === 'string' ? { path: source } : {});

/** Loads a BPF object (a path, or its bytes) off the JS thread. */
export async function load(source: string | Uint8Array, options?: LoadOptions): Promise<BpfObject> {
  const data = typeof source === 'string' ? await readBytes(source) : bytes('the BPF object', source);
  const opts = nativeOptions(options);
  return new BpfObject(await nativeAsync(() => addon.loadObject(data, opts), subject(source)));
}

export function loadSync(source: string | Uint8Array, options?: LoadOptions): BpfObject {
  const data = typeof source === 'string' ? readBytesSync(source) : bytes('the BPF object', source);
  const opts = nativeOptions(options);
  return new BpfObject(native(() => addon.loadObjectSync(data, opts), subject(source)));
}

function fileError(path: string, e: unknown): BpfError {
  const err = e as NodeJS.ErrnoException;
  const details = { path, errno: err.errno === undefined ? undefined : -err.errno, operation: 'load', cause: e };
  if (err.code === 'ENOENT') return new BpfError('ENOENT', `BPF object '${path}' does not exist`, details);
  if (err.code === 'EACCES') return new BpfError('EPERM', `BPF object '${path}': permission denied`, details);
  return new BpfError('EIO', `reading BPF object '${path}': ${err.message}`, details);
}

/** @internal */
export async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw fileError(path, e);
  }
}

/** @internal */
export function readBytesSync(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw fileError(path, e);
  }
}
