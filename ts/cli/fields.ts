// Typed fields for nodebpf trace: a tracepoint's from its format file in tracefs (name,
// offset, size, signedness, C type), a function's from --args ('path:str,n:int'); what
// bpf/trace.bpf.c must read for them (strings and structs behind pointers, __data_loc
// arrays), and their values out of its records, as text and as JSON.
import { readFileSync } from 'node:fs';

import type { ReadonlyDataView } from 'nodebpf';

import { DECODERS, fieldDecoder, fieldPointee, type Decoder, type PointeeStruct } from './flags.js';
import { UsageError } from './usage.js';

// The record bpf/trace.bpf.c sends (struct event), byte offsets.
export const EV = {
  time: 0,
  pid: 8,
  tid: 12,
  target: 16,
  hasRet: 20,
  ret: 24,
  args: 32,
  comm: 80,
  memLen: 96,
  memFlags: 108,
  rawLen: 114,
  raw: 116,
  mem: 372,
} as const;
/** Bounds of the program (MAX_ARGS, MAX_MEMS, MEM_LEN, RAW_LEN). */
export const MAX_ARGS = 6;
export const MAX_MEMS = 6;
export const MEM_LEN = 256;
export const RAW_LEN = 256;
const COMM_LEN = 16;
/** A tracepoint record's common_* fields. */
const COMMON_HEADER = 8;
/** The header every record has (up to the memory reads). */
export const EVENT_HEADER = EV.mem;
/** mem_flags bits. */
const MEM_TRUNCATED = 1;
/** enum mem_kind. */
const MEM = { str: 1, bytes: 2, dataLoc: 3, relLoc: 4 } as const;
/** A memory slot the program did not fill. */
const NOT_READ = 0;

type IntSize = 1 | 2 | 4 | 8;

export type FieldKind =
  | { t: 'int'; size: IntSize; signed: boolean; decoder?: Decoder }
  | { t: 'ptr' }
  /** A pointer whose string is read into memory slot `mem`; `limit`: a field with its length (write's count). */
  | { t: 'str'; mem: number; limit?: Field }
  /** A pointer to a struct read into memory slot `mem`. */
  | { t: 'struct'; mem: number; struct: PointeeStruct }
  /** An array in the record: chars as a string, integers as a list. */
  | { t: 'array'; elem: IntSize; signed: boolean; count: number; chars: boolean }
  /** A __data_loc/__rel_loc array, read into memory slot `mem`. */
  | { t: 'loc'; mem: number; elem: IntSize; signed: boolean; chars: boolean }
  /** What none of the above reads: its bytes in hex. */
  | { t: 'bytes' };

export interface Field {
  name: string;
  /** Tracepoints: in the record; functions: in the arguments (8 bytes each). */
  offset: number;
  size: number;
  kind: FieldKind;
  /** Hidden in the text output (still in JSON and filters): __syscall_nr, named by the probe. */
  quiet?: boolean;
  /** An --args type without a name: shown by position (its name is argN). */
  positional?: boolean;
}

export interface MemSlot {
  src: number;
  len: number;
  kind: number;
}

/** How the records of one tracepoint (or of one function spec) read. */
export interface Layout {
  source: 'record' | 'args';
  fields: Field[];
  /** Tracepoints: bytes of the record to copy. */
  rawLen: number;
  mems: MemSlot[];
  /** Fields that wanted a memory read past MAX_MEMS (shown as pointers). */
  unread: string[];
  /** Untyped 64-bit words (`--args N`, or a record whose format is unreadable). */
  words?: boolean;
}

