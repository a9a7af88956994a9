// Codecs as straight-line code: a struct's decoder is one object literal of DataView reads
// at fixed offsets, its encoder one checked write per field. The same emitter writes the
// functions compiled at run time (`obj.type()`, maps' BTF codecs) and those in the files
// `nodebpf gen` writes, with TypeScript types there.
import type { Field, Layout } from './layout.js';

/** How 64-bit integers decode: always a bigint, or a number while it is exact (|v| ≤ 2^53). */
export type Int64Mode = 'bigint' | 'number-if-safe';

const DATAVIEW_INT: Record<number, [string, string]> = { 1: ['Int8', 'Uint8'], 2: ['Int16', 'Uint16'], 4: ['Int32', 'Uint32'] };
/** Arrays of at most this many scalars decode to an array literal; longer ones in a loop. */
const MAX_UNROLLED = 16;

const at = (o: string, k: number) => (k === 0 ? o : `${o} + ${k}`);
const quote = (s: string) => JSON.stringify(s);
/** A field name as a property key in generated code. */
export const prop = (name: string) => (/^[A-Za-z_$][\w$]*$/.test(name) ? name : quote(name));
const access = (x: string, name: string) => (/^[A-Za-z_$][\w$]*$/.test(name) ? `${x}.${name}` : `${x}[${quote(name)}]`);

/** A name made of `s` usable as an identifier. */
const ident = (s: string) => s.replace(/[^\w$]/g, '_');

export function pascal(s: string): string {
  const p = s.replace(/(^|_+)([a-z0-9])/gi, (_m, _u, c: string) => c.toUpperCase()).replace(/[^\w$]/g, '');
  return /^[0-9]/.test(p) ? `T${p}` : p || 'Anon';
}

/** Whether a layout's value is one DataView call (or a runtime call) with no function of its own. */
const scalar = (l: Layout) => l.kind !== 'struct' && l.kind !== 'union' && l.kind !== 'array';

/** A structural key: one function per distinct layout. */
function keyOf(l: Layout): string {
  switch (l.kind) {
    case 'struct':
    case 'union':
      return `${l.kind}${l.id}`;
    case 'array':
      return `arr${l.len}_${keyOf(l.elem)}`;
    case 'int':
      return `${l.bool ? 'bool' : l.signed ? 'i' : 'u'}${l.size * 8}`;
    case 'enum':
      return `enum${l.signed ? 'i' : 'u'}${l.size * 8}`;
    default:
      return `${l.kind}${l.size}`;
  }
}

export class Emitter {
  readonly #ts: boolean;
  readonly #int64: Int64Mode;
  readonly #fns: string[] = [];
  readonly #decoders = new Map<string, string>();
  readonly #encoders = new Map<string, string>();
  readonly #ranges = new Set<string>();
  /** Interface names by struct key, and the names taken. */
  readonly #typeNames = new Map<string, string>();
  readonly #taken = new Set<string>();
  readonly #interfaces: string[] = [];
  /** Named enums met while typing, for their constants. */
  readonly #enums = new Map<string, Extract<Layout, { kind: 'enum' }>>();

  constructor(options: { ts: boolean; int64: Int64Mode }) {
    this.#ts = options.ts;
    this.#int64 = options.int64;
  }

