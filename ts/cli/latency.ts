// nodebpf latency: entry→return time as log2 histograms, like bpftrace's hist(): one
// for all functions, or one per function with --per-function. Through a session program
// where the kernel has sessions, else an entry and a return program.
import { features, log2Histogram, pow2Label, renderHistogram, type BpfObject, type Histogram as Log2 } from 'nodebpf';

import { Session, parseSpecs, readBss, type CommonOptions } from './session.js';
import { SIDES, attachSpec, family, type Attachment, type ProbeKind } from './specs.js';
import { bold, dim, int } from './term.js';
import { UsageError } from './usage.js';

export interface LatencyOptions extends CommonOptions {
  perFunction: boolean;
  json: boolean;
}

const BUCKETS = 64;
const MAX_ROWS = 4096;

const PROGRAMS: Partial<Record<ProbeKind, [entry: string, ret: string]>> = {
  kprobe: ['entry_probe', 'return_probe'],
  kretprobe: ['entry_probe', 'return_probe'],
  uprobe: ['entry_probe', 'return_probe'],
  uretprobe: ['entry_probe', 'return_probe'],
  fentry: ['entry_fentry', 'return_fexit'],
  fexit: ['entry_fentry', 'return_fexit'],
};

interface Timed {
  entry: Attachment;
  obj: BpfObject;
}

export interface Histogram {
  /** Function name, or null for all together. */
  function: string | null;
  count: number;
  /** Nonzero buckets: [from, to) in nanoseconds. */
  buckets: { from: number; to: number; count: number }[];
}

/** A function's histogram: as drawn (every bucket from the first to the last). */
interface Row {
  function: string | null;
  log2: Log2;
}

export async function latency(specTexts: string[], o: LatencyOptions): Promise<void> {
  const specs = parseSpecs(specTexts);
  for (const s of specs) {
    if (!PROGRAMS[s.kind]) throw new UsageError(`latency needs functions (entry and return); '${s.text}' is a tracepoint`);
  }
  const json = o.json;
  const session = await Session.start(o, json ? 'stderr' : 'inherit');
  try {
    const f = await features();
    const timed: Timed[] = [];
    for (const spec of specs) {
      const fam = family(spec.kind);
      if (fam === 'tracepoint') continue; // refused above
      const [entryKind, returnKind] = SIDES[fam];
      const common = { pid: session.pid, status: session.status };
      // Sessions: one program at entry and return with a per-call cookie (right for
      // recursion); else an entry and a return program sharing a map.
      const sessions = fam === 'kprobe' ? f.kprobeSession : fam === 'uprobe' ? f.uprobeSession : f.tracingMulti;
      const obj = await session.load(sessions ? 'latency_session' : 'latency', { per_function: o.perFunction ? 1 : 0 });
      const tooMany = (a: Attachment) => {
        if (o.perFunction && a.names.length > MAX_ROWS) {
          throw new UsageError(`--per-function keeps at most ${int(MAX_ROWS)} histograms; '${spec.text}' matched ${int(a.names.length)} functions`);
        }
      };
      if (sessions) {
        const program = fam === 'tracing' ? 'session_fentry' : 'session_probe';
        const a = await attachSpec(obj, program, { ...spec, kind: entryKind }, { ...common, retprobe: false, session: fam !== 'tracing' });
        session.attached(a, f);
        tooMany(a);
        timed.push({ entry: a, obj });
        continue;
      }
      const [entryProg, returnProg] = PROGRAMS[spec.kind]!;
      const entry = await attachSpec(obj, entryProg, { ...spec, kind: entryKind }, { ...common, retprobe: false });
      session.attached(entry, f);
      tooMany(entry);
      const ret = await attachSpec(obj, returnProg, { ...spec, kind: returnKind, text: `${spec.text} (returns)` }, { ...common, retprobe: true, like: entry });
      session.attached(ret, f);
      timed.push({ entry, obj });
    }
    session.go();
    const why = await session.until();
    const { histograms, unmatched } = collect(timed, o.perFunction);
    await session.close();
    if (json) {
      const out = histograms.map(toJson);
      process.stdout.write(`${JSON.stringify({ type: 'latency', unit: 'ns', ended: why, histograms: out, unmatched })}\n`);
    } else {
      for (const h of histograms) process.stdout.write(`${render(h)}\n`);
      if (histograms.length === 0) process.stdout.write(dim(`no call returned (${why})\n`));
      if (unmatched > 0) process.stdout.write(dim(`${int(unmatched)} returns whose entry was not seen (calls already running when the probes came in) are left out\n`));
    }
  } finally {
    await session.close();
  }
}

/** The histograms, and the returns whose entry the programs did not see. */
function collect(timed: Timed[], perFunction: boolean): { histograms: Row[]; unmatched: number } {
  const total = new Array<number>(BUCKETS).fill(0);
  const out: Row[] = [];
  let unmatched = 0;
  for (const { entry, obj } of timed) {
    const view = readBss(obj);
    const row = (r: number) => Array.from({ length: BUCKETS }, (_, b) => Number(view.getBigUint64((r * BUCKETS + b) * 8, true)));
    // `unmatched` follows the histograms in .bss (bpf/latency.h).
    unmatched += Number(view.getBigUint64(MAX_ROWS * BUCKETS * 8, true));
    if (perFunction) {
      entry.names.forEach((name, i) => {
        const h = { function: name, log2: log2Histogram(row(i)) };
        if (h.log2.count > 0) out.push(h);
      });
    } else {
      row(0).forEach((n, b) => (total[b] += n));
    }
  }
  if (!perFunction) {
    const h = { function: null, log2: log2Histogram(total) };
    if (h.log2.count > 0) out.push(h);
  }
  return { histograms: out.sort((a, b) => b.log2.count - a.log2.count), unmatched };
}

/** Bucket 0 holds 0 ns; bucket b ≥ 1 holds [2^(b-1), 2^b) (log2Histogram's default). */
function toJson(h: Row): Histogram {
  return { function: h.function, count: h.log2.count, buckets: h.log2.buckets.filter((b) => b.count > 0) };
}

/** The shared renderer, every bucket between the first and the last so the shape reads right; the CLI's columns and labels ([0, 1) rather than bpftrace's [0]). */
function render(h: Row): string {
  const title = bold(`${h.function ?? 'all functions'}: ${int(h.log2.count)} calls, latency in ns`) + dim(' (1K = 1.02 µs, 1M = 1.05 ms)');
  const rows = renderHistogram(h.log2, {
    labelWidth: 15,
    countWidth: 9,
    roundBars: true,
    label: (b) => `[${pow2Label(b.from)}, ${pow2Label(b.to)})`,
  });
  return `${title}\n${rows}`;
}
