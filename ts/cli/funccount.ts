// nodebpf funccount: calls per function. On a terminal a live table refreshed every
// interval; on a pipe or with --json, JSON lines (per interval when --interval is
// given, and the totals at the end).
import { features, type BpfObject } from 'nodebpf';

import { Session, parseSpecs, readBss, type CommonOptions } from './session.js';
import { attachSpec, isReturn, type Attachment, type ProbeKind } from './specs.js';
import { bold, dim, int, table } from './term.js';

export interface FunccountOptions extends CommonOptions {
  interval?: number;
  top?: number;
  json: boolean;
}

const PROGRAM: Record<ProbeKind, string> = {
  kprobe: 'count_probe',
  kretprobe: 'count_probe',
  uprobe: 'count_probe',
  uretprobe: 'count_probe',
  fentry: 'count_fentry',
  fexit: 'count_fexit',
  tracepoint: 'count_tracepoint',
};

interface Counted {
  attachment: Attachment;
  obj: BpfObject;
}

interface Row {
  probe: string;
  function: string;
  total: number;
  delta: number;
}

export async function funccount(specTexts: string[], o: FunccountOptions): Promise<void> {
  const specs = parseSpecs(specTexts);
  const json = o.json || !process.stdout.isTTY;
  const session = await Session.start(o, json ? 'stderr' : 'inherit');
  try {
    const f = await features();
    const counted: Counted[] = [];
    for (const spec of specs) {
      // One object per spec: each has its own counters, indexed by its own cookies.
      const obj = await session.load('funccount', {});
      const attachment = await attachSpec(obj, PROGRAM[spec.kind], spec, {
        retprobe: isReturn(spec.kind),
        pid: session.pid,
        status: session.status,
      });
      session.attached(attachment, f);
      counted.push({ attachment, obj });
    }
    const multiple = specs.length > 1;
    const previous = new Map<string, number>();
    const started = performance.now();
    let last = started;
    const snapshot = (): Row[] => {
      const rows: Row[] = [];
      for (const { attachment, obj } of counted) {
        const counts = readCounts(obj, attachment.names.length);
        attachment.names.forEach((name, i) => {
          if (counts[i] === 0) return;
          const probe = `${attachment.spec.kind}:${attachment.spec.binary ? `${attachment.spec.binary}:` : ''}${name}`;
          rows.push({ probe, function: multiple ? `${attachment.spec.kind}:${name}` : name, total: counts[i], delta: counts[i] - (previous.get(probe) ?? 0) });
        });
      }
      for (const r of rows) previous.set(r.probe, r.total);
      return rows.sort((a, b) => b.total - a.total || a.function.localeCompare(b.function));
    };

    const interval = o.interval ?? (json ? undefined : 1);
    let timer: NodeJS.Timeout | undefined;
    if (interval !== undefined) {
      timer = setInterval(() => {
        const now = performance.now();
        const rows = snapshot();
        const elapsed = (now - started) / 1000;
        if (json) {
          const changed = rows.filter((r) => r.delta > 0).map((r) => ({ probe: r.probe, function: r.function, count: r.delta, total: r.total }));
          process.stdout.write(`${JSON.stringify({ type: 'interval', elapsed_s: round(elapsed), counts: changed })}\n`);
        } else {
          live(rows, elapsed, (now - last) / 1000, o.top);
        }
        last = now;
      }, interval * 1000);
    }
    session.go();
    const why = await session.until();
    clearInterval(timer);
    const elapsed = (performance.now() - started) / 1000;
    const rows = snapshot();
    await session.close();
    const shown = o.top === undefined ? rows : rows.slice(0, o.top);
    if (json) {
      const counts = shown.map((r) => ({ probe: r.probe, function: r.function, count: r.total }));
      process.stdout.write(`${JSON.stringify({ type: 'total', elapsed_s: round(elapsed), ended: why, counts })}\n`);
    } else {
      // Leave the live table for the totals.
      if (interval !== undefined) process.stdout.write('\x1b[H\x1b[2J');
      process.stdout.write(`${table(['FUNCTION', 'COUNT', 'PER SECOND'], shown.map((r) => [r.function, int(r.total), rate(r.total, elapsed)]))}\n`);
      const calls = rows.reduce((s, r) => s + r.total, 0);
      process.stdout.write(dim(`${int(calls)} call${calls === 1 ? '' : 's'} into ${int(rows.length)} function${rows.length === 1 ? '' : 's'} in ${elapsed.toFixed(1)} s (${why}); all probes detached\n`));
    }
  } finally {
    await session.close();
  }
}

/** The counters of the first `n` targets: one lookup of the object's .bss. */
function readCounts(obj: BpfObject, n: number): number[] {
  const view = readBss(obj);
  return Array.from({ length: n }, (_, i) => Number(view.getBigUint64(i * 8, true)));
}

const round = (s: number) => Math.round(s * 1000) / 1000;
const rate = (n: number, s: number) => (s > 0 ? int(Math.round(n / s)) : '-');

function live(rows: Row[], elapsed: number, since: number, top?: number): void {
  const height = (process.stdout.rows ?? 24) - 4;
  const shown = rows.slice(0, Math.max(1, Math.min(top ?? height, height)));
  const out = [
    `${bold('nodebpf funccount')}  ${elapsed.toFixed(0)} s  ${int(rows.length)} functions called  ${dim('(Ctrl-C to stop)')}`,
    table(['FUNCTION', 'COUNT', 'PER SECOND'], shown.map((r) => [r.function, int(r.total), rate(r.delta, since)])),
  ];
  // Home and clear, then the table: one write, so a refresh never shows half a frame.
  process.stdout.write(`\x1b[H\x1b[2J${out.join('\n')}\n`);
}
