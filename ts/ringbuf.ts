import { BpfError, native, nativeAsync } from './errors.js';
import type { NativeRingBuf } from './native.js';

/** Per-record header in a batch: u32 length, 4 bytes padding; data padded to 8 bytes. */
const HEADER = 8;
const ALIGN = 8;

/** Where the record after the one at `off` starts. */
function nextRecord(view: DataView, off: number): number {
  const len = view.getUint32(off, true);
  return off + HEADER + Math.ceil(len / ALIGN) * ALIGN;
}

/** The records of one wakeup, in one buffer. Iterating yields views, not copies. */
export class Batch implements Iterable<Uint8Array> {
  readonly buffer: Uint8Array;
  private readonly view: DataView;

  constructor(buffer: Uint8Array) {
    this.buffer = buffer;
    this.view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }

  /** Calls `f(view, offset, length)` for each record without allocating. */
  forEach(f: (view: DataView, offset: number, length: number) => void): number {
    const { view } = this;
    let n = 0;
    for (let off = 0; off < view.byteLength; off = nextRecord(view, off)) {
      f(view, off + HEADER, view.getUint32(off, true));
      n++;
    }
    return n;
  }

  *[Symbol.iterator](): Iterator<Uint8Array> {
    const { view, buffer } = this;
    for (let off = 0; off < view.byteLength; off = nextRecord(view, off)) {
      yield buffer.subarray(off + HEADER, off + HEADER + view.getUint32(off, true));
    }
  }
}

export interface IterateOptions {
  /** Ends the iteration promptly when aborted. */
  signal?: AbortSignal;
}

/**
 * A BPF ring buffer's consumer (one per map). Records are drained in Rust, one batch per
 * wakeup; nothing runs (and the process can exit) while no iteration is awaiting.
 * Leaving a `for await` early (break, return, throw) keeps every record it did not yield:
 * the next iteration starts with them. One iteration at a time: a second concurrent one
 * is `BUSY`.
 */
export class RingBuffer implements AsyncIterable<Uint8Array>, Disposable, AsyncDisposable {
  readonly name: string;
  #ring: NativeRingBuf;
  #closed = false;
  #onClose: () => void;
  /** Records handed over from the kernel but not yet yielded: a buffer and where they start. */
  #pending: { buffer: Uint8Array; offset: number } | null = null;
  #iterating = false;

  /** @internal */
  constructor(name: string, ring: NativeRingBuf, onClose: () => void) {
    this.name = name;
    this.#ring = ring;
    this.#onClose = onClose;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Records kept from an iteration that stopped early, as a batch. */
  #takePending(): Batch | null {
    const p = this.#pending;
    this.#pending = null;
    if (!p || p.offset >= p.buffer.byteLength) return null;
    return new Batch(p.buffer.subarray(p.offset));
  }

  /** Resolves with the next batch, or `null` when closed or woken by an abort. */
  async next(): Promise<Batch | null> {
    if (this.#closed) return null;
    const kept = this.#takePending();
    if (kept) return kept;
    const buf = await nativeAsync(() => this.#ring.nextBatch(), { map: this.name });
    return buf ? new Batch(buf) : null;
  }

  /** What is available right now, without waiting. */
  poll(): Batch | null {
    if (this.#closed) return null;
    const kept = this.#takePending();
    if (kept) return kept;
    const buf = native(() => this.#ring.tryBatch(), { map: this.name });
    return buf ? new Batch(buf) : null;
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

  /** Batches as they come; a batch handed out is consumed. */
  async *batches(options: IterateOptions = {}): AsyncGenerator<Batch, void, undefined> {
    this.#claim();
    try {
      yield* this.#batches(options);
    } finally {
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
        // A batch that arrives with the abort is already consumed from the kernel's ring:
        // hand it out rather than lose it.
        if (!batch) return;
        yield batch;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Each record, as `(view, offset, length)` → `decode`'s result: no per-record allocation
   * by nodebpf. Stopping early keeps the records not yet decoded.
   */
  async *events<T>(
    decode: (view: DataView, offset: number, length: number) => T,
    options: IterateOptions = {},
  ): AsyncGenerator<T, void, undefined> {
    this.#claim();
    try {
      for await (const batch of this.#batches(options)) {
        const { buffer } = batch;
        const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
        for (let off = 0; off < view.byteLength; ) {
          const next = nextRecord(view, off);
          // Set before the yield: if the consumer stops here, the rest is kept.
          this.#pending = { buffer, offset: next };
          yield decode(view, off + HEADER, view.getUint32(off, true));
          off = next;
        }
        this.#pending = null;
      }
    } finally {
      this.#iterating = false;
    }
  }

  /** Each record as a view into its batch; stopping early keeps the rest. */
  records(options: IterateOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
    return this.events((view, offset, length) => new Uint8Array(view.buffer, view.byteOffset + offset, length), options);
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.records();
  }

  /** Stops any iteration (it ends with no error) and frees the map for another consumer. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = null;
    this.#ring.close();
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
