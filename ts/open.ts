// The spec stage, as libbpf users know it: open → configure → load. `open()` parses and
// checks an object without making any kernel object; its programs and maps are then
// configured (autoload, max_entries) and `load()` makes a `BpfObject` of it.
import { bytes, FD, MAX_ENTRIES, num, options, str, U32 } from './check.js';
import { BpfError, nativeAsync } from './errors.js';
import { addon } from './native.js';
import { BpfObject, load, loadSync, nativeOptions, readBytes, subject, type GlobalValue, type LoadOptions, type MapConfig, type ProgramConfig } from './object.js';
import { attachTypeOf, progTypeOf, type AttachTypeName, type ProgTypeName } from './types.js';
import type { MapHandle } from './map.js';
import { targetFd, type FreplaceTarget } from './program.js';
import type { GlobalSpec, InnerMapSpec, MapSpec, ObjectSpec, ProgramSpec } from './binding.js';
import { TypeCodecs, TypeTable, type TypeCodec, type TypeOptions } from './btf/index.js';
import { globalCodec, globalsObject } from './globals.js';

/** A program before load: what its SEC() name says, and what is configured. */
export class OpenProgram {
  readonly name: string;
  readonly section: string;
  /**
   * `false` leaves the program out of the load (libbpf's `bpf_program__set_autoload`);
   * `false` to begin with for a `SEC("?…")` program.
   */
  autoload: boolean;
  #autoloadDefault: boolean;
  #progType: number;
  #expectedAttachType: number;
  #attachTarget: string | undefined;
  #config: ProgramConfig = {};

  /** @internal */
  constructor(p: ProgramSpec) {
    this.name = p.name;
    this.section = p.section;
    this.#progType = p.progType;
    this.#expectedAttachType = p.expectedAttachType;
    this.#attachTarget = p.attachTarget ?? undefined;
    this.autoload = this.#autoloadDefault = p.autoload;
  }

  /** The program type; set it (libbpf's `bpf_program__set_type`) with a libbpf name or a number. */
  get progType(): number {
    return this.#progType;
  }

  set progType(t: number | ProgTypeName) {
    this.#progType = progTypeOf(`program '${this.name}' type`, t);
    this.#config.type = this.#progType;
  }

  /** Set it with a libbpf name (`'trace_fentry'`…) or a number (`bpf_program__set_expected_attach_type`). */
  get expectedAttachType(): number {
    return this.#expectedAttachType;
  }

  set expectedAttachType(t: number | AttachTypeName) {
    this.#expectedAttachType = attachTypeOf(`program '${this.name}' expectedAttachType`, t);
    this.#config.expectedAttachType = this.#expectedAttachType;
  }

  /**
   * What the SEC() name says to attach to; set it (libbpf's `bpf_program__set_attach_target`)
   * for an fentry/fexit/fmod_ret/tp_btf/lsm/iter program, or for freplace to
   * `{ program, function }` (a loaded program of another object and its global function).
   */
  get attachTarget(): string | undefined {
    return this.#attachTarget;
  }

  set attachTarget(t: string | FreplaceTarget) {
    const param = `program '${this.name}' attachTarget`;
    if (typeof t === 'object' && t !== null) {
      const o = options(param, t, true);
      targetFd(`${param}.program`, o.program);
      this.#attachTarget = o.function === undefined ? this.#attachTarget : str(`${param}.function`, o.function);
      this.#config.attachTarget = { program: o.program, function: this.#attachTarget };
    } else {
      this.#attachTarget = str(param, t);
      this.#config.attachTarget = this.#attachTarget;
    }
  }

  /** @internal What was configured, as load options (undefined when nothing was). */
  get config(): ProgramConfig | undefined {
    const c: ProgramConfig = { ...this.#config, ...(this.autoload === this.#autoloadDefault ? {} : { autoload: this.autoload }) };
    return Object.keys(c).length > 0 ? c : undefined;
  }
}

/** A map before it is created. */
export class OpenMap {
  readonly name: string;
  readonly mapType: number;
  readonly keySize: number;
  /** A bloom filter's number of hash functions. */
  readonly mapExtra: number;
  /** The key's and value's BTF types as C names them (`__u32`, `struct event`); none for `key_size`-declared maps. */
  readonly btfKeyType: string | undefined;
  readonly btfValueType: string | undefined;
  /** The key's and value's ids in the object's `types` (0: none). */
  readonly btfKeyTypeId: number;
  readonly btfValueTypeId: number;
  /** `'byName'` for `LIBBPF_PIN_BY_NAME`. */
  readonly pinning: 'byName' | 'none';
  /** A map of maps' inner map, from its `__array(values, ...)` declaration. */
  readonly inner: InnerMapSpec | undefined;
  #maxEntries: number;
  #valueSize: number;
  #flags: number;
  /** What was set, as load options. */
  #config: MapConfig = {};