// C types by name: size and signedness. The format's own size is the storage size, which
// differs for syscall arguments (each stored in 8 bytes, `signed:0` even for `int`): an
// `int dfd` is the low 4 bytes, signed, as bpftrace reads it (-100, not 4294967196).
const SIGNED = true;
const C_TYPES: Record<string, [IntSize, boolean]> = {
  'signed char': [1, SIGNED],
  'unsigned char': [1, !SIGNED],
  short: [2, SIGNED],
  'short int': [2, SIGNED],
  'unsigned short': [2, !SIGNED],
  'unsigned short int': [2, !SIGNED],
  int: [4, SIGNED],
  'signed int': [4, SIGNED],
  unsigned: [4, !SIGNED],
  'unsigned int': [4, !SIGNED],
  long: [8, SIGNED],
  'long int': [8, SIGNED],
  'unsigned long': [8, !SIGNED],
  'unsigned long int': [8, !SIGNED],
  'long long': [8, SIGNED],
  'unsigned long long': [8, !SIGNED],
  bool: [1, !SIGNED],
  _Bool: [1, !SIGNED],
  pid_t: [4, SIGNED],
  uid_t: [4, !SIGNED],
  gid_t: [4, !SIGNED],
  qid_t: [4, !SIGNED],
  key_serial_t: [4, SIGNED],
  key_t: [4, SIGNED],
  mqd_t: [4, SIGNED],
  clockid_t: [4, SIGNED],
  timer_t: [4, SIGNED],
  rwf_t: [4, SIGNED],
  umode_t: [2, !SIGNED],
  size_t: [8, !SIGNED],
  ssize_t: [8, SIGNED],
  loff_t: [8, SIGNED],
  off_t: [8, SIGNED],
  time64_t: [8, SIGNED],
};
for (const bits of [8, 16, 32, 64]) {
  const size = (bits / 8) as IntSize;
  for (const [u, s] of [
    [`u${bits}`, `s${bits}`],
    [`__u${bits}`, `__s${bits}`],
    [`uint${bits}_t`, `int${bits}_t`],
  ]) {
    C_TYPES[u] = [size, !SIGNED];
    C_TYPES[s] = [size, SIGNED];
  }
}

const isIntSize = (n: number): n is IntSize => n === 1 || n === 2 || n === 4 || n === 8;

/** The type without qualifiers and annotations (`const char __user *` -> `char *`). */
function bareType(type: string): string {
  return type
    .replace(/\b(const|volatile|__user|__kernel|__iomem|__percpu|__rcu|__force|restrict)\b/g, ' ')
    .replace(/\s*\*\s*/g, ' *')
    .replace(/\s+/g, ' ')
    .trim();
}

/** An integer of this C type stored in `size` bytes with the format's `signed`. */
function intKind(type: string, size: number, signed: boolean): FieldKind {
  const known = C_TYPES[type];
  if (known && known[0] <= size) return { t: 'int', size: known[0], signed: known[1] };
  if (isIntSize(size)) return { t: 'int', size, signed };
  return { t: 'bytes' };
}

/** One `field:TYPE NAME;	offset:N;	size:N;	signed:N;` line. */
const FIELD_LINE = /^\s*field:(.+?);\s*offset:(\d+);\s*size:(\d+);\s*signed:(\d+);/;

export interface FormatField {
  type: string;
  name: string;
  offset: number;
  size: number;
  signed: boolean;
}

/** The fields of a tracepoint's format text, common_* left out. */
export function parseFormat(text: string): FormatField[] {
  const fields: FormatField[] = [];
  for (const line of text.split('\n')) {
    const m = FIELD_LINE.exec(line);
    if (!m) continue;
    // The name is the last word (with its [N], if an array); the type, all before it.
    const decl = /^(.*?)\s*([A-Za-z_]\w*(?:\[[^\]]*\])?)$/.exec(m[1].trim());
    if (!decl || decl[2].startsWith('common_')) continue;
    fields.push({ type: decl[1], name: decl[2], offset: Number(m[2]), size: Number(m[3]), signed: m[4] === '1' });
  }
  return fields;
}

/** Integer fields that hold addresses (`unsigned long addr`): shown as pointers. */
const ADDRESS_NAME = /^(addr|address|start|brk|\w+_addr)$/;
/** A buffer's length, next to it (write's `const char *buf` and `size_t count`). */
const LENGTH_NAME = /^(count|len)$/;

