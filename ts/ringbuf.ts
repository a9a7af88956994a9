import { BpfError, native, nativeAsync } from './errors.js';
import type { NativeEvents } from './native.js';

/** The copy buffer's size: the most one batch holds (the addon hands out no more). */
const COPY_BUFFER_BYTES = 4 << 20;
/**
 * The most records one batch holds: its index (a data offset and a length per record,
 * written by the addon, which alone knows the kernel's record layouts) is this big.
 */
const INDEX_RECORDS = 1 << 16;
/**
 * The most a record-at-a-time iteration takes per batch: its records go back to the
 * kernel this often, so a producer keeps room while they are read one await at a time.
 */
const STREAM_BATCH_BYTES = 256 << 10;

/**
 * A DataView without its setters: the memory a zero-copy batch shows is the kernel's
 * ring, mapped read-only. Writing to it (also through a view made on its `buffer`, e.g.
 * for a TextDecoder) would fault and end the process: copy first.
 */
export type ReadonlyDataView = Omit<
  DataView,
  | 'setInt8'
  | 'setUint8'
  | 'setInt16'
  | 'setUint16'
  | 'setInt32'
  | 'setUint32'
  | 'setBigInt64'
  | 'setBigUint64'
  | 'setFloat32'
  | 'setFloat64'
>;

/** Which batch is current: a batch whose `gen` differs has been released. */
interface Generation {
  gen: number;
}

function stale(ring: string): BpfError {
  return new BpfError('STALE', `a batch of ring buffer '${ring}' was read after it was released (its memory is the kernel's again): copy what you keep (record.slice())`, {
    map: ring,
  });
}

/**
 * One record of a batch, read where the kernel wrote it: `view` at `offset`, `length`
 * bytes (read-only memory). Valid while its batch is; `slice()` copies it to keep.
 */
export interface EventRecord {
  /** The batch's memory: the record is at `offset`, `length` bytes. */
  readonly view: ReadonlyDataView;
  /** Where the record's data starts in `view`. */
  readonly offset: number;
  /** Its length in bytes. */
  readonly length: number;
  /** The record's bytes, in place (read-only memory: do not write). */
  bytes(): Uint8Array;
  /** A copy of the record's bytes (or of `start`..`end` of them), to keep. */
  slice(start?: number, end?: number): Uint8Array;
}

function bytesOf(view: DataView, offset: number, length: number): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset + offset, length);
}

/** A record handed out on its own (`records()`): reading it once its batch is released throws `STALE`. */
class CheckedRecord implements EventRecord {
  readonly #batch: Batch;
  readonly offset: number;
  readonly length: number;

  constructor(batch: Batch, offset: number, length: number) {
    this.#batch = batch;
    this.offset = offset;
    this.length = length;
  }

  get view(): ReadonlyDataView {
    return this.#batch.view;
  }

  bytes(): Uint8Array {
    return bytesOf(this.#batch.view as DataView, this.offset, this.length);
  }

  slice(start = 0, end = this.length): Uint8Array {
    return this.bytes().slice(start, end);
  }
}

/**
 * The one record a batch's iterator moves along its records: plain fields, read at the
 * speed of a DataView. The iterator checks the batch is current at every step.
 */
class IteratedRecord implements EventRecord {
  offset = 0;
  length = 0;
  readonly view: DataView;

  constructor(view: DataView) {
    this.view = view;
  }

  bytes(): Uint8Array {
    return bytesOf(this.view, this.offset, this.length);
  }

  slice(start = 0, end = this.length): Uint8Array {
    return this.bytes().slice(start, end);
  }
}

/** An iterator's end once its batch is released: no position is below it. */
const RELEASED = -1;

/**
 * A batch's iterator: one reused record and one reused result, moved along the batch's
 * index. Releasing the batch sets its end to RELEASED, so the check costs nothing per
 * record: the walk stops, and the step that finds itself at the end throws instead of
 * ending.
 */
class BatchIterator implements Iterator<EventRecord> {
  readonly #ring: string;
  readonly #index: Uint32Array;
  #end: number;
  #at = 0;
  readonly #record: IteratedRecord;
  readonly #result: IteratorYieldResult<EventRecord>;