  /** @internal */
  constructor(m: MapSpec) {
    this.name = m.name;
    this.mapType = m.mapType;
    this.keySize = m.keySize;
    this.mapExtra = m.mapExtra;
    this.btfKeyType = m.btfKeyType;
    this.btfValueType = m.btfValueType;
    this.btfKeyTypeId = m.btfKeyTypeId;
    this.btfValueTypeId = m.btfValueTypeId;
    this.pinning = m.pinning === 'byName' ? 'byName' : 'none';
    this.inner = m.inner;
    this.#maxEntries = m.maxEntries;
    this.#valueSize = m.valueSize;
    this.#flags = m.flags;
  }

  /** libbpf's `bpf_map__set_max_entries` (a ring buffer's size in bytes). Checked when set. */
  get maxEntries(): number {
    return this.#maxEntries;
  }

  set maxEntries(n: number) {
    this.#maxEntries = num(`map '${this.name}' maxEntries`, n, MAX_ENTRIES);
    this.#config.maxEntries = this.#maxEntries;
  }

  /** libbpf's `bpf_map__set_value_size`. Checked when set. */
  get valueSize(): number {
    return this.#valueSize;
  }

  set valueSize(n: number) {
    this.#valueSize = num(`map '${this.name}' valueSize`, n, MAX_ENTRIES);
    this.#config.valueSize = this.#valueSize;
  }

  /** libbpf's `bpf_map__set_map_flags` (`BPF_F_*`). Checked when set. */
  get flags(): number {
    return this.#flags;
  }

  set flags(n: number) {
    this.#flags = num(`map '${this.name}' mapFlags`, n, U32);
    this.#config.mapFlags = this.#flags;
  }

  /** libbpf's `bpf_map__set_numa_node`. */
  setNumaNode(node: number): this {
    this.#config.numaNode = num(`map '${this.name}' numaNode`, node, U32);
    return this;
  }

  /** A map of maps' inner template: another map of the object by name, or a map (`createMap`). */
  setInnerMap(inner: string | MapHandle): this {
    this.#config.innerMap = typeof inner === 'string' ? str(`map '${this.name}' innerMap`, inner) : inner;
    return this;
  }

  /** libbpf's `bpf_map__reuse_fd`: use this map (an fd, or a map) instead of creating one; `INCOMPATIBLE` at load unless it matches. */
  reuseFd(map: number | MapHandle): this {
    this.#config.reuseFd = typeof map === 'number' ? num(`map '${this.name}' reuseFd`, map, FD) : map;
    return this;
  }

  /** libbpf's `bpf_map__set_pin_path`: reuse the map pinned there (if it matches) or pin the new map there. */
  setPinPath(path: string): this {
    this.#config.pinPath = str(`map '${this.name}' pinPath`, path);
    return this;
  }

  /** @internal What was configured, as load options (undefined when nothing was). */
  get config(): MapConfig | undefined {
    return Object.keys(this.#config).length > 0 ? { ...this.#config } : undefined;
  }
}

/** An opened, not yet loaded object: configure it, then `load()`. */
export class OpenObject {
  readonly programs: OpenProgram[];
  readonly maps: OpenMap[];
  /** `.rodata`/`.data`/`.bss` (and `.data.*`/`.rodata.*`) variables: name, section, offset, size, BTF type. */
  readonly globalSpecs: GlobalSpec[];
  /** The object's BTF types (empty without BTF). */
  readonly types: TypeTable;
  /**
   * The variables as typed properties, as a libbpf skeleton's `skel->rodata->x = …`:
   * setting one configures its initial value (checked against its BTF type: `RANGE` when
   * it does not fit); reading one gives what was set (undefined until then).
   */
  readonly globals: Record<string, unknown>;
  #data: Uint8Array;
  #options: LoadOptions;
  #globals: Record<string, GlobalValue> = {};
  #codecs: TypeCodecs | undefined;