/** The layout of a tracepoint's records; `event` is CATEGORY:NAME (for the flag tables). */
export function tracepointLayout(event: string, format: FormatField[]): Layout {
  const syscall = event.startsWith('syscalls:');
  const fields: Field[] = [];
  const mems: MemSlot[] = [];
  const unread: string[] = [];
  let rawLen = 0;
  const slot = (m: MemSlot, name: string): number | undefined => {
    if (mems.length === MAX_MEMS) {
      unread.push(name);
      return undefined;
    }
    mems.push(m);
    return mems.length - 1;
  };
  const names = new Set(format.map((f) => f.name));
  for (const f of format) {
    // 7.x syscall records have the user strings the kernel copied for ftrace
    // (`__data_loc char[] __filename_val` beside `filename`); the record BPF gets has the
    // arguments only: the program reads the strings itself.
    const copy = /^__(\w+)_val$/.exec(f.name);
    if (syscall && copy && names.has(copy[1])) continue;
    const array = /^(\w+)\[([^\]]*)\]$/.exec(f.name);
    const name = array ? array[1] : f.name;
    const loc = /^__(data|rel)_loc\s+(.*)$/.exec(f.type);
    let kind: FieldKind;
    if (loc) {
      // __data_loc char[] name: the array's bytes are after the fixed part of the record.
      const elem = bareType(loc[2].replace(/\[\]$/, ''));
      const e = C_TYPES[elem];
      const chars = elem === 'char';
      const mem = slot({ src: f.offset, len: 0, kind: loc[1] === 'data' ? MEM.dataLoc : MEM.relLoc }, name);
      kind = mem === undefined ? { t: 'int', size: 4, signed: false } : { t: 'loc', mem, elem: chars ? 1 : (e?.[0] ?? 1), signed: chars ? false : (e?.[1] ?? false), chars };
    } else if (array) {
      const elem = bareType(f.type);
      const chars = elem === 'char' || elem === 'signed char' || elem === 'unsigned char';
      const e = C_TYPES[elem] ?? (chars ? [1, false] : undefined);
      const count = e ? Math.floor(f.size / e[0]) : 0;
      kind = e && count > 0 ? { t: 'array', elem: e[0], signed: e[1], count, chars } : { t: 'bytes' };
    } else {
      const bare = bareType(f.type);
      if (bare.endsWith('*')) {
        const pointee = fieldPointee(event, name);
        const base = bare.slice(0, -1).trim();
        let mem: number | undefined;
        // A syscall's `char *` (not const) is memory it fills (read's buf): at the entry,
        // whatever was there before; only its address means something.
        const output = syscall && !/\bconst\b/.test(f.type);
        if ((base === 'char' || base === 'signed char') && !output) mem = slot({ src: f.offset, len: 0, kind: MEM.str }, name);
        else if (pointee) mem = slot({ src: f.offset, len: pointee.size, kind: MEM.bytes }, name);
        kind = mem === undefined ? { t: 'ptr' } : pointee && base !== 'char' ? { t: 'struct', mem, struct: pointee } : { t: 'str', mem };
      } else {
        kind = intKind(bare.replace(/^enum \w+$/, ''), f.size, f.signed);
        if (kind.t === 'int' && kind.size === 8 && !kind.signed && ADDRESS_NAME.test(name)) kind = { t: 'ptr' };
        const decoder = kind.t === 'int' ? fieldDecoder(event, name) : undefined;
        if (decoder && kind.t === 'int') kind = { ...kind, decoder };
      }
    }
    fields.push({ name, offset: f.offset, size: f.size, kind, quiet: name === '__syscall_nr' });
    rawLen = Math.max(rawLen, f.offset + f.size);
  }
  // A buffer written (not a string): as many bytes as its length says.
  const length = fields.find((f) => LENGTH_NAME.test(f.name) && f.kind.t === 'int');
  const buf = fields.find((f) => f.name === 'buf' && f.kind.t === 'str');
  if (syscall && length && buf?.kind.t === 'str') buf.kind = { ...buf.kind, limit: length };
  return { source: 'record', fields, rawLen: Math.min(rawLen, RAW_LEN), mems, unread };
}

/** A tracepoint's layout, or why it has none (its format unreadable). */
export function readTracepoint(root: string, category: string, name: string): { layout: Layout } | { error: string } {
  const path = `${root}/${category}/${name}/format`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return { error: `${path}: ${e instanceof Error ? e.message : String(e)}` };
  }
  return { layout: tracepointLayout(`${category}:${name}`, parseFormat(text)) };
}

