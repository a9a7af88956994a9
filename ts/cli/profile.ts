// nodebpf profile: CPU stacks sampled on every CPU (or of one process, or of the command
// it runs), symbolized; nodebpf offcpu: the time threads spent blocked, by stack. On a
// terminal: progress while sampling, then the functions most seen (self and total, as
// perf report --stdio shows them); on a pipe, or with --format or --output: the profile
// in a format (folded stacks, gzipped pprof, speedscope JSON).
import { writeFileSync } from 'node:fs';

import { offcpu, profile, type Profile } from 'nodebpf';

import { Session, type CommonOptions } from './session.js';
import { dim, int, table } from './term.js';
import { UsageError } from './usage.js';

export const FORMATS = ['folded', 'pprof', 'speedscope'] as const;
export type Format = (typeof FORMATS)[number];

export interface ProfileCommandOptions extends CommonOptions {
  frequency?: number;
  format?: string;
  output?: string;
  kernel: boolean;
  user: boolean;
  /** Have a node command write a perf map (V8 flags in NODE_OPTIONS). */
  perfMap: boolean;
  top?: number;
  /** Off-CPU: blocks shorter than this (µs) are left out. */
  minBlock?: number;
}

/** V8 flags that name JS functions in profiles: a perf map of functions only (the production-safe one), and interpreted frames of their own. */
const NODE_PERF_FLAGS = '--perf-basic-prof-only-functions --interpreted-frames-native-stack';

/** A format by name, or by the output file's extension. */
function formatOf(o: ProfileCommandOptions): Format | undefined {
  if (o.format !== undefined) {
    if (!(FORMATS as readonly string[]).includes(o.format)) throw new UsageError(`--format is one of ${FORMATS.join(', ')}, not '${o.format}'`);
    return o.format as Format;
  }
  if (o.output === undefined) return undefined;
  if (/\.pb(\.gz)?$|\.pprof$/.test(o.output)) return 'pprof';
  if (/\.json$/.test(o.output)) return 'speedscope';
  return 'folded';
}

function render(p: Profile, format: Format): string | Buffer {
  switch (format) {
    case 'folded':
      return p.toFolded();
    case 'pprof':
      return p.toPprof();
    case 'speedscope':
      return `${JSON.stringify(p.toSpeedscope())}\n`;
  }
}

export async function profileCommand(o: ProfileCommandOptions, mode: 'cpu' | 'off-cpu'): Promise<void> {
  if (!o.kernel && !o.user) throw new UsageError('--no-kernel and --no-user leave no stacks to sample');
  const format = formatOf(o) ?? (process.stdout.isTTY ? undefined : 'folded');
  const env = o.perfMap ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${NODE_PERF_FLAGS}`.trim() } : undefined;
  const session = await Session.start(o, format && !o.output ? 'stderr' : 'inherit', env);
  const stop = new AbortController();
  const frequency = o.frequency ?? 99;
  try {
    let attach!: () => void;
    const attached = new Promise<void>((r) => (attach = r));
    const running =
      mode === 'cpu'
        ? profile({ pid: session.pid, frequency, kernel: o.kernel, user: o.user, signal: stop.signal, onStart: attach })
        : offcpu({ pid: session.pid, kernel: o.kernel, user: o.user, minBlock: o.minBlock, signal: stop.signal, onStart: attach });
    // The command runs once the program is in (or not at all, when attaching failed).
    await Promise.race([attached, running]);
    session.go();
    const started = performance.now();
    const what = mode === 'cpu' ? `sampling at ${frequency} Hz` : 'timing blocked threads';
    const ticker = setInterval(() => session.status.show(`${what}${session.pid ? ` (pid ${session.pid})` : ''}: ${((performance.now() - started) / 1000).toFixed(0)} s ${dim('(Ctrl-C to stop)')}`), 250);
    const why = await session.until(running);
    clearInterval(ticker);
    session.status.show('symbolizing ...');
    stop.abort();
    const p = await running;
    session.status.clear();
    await session.close();
    if (format) {
      const out = render(p, format);
      if (o.output) writeFileSync(o.output, out);
      else process.stdout.write(out);
    }
    if (!format || o.output) report(p, why, o);
  } finally {
    stop.abort();
    await session.close();
  }
}

/** The top functions, and what was sampled and lost. */
function report(p: Profile, why: string, o: ProfileCommandOptions): void {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const rows = p.top(o.top ?? 20).map((r) => [r.name.length > 90 ? `${r.name.slice(0, 89)}…` : r.name, r.module, pct(r.self), pct(r.total)]);
  process.stdout.write(`${table(['FUNCTION', 'MODULE', 'SELF', 'TOTAL'], rows, [0, 1])}\n`);
  const t = p.totals;
  const lost = t.userCollided + t.kernelCollided + t.userFailed + t.kernelFailed;
  const offCpu = p.unit === 'microseconds';
  const blocked = p.samples.reduce((n, s) => n + s.count, 0);
  const notes = [
    offCpu
      ? `${(blocked / 1e6).toFixed(2)} s blocked in ${int(t.samples)} waits in ${(p.duration / 1000).toFixed(1)} s (sched_switch; ${why})`
      : `${int(t.samples)} samples in ${(p.duration / 1000).toFixed(1)} s at ${p.frequency} Hz (${p.event}; ${why})`,
    lost ? `${int(lost)} stacks lost (${int(t.userCollided + t.kernelCollided)} stack-map collisions)` : '',
    t.truncated ? `${int(t.truncated)} samples with stacks cut at 127 frames` : '',
    t.countsFull ? `${int(t.countsFull)} samples not counted (count map full)` : '',
    o.output ? `written to ${o.output}` : '',
  ].filter(Boolean);
  process.stdout.write(dim(`${notes.join('; ')}\n`));
}
