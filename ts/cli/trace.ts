// nodebpf trace: a line per hit, through the ring buffer: time, pid, comm, function or
// tracepoint, its arguments (a tracepoint's fields by name and type from its format file;
// a function's typed by --args, strings read by the program) and (--ret, or a return
// probe) the return value; --filter keeps the hits that match.
import { BpfError, features, type BpfObject, type Codec, type RingBuffer } from 'nodebpf';

import {
  EV,
  EVENT_HEADER,
  MAX_ARGS,
  MAX_MEMS,
  argsLayout,
  commOf,
  CONFIG_SIZE,
  configBytes,
  decodeFields,
  decodedJson,
  marksJson,
  readTracepoint,
  typedArgs,
  valueJson,
  valueText,
  wordsLayout,
  type Field,
  type Layout,
  type RecordAt,
  type Value,
} from './fields.js';
import { compileFilter, type Filter } from './filter.js';
import { Session, parseSpecs, readBss, type CommonOptions } from './session.js';
import { SIDES, attachSpec, family, isReturn, matchTracepoints, type Attachment, type ProbeKind, type ProbeSpec } from './specs.js';
import { dim, int, yellow } from './term.js';
import { UsageError } from './usage.js';

export interface TraceOptions extends CommonOptions {
  /** A count of raw arguments (`2`), or their types (`path:str,n:int`). */
  args?: string;
  ret: boolean;
  json: boolean;
  filter?: string;
}

/** Entries kept for their return (with --ret): threads inside a traced function at once. */
const SAVED_ENTRIES = 16384;
/** What a tracepoint record shows when its format file cannot be read: its first words. */
const RAW_WORDS = 6;
const UNREADABLE_FORMAT = wordsLayout('record', RAW_WORDS);

interface Traced {
  spec: ProbeSpec;
  names: string[];
  obj: BpfObject;
  events: RingBuffer;
  /** Function specs: their arguments' layout. */
  layout?: Layout;
  /** Tracepoints: layouts by CATEGORY:NAME. */
  tracepoints?: Map<string, Layout>;
}

/**
 * Which programs a spec needs: the event is sent by the last one. A return spec with
 * --args has an entry side too (the arguments are gone at the return).
 */
function plan(kind: ProbeKind, ret: boolean, args: boolean): { kind: ProbeKind; program: string; retprobe: boolean }[] {
  switch (family(kind)) {
    case 'kprobe':
    case 'uprobe': {
      const [entry, exit] = SIDES[family(kind) === 'kprobe' ? 'kprobe' : 'uprobe'];
      const first = { kind: entry, program: 'entry_probe', retprobe: false };
      const last = { kind: exit, program: 'return_probe', retprobe: true };
      if (kind === exit) return args ? [first, last] : [last];
      return ret ? [first, last] : [first];
    }
    case 'tracing':
      return kind === 'fexit' || ret ? [{ kind: 'fexit', program: 'return_fexit', retprobe: true }] : [{ kind: 'fentry', program: 'entry_fentry', retprobe: false }];
    default:
      if (ret) throw new UsageError('tracepoints have no return value: drop --ret');
      return [{ kind, program: 'entry_tracepoint', retprobe: false }];
  }
}

/** A function spec's layout from --args. */
function argsOf(text: string | undefined): Layout {
  if (text === undefined) return wordsLayout('args', 0);
  if (typedArgs(text)) return argsLayout(text);
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > MAX_ARGS) throw new UsageError(`--args takes 0 to ${MAX_ARGS}, or types ('path:str,n:int')`);
  return wordsLayout('args', n);
}

/** A tracepoint spec's layouts, from the format files (unreadable ones: raw words). */
function tracepointsOf(spec: ProbeSpec, verbose: boolean): Map<string, Layout> {
  const { root, events } = matchTracepoints(spec.pattern);
  const layouts = new Map<string, Layout>();
  const unreadable: string[] = [];
  for (const [cat, name] of events) {
    const tp = readTracepoint(root, cat, name);
    if ('error' in tp) {
      unreadable.push(tp.error);
      layouts.set(`${cat}:${name}`, UNREADABLE_FORMAT);
      continue;
    }
    layouts.set(`${cat}:${name}`, tp.layout);
    if (verbose && tp.layout.unread.length) {
      process.stderr.write(dim(`  ${cat}:${name}: ${tp.layout.unread.join(', ')} shown as pointers (${MAX_MEMS} memory reads per record)\n`));
    }
  }
  if (unreadable.length) {
    process.stderr.write(yellow(`${spec.text}: ${int(unreadable.length)} format files unreadable (${unreadable[0]}): their records show raw words\n`));
  }
  return layouts;
}

