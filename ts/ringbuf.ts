import { native, nativeAsync } from './errors.js';
import type { NativeRingBuf } from './native.js';

/** Per-record header in a batch: u32 length, 4 bytes padding; data padded to 8 bytes. */
const HEADER = 8;

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
    const end = view.byteLength;
    let off = 0;
    let n = 0;
    while (off < end) {
      const len = view.getUint32(off, true);
      f(view, off + HEADER, len);
      off += HEADER + ((len + 7) & ~7);
      n++;
    }
    return n;
  }

  *[Symbol.iterator](): Iterator<Uint8Array> {
    const { view, buffer } = this;
    let off = 0;
    while (off < view.byteLength) {
      const len = view.getUint32(off, true);
      yield buffer.subarray(off + HEADER, off + HEADER + len);
      off += HEADER + ((len + 7) & ~7);
    }
  }
}

export interface IterateOptions {
  /** Ends the iteration promptly when aborted. */
  signal?: AbortSignal;
}

/**
 * A BPF ring buffer. Records are drained in Rust, one batch per wakeup; nothing runs
 * (and the process can exit) while no iteration is awaiting.
 */
export class RingBuffer implements AsyncIterable<Uint8Array>, Disposable {
  readonly name: string;
  #ring: NativeRingBuf;
  #closed = false;
  #onClose: () => void;

  /** @internal */
  constructor(name: string, ring: NativeRingBuf, onClose: () => void) {
    this.name = name;
    this.#ring = ring;
    this.#onClose = onClose;
  }

  /** Resolves with the next batch, or `null` when closed or woken by an abort. */
  async next(): Promise<Batch | null> {
    if (this.#closed) return null;
    const buf = await nativeAsync(() => this.#ring.nextBatch());
    return buf ? new Batch(buf) : null;
  }

  /** What is available right now, without waiting. */
  poll(): Batch | null {
    if (this.#closed) return null;
    const buf = native(() => this.#ring.tryBatch());
    return buf ? new Batch(buf) : null;
  }

  async *batches(options: IterateOptions = {}): AsyncGenerator<Batch, void, undefined> {
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

  /** Decodes each record with `decode(view, offset, length)`: no per-record allocation by nodebpf. */
  async *events<T>(
    decode: (view: DataView, offset: number, length: number) => T,
    options: IterateOptions = {},
  ): AsyncGenerator<T, void, undefined> {
    for await (const batch of this.batches(options)) {
      const out: T[] = [];
      batch.forEach((view, offset, length) => {
        out.push(decode(view, offset, length));
      });
      yield* out;
    }
  }

  async *records(options: IterateOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
    for await (const batch of this.batches(options)) yield* batch;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.records();
  }

  /** Stops any iteration (it ends with no error) and releases the ring. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ring.close();
    this.#onClose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
