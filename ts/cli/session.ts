// What every command does around its own work: load the program objects, start the
// traced command (if any) only once the probes are in, wait for Ctrl-C, the duration or
// the command's exit, and close everything on the way out.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { featureTable, load, type BpfObject, type FeatureRow, type Features, type LoadOptions } from 'nodebpf';

// A path helper, not the library: the CLI otherwise uses the package as its users do.
import { bpfObjectPath } from '../bpf-objects.js';

import { family, parseSpec, skipSummary, type Attachment, type ProbeSpec } from './specs.js';
import { Status, dim, int, seconds, yellow } from './term.js';
import { UsageError } from './usage.js';

const BPF_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bpf');

export interface CommonOptions {
  pid?: number;
  duration?: number;
  verbose: boolean;
  /** The command to run and trace (after `--`). */
  command: string[];
}

export class Session {
  readonly status = new Status();
  readonly #objects: BpfObject[] = [];
  readonly #attachments: Attachment[] = [];
  /** Fallback notes already shown (once per run is enough). */
  readonly #notes = new Set<string>();
  #child: ChildProcess | undefined;
  #childExit: Promise<number | null> | undefined;
  /** The pid the probes filter on: --pid, or the command's. */
  readonly pid: number | undefined;

  /** Resolves at the first Ctrl-C or SIGTERM; the handler stays for the whole run. */
  readonly #interrupted: Promise<string>;