  #t(annotation: string): string {
    return this.#ts ? annotation : '';
  }

  /** The name of a function `(v: DataView, o: number) => T` decoding `l` at `o`. */
  decoder(l: Layout): string {
    const key = keyOf(l);
    const known = this.#decoders.get(key);
    if (known) return known;
    const name = `decode_${ident(key)}`;
    this.#decoders.set(key, name);
    const ret = this.#t(`: ${this.tsType(l)}`);
    let body: string;
    if (l.kind === 'struct' || l.kind === 'union') {
      const fields = l.fields.map((f) => `    ${prop(f.name)}: ${this.#fieldExpr(f, 'o')},`);
      body = `  return {\n${fields.join('\n')}\n  };`;
    } else if (l.kind === 'array') {
      const stride = l.elem.size;
      body = `  const a${this.#t(`: ${this.tsType(l)}`)} = new Array(${l.len});\n  for (let i = 0; i < ${l.len}; i++) a[i] = ${this.#expr(l.elem, `o + i * ${stride}`)};\n  return a;`;
    } else {
      body = `  return ${this.#expr(l, 'o')};`;
    }
    this.#fns.push(`function ${name}(v${this.#t(': ReadonlyDataView')}, o${this.#t(': number')})${ret} {\n${body}\n}`);
    return name;
  }

  /** The name of a function `(v, o, x, path) => void` checking `x` and writing it at `o`. */
  encoder(l: Layout): string {
    const key = keyOf(l);
    const known = this.#encoders.get(key);
    if (known) return known;
    const name = `encode_${ident(key)}`;
    this.#encoders.set(key, name);
    const lines: string[] = [];
    if (l.kind === 'struct' || l.kind === 'union') {
      lines.push(`  const s = rt.obj(x, p);`);
      // A union's members, and those of each anonymous union flattened into a struct, are
      // a group: any of them is written (later ones over earlier ones), at least one.
      const groups = new Map<string, string[]>();
      for (const f of l.fields) {
        const value = access('s', f.name);
        const path = `p + ${quote(`.${f.name}`)}`;
        const write = this.#fieldWrite(f, value, path);
        const g = l.kind === 'union' ? '' : f.group;
        if (g === undefined) {
          lines.push(`  if (${value} === undefined) rt.missing(${path});\n  ${write}`);
          continue;
        }
        const members = groups.get(g) ?? [];
        if (members.length === 0) lines.push(`  let n${ident(g)} = 0;`);
        members.push(f.name);
        groups.set(g, members);
        lines.push(`  if (${value} !== undefined) {\n    ${write}\n    n${ident(g)}++;\n  }`);
      }
      for (const [g, members] of groups) lines.push(`  if (n${ident(g)} === 0) rt.noMember(p, ${quote(members.join(', '))});`);
    } else if (l.kind === 'array') {
      const elem = this.encoder(l.elem);
      lines.push(`  const a = rt.list(x, ${l.len}, p);`);
      lines.push(`  for (let i = 0; i < a.length; i++) ${elem}(v, o + i * ${l.elem.size}, a[i], p + '[' + i + ']');`);
    } else {
      lines.push(`  ${this.#write(l, 'o', 'x', 'p')}`);
    }
    this.#fns.push(`function ${name}(v${this.#t(': DataView')}, o${this.#t(': number')}, x${this.#t(': unknown')}, p${this.#t(': string')})${this.#t(': void')} {\n${lines.join('\n')}\n}`);
    return name;
  }

  #fieldExpr(f: Field, o: string): string {
    if (f.bitfield) {
      const { bitOffset, bitSize } = f.bitfield;
      const signed = (f.layout.kind === 'int' || f.layout.kind === 'enum') && f.layout.signed;
      const raw = `rt.bits(v, ${at(o, f.offset)}, ${bitOffset}, ${bitSize}, ${signed})`;
      if (f.layout.kind === 'int' && f.layout.bool) return `(${raw} !== 0n)`;
      return f.layout.size <= 4 ? `Number(${raw})` : this.#wide(raw);
    }
    return this.#expr(f.layout, at(o, f.offset));
  }

  #fieldWrite(f: Field, x: string, path: string): string {
    if (f.bitfield) {
      const { bitOffset, bitSize } = f.bitfield;
      const signed = (f.layout.kind === 'int' || f.layout.kind === 'enum') && f.layout.signed;
      return `rt.setBits(v, ${at('o', f.offset)}, ${bitOffset}, ${bitSize}, ${signed}, ${x}, ${path});`;
    }
    return this.#write(f.layout, at('o', f.offset), x, path);
  }

  /** A 64-bit read as the int64 mode wants it. */
  #wide(expr: string): string {
    return this.#int64 === 'bigint' ? expr : `rt.n64(${expr})`;
  }

  /** An expression decoding `l` at offset expression `o`. */
  #expr(l: Layout, o: string): string {
    switch (l.kind) {
      case 'int':
      case 'enum': {
        const signed = l.signed;
        if (l.kind === 'int' && l.bool) return `(v.getUint8(${o}) !== 0)`;
        if (l.size === 8) return this.#wide(`v.get${signed ? 'BigInt64' : 'BigUint64'}(${o}, true)`);
        if (l.size === 16) return `rt.i128(v, ${o}, ${signed})`;
        const [s, u] = DATAVIEW_INT[l.size]!;
        return `v.get${signed ? s : u}(${o}${l.size > 1 ? ', true' : ''})`;
      }
      case 'float':
        return `v.getFloat${l.size * 8}(${o}, true)`;
      case 'ptr':
        return `v.getBigUint64(${o}, true)`;
      case 'string':
        return `rt.str(v, ${o}, ${l.size})`;
      case 'bytes':
      case 'opaque':
        return `rt.bytes(v, ${o}, ${l.size})`;
      case 'array':
        if (scalar(l.elem) && l.len <= MAX_UNROLLED) {
          return `[${Array.from({ length: l.len }, (_, i) => this.#expr(l.elem, `${o} + ${i * l.elem.size}`)).join(', ')}]`;
        }
        return `${this.decoder(l)}(v, ${o})`;
      case 'struct':
      case 'union':
        return `${this.decoder(l)}(v, ${o})`;
    }
  }

  #range(name: string): string {
    this.#ranges.add(name);
    return `R_${name}`;
  }

  /** A statement checking `x` and writing it as `l` at `o`. */
  #write(l: Layout, o: string, x: string, path: string): string {
    switch (l.kind) {
      case 'int':
      case 'enum': {
        if (l.kind === 'int' && l.bool) return `v.setUint8(${o}, rt.bool(${x}, ${path}));`;
        const r = `${l.signed ? 'i' : 'u'}${l.size * 8}`;
        if (l.size === 8) return `v.set${l.signed ? 'BigInt64' : 'BigUint64'}(${o}, rt.big(${x}, ${this.#range(r)}, ${path}), true);`;
        if (l.size === 16) return `rt.setI128(v, ${o}, ${x}, ${l.signed}, ${path});`;
        const [s, u] = DATAVIEW_INT[l.size]!;
        return `v.set${l.signed ? s : u}(${o}, rt.num(${x}, ${this.#range(r)}, ${path})${l.size > 1 ? ', true' : ''});`;
      }
      case 'float':
        return `v.setFloat${l.size * 8}(${o}, rt.float(${x}, ${path}), true);`;
      case 'ptr':
        return `v.setBigUint64(${o}, rt.big(${x}, ${this.#range('u64')}, ${path}), true);`;
      case 'string':
        return `rt.setStr(v, ${o}, ${l.size}, ${x}, ${path});`;
      case 'bytes':
      case 'opaque':
        return `rt.setBytes(v, ${o}, ${l.size}, ${x}, ${path});`;
      case 'array':
      case 'struct':
      case 'union':
        return `${this.encoder(l)}(v, ${o}, ${x}, ${path});`;
    }
  }

  /** The TypeScript type a layout decodes to (declaring interfaces for structs as needed). */
  tsType(l: Layout): string {
    switch (l.kind) {
      case 'int':
        if (l.bool) return 'boolean';
        if (l.size === 16) return 'bigint';
        return l.size === 8 ? this.#wideType() : 'number';
      case 'enum':
        if (l.name) this.#enums.set(l.name, l);
        return l.size === 8 ? this.#wideType() : 'number';
      case 'float':
        return 'number';
      case 'ptr':
        return 'bigint';
      case 'string':
        return 'string';
      case 'bytes':
      case 'opaque':
        return 'Uint8Array';
      case 'array': {
        const e = this.tsType(l.elem);
        return e.includes('|') ? `(${e})[]` : `${e}[]`;
      }
      case 'struct':
      case 'union':
        return this.#interface(l);
    }
  }

  #wideType(): string {
    return this.#int64 === 'bigint' ? 'bigint' : 'number | bigint';
  }

  /** Reserves an exported name (a codec's, a loader's) so no interface takes it. */
  reserve(name: string): void {
    this.#taken.add(name);
  }

  #interface(l: Extract<Layout, { kind: 'struct' | 'union' }>): string {
    const key = keyOf(l);
    const known = this.#typeNames.get(key);
    if (known) return known;
    let name = pascal(l.name || `anon_${l.kind}_${l.id}`);
    if (this.#taken.has(name)) name = `${name}${pascal(l.kind)}`;
    for (let i = 2; this.#taken.has(name); i++) name = `${pascal(l.name)}${i}`;
    this.#taken.add(name);
    this.#typeNames.set(key, name);
    if (this.#ts) {
      const fields = l.fields.map((f) => `  ${prop(f.name)}: ${this.tsType(f.layout)};`);
      const doc = `/** \`${l.kind} ${l.name || '(anonymous)'}\`, ${l.size} bytes. */`;
      this.#interfaces.push(`${doc}\nexport interface ${name} {\n${fields.join('\n')}\n}`);
    }
    return name;
  }

  /** The named enums the types met, by name. */
  get enums(): ReadonlyMap<string, Extract<Layout, { kind: 'enum' }>> {
    return this.#enums;
  }

  /** Whether 64-bit integers are numbers while exact. */
  get int64(): Int64Mode {
    return this.#int64;
  }

  /** Interface declarations (TypeScript only). */
  get interfaces(): readonly string[] {
    return this.#interfaces;
  }

  /** The functions emitted so far, after the range constants they use. */
  source(): string {
    const consts = [...this.#ranges].sort().map((r) => `const R_${r} = rt.ranges.${r};`);
    return [consts.join('\n'), ...this.#fns].filter(Boolean).join('\n\n');
  }
}
