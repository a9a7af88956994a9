// The spec stage, as libbpf users know it: open → configure → load. `open()` parses and
// checks an object without making any kernel object; its programs and maps are then
// configured (autoload, max_entries) and `load()` makes a `BpfObject` of it.
import { bytes, MAX_ENTRIES, num, str } from './check.js';
import { BpfError, nativeAsync } from './errors.js';
import { addon } from './native.js';
import { BpfObject, load, loadSync, nativeOptions, readBytes, subject, type LoadOptions, type ProgramConfig } from './object.js';
import { attachTypeOf, progTypeOf } from './types.js';
import type { GlobalSpec, MapSpec, ProgramSpec } from './binding.js';

/** A program before load: what its SEC() name says, and what is configured. */
export class OpenProgram {
  readonly name: string;
  readonly section: string;
  /** `false` leaves the program out of the load (libbpf's `bpf_program__set_autoload`). */
  autoload = true;
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
  }

  /** The program type; set it (libbpf's `bpf_program__set_type`) with a libbpf name or a number. */
  get progType(): number {
    return this.#progType;
  }

  set progType(t: number | string) {
    this.#progType = progTypeOf(`program '${this.name}' type`, t);
    this.#config.type = this.#progType;
  }

  /** Set it with a libbpf name (`'trace_fentry'`…) or a number (`bpf_program__set_expected_attach_type`). */
  get expectedAttachType(): number {
    return this.#expectedAttachType;
  }

  set expectedAttachType(t: number | string) {
    this.#expectedAttachType = attachTypeOf(`program '${this.name}' expectedAttachType`, t);
    this.#config.expectedAttachType = this.#expectedAttachType;
  }

  /**
   * What the SEC() name says to attach to; set it (libbpf's `bpf_program__set_attach_target`)
   * for an fentry/fexit/fmod_ret/tp_btf/lsm/iter program.
   */
  get attachTarget(): string | undefined {
    return this.#attachTarget;
  }

  set attachTarget(t: string) {
    this.#attachTarget = str(`program '${this.name}' attachTarget`, t);
    this.#config.attachTarget = this.#attachTarget;
  }

  /** @internal What was configured, as load options (undefined when nothing was). */
  get config(): ProgramConfig | undefined {
    const c: ProgramConfig = { ...this.#config, ...(this.autoload ? {} : { autoload: false }) };
    return Object.keys(c).length > 0 ? c : undefined;
  }
}

/** A map before it is created. */
export class OpenMap {
  readonly name: string;
  readonly mapType: number;
  readonly keySize: number;
  readonly flags: number;
  #maxEntries: number;
  #valueSize: number;
  /** What was set, as load options. */
  #config: { maxEntries?: number; valueSize?: number } = {};

  /** @internal */
  constructor(m: MapSpec) {
    this.name = m.name;
    this.mapType = m.mapType;
    this.keySize = m.keySize;
    this.flags = m.flags;
    this.#maxEntries = m.maxEntries;
    this.#valueSize = m.valueSize;
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

  /** @internal What was configured, as load options (undefined when nothing was). */
  get config(): { maxEntries?: number; valueSize?: number } | undefined {
    return Object.keys(this.#config).length > 0 ? { ...this.#config } : undefined;
  }
}

/** An opened, not yet loaded object: configure it, then `load()`. */
export class OpenObject {
  readonly programs: OpenProgram[];
  readonly maps: OpenMap[];
  /** `.rodata`/`.data`/`.bss` variables (set them with `load({ globals })`). */
  readonly globals: GlobalSpec[];
  #data: Uint8Array;
  #options: LoadOptions;

  /** @internal */
  constructor(data: Uint8Array, options: LoadOptions, spec: { programs: ProgramSpec[]; maps: MapSpec[]; globals: GlobalSpec[] }) {
    this.#data = data;
    this.#options = options;
    this.programs = spec.programs.map((p) => new OpenProgram(p));
    this.maps = spec.maps.map((m) => new OpenMap(m));
    this.globals = spec.globals;
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

  /** The configuration so far, merged with `extra` (whose entries win), as load options. */
  #configured(extra: LoadOptions = {}): LoadOptions {
    const maps = Object.fromEntries(this.maps.flatMap((m) => (m.config ? [[m.name, m.config]] : [])));
    const programs = Object.fromEntries(this.programs.flatMap((p) => (p.config ? [[p.name, p.config]] : [])));
    return {
      ...this.#options,
      ...extra,
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