export async function trace(specTexts: string[], o: TraceOptions): Promise<void> {
  const specs = parseSpecs(specTexts);
  const tracepoints = specs.some((s) => family(s.kind) === 'tracepoint');
  if (tracepoints && o.args !== undefined) {
    throw new UsageError('tracepoints show their fields by name and type (from their format files): --args types function arguments only');
  }
  const layouts = specs.map((spec) => (family(spec.kind) === 'tracepoint' ? { tracepoints: tracepointsOf(spec, o.verbose) } : { layout: argsOf(o.args) }));
  const hasRet = o.ret || specs.some((s) => isReturn(s.kind));
  const all = layouts.flatMap((l) => (l.layout ? [l.layout] : [...l.tracepoints.values()]));
  const filter = o.filter === undefined ? undefined : compileFilter(o.filter, all, hasRet);
  const session = await Session.start(o, o.json ? 'stderr' : 'inherit');
  const abort = new AbortController();
  try {
    const f = await features();
    // The program finds a tracepoint's config by its attach cookie.
    const several = specs.find((s, i) => (layouts[i].tracepoints?.size ?? 0) > 1);
    if (several && !f.bpfCookie) {
      throw new BpfError(
        'UNSUPPORTED',
        `${several.text} matched ${int(layouts[specs.indexOf(several)].tracepoints!.size)} tracepoints, and this kernel (${f.kernel}) has no attach cookies to tell their records apart (features().bpfCookie is false; Linux 5.15+): name one tracepoint per spec`,
      );
    }
    const traced: Traced[] = [];
    // pid==N of --filter is applied by the program, as --pid is.
    const kernelPid = session.pid === undefined ? filter?.kernelPid : undefined;
    for (const [i, spec] of specs.entries()) {
      const steps = plan(spec.kind, o.ret, o.args !== undefined && o.args.trim() !== '0');
      // Kernel and user return probes send at the return what the entry kept.
      const atReturn = steps.length === 2 ? 1 : 0;
      const { layout, tracepoints } = layouts[i];
      const obj = await session.load('trace', { at_return: atReturn, ...(kernelPid ? { target_tgid: kernelPid } : {}) }, {
        configs: { maxEntries: Math.max(1, tracepoints?.size ?? 1) },
        saved: { maxEntries: atReturn ? SAVED_ENTRIES : 1 },
      });
      const configs = configMap(obj);
      if (layout) configs(0, layout);
      let first: Attachment | undefined;
      for (const step of steps) {
        const a = await attachSpec(obj, step.program, { ...spec, kind: step.kind, text: step.kind === spec.kind ? spec.text : `${spec.text} (${step.retprobe ? 'returns' : 'entries'})` }, {
          retprobe: step.retprobe,
          pid: session.pid,
          status: session.status,
          like: first,
          beforeTracepoint: (cookie, cat, name) => configs(cookie, tracepoints?.get(`${cat}:${name}`) ?? UNREADABLE_FORMAT),
        });
        session.attached(a, f);
        first ??= a;
      }
      traced.push({ spec, names: first!.names, obj, events: obj.ringbuf('events'), layout, tracepoints });
    }
    const out: Output = { o, clock: wallClock(), filter, hits: 0, filtered: 0 };
    const readers = traced.map((t) => read(t, out, abort.signal));
    session.go();
    const exit = session.childExit;
    const why = await session.until(Promise.all(readers));
    if (exit) await exit.catch(() => undefined);
    // Stop the readers, then take what is left in the rings (a command that exited has
    // all its records there).
    abort.abort();
    await Promise.allSettled(readers);
    for (const t of traced) drainNow(t, out);
    const lost = traced.reduce((s, t) => s + lostOf(t.obj), 0n);
    await session.close();
    const filtered = out.filtered ? `, ${int(out.filtered)} filtered out` : '';
    process.stderr.write(dim(`${int(out.hits)} hits (${why})${filtered}${lost ? `, ${int(lost)} lost to a full ring buffer` : ''}; all probes detached\n`));
  } finally {
    abort.abort();
    await session.close();
  }
}