  /** @internal */
  constructor(data: Uint8Array, options: LoadOptions, spec: ObjectSpec) {
    this.#data = data;
    this.#options = options;
    this.programs = spec.programs.map((p) => new OpenProgram(p));
    this.maps = spec.maps.map((m) => new OpenMap(m));
    this.globalSpecs = spec.globals;
    this.types = new TypeTable(spec.types);
    this.#codecs = spec.types.length > 0 ? new TypeCodecs(this.types) : undefined;
    this.globals = globalsObject(spec.globals, this.#codecs, {
      read: (g, codec) => {
        const v = this.#globals[g.name];
        return v instanceof Uint8Array && v.byteLength === codec.size ? codec.decode(v) : v;
      },
      write: (g, bytes) => {
        this.#globals[g.name] = bytes;
      },
    });
  }

  /** A codec of one of the object's BTF types by its C name (`'struct event'`), as `BpfObject.type()`. */
  type<T = unknown>(name: string, options: TypeOptions = {}): TypeCodec<T> {
    if (!this.#codecs) throw new BpfError('ENOENT', `the object has no BTF, so no type '${String(name)}': build it with clang -g`, { symbol: String(name) });
    return this.#codecs.byName<T>(str('type name', name), options);
  }

  program(name: string): OpenProgram {
    const p = this.programs.find((x) => x.name === name);
    if (!p) throw new BpfError('ENOENT', `no program named '${name}'; programs: ${this.programs.map((x) => x.name).join(', ')}`, { program: name });
    return p;
  }

  map(name: string): OpenMap {
    const m = this.maps.find((x) => x.name === name);
    if (!m) throw new BpfError('ENOENT', `no map named '${name}'; maps: ${this.maps.map((x) => x.name).join(', ')}`, { map: name });
    return m;
  }

  /**
   * Sets a global's initial value before load, as a libbpf skeleton's `skel->rodata->x = …`
   * does: an integer (number, bigint or boolean, stored at the variable's width) or its
   * exact bytes. Checked against the variable at load.
   */
  setGlobal(name: string, value: GlobalValue): this {
    const g = this.globalSpecs.find((x) => x.name === name);
    if (!g) {
      throw new BpfError('ENOENT', `no global variable named '${name}'; globals: ${this.globalSpecs.map((x) => x.name).join(', ')}`, { symbol: name });
    }
    // Bytes as they are; a value of the variable's BTF type is encoded (and checked) now.
    this.#globals[name] = value instanceof Uint8Array || this.#codecs === undefined ? value : globalCodec(g, this.#codecs).encode(value, `global '${name}'`);
    return this;
  }

  /** The configuration so far, merged with `extra` (whose entries win), as load options. */
  #configured(extra: LoadOptions = {}): LoadOptions {
    const maps = Object.fromEntries(this.maps.flatMap((m) => (m.config ? [[m.name, m.config]] : [])));
    const programs = Object.fromEntries(this.programs.flatMap((p) => (p.config ? [[p.name, p.config]] : [])));
    return {
      ...this.#options,
      ...extra,
      globals: { ...this.#options.globals, ...this.#globals, ...extra.globals },
      maps: { ...maps, ...extra.maps },
      programs: { ...programs, ...extra.programs },
    };
  }

  /** Loads the object as configured; `options` adds `globals` (and may override the rest). */
  load(options?: LoadOptions): Promise<BpfObject> {
    return load(this.#data, this.#configured(options));
  }

  loadSync(options?: LoadOptions): BpfObject {
    return loadSync(this.#data, this.#configured(options));
  }
}

/**
 * Parses and checks a BPF object (a path, or its bytes) without loading anything into the
 * kernel: its programs, maps and globals, to configure before `load()`.
 */
export async function open(source: string | Uint8Array, options: LoadOptions = {}): Promise<OpenObject> {
  const data = typeof source === 'string' ? await readBytes(source) : bytes('the BPF object', source);
  const spec = await nativeAsync(() => addon.openObject(data, nativeOptions(options)), { ...subject(source), operation: 'open' });
  return new OpenObject(data, options, spec);
}
