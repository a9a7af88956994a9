// nodebpf trace: a line per hit, through the ring buffer: time, pid, comm, function,
// the first arguments and (--ret, or a return probe) the return value.
import { features, type BpfObject, type ReadonlyDataView, type RingBuffer } from 'nodebpf';

import { Session, parseSpecs, readBss, type CommonOptions } from './session.js';
import { SIDES, attachSpec, family, type Attachment, type ProbeKind, type ProbeSpec } from './specs.js';
import { dim, int } from './term.js';
import { UsageError } from './usage.js';

export interface TraceOptions extends CommonOptions {
  args: number;
  ret: boolean;
  json: boolean;
}

const EVENT_SIZE = 8 + 4 * 4 + 8 + 6 * 8 + 16;

interface Traced {
  spec: ProbeSpec;
  names: string[];
  obj: BpfObject;
  events: RingBuffer;
}

/** Which programs a spec needs: the event is sent by the last one. */
function plan(kind: ProbeKind, ret: boolean): { kind: ProbeKind; program: string; retprobe: boolean }[] {
  switch (family(kind)) {
    case 'kprobe':
    case 'uprobe': {
      const [entry, exit] = SIDES[family(kind) === 'kprobe' ? 'kprobe' : 'uprobe'];
      if (kind === exit) return [{ kind: exit, program: 'return_probe', retprobe: true }];
      const first = { kind: entry, program: 'entry_probe', retprobe: false };
      return ret ? [first, { kind: exit, program: 'return_probe', retprobe: true }] : [first];
    }
    case 'tracing':
      return kind === 'fexit' || ret ? [{ kind: 'fexit', program: 'return_fexit', retprobe: true }] : [{ kind: 'fentry', program: 'entry_fentry', retprobe: false }];
    default:
      if (ret) throw new UsageError('tracepoints have no return value: drop --ret');
      return [{ kind, program: 'entry_tracepoint', retprobe: false }];
  }
}

export async function trace(specTexts: string[], o: TraceOptions): Promise<void> {
  const specs = parseSpecs(specTexts);
  if (!Number.isInteger(o.args) || o.args < 0 || o.args > 6) throw new UsageError('--args takes 0 to 6');
  const session = await Session.start(o, o.json ? 'stderr' : 'inherit');
  const abort = new AbortController();
  try {
    const f = await features();
    const traced: Traced[] = [];
    for (const spec of specs) {
      const steps = plan(spec.kind, o.ret);
      // Kernel and user return probes send at the return what the entry kept.
      const atReturn = steps.length === 2 ? 1 : 0;
      const obj = await session.load('trace', { at_return: atReturn });
      let first: Attachment | undefined;
      for (const step of steps) {
        const a = await attachSpec(obj, step.program, { ...spec, kind: step.kind, text: first ? `${spec.text} (returns)` : spec.text }, {
          retprobe: step.retprobe,
          pid: session.pid,
          status: session.status,
          like: first,
        });
        session.attached(a, f);
        first ??= a;
      }
      traced.push({ spec, names: first!.names, obj, events: obj.ringbuf('events') });
    }
    const clock = wallClock();
    const hits = { n: 0 };
    const readers = traced.map((t) => read(t, o, clock, abort.signal, hits));
    session.go();
    const exit = session.childExit;
    const why = await session.until(Promise.all(readers));
    if (exit) await exit.catch(() => undefined);
    // Stop the readers, then take what is left in the rings (a command that exited has
    // all its records there).
    abort.abort();
    await Promise.allSettled(readers);
    for (const t of traced) drainNow(t, o, clock, hits);
    const lost = traced.reduce((s, t) => s + lostOf(t.obj), 0n);
    await session.close();
    process.stderr.write(dim(`${int(hits.n)} hits (${why})${lost ? `, ${int(lost)} lost to a full ring buffer` : ''}; all probes detached\n`));
  } finally {
    abort.abort();
    await session.close();
  }
}

/** ktime (CLOCK_MONOTONIC, as process.hrtime) to wall-clock nanoseconds. */
function wallClock(): (ns: bigint) => bigint {
  const offset = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return (ns) => ns + offset;
}

async function read(t: Traced, o: TraceOptions, clock: (ns: bigint) => bigint, signal: AbortSignal, hits: { n: number }): Promise<void> {
  try {
    for await (const batch of t.events.batches({ signal })) {
      batch.forEach((view, off) => print(t, o, clock, view, off, hits));
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

function drainNow(t: Traced, o: TraceOptions, clock: (ns: bigint) => bigint, hits: { n: number }): void {
  for (let b = t.events.poll(); b; b = t.events.poll()) b.forEach((view, off) => print(t, o, clock, view, off, hits));
}

const decoder = new TextDecoder();

function print(t: Traced, o: TraceOptions, clock: (ns: bigint) => bigint, view: ReadonlyDataView, off: number, hits: { n: number }): void {
  if (view.byteLength - off < EVENT_SIZE) return;
  hits.n++;
  const time = clock(view.getBigUint64(off, true));
  const pid = view.getUint32(off + 8, true);
  const tid = view.getUint32(off + 12, true);
  const target = view.getUint32(off + 16, true);
  const hasRet = view.getUint32(off + 20, true) !== 0;
  const ret = view.getBigInt64(off + 24, true);
  const args = Array.from({ length: o.args }, (_, i) => view.getBigUint64(off + 32 + i * 8, true));
  const commBytes = new Uint8Array(view.buffer, view.byteOffset + off + 80, 16);
  const end = commBytes.indexOf(0);
  const comm = decoder.decode(commBytes.subarray(0, end < 0 ? 16 : end));
  const name = t.names[target] ?? `#${target}`;
  if (o.json) {
    const line = { time_ns: time.toString(), pid, tid, comm, probe: t.spec.kind, function: name, args: args.map(jsonNumber), ...(hasRet ? { ret: jsonNumber(ret) } : {}) };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    return;
  }
  const call = family(t.spec.kind) === 'tracepoint' ? `${name}${o.args ? ` ${args.map(num).join(' ')}` : ''}` : `${name}(${args.map(num).join(', ')})`;
  process.stdout.write(`${clockText(time)} ${String(pid).padStart(7)} ${String(tid).padStart(7)} ${comm.padEnd(16)} ${call}${hasRet ? ` = ${num(ret)}` : ''}\n`);
}

/** Small values in decimal (negative ones as such), addresses in hex. */
function num(v: bigint): string {
  const signed = BigInt.asIntN(64, v);
  return signed > -0x10000n && signed < 0x100000000n ? signed.toString() : `0x${BigInt.asUintN(64, v).toString(16)}`;
}

function jsonNumber(v: bigint): number | string {
  const signed = BigInt.asIntN(64, v);
  return signed >= BigInt(Number.MIN_SAFE_INTEGER) && signed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(signed) : `0x${BigInt.asUintN(64, v).toString(16)}`;
}

function clockText(ns: bigint): string {
  const d = new Date(Number(ns / 1_000_000n));
  const us = String((ns / 1000n) % 1_000_000n).padStart(6, '0');
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${us}`;
}

function lostOf(obj: BpfObject): bigint {
  return readBss(obj).getBigUint64(0, true);
}