// --args: 'str,int,u64,ptr' or 'path:str,n:int'.
const ARG_INTS: Record<string, [IntSize, boolean]> = {
  int: [4, SIGNED],
  uint: [4, !SIGNED],
  long: [8, SIGNED],
  ulong: [8, !SIGNED],
  char: [1, SIGNED],
  bool: [1, !SIGNED],
  s8: [1, SIGNED],
  u8: [1, !SIGNED],
  s16: [2, SIGNED],
  u16: [2, !SIGNED],
  s32: [4, SIGNED],
  u32: [4, !SIGNED],
  s64: [8, SIGNED],
  u64: [8, !SIGNED],
  i8: [1, SIGNED],
  i16: [2, SIGNED],
  i32: [4, SIGNED],
  i64: [8, SIGNED],
};

export const ARG_TYPES = ['str', 'ptr', ...Object.keys(ARG_INTS), ...Object.keys(DECODERS)];

/** Whether the --args text has types (else it is a count of raw arguments). */
export const typedArgs = (text: string) => !/^\d+$/.test(text.trim());

/** The layout of a function's typed arguments. */
export function argsLayout(text: string): Layout {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length > MAX_ARGS) throw new UsageError(`--args: at most ${MAX_ARGS} arguments (they come from registers), not ${parts.length}`);
  const fields: Field[] = [];
  const mems: MemSlot[] = [];
  const names = new Set<string>();
  parts.forEach((part, i) => {
    const m = /^(?:([A-Za-z_]\w*):)?(\w+)$/.exec(part);
    if (!m) throw new UsageError(`--args: '${part}' is not TYPE or NAME:TYPE (types: ${ARG_TYPES.join(', ')})`);
    const name = m[1] ?? `arg${i}`;
    if (names.has(name)) throw new UsageError(`--args: '${name}' is named twice`);
    names.add(name);
    const type = m[2];
    let kind: FieldKind;
    if (type === 'str') {
      mems.push({ src: i, len: 0, kind: MEM.str });
      kind = { t: 'str', mem: mems.length - 1 };
    } else if (type === 'ptr') {
      kind = { t: 'ptr' };
    } else if (ARG_INTS[type]) {
      kind = { t: 'int', size: ARG_INTS[type][0], signed: ARG_INTS[type][1] };
    } else if (DECODERS[type]) {
      kind = { t: 'int', size: 8, signed: false, decoder: DECODERS[type] };
    } else {
      throw new UsageError(`--args: unknown type '${type}' (types: ${ARG_TYPES.join(', ')})`);
    }
    fields.push({ name, offset: i * 8, size: 8, kind, positional: m[1] === undefined });
  });
  return { source: 'args', fields, rawLen: 0, mems, unread: [] };
}

/** Untyped words: `--args N`'s first N arguments, or a record's first words after its common header. */
export function wordsLayout(source: Layout['source'], n: number): Layout {
  const first = source === 'record' ? COMMON_HEADER : 0;
  return {
    source,
    fields: Array.from({ length: n }, (_, i): Field => ({ name: `arg${i}`, offset: first + i * 8, size: 8, kind: { t: 'int', size: 8, signed: false }, positional: true })),
    rawLen: source === 'record' ? first + n * 8 : 0,
    mems: [],
    unread: [],
    words: true,
  };
}

/** struct trace_config: its header, then MAX_MEMS slots. */
const CONFIG_HEADER = 8;
const CONFIG_SLOT = 8;
export const CONFIG_SIZE = CONFIG_HEADER + MAX_MEMS * CONFIG_SLOT;

/** The config map's value (struct trace_config). */
export function configBytes(l: Layout): Uint8Array {
  const SLOT = CONFIG_SLOT;
  const b = new Uint8Array(CONFIG_SIZE);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, l.rawLen, true);
  dv.setUint8(2, l.mems.length);
  l.mems.forEach((m, i) => {
    const at = CONFIG_HEADER + i * SLOT;
    dv.setUint16(at, m.src, true);
    dv.setUint16(at + 2, m.len, true);
    dv.setUint8(at + 4, m.kind);
  });
  return b;
}