/** Tells the program what to read: for a tracepoint (by cookie) or the function spec (0). */
function configMap(obj: BpfObject): (key: number, layout: Layout) => void {
  // Bytes both ways, whatever codecs the map's BTF would give it.
  const bytes = (size: number): Codec<Uint8Array> => ({ size, encode: (v) => v, decode: (b) => b });
  const configs = obj.map('configs', { key: bytes(4), value: bytes(CONFIG_SIZE) });
  return (key, layout) => configs.set(new Uint8Array(new Uint32Array([key]).buffer), configBytes(layout));
}

interface Output {
  o: TraceOptions;
  clock: (ns: bigint) => bigint;
  filter?: Filter;
  hits: number;
  filtered: number;
}

/** ktime (CLOCK_MONOTONIC, as process.hrtime) to wall-clock nanoseconds. */
function wallClock(): (ns: bigint) => bigint {
  const offset = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return (ns) => ns + offset;
}

async function read(t: Traced, out: Output, signal: AbortSignal): Promise<void> {
  try {
    for await (const batch of t.events.batches({ signal })) {
      batch.forEach((view, off, len) => print(t, out, { view, off, len }));
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

function drainNow(t: Traced, out: Output): void {
  for (let b = t.events.poll(); b; b = t.events.poll()) b.forEach((view, off, len) => print(t, out, { view, off, len }));
}

/** A record's target name and layout. */
function layoutOf(t: Traced, target: number): { name: string; layout: Layout } {
  const name = t.names[target] ?? `#${target}`;
  return { name, layout: t.layout ?? t.tracepoints?.get(name) ?? UNREADABLE_FORMAT };
}

function print(t: Traced, out: Output, r: RecordAt): void {
  if (r.len < EVENT_HEADER) return;
  const { view, off } = r;
  const time = out.clock(view.getBigUint64(off + EV.time, true));
  const pid = view.getUint32(off + EV.pid, true);
  const tid = view.getUint32(off + EV.tid, true);
  const target = view.getUint32(off + EV.target, true);
  const hasRet = view.getUint32(off + EV.hasRet, true) !== 0;
  const ret = view.getBigInt64(off + EV.ret, true);
  const comm = commOf(r);
  const { name, layout } = layoutOf(t, target);
  const values = decodeFields(layout, r);
  if (out.filter && !out.filter.test({ pid, tid, comm, ret: hasRet ? ret : undefined, values })) {
    out.filtered++;
    return;
  }
  out.hits++;
  const tracepoint = family(t.spec.kind) === 'tracepoint';
  if (out.o.json) {
    const json = (v: Value) => (layout.words && v.t === 'int' ? jsonNumber(v.v) : valueJson(v));
    const named = !layout.words && values.some(([fl]) => !fl.positional);
    const decoded = decodedJson(values);
    const line = {
      time_ns: time.toString(),
      pid,
      tid,
      comm,
      probe: t.spec.kind,
      function: name,
      args: values.map(([, v]) => json(v)),
      ...(named ? { fields: Object.fromEntries(values.map(([fl, v]) => [fl.name, json(v)])) } : {}),
      ...(Object.keys(decoded).length ? { decoded } : {}),
      ...marksJson(values),
      ...(hasRet ? { ret: jsonNumber(ret) } : {}),
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    return;
  }
  const text = (fl: Field, v: Value) => {
    const shown = layout.words && v.t === 'int' ? num(v.v) : valueText(v);
    return fl.positional ? shown : `${fl.name}=${shown}`;
  };
  const shown = values.filter(([fl]) => !fl.quiet).map(([fl, v]) => text(fl, v));
  const call = tracepoint ? [name, ...shown].join(' ') : `${name}(${shown.join(', ')})`;
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
