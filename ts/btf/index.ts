// Codecs from the object's BTF: `obj.type('struct event')`, the default codecs of maps that
// have BTF key and value types, and the typed globals.
import type { ReadonlyDataView } from '../ringbuf.js';
import { Emitter, type Int64Mode } from './compile.js';
import { cName, TypeTable, type Layout } from './layout.js';
import { btfRuntime, makeCodec, type TypeCodec } from './runtime.js';
import { BpfError } from '../errors.js';

export { TypeTable, cName, type Layout, type Field, type EnumValue, type Bitfield } from './layout.js';
export { btfRuntime, makeCodec, type BtfRuntime, type RecordDecoder, type TypeCodec } from './runtime.js';
export type { Int64Mode } from './compile.js';

export interface TypeOptions {
  /** 64-bit integers as bigints (default), or as numbers while exact. */
  int64?: Int64Mode;
}

type Decode = (v: ReadonlyDataView, o: number) => unknown;
type Encode = (v: DataView, o: number, x: unknown, p: string) => void;

/** Compiles a layout's decoder and encoder into functions (the code `nodebpf gen` writes, without types). */
export function compileCodec<T>(layout: Layout, type: string, int64: Int64Mode = 'bigint'): TypeCodec<T> {
  const em = new Emitter({ ts: false, int64 });
  const d = em.decoder(layout);
  const e = em.encoder(layout);
  // The emitter writes only reads, writes and calls of `rt` at fixed offsets: no input of
  // the user's reaches the code but the BTF's names, quoted as JSON strings.
  const [decode, encode] = new Function('rt', `'use strict';\n${em.source()}\nreturn [${d}, ${e}];`)(btfRuntime) as [Decode, Encode];
  return makeCodec(decode as (v: ReadonlyDataView, o: number) => T, encode, layout.size, type);
}

/** The codecs of one object's BTF, compiled once per type and mode. */
export class TypeCodecs {
  readonly table: TypeTable;
  readonly #codecs = new Map<string, TypeCodec<unknown>>();

  constructor(table: TypeTable) {
    this.table = table;
  }

  /** The codec of type `id` (as the BTF names it). */
  byId<T = unknown>(id: number, options: TypeOptions = {}): TypeCodec<T> {
    const int64 = options.int64 ?? 'bigint';
    const key = `${id}:${int64}`;
    let c = this.#codecs.get(key);
    if (!c) {
      c = compileCodec(this.table.layout(id), cName(this.table, id), int64);
      this.#codecs.set(key, c);
    }
    return c as TypeCodec<T>;
  }

  /** The codec of a type by its C name (`struct event`, `event_t`). */
  byName<T = unknown>(name: string, options: TypeOptions = {}): TypeCodec<T> {
    const id = this.table.find(name);
    if (id === undefined) {
      const known = this.table.names();
      throw new BpfError('ENOENT', `the object's BTF has no type '${name}'${known.length ? `; types: ${known.slice(0, 40).join(', ')}${known.length > 40 ? ', …' : ''}` : ' (it has no BTF)'}`, { symbol: name });
    }
    return this.byId<T>(id, options);
  }
}