  constructor(ring: string, view: DataView, index: Uint32Array, count: number) {
    this.#ring = ring;
    this.#index = index;
    this.#end = 2 * count;
    this.#record = new IteratedRecord(view);
    this.#result = { value: this.#record, done: false };
  }

  /** Its batch was released. */
  invalidate(): void {
    this.#end = RELEASED;
  }

  next(): IteratorResult<EventRecord> {
    const at = this.#at;
    if (at < this.#end) {
      const record = this.#record;
      record.offset = this.#index[at];
      record.length = this.#index[at + 1];
      this.#at = at + 2;
      return this.#result;
    }
    if (this.#end === RELEASED) throw stale(this.#ring);
    return DONE;
  }

  [Symbol.iterator](): this {
    return this;
  }
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * The records of one wakeup, read where the kernel wrote them (zero copy). A batch is
 * valid until it is released: by asking for the next one, at the end of the loop body
 * that got it, or by `release()`; reading it after that throws `STALE`. Its memory is
 * read-only.
 */
export class Batch implements Iterable<EventRecord> {
  /** Records in the batch (those the BPF side discarded are not in it). */
  readonly count: number;
  /** Bytes of its records with their headers in the kernel's ring. */
  readonly byteLength: number;
  readonly #ring: string;
  readonly #current: Generation;
  readonly #gen: number;
  readonly #view: DataView;
  /** Each record's data offset in `view` and length: the consumer's, reused per batch. */
  readonly #index: Uint32Array;
  readonly #release: (b: Batch) => void;
  /** Its iterators, told when it is released. */
  readonly #iterators: BatchIterator[] = [];

  /** @internal */
  constructor(ring: string, current: Generation, view: DataView, index: Uint32Array, count: number, byteLength: number, release: (b: Batch) => void) {
    this.#ring = ring;
    this.#current = current;
    this.#gen = current.gen;
    this.#view = view;
    this.#index = index;
    this.count = count;
    this.byteLength = byteLength;
    this.#release = release;
  }

  /** Whether it was released (its memory is the kernel's again). */
  get released(): boolean {
    return this.#current.gen !== this.#gen;
  }

  /** The memory the batch's records are in (read-only); `forEach` gives their offsets. */
  get view(): ReadonlyDataView {
    if (this.#current.gen !== this.#gen) throw stale(this.#ring);
    return this.#view;
  }

  /** Calls `f(view, offset, length)` for each record, allocating nothing. Returns the count. */
  forEach(f: (view: ReadonlyDataView, offset: number, length: number) => void): number {
    const view = this.view as DataView;
    const index = this.#index;
    const end = 2 * this.count;
    for (let at = 0; at < end; at += 2) f(view, index[at], index[at + 1]);
    return this.count;
  }

  /** Each record through one reused `EventRecord` (nothing allocated per record): keep `slice()`s, not the record. */
  [Symbol.iterator](): Iterator<EventRecord> {
    const it = new BatchIterator(this.#ring, this.view as DataView, this.#index, this.count);
    this.#iterators.push(it);
    return it;
  }

  /** @internal Its memory went back to the kernel (the ring moved to the next generation). */
  invalidate(): void {
    for (const it of this.#iterators) it.invalidate();
    this.#iterators.length = 0;
  }

  /** @internal The ring's name, for errors. */
  get ring(): string {
    return this.#ring;
  }

  /** @internal Each record's data offset and length, in pairs (read it while current). */
  get index(): Uint32Array {
    return this.#index;
  }

  /** Gives the records back to the kernel now. Idempotent. */
  release(): void {
    if (this.released) return;
    this.#release(this);
    this.invalidate();
  }
}

/** What a `RecordStream` needs of its ring. */
interface StreamSource<T> {
  make: (batch: Batch, view: DataView, offset: number, length: number) => T;
  /** The next batch now, or null (none yet, or aborted). */
  poll: () => Batch | null;
  /** The next batch, waiting; null once closed or aborted. */
  next: () => Promise<Batch | null>;
  release: (b: Batch, records: number) => void;
  /** The iteration is over. */
  end: () => void;
}

/**
 * Records one at a time, as fast as an async iterator goes: a record of the current batch
 * costs one resolved promise; only the step to the next batch awaits the kernel. The
 * result object is reused (`for await` reads it before asking for the next).
 */
class RecordStream<T> implements AsyncIterableIterator<T> {
  readonly #src: StreamSource<T>;
  #batch: Batch | null = null;
  #view: DataView | null = null;
  #index: Uint32Array | null = null;
  /** Where the next record is in the index, and its end. */
  #at = 0;
  #end = 0;
  #finished = false;
  readonly #result: { value: T; done: false } = { value: undefined as T, done: false };

  constructor(src: StreamSource<T>) {
    this.#src = src;
  }

  /** Moves to the next record of the current batch: true when there is one (in `#result`). */
  #step(): boolean {
    const batch = this.#batch;
    if (!batch || this.#at >= this.#end) return false;
    if (batch.released) throw stale(batch.ring);
    const at = this.#at;
    this.#at = at + 2;
    this.#result.value = this.#src.make(batch, this.#view!, this.#index![at], this.#index![at + 1]);
    return true;
  }

  #take(batch: Batch | null): void {
    this.#batch = batch;
    this.#view = batch ? (batch.view as DataView) : null;
    this.#index = batch ? batch.index : null;
    this.#at = 0;
    this.#end = batch ? 2 * batch.count : 0;
  }

  next(): Promise<IteratorResult<T>> {
    try {
      if (!this.#finished && this.#step()) return Promise.resolve(this.#result);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#nextBatch();
  }

  async #nextBatch(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.#finished) return { value: undefined, done: true };
      // poll() and next() release the batch before them: all of it was handed out.
      this.#take(this.#src.poll() ?? (await this.#src.next()));
      if (!this.#batch) return this.return();
      if (this.#step()) return this.#result;
    }
  }

  /** Ends the iteration; the records of the batch not yet handed out stay in the ring. */
  return(): Promise<IteratorResult<T>> {
    if (!this.#finished) {
      this.#finished = true;
      // The records handed out go back; the rest stay for the next iteration.
      if (this.#batch && !this.#batch.released) this.#src.release(this.#batch, this.#at / 2);
      this.#take(null);
      this.#src.end();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(e?: unknown): Promise<IteratorResult<T>> {
    void this.return();
    return Promise.reject(e);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export interface IterateOptions {
  /** Ends the iteration promptly when aborted. */
  signal?: AbortSignal;
}

/** What a ring buffer's consumer has seen. */
export interface RingBufferStats {
  /** Records handed back to the kernel after they were handed out (the ones read). */
  received: number;
  /** Batches handed out. */
  batches: number;
  /**
   * Records the ring refused the BPF side, summed over CPUs, when the program declares
   * the ring with nodebpf.bpf.h's NODEBPF_RINGBUF (its `<ring>__lost` map); else
   * undefined: the kernel does not count them.
   */
  lost: number | undefined;
}

export interface RingBufferOptions {
  /**
   * Copy each batch into one reused buffer instead of reading the kernel's ring in place:
   * what runtimes without external ArrayBuffers (Electron) get anyway.
   */
  copy?: boolean;
}

/**
 * A BPF ring buffer's consumer (one per map), or a fan-in's: a map of ring buffers
 * (`ARRAY_OF_MAPS`, see nodebpf.bpf.h's NODEBPF_RINGBUF_PER_CPU) gets a ring per online
 * CPU, made and put in its slots here, read as one stream (rings take turns batch by
 * batch; order holds within a CPU's ring, not across them). JS reads the records in the
 * kernel's ring (zero copy), a batch per wakeup; the records go back to the kernel once handed back
 * (the next batch asked for, the loop body ended, or `release()`), so a slow consumer
 * makes the BPF side's reservations fail (counted there), never this process grow.
 * Nothing runs (and the process can exit) while no iteration is awaiting. Leaving a
 * `for await` early (break, return, throw) keeps every record it did not yield: the next
 * iteration starts with them. One iteration at a time: a second concurrent one is `BUSY`.
 */
export class RingBuffer implements AsyncIterable<EventRecord>, Disposable, AsyncDisposable {
  readonly name: string;
  #ring: NativeEvents;
  #closed = false;
  #onClose: () => void;
  #iterating = false;
  /** External ArrayBuffers over the data areas batches are in (null when copying). */
  #buffers: ArrayBuffer[] | null;
  /** The reused copy buffer (null when reading in place). */
  #copy: Uint8Array | null;
  /** A view of each data area (of the copy buffer when copying). */
  #views: DataView[];
  /** Where the addon writes each batch's record offsets and lengths. */
  readonly #index = new Uint32Array(2 * INDEX_RECORDS);
  #current: Generation = { gen: 0 };
  #batch: Batch | null = null;
  #received = 0;
  #batchCount = 0;
  #lost: () => number | undefined;

  /** @internal */
  constructor(name: string, ring: NativeEvents, onClose: () => void, options: RingBufferOptions = {}, lost: () => number | undefined = () => undefined) {
    this.name = name;
    this.#ring = ring;
    this.#onClose = onClose;
    this.#lost = lost;
    this.#buffers = options.copy ? null : native(() => ring.buffers(), { map: name });
    this.#copy = this.#buffers ? null : new Uint8Array(COPY_BUFFER_BYTES);
    this.#views = this.#buffers ? this.#buffers.map((b) => new DataView(b)) : [new DataView(this.#copy!.buffer)];
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether batches are read in the kernel's ring (false: copied into one reused buffer). */
  get zeroCopy(): boolean {
    return this.#buffers !== null;
  }

  /** Gives `b`'s first `records` (all by default) back to the kernel, if it is still current. */
  #release = (b: Batch, records = b.count): void => {
    if (b !== this.#batch) return;
    this.#received += Math.min(records, b.count);
    this.#batch = null;
    this.#current.gen++;
    b.invalidate();
    if (!this.#closed) native(() => this.#ring.release(records), { map: this.name });
  };

  /** What is available right now, without waiting; releases the batch before it. */
  poll(): Batch | null {
    return this.#poll();
  }

  #poll(maxBytes?: number): Batch | null {
    if (this.#batch) this.#release(this.#batch);
    if (this.#closed) return null;
    const span = native(() => this.#ring.peek(this.#index, this.#copy ?? undefined, maxBytes), { map: this.name });
    if (!span) return null;
    this.#current.gen++;
    this.#batchCount++;
    this.#batch = new Batch(this.name, this.#current, this.#views[span.buffer], this.#index, span.records, span.length, this.#release);
    return this.#batch;
  }

  /** Resolves with the next batch (releasing the one before), or `null` when closed or woken by an abort. */
  next(): Promise<Batch | null> {
    return this.#next();
  }

  async #next(maxBytes?: number): Promise<Batch | null> {
    for (;;) {
      const batch = this.#poll(maxBytes);
      if (batch || this.#closed) return batch;
      const since = native(() => this.#ring.wakes(), { map: this.name });
      if (!(await nativeAsync(() => this.#ring.wait(since), { map: this.name }))) return null;
    }
  }

  #claim(): void {
    if (this.#iterating) {
      throw new BpfError('BUSY', `ring buffer '${this.name}' is already being iterated (records go to one iteration at a time)`, {
        map: this.name,
        operation: 'iterate',
      });
    }
    this.#iterating = true;
  }

  /** Batches as they come, each released when the loop body that got it ends. */
  async *batches(options: IterateOptions = {}): AsyncGenerator<Batch, void, undefined> {
    this.#claim();
    try {
      yield* this.#batches(options);
    } finally {
      if (this.#batch) this.#release(this.#batch);
      this.#iterating = false;
    }
  }

  async *#batches(options: IterateOptions): AsyncGenerator<Batch, void, undefined> {
    const { signal } = options;
    if (signal?.aborted) return;
    const onAbort = () => this.#ring.wake();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal?.aborted) {
        const batch = await this.next();
        if (!batch) return;
        yield batch;
        batch.release();
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Each record, as `(view, offset, length)` → `decode`'s result, or decoded by a codec of
   * the object's BTF (`rb.events(obj.type('struct event'))`): nothing allocated per
   * record by nodebpf but the iteration's promise. Stopping early gives back only the
   * records already yielded.
   */
  events<T>(decode: ((view: ReadonlyDataView, offset: number, length: number) => T) | { readonly record: (view: ReadonlyDataView, offset: number, length: number) => T }, options: IterateOptions = {}): AsyncIterableIterator<T> {
    // A codec of the object's BTF (`obj.type('struct event')`) decodes with its `record`.
    const f = typeof decode === 'function' ? decode : decode.record;
    return this.#stream((_batch, view, offset, length) => f(view, offset, length), options);
  }

  /**
   * Each record as an `EventRecord`, valid until the iteration moves past its batch (then
   * reading it throws `STALE`; `slice()` copies). Batches here hold at most 256 KiB of
   * records, given back to the kernel as the iteration moves on, so a producer has room
   * while records are read one at a time. Stopping early keeps the rest.
   */
  records(options: IterateOptions = {}): AsyncIterableIterator<EventRecord> {
    return this.#stream((batch, _view, offset, length) => new CheckedRecord(batch, offset, length), options);
  }

  #stream<T>(make: (batch: Batch, view: DataView, offset: number, length: number) => T, options: IterateOptions): AsyncIterableIterator<T> {
    const { signal } = options;
    this.#claim();
    const onAbort = () => this.#ring.wake();
    signal?.addEventListener('abort', onAbort, { once: true });
    return new RecordStream<T>({
      make,
      poll: () => (signal?.aborted ? null : this.#poll(STREAM_BATCH_BYTES)),
      next: () => (signal?.aborted ? Promise.resolve(null) : this.#next(STREAM_BATCH_BYTES)),
      release: (b, records) => this.#release(b, records),
      end: () => {
        signal?.removeEventListener('abort', onAbort);
        this.#iterating = false;
      },
    });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<EventRecord> {
    return this.records();
  }

  /** Records received and batches so far, and the records the ring refused where they are counted (see `RingBufferStats`). */
  stats(): RingBufferStats {
    return { received: this.#received, batches: this.#batchCount, lost: this.#lost() };
  }

  /** Stops any iteration (it ends with no error) and frees the map for another consumer. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#current.gen++;
    this.#batch?.invalidate();
    this.#batch = null;
    this.#ring.close(this.#buffers ?? undefined);
    this.#buffers = null;
    this.#onClose();
  }

  /** `close()`: a ring buffer has nothing to wait for. */
  async closeAsync(): Promise<void> {
    this.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.closeAsync();
  }
}

export interface PerfBufferOptions extends RingBufferOptions {
  /** Data pages of each CPU's ring, a power of two (default 64: 256 KiB with 4 KiB pages). */
  pagesPerCpu?: number;
}

/**
 * A perf event array's consumer (`bpf_perf_event_output`): one ring per online CPU, read
 * as one stream with the ring-buffer API (batches, records, events). A batch is a run of
 * one CPU's records (CPUs take turns), read where the kernel wrote them; a record that
 * wraps at the end of its ring comes alone, copied. Order holds within a CPU, not across
 * CPUs. `stats().lost` and `lostPerCpu()` are the kernel's counts of samples it could not
 * write (`PERF_RECORD_LOST`), taken in as they are read.
 */
export class PerfBuffer extends RingBuffer {
  readonly #perf: NativeEvents;

  /** @internal */
  constructor(name: string, perf: NativeEvents, onClose: () => void, options: RingBufferOptions = {}) {
    super(name, perf, onClose, options, () => (perf.lost() ?? []).reduce((sum, c) => sum + c.lost, 0));
    this.#perf = perf;
  }

  /** Samples lost on each CPU so far, as the kernel reported them. */
  lostPerCpu(): { cpu: number; lost: number }[] {
    return native(() => this.#perf.lost() ?? [], { map: this.name });
  }
}
