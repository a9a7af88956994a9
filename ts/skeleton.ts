// What generated skeletons (`nodebpf gen`) call: load the object they were generated from
// (checked by its hash: their codecs hold its offsets), and give its maps, programs,
// globals and event streams typed by the generated code.
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import type { RecordDecoder } from './btf/index.js';
import type { Codec } from './codec.js';
import { bytes } from './check.js';
import { BpfError } from './errors.js';
import { readBytes, type BpfObject, type LoadOptions } from './object.js';
import { open } from './open.js';
import type { EventRecord, IterateOptions, RingBuffer, RingBufferStats } from './ringbuf.js';

/** A ring or perf buffer whose records decode as `T`. */
export class TypedEvents<T> implements AsyncIterable<T> {
  readonly ring: RingBuffer;
  readonly #decode: RecordDecoder<T>;

  constructor(ring: RingBuffer, decode: RecordDecoder<T>) {
    this.ring = ring;
    this.#decode = decode;
  }

  /** Each record decoded (stopping early keeps the rest, as `RingBuffer.events()`). */
  events(options: IterateOptions = {}): AsyncIterableIterator<T> {
    return this.ring.events(this.#decode, options);
  }

  /** The records as they are, for what the type does not say (a variable-length tail). */
  records(options: IterateOptions = {}): AsyncIterableIterator<EventRecord> {
    return this.ring.records(options);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this.events();
  }

  stats(): RingBufferStats {
    return this.ring.stats();
  }

  close(): void {
    this.ring.close();
  }
}

/** What a skeleton's loader takes: load options with its globals typed. */
export interface SkeletonLoadOptions<G> extends Omit<LoadOptions, 'globals'> {
  /** The object instead of the one next to the generated file: a path or its bytes (it must be the same object). */
  object?: string | Uint8Array;
  /** Initial values of globals, as the object declares them. */
  globals?: Partial<G>;
}

/** What the generated code tells the runtime about the object. */
export interface SkeletonShape {
  /** The object's file name, for messages. */
  file: string;
  sha256: string;
  programs: Record<string, string>;
  /** Per map: its key and value codecs (omitted ones are bytes), and whether it is per-CPU. */
  maps: Record<string, { key?: Codec<unknown>; value?: Codec<unknown>; perCpu: boolean }>;
  /** Per event map: the decoder of its records (undefined: records as they are). */
  events: Record<string, RecordDecoder<unknown> | undefined>;
}

/** A loaded skeleton: the object, and its parts typed by the generated code. */
export interface Skeleton<M, P, G, E> extends AsyncDisposable, Disposable {
  readonly object: BpfObject;
  readonly maps: M;
  readonly programs: P;
  /** Live: reads and writes go to the loaded object's maps. */
  readonly globals: G;
  /** Made on first use; one consumer per map (see `BpfObject.ringbuf`). */
  readonly events: E;
  close(): void;
  closeAsync(): Promise<void>;
}

async function objectBytes(source: string | URL | Uint8Array): Promise<{ data: Uint8Array; path?: string }> {
  if (source instanceof Uint8Array) return { data: bytes('the BPF object', source) };
  const path = source instanceof URL ? fileURLToPath(source) : source;
  return { data: await readBytes(path), path };
}

/** Loads a skeleton's object and gives it the skeleton's shape. Called by generated code. */
export async function loadSkeleton<M, P, G, E>(
  defaultSource: string | URL | Uint8Array,
  shape: SkeletonShape,
  options: SkeletonLoadOptions<G> = {},
): Promise<Skeleton<M, P, G, E>> {
  const { object, globals, ...rest } = options;
  const { data, path } = await objectBytes(object ?? defaultSource);
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (sha256 !== shape.sha256) {
    throw new BpfError(
      'INCOMPATIBLE',
      `${path ?? 'the BPF object given'} is not the ${shape.file} the skeleton was generated from (sha256 ${sha256.slice(0, 12)}…, expected ${shape.sha256.slice(0, 12)}…): run nodebpf gen again`,
      path === undefined ? {} : { path },
    );
  }
  // Through open(): globals of any type (structs, strings) are encoded by their BTF.
  const o = await open(data, rest as LoadOptions);
  for (const [name, value] of Object.entries(globals ?? {})) {
    if (!o.globalSpecs.some((g) => g.name === name)) {
      throw new BpfError('ENOENT', `no global variable named '${name}' in ${shape.file}`, { symbol: name });
    }
    o.globals[name] = value;
  }
  const obj = await o.load();
  try {
    const maps = Object.fromEntries(Object.entries(shape.maps).map(([name, c]) => [name, obj.map(name, c)]));
    const programs = Object.fromEntries(Object.entries(shape.programs).map(([name, section]) => [name, obj.program(name).expectSection(section)]));
    const events: Record<string, TypedEvents<unknown> | RingBuffer> = {};
    for (const [name, decode] of Object.entries(shape.events)) {
      let made: TypedEvents<unknown> | RingBuffer | undefined;
      Object.defineProperty(events, name, {
        enumerable: true,
        get: () => {
          if (made === undefined || (made instanceof TypedEvents ? made.ring.closed : made.closed)) {
            const ring = obj.events(name);
            made = decode ? new TypedEvents(ring, decode) : ring;
          }
          return made;
        },
      });
    }
    return {
      object: obj,
      maps: maps as M,
      programs: programs as P,
      globals: obj.globals as G,
      events: events as E,
      close: () => obj.close(),
      closeAsync: () => obj.closeAsync(),
      [Symbol.dispose]: () => obj.close(),
      [Symbol.asyncDispose]: () => obj.closeAsync(),
    };
  } catch (e) {
    obj.close();
    throw e;
  }
}
