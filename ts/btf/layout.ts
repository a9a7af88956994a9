// The object's BTF types, as the addon lists them, turned into layouts: what each byte of
// a key, value, global or record is, with typedefs and qualifiers seen through, anonymous
// members flattened into their parent (as C reads them), and padding left out. Codecs and
// generated TypeScript are both made from layouts, so they agree by construction.
import { BpfError } from '../errors.js';
import type { BtfType } from '../binding.js';

export interface EnumValue {
  readonly name: string;
  readonly value: bigint;
}

export interface Bitfield {
  /** Bit offset from the start of the struct (little-endian bit order). */
  readonly bitOffset: number;
  readonly bitSize: number;
}

export interface Field {
  readonly name: string;
  /** Byte offset in the struct (a bitfield's: 0, see `bitfield`). */
  readonly offset: number;
  readonly layout: Layout;
  readonly bitfield?: Bitfield;
  /**
   * Fields of a flattened anonymous union share its group: any of them may be given when
   * encoding (at least one), as for a named union's members.
   */
  readonly group?: string;
}

export type Layout =
  | { readonly kind: 'int'; readonly size: number; readonly signed: boolean; readonly bool: boolean }
  | { readonly kind: 'float'; readonly size: 4 | 8 }
  | { readonly kind: 'enum'; readonly size: number; readonly signed: boolean; readonly name: string; readonly values: readonly EnumValue[] }
  | { readonly kind: 'ptr'; readonly size: 8; readonly target: string }
  /** `char[N]`: a string up to its first NUL. */
  | { readonly kind: 'string'; readonly size: number }
  /** `unsigned char[N]`/`__u8[N]`: bytes. */
  | { readonly kind: 'bytes'; readonly size: number }
  | { readonly kind: 'array'; readonly size: number; readonly len: number; readonly elem: Layout }
  | { readonly kind: 'struct' | 'union'; readonly size: number; readonly name: string; readonly id: number; readonly fields: readonly Field[] }
  /** What has no value to decode (a forward declaration, a function): its bytes. */
  | { readonly kind: 'opaque'; readonly size: number; readonly name: string };

/** How deep typedef chains and nesting are followed: BTF from a hostile file may loop. */
const MAX_DEPTH = 64;
/** Pointers are 64-bit on the BPF target. */
const PTR_SIZE = 8;
const QUALIFIERS = new Set(['typedef', 'volatile', 'const', 'restrict', 'type_tag']);

/** The C name of a type (`struct event`, `__u32`, `char[16]`, `struct task_struct *`). */
export function cName(t: TypeTable, id: number, depth = 0): string {
  const ty = t.get(id);
  if (!ty || depth > MAX_DEPTH) return '?';
  switch (ty.kind) {
    case 'void':
      return 'void';
    case 'struct':
    case 'union':
      return `${ty.kind} ${ty.name || '(anon)'}`;
    case 'enum':
    case 'enum64':
      return `enum ${ty.name || '(anon)'}`;
    case 'ptr':
      return `${cName(t, ty.typeId, depth + 1)} *`;
    case 'array':
      return `${cName(t, ty.typeId, depth + 1)}[${ty.len}]`;
    case 'const':
    case 'volatile':
      return `${ty.kind} ${cName(t, ty.typeId, depth + 1)}`;
    case 'restrict':
    case 'type_tag':
      return cName(t, ty.typeId, depth + 1);
    default:
      return ty.name || ty.kind;
  }
}

/** The object's BTF, by id and by name. */
export class TypeTable {
  readonly #byId = new Map<number, BtfType>();
  readonly #layouts = new Map<number, Layout>();

  constructor(types: readonly BtfType[]) {
    this.#byId.set(0, { id: 0, kind: 'void', name: '', size: 0, typeId: 0, len: 0, bits: 0, signed: false, char: false, bool: false });
    for (const t of types) this.#byId.set(t.id, t);
  }

  get(id: number): BtfType | undefined {
    return this.#byId.get(id);
  }

