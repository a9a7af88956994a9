// Codecs from the object's BTF: `obj.type('struct event')`, the default codecs of maps that
// have BTF key and value types, and the typed globals.
import type { Codec } from '../codec.js';
import type { ReadonlyDataView } from '../ringbuf.js';
import { Emitter, type Int64Mode } from './compile.js';
import { cName, TypeTable, type Layout } from './layout.js';
import { btfRuntime } from './runtime.js';
import { BpfError } from '../errors.js';

export { TypeTable, cName, type Layout, type Field, type EnumValue, type Bitfield } from './layout.js';
export { btfRuntime, type BtfRuntime } from './runtime.js';
export type { Int64Mode } from './compile.js';

/** Decodes a ring- or perf-buffer record: what `RingBuffer.events()` takes. */
export type RecordDecoder<T> = (view: ReadonlyDataView, offset: number, length: number) => T;

/** A codec made from a BTF type: exact size, straight-line code, checked encoding. */
export interface TypeCodec<T> extends Codec<T> {
  readonly size: number;
  /** The type as C names it (`struct event`). */
  readonly type: string;
  readonly layout: Layout;
  /** Decodes the type at `offset` of a view (no copy of the record first). */
  decodeAt(view: ReadonlyDataView, offset: number): T;
  /** For `ringbuf.events(codec.record)`: a record shorter than the type is an `EINVAL` error. */
  readonly record: RecordDecoder<T>;
  /** Writes `value` at `offset` of `view`, checked (a value that does not fit is `RANGE`). */
  encodeInto(view: DataView, offset: number, value: T): void;
}

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
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const [decode, encode] = new Function('rt', `'use strict';\n${em.source()}\nreturn [${d}, ${e}];`)(btfRuntime) as [Decode, Encode];
  const size = layout.size;
  const record: RecordDecoder<T> = (view, offset, length) => (length < size ? btfRuntime.short(type, length, size) : (decode(view, offset) as T));
  return {
    size,
    type,
    layout,
    decode(bytes: Uint8Array): T {
      if (bytes.byteLength < size) btfRuntime.short(type, bytes.byteLength, size);
      return decode(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0) as T;
    },
    decodeAt: decode as (view: ReadonlyDataView, offset: number) => T,
    record,
    encode(value: T): Uint8Array {
      const b = new Uint8Array(size);
      encode(new DataView(b.buffer), 0, value, type);
      return b;
    },
    encodeInto(view, offset, value) {
      encode(view, offset, value, type);
    },
  };
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
