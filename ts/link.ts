import { statSync } from 'node:fs';

import { native, nativeAsync } from './errors.js';
import type { LinkInfo, MultiSkipped, MultiStats, MultiTarget, NativeLink, NativeMultiLink } from './native.js';

/**
 * A link: the attachment stays while it is open. `close()` returns at once (a perf-event
 * link, whose detach waits for the kernel, finishes in the background); `closeAsync()`
 * and `await using` resolve once the kernel has let go.
 */
export class Link implements Disposable, AsyncDisposable {
  #link: NativeLink;
  #closed = false;
  #onClose: () => void;

  /** @internal */
  constructor(link: NativeLink, onClose: () => void) {
    this.#link = link;
    this.#onClose = onClose;
  }

  info(): LinkInfo {
    return native(() => this.#link.info());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Detaches without blocking the event loop. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#link.close();
    this.#onClose();
  }

  /** Detaches off the JS thread; resolves once detached. Idempotent. */
  async closeAsync(): Promise<void> {
    this.close();
    await this.#link.closeAsync();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.closeAsync();
  }
}

/**
 * How a `MultiLink` attached, as the core reports it: one kernel link for all targets
 * (`'kprobe_multi'`, `'uprobe_multi'`, `'tracing_multi'`), or the per-target fallback
 * where the kernel lacks that link type (`'kprobes'`, `'uprobes'`: perf probes;
 * `'fentry'`, `'fexit'`, `'fsession'`: one trampoline program per function).
 * test/types.test.ts holds this list to the strings the Rust core passes.
 */
export const MULTI_LINK_MECHANISMS = ['kprobe_multi', 'kprobes', 'uprobe_multi', 'uprobes', 'tracing_multi', 'fentry', 'fexit', 'fsession'] as const;

export type MultiLinkMechanism = (typeof MULTI_LINK_MECHANISMS)[number];
/** kprobe.multi / kretprobe.multi / kprobe.session and `attachKprobeMulti`. */
export type KprobeMultiMechanism = 'kprobe_multi' | 'kprobes';
/** uprobe.multi / uretprobe.multi / uprobe.session, usdt, `attachUprobeMulti` and `attachUsdt`. */
export type UprobeMultiMechanism = 'uprobe_multi' | 'uprobes';
/** fentry.multi / fexit.multi / fsession.multi and `attachTracingMulti`: the fallback is named after the kind. */
export type TracingMultiMechanism = 'tracing_multi' | 'fentry' | 'fexit' | 'fsession';

/** How often a `reattach` link checks whether its binary was replaced. */
const REATTACH_POLL_MS = 250;

/** Sent by a `reattach` link after it moved to a replaced binary: `detail` has `path` and `targets`. */
export type ReattachEvent = CustomEvent<{ path: string; targets: MultiTarget[] }>;

/**
 * One link over many targets (kprobe_multi, uprobe_multi, tracing_multi, or their
 * fallbacks). `close()` returns at once and detaches in the background (1,000 perf probes
 * take seconds); `closeAsync()` and `await using` resolve once every target is detached.
 * With `reattach`, it emits `'reattach'` (a {@link ReattachEvent}) after moving to a
 * replaced binary, and `'error'` when that failed.
 */
export class MultiLink<M extends MultiLinkMechanism = MultiLinkMechanism> extends EventTarget implements Disposable, AsyncDisposable {
  #link: NativeMultiLink;
  #closed = false;
  #onClose: () => void;
  #watch: ReturnType<typeof setInterval> | undefined;
  /** Links replaced by a reattach, still detaching. */
  #retired: NativeMultiLink[] = [];
  /** What was used: the batch link, or the per-target fallback (see {@link MultiLinkMechanism}). */
  readonly mechanism: M;
  #targets: MultiTarget[] | undefined;
  #skipped: MultiSkipped[] | undefined;

  /** @internal */
  constructor(link: NativeMultiLink, onClose: () => void, redo?: () => NativeMultiLink) {
    super();
    this.#link = link;
    this.#onClose = onClose;
    // The binding types it as a string; the core passes only these (test/types.test.ts).
    this.mechanism = link.mechanism as M;
    const path = link.path();
    if (redo && path) this.#watchFile(path, redo);
  }

  /**
   * Stale offsets fire on the wrong code or not at all once a binary is replaced (new
   * inode, e.g. a package update): poll the path, and on a new file resolve again, attach
   * anew, then detach the old link.
   */
  #watchFile(path: string, redo: () => NativeMultiLink): void {
    const identity = () => {
      try {
        const st = statSync(path);
        return `${st.dev}:${st.ino}`;
      } catch {
        return undefined; // mid-replacement: try again next time
      }
    };
    let current = identity();
    this.#watch = setInterval(() => {
      const now = identity();
      if (now === undefined || now === current) return;
      try {
        const next = native(redo);
        const old = this.#link;
        this.#link = next;
        this.#targets = undefined;
        this.#skipped = undefined;
        old.close();
        this.#retired.push(old);
        current = now;
        this.dispatchEvent(new CustomEvent('reattach', { detail: { path, targets: this.targets } }));
      } catch (e) {
        current = now;
        this.dispatchEvent(new CustomEvent('error', { detail: e }));
      }
    }, REATTACH_POLL_MS);
    this.#watch.unref();
  }

  /** What is attached, in cookie order (the default cookie is the index here). Built on first use. */
  get targets(): MultiTarget[] {
    this.#targets ??= this.#link.targets();
    return this.#targets;
  }

  /** What the selection matched but could not be attached, and why. */
  get skipped(): MultiSkipped[] {
    this.#skipped ??= this.#link.skipped();
    return this.#skipped;
  }

  /** Kernel links behind this one: 1 for a multi link, more when split or per target. */
  get kernelLinks(): number {
    return native(() => this.#link.kernelLinks());
  }

  stats(): MultiStats {
    return native(() => this.#link.stats());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Detaches every target in the background (and stops watching the binary). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watch);
    this.#link.close();
    this.#onClose();
  }

  /** Detaches off the JS thread; resolves once every target is detached. Idempotent. */
  async closeAsync(): Promise<void> {
    this.close();
    await nativeAsync(() => Promise.all([this.#link, ...this.#retired].map((l) => l.closeAsync())));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.closeAsync();
  }
}