  get types(): BtfType[] {
    return [...this.#byId.values()];
  }

  /** `id` with typedefs and qualifiers seen through. */
  resolve(id: number): BtfType {
    let ty = this.#byId.get(id);
    for (let i = 0; ty && QUALIFIERS.has(ty.kind); i++) {
      if (i > MAX_DEPTH) throw bad(`type ${id} is a loop of typedefs`);
      ty = this.#byId.get(ty.typeId);
    }
    if (!ty) throw bad(`type ${id} refers to a type the BTF does not have`);
    return ty;
  }

  /**
   * The id of a type by its C name: `struct event`, `union u`, `enum e`, or a bare name,
   * which is a typedef, struct, union or enum of that name (in that order).
   */
  find(name: string): number | undefined {
    const m = /^\s*(struct|union|enum)\s+(\S+)\s*$/.exec(name);
    const kinds = m ? (m[1] === 'enum' ? ['enum', 'enum64'] : [m[1]]) : ['typedef', 'struct', 'union', 'enum', 'enum64', 'int', 'float'];
    const wanted = m ? m[2] : name.trim();
    for (const kind of kinds) {
      for (const t of this.#byId.values()) if (t.kind === kind && t.name === wanted) return t.id;
    }
    return undefined;
  }

  /** Names of the types `find` knows, for messages. */
  names(): string[] {
    const out: string[] = [];
    for (const t of this.#byId.values()) {
      if (!t.name) continue;
      if (t.kind === 'struct' || t.kind === 'union') out.push(`${t.kind} ${t.name}`);
      else if (t.kind === 'enum' || t.kind === 'enum64') out.push(`enum ${t.name}`);
      else if (t.kind === 'typedef') out.push(t.name);
    }
    return out;
  }

  /** The layout of type `id`. */
  layout(id: number): Layout {
    let l = this.#layouts.get(id);
    if (!l) {
      l = this.#layout(id, 0, undefined);
      this.#layouts.set(id, l);
    }
    return l;
  }

  #layout(id: number, depth: number, alias: string | undefined): Layout {
    if (depth > MAX_DEPTH) throw bad(`type ${id} nests deeper than ${MAX_DEPTH}`);
    const first = this.#byId.get(id);
    // A typedef's name stands for an anonymous struct: `typedef struct { ... } event_t`.
    const name = alias ?? (first?.kind === 'typedef' ? first.name : undefined);
    const ty = this.resolve(id);
    switch (ty.kind) {
      case 'int': {
        const size = ty.size;
        if (![1, 2, 4, 8, 16].includes(size)) throw bad(`integer type ${id} is ${size} bytes`);
        return { kind: 'int', size, signed: ty.signed, bool: ty.bool };
      }
      case 'float':
        if (ty.size !== 4 && ty.size !== 8) return { kind: 'opaque', size: ty.size, name: ty.name };
        return { kind: 'float', size: ty.size };
      case 'enum':
      case 'enum64': {
        if (![1, 2, 4, 8].includes(ty.size)) throw bad(`enum type ${id} is ${ty.size} bytes`);
        let values = (ty.values ?? []).map((v) => ({ name: v.name, value: BigInt(v.value) }));
        let signed = ty.signed;
        // BTF before clang 15 has no signedness for enums (kind_flag unset), and keeps each
        // value as 32 bits: a value with the top bit set was a negative enumerator (C types
        // such an enum as int), far more often than an unsigned one above 2^31.
        const top = 1n << BigInt(ty.size * 8 - 1);
        if (!signed && ty.kind === 'enum' && values.some((v) => v.value >= top)) {
          signed = true;
          values = values.map((v) => ({ name: v.name, value: v.value >= top ? v.value - 2n * top : v.value }));
        }
        return { kind: 'enum', size: ty.size, signed, name: ty.name || name || '', values };
      }
      case 'ptr':
        return { kind: 'ptr', size: PTR_SIZE, target: cName(this, ty.typeId) };
      case 'array': {
        const elem = this.#layout(ty.typeId, depth + 1, undefined);
        const size = elem.size * ty.len;
        if (!Number.isSafeInteger(size) || size > 1 << 30) throw bad(`array type ${id} is too large`);
        if (elem.kind === 'int' && elem.size === 1 && !elem.bool) {
          const e = this.resolve(ty.typeId);
          // char (and signed char) arrays hold text; unsigned char and __u8 arrays bytes.
          return e.char || (e.signed && /char/.test(e.name)) ? { kind: 'string', size } : { kind: 'bytes', size };
        }
        return { kind: 'array', size, len: ty.len, elem };
      }
      case 'struct':
      case 'union':
        return { kind: ty.kind, size: ty.size, name: ty.name || name || '', id: ty.id, fields: this.#fields(ty, depth, 0, 0) };
      default:
        return { kind: 'opaque', size: ty.size, name: cName(this, id) };
    }
  }

  /** A struct's fields, anonymous members' fields among them (at their offsets). */
  #fields(ty: BtfType, depth: number, base: number, bitBase: number, group?: string): Field[] {
    if (depth > MAX_DEPTH) throw bad(`type ${ty.id} nests deeper than ${MAX_DEPTH}`);
    const out: Field[] = [];
    for (const m of ty.members ?? []) {
      const bit = bitBase + m.bitOffset;
      if (m.name === '') {
        const inner = this.resolve(m.typeId);
        if ((inner.kind === 'struct' || inner.kind === 'union') && bit % 8 === 0) {
          const g = group ?? (inner.kind === 'union' ? `${ty.id}.${out.length}` : undefined);
          out.push(...this.#fields(inner, depth + 1, base + bit / 8, 0, g));
        }
        continue;
      }
      const layout = this.#layout(m.typeId, depth + 1, undefined);
      if (m.bitSize !== 0 || bit % 8 !== 0) {
        if (layout.kind !== 'int' && layout.kind !== 'enum') throw bad(`member '${m.name}' is a bitfield of a ${layout.kind}`);
        out.push({ name: m.name, offset: base, layout, bitfield: { bitOffset: bit, bitSize: m.bitSize || layout.size * 8 }, ...(group ? { group } : {}) });
      } else {
        out.push({ name: m.name, offset: base + bit / 8, layout, ...(group ? { group } : {}) });
      }
    }
    return out;
  }
}

function bad(message: string): BpfError {
  return new BpfError('EINVAL', `BTF: ${message}`);
}