  private constructor(readonly options: CommonOptions, child?: ChildProcess) {
    this.#child = child;
    this.pid = child?.pid ?? options.pid;
    if (child) {
      this.#childExit = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ? 128 : code)));
    }
    // A ^C reaches the traced command too, and its exit may be seen first: a late SIGINT
    // must still find a handler, or it would kill us before the totals and the detach.
    // A third one quits at once (detaching thousands of perf probes can take minutes).
    let signals = 0;
    this.#interrupted = new Promise((resolve) => {
      const on = () => {
        signals++;
        if (signals === 1) resolve('interrupted');
        else if (signals === 2) process.stderr.write('\nnodebpf: still detaching; Ctrl-C again to quit now\n');
        else process.exit(130);
      };
      process.on('SIGINT', on);
      process.on('SIGTERM', on);
    });
  }

  /**
   * Starts the command held at a `read` on a pipe: its pid is known (for the filters)
   * before the probes are attached, and it runs its program only after.
   */
  static async start(options: CommonOptions, childStdout: 'inherit' | 'stderr', env?: Record<string, string>): Promise<Session> {
    if (options.command.length === 0) return new Session(options);
    if (options.pid !== undefined) throw new UsageError('give --pid or a command, not both');
    const child = spawn('/bin/sh', ['-c', 'read _ <&3; exec 3<&-; exec "$@"', 'nodebpf', ...options.command], {
      stdio: ['inherit', childStdout === 'inherit' ? 'inherit' : process.stderr, 'inherit', 'pipe'],
      env: env && { ...process.env, ...env },
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    return new Session(options, child);
  }

  /** `maps` sizes the object's maps (the default sizes are in its C source). */
  async load(name: string, globals: Record<string, number>, maps?: LoadOptions['maps']): Promise<BpfObject> {
    const obj = await load(bpfObjectPath(BPF_DIR, name), { globals: { target_tgid: this.pid ?? 0, ...globals }, maps });
    this.#objects.push(obj);
    return obj;
  }

  /** Keeps an attachment for closing, and tells the user what it attached. */
  attached(a: Attachment, f: Features): void {
    this.#attachments.push(a);
    const n = a.names.length;
    const what = family(a.spec.kind) === 'tracepoint' ? (n === 1 ? 'tracepoint' : 'tracepoints') : n === 1 ? 'function' : 'functions';
    let line = `${a.spec.text}: attached ${int(n)} ${what} in ${seconds(a.seconds)} via ${a.mechanism}`;
    if (a.skipped.length) line += `, skipped ${int(a.skipped.length)} (${skipSummary(a.skipped)})`;
    const why = fallbackNote(a, f);
    const fresh = why !== undefined && !this.#notes.has(why);
    if (why) this.#notes.add(why);
    this.status.done(fresh ? `${line}\n  ${yellow(why)}` : line);
    if (this.options.verbose) for (const s of a.skipped) process.stderr.write(dim(`  skipped ${s.name}: ${s.reason}\n`));
  }

  /** Lets the command run. */
  go(): void {
    const pipe = this.#child?.stdio[3];
    if (pipe && 'end' in pipe) pipe.end('\n');
  }

  /** Resolves with why the run ended: the duration, Ctrl-C/SIGTERM, or the command's exit. */
  async until(extra?: Promise<unknown>): Promise<string> {
    const waits: Promise<string>[] = [this.#interrupted];
    let timer: NodeJS.Timeout | undefined;
    const duration = this.options.duration;
    if (duration !== undefined) waits.push(new Promise((r) => (timer = setTimeout(() => r('duration'), duration * 1000))));
    if (this.#childExit) waits.push(this.#childExit.then((code) => `command exited (${code})`));
    if (extra) waits.push(extra.then(() => 'done'));
    try {
      return await Promise.race(waits);
    } finally {
      clearTimeout(timer);
    }
  }

  get childExit(): Promise<number | null> | undefined {
    return this.#childExit;
  }

  /**
   * Detaches everything (off the JS thread: the status line and ^C stay live), and stops
   * a command that is still held or running. Idempotent.
   */
  async close(): Promise<void> {
    for (const a of this.#attachments.splice(0)) {
      // Each perf probe costs the kernel an RCU grace period to remove (~0.1 s here).
      if ((a.mechanism === 'kprobes' || a.mechanism === 'uprobes') && a.kernelLinks >= 20) {
        this.status.show(`detaching ${int(a.kernelLinks)} perf ${a.mechanism} (about ${Math.ceil(a.kernelLinks / 10)} s: the kernel waits for each) ...`);
      }
      await a.close();
    }
    this.status.clear();
    await Promise.all(this.#objects.splice(0).map((o) => o.closeAsync()));
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGTERM');
  }
}

/** The per-target fallbacks: how each works, and the batch link it stands in for. */
const FALLBACKS: Record<string, [how: string, instead: FeatureRow['name'], cost?: string]> = {
  kprobes: ['one perf kprobe per function', 'kprobeMulti'],
  uprobes: ['one perf uprobe per function', 'uprobeMulti', 'detaching costs ~0.1 s each'],
  fentry: ['one fentry/fexit program per function', 'tracingMulti'],
  fexit: ['one fentry/fexit program per function', 'tracingMulti'],
};

/** Why a fallback was used, and which kernel has the batch link (from the feature table). */
function fallbackNote(a: Attachment, f: Features): string | undefined {
  const fallback = FALLBACKS[a.mechanism];
  const row = fallback && featureTable().find((r) => r.name === fallback[1]);
  if (!fallback || !row) return undefined;
  return `${fallback[0]}: this kernel (${f.kernel}) has no ${row.what} (${row.needs})${fallback[2] ? `; ${fallback[2]}` : ''}`;
}

/** The object's `.bss` (where the CLI's programs keep their counters), read in one lookup. */
export function readBss(obj: BpfObject): DataView {
  const bss = obj.maps.find((m) => m.name.endsWith('.bss'));
  if (!bss) throw new Error('a nodebpf CLI program without .bss');
  const raw = obj.map(bss.name).get(new Uint8Array(4)) as Uint8Array;
  return new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
}

export function parseSpecs(specs: string[]): ProbeSpec[] {
  if (specs.length === 0) throw new UsageError('give at least one probe spec');
  return specs.map(parseSpec);
}