export type Value =
  | { t: 'int'; v: bigint; decoder?: Decoder }
  | { t: 'ptr'; v: bigint }
  | { t: 'str'; s: string; truncated: boolean }
  | { t: 'null' }
  /** Memory the program could not read (paged out, or not an address). */
  | { t: 'unreadable'; ptr: bigint; err: number }
  | { t: 'list'; items: bigint[] }
  | { t: 'struct'; members: [string, Value][] }
  | { t: 'bytes'; hex: string }
  /** Not in what the program copied. */
  | { t: 'missing' };

const utf8 = new TextDecoder();

function readInt(view: ReadonlyDataView, at: number, size: IntSize, signed: boolean): bigint {
  switch (size) {
    case 1:
      return BigInt(signed ? view.getInt8(at) : view.getUint8(at));
    case 2:
      return BigInt(signed ? view.getInt16(at, true) : view.getUint16(at, true));
    case 4:
      return BigInt(signed ? view.getInt32(at, true) : view.getUint32(at, true));
    default:
      return signed ? view.getBigInt64(at, true) : view.getBigUint64(at, true);
  }
}

function text(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return utf8.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** One record: where it is in a ring-buffer batch. */
export interface RecordAt {
  view: ReadonlyDataView;
  off: number;
  len: number;
}

export function bytesAt(r: RecordAt, at: number, n: number): Uint8Array {
  return new Uint8Array(r.view.buffer, r.view.byteOffset + r.off + at, n);
}

export function commOf(r: RecordAt): string {
  return text(bytesAt(r, EV.comm, COMM_LEN));
}

/** The values of a record's fields, in the layout's order. */
export function decodeFields(l: Layout, r: RecordAt): [Field, Value][] {
  const rawLen = l.source === 'record' ? Math.min(r.view.getUint16(r.off + EV.rawLen, true), RAW_LEN) : MAX_ARGS * 8;
  const base = r.off + (l.source === 'record' ? EV.raw : EV.args);
  const inRecord = (at: number, n: number) => at + n <= rawLen;
  const memValue = (mem: number): { bytes: Uint8Array; truncated: boolean } | { err: number } => {
    const at = EV.mem + mem * MEM_LEN;
    const n = r.view.getInt16(r.off + EV.memLen + mem * 2, true);
    // 0: not read (a string read has at least its NUL), e.g. an entry the return missed.
    if (n <= 0 || at + MEM_LEN > r.len) return { err: n < 0 ? -n : NOT_READ };
    const truncated = (r.view.getUint8(r.off + EV.memFlags + mem) & MEM_TRUNCATED) !== 0;
    return { bytes: bytesAt(r, at, Math.min(n, MEM_LEN)), truncated };
  };
  return l.fields.map((f): [Field, Value] => {
    const k = f.kind;
    const width = k.t === 'int' ? k.size : k.t === 'array' || k.t === 'bytes' ? f.size : k.t === 'loc' ? 4 : 8;
    if (!inRecord(f.offset, width)) return [f, { t: 'missing' }];
    const at = base + f.offset;
    switch (k.t) {
      case 'int':
        return [f, { t: 'int', v: readInt(r.view, at, k.size, k.signed), decoder: k.decoder }];
      case 'ptr':
        return [f, { t: 'ptr', v: r.view.getBigUint64(at, true) }];
      case 'str':
      case 'struct': {
        const ptr = r.view.getBigUint64(at, true);
        if (ptr === 0n) return [f, { t: 'null' }];
        const m = memValue(k.mem);
        if ('err' in m) return [f, { t: 'unreadable', ptr, err: m.err }];
        if (k.t === 'str') {
          if (!k.limit || k.limit.kind.t !== 'int' || !inRecord(k.limit.offset, k.limit.kind.size)) return [f, { t: 'str', s: text(m.bytes), truncated: m.truncated }];
          // The program read up to a NUL or its bound; the buffer is `limit` bytes.
          const n = readInt(r.view, base + k.limit.offset, k.limit.kind.size, false);
          const shown = BigInt(m.bytes.length) < n ? m.bytes : m.bytes.subarray(0, Number(n));
          return [f, { t: 'str', s: utf8.decode(shown), truncated: n > BigInt(shown.length) }];
        }
        const dv = new DataView(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength);
        const members = k.struct.members.map(([name, off, size, decoder]): [string, Value] =>
          off + size <= m.bytes.length ? [name, { t: 'int', v: readInt(dv, off, size, false), decoder }] : [name, { t: 'missing' }],
        );
        return [f, { t: 'struct', members }];
      }
      case 'array': {
        if (k.chars) return [f, { t: 'str', s: text(bytesAt(r, at - r.off, k.count)), truncated: false }];
        return [f, { t: 'list', items: Array.from({ length: k.count }, (_, i) => readInt(r.view, at + i * k.elem, k.elem, k.signed)) }];
      }
      case 'loc': {
        const m = memValue(k.mem);
        if ('err' in m) return [f, { t: 'unreadable', ptr: BigInt(r.view.getUint32(at, true)), err: m.err }];
        if (k.chars) return [f, { t: 'str', s: text(m.bytes), truncated: m.truncated }];
        const dv = new DataView(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength);
        return [f, { t: 'list', items: Array.from({ length: Math.floor(m.bytes.length / k.elem) }, (_, i) => readInt(dv, i * k.elem, k.elem, k.signed)) }];
      }
      case 'bytes':
        return [f, { t: 'bytes', hex: Buffer.from(bytesAt(r, at - r.off, f.size)).toString('hex') }];
    }
  });
}

/** Strings as JSON writes them (quotes, escapes), `...` after one cut at the bound. */
export function valueText(v: Value): string {
  switch (v.t) {
    case 'int':
      return v.decoder ? v.decoder.render(v.v) : v.v.toString();
    case 'ptr':
      return `0x${v.v.toString(16)}`;
    case 'str':
      return `${JSON.stringify(v.s)}${v.truncated ? '...' : ''}`;
    case 'null':
      return 'NULL';
    case 'unreadable':
      return `0x${v.ptr.toString(16)}<unreadable>`;
    case 'list':
      return `[${v.items.join(',')}]`;
    case 'struct':
      return `{${v.members.map(([n, m]) => `${n}=${valueText(m)}`).join(',')}}`;
    case 'bytes':
      return `0x${v.hex}`;
    case 'missing':
      return '?';
  }
}

const safe = (v: bigint) => v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER);

export type Json = number | string | null | Json[] | { [k: string]: Json };

/** Numbers (decimal strings past 2^53), strings, pointers as hex strings. */
export function valueJson(v: Value): Json {
  switch (v.t) {
    case 'int':
      return safe(v.v) ? Number(v.v) : v.v.toString();
    case 'ptr':
      return `0x${v.v.toString(16)}`;
    case 'str':
      return v.s;
    case 'null':
    case 'missing':
      return null;
    case 'unreadable':
      return `0x${v.ptr.toString(16)}`;
    case 'list':
      return v.items.map((i) => (safe(i) ? Number(i) : i.toString()));
    case 'struct':
      return Object.fromEntries(v.members.map(([n, m]) => [n, valueJson(m)]));
    case 'bytes':
      return `0x${v.hex}`;
  }
}

/** Flag and mode texts of the values (and struct members, as `how.flags`) that have them. */
export function decodedJson(values: [Field, Value][]): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (name: string, v: Value) => {
    if (v.t === 'int' && v.decoder) out[name] = v.decoder.render(v.v);
    if (v.t === 'struct') for (const [n, m] of v.members) visit(`${name}.${n}`, m);
  };
  for (const [f, v] of values) visit(f.name, v);
  return out;
}

/** Marks of the values JSON cannot show: strings cut at the bound, memory not read. */
export function marksJson(values: [Field, Value][]): { truncated?: string[]; unreadable?: string[] } {
  const truncated = values.filter(([, v]) => v.t === 'str' && v.truncated).map(([f]) => f.name);
  const unreadable = values.filter(([, v]) => v.t === 'unreadable').map(([f]) => f.name);
  return { ...(truncated.length ? { truncated } : {}), ...(unreadable.length ? { unreadable } : {}) };
}
