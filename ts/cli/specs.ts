// Probe specs as bpftrace writes them, and attaching a CLI program to one: through the
// batch links where the kernel has them (the library falls back where it does not).
import { readdirSync, realpathSync } from 'node:fs';
import path from 'node:path';

import { BpfError, features, type BpfObject, type Link, type MultiLink, type MultiSkipped } from 'nodebpf';

import { Status, int } from './term.js';
import { UsageError } from './usage.js';

export type ProbeKind = 'kprobe' | 'kretprobe' | 'uprobe' | 'uretprobe' | 'fentry' | 'fexit' | 'tracepoint';

export interface ProbeSpec {
  text: string;
  kind: ProbeKind;
  /** uprobe/uretprobe: the binary or library (path, or a name the loader finds). */
  binary?: string;
  /** Functions (glob); for tracepoints CATEGORY:NAME (globs). */
  pattern: string;
}

const KINDS: Record<string, ProbeKind> = {
  k: 'kprobe',
  kprobe: 'kprobe',
  kr: 'kretprobe',
  kretprobe: 'kretprobe',
  u: 'uprobe',
  uprobe: 'uprobe',
  ur: 'uretprobe',
  uretprobe: 'uretprobe',
  f: 'fentry',
  fentry: 'fentry',
  kfunc: 'fentry',
  fr: 'fexit',
  fexit: 'fexit',
  kretfunc: 'fexit',
  t: 'tracepoint',
  tracepoint: 'tracepoint',
};

export const SPEC_HELP = `probe specs (globs allowed in names):
  kprobe:PATTERN  kretprobe:PATTERN          kernel functions (kprobe_multi)
  uprobe:BINARY:PATTERN  uretprobe:BINARY:PATTERN   user functions (uprobe_multi)
  fentry:PATTERN  fexit:PATTERN              kernel functions through BPF trampolines
                                             (tracing_multi; MODULE:PATTERN for a module)
  tracepoint:CATEGORY:NAME                   kernel tracepoints
  short forms: k: kr: u: ur: f: fr: t:`;

export function parseSpec(text: string): ProbeSpec {
  const colon = text.indexOf(':');
  const kind = colon > 0 ? KINDS[text.slice(0, colon)] : undefined;
  if (!kind) throw new UsageError(`'${text}' is not a probe spec\n${SPEC_HELP}`);
  const rest = text.slice(colon + 1);
  if (kind === 'uprobe' || kind === 'uretprobe') {
    const last = rest.lastIndexOf(':');
    if (last <= 0 || last === rest.length - 1) throw new UsageError(`'${text}': write ${kind}:BINARY:PATTERN`);
    return { text, kind, binary: rest.slice(0, last), pattern: rest.slice(last + 1) };
  }
  if (kind === 'tracepoint' && !/^[^:]+:[^:]+$/.test(rest)) throw new UsageError(`'${text}': write tracepoint:CATEGORY:NAME`);
  if (!rest) throw new UsageError(`'${text}': give a function name or pattern after '${kind}:'`);
  return { text, kind, pattern: rest };
}

export const isReturn = (k: ProbeKind) => k === 'kretprobe' || k === 'uretprobe' || k === 'fexit';
export const family = (k: ProbeKind) =>
  k === 'kprobe' || k === 'kretprobe' ? 'kprobe' : k === 'uprobe' || k === 'uretprobe' ? 'uprobe' : k === 'tracepoint' ? 'tracepoint' : 'tracing';

/** The entry and the return kind of each function family (tracepoints have no return). */
export const SIDES = {
  kprobe: ['kprobe', 'kretprobe'],
  uprobe: ['uprobe', 'uretprobe'],
  tracing: ['fentry', 'fexit'],
} as const satisfies Record<string, readonly [ProbeKind, ProbeKind]>;

/** What one program attached to one spec's targets. */
export interface Attachment {
  spec: ProbeSpec;
  /** Target names by cookie. */
  names: string[];
  skipped: MultiSkipped[];
  mechanism: string;
  kernelLinks: number;
  seconds: number;
  /** For attaching a second program (the return side) to exactly the same targets. */
  readonly multi?: MultiLink;
  /** Detaches off the JS thread; resolves once the kernel has let go. */
  close(): Promise<void>;
}

export interface AttachOptions {
  retprobe: boolean;
  /** One program at entry and return (kprobe/uprobe sessions; fsession programs are sessions by section). */
  session?: boolean;
  pid?: number;
  status: Status;
  /** Attach to the targets of this earlier attachment, with the same cookies. */
  like?: Attachment;
  /** Tracepoints: called before each is attached with the cookie it gets (a skipped one's is reused). */
  beforeTracepoint?: (cookie: number, category: string, name: string) => void;
}

/** Whether `binary` (a path, or a name on PATH) is the node running nodebpf itself. */
function isOwnBinary(binary: string): boolean {
  const self = realpathSync(process.execPath);
  const candidates = binary.includes('/') ? [binary] : (process.env.PATH ?? '').split(':').map((d) => path.join(d, binary));
  for (const c of candidates) {
    try {
      return realpathSync(c) === self;
    } catch {
      // not there: next
    }
  }
  return false;
}

export async function attachSpec(obj: BpfObject, program: string, spec: ProbeSpec, o: AttachOptions): Promise<Attachment> {
  const started = performance.now();
  if (family(spec.kind) === 'uprobe' && o.pid === undefined && !o.like && spec.binary && isOwnBinary(spec.binary)) {
    o.status.done(
      `${spec.text}: nodebpf itself runs ${process.execPath}: system-wide, its own calls hit these probes too and slow it down; pass --pid or -- CMD`,
    );
  }
  o.status.show(`attaching ${spec.text} ...`);
  const prog = obj.program(program);
  const like = o.like?.multi;
  const cookies = like?.targets.map((t) => t.cookie);
  // Reported only while a fallback works per target: the batch links are one syscall.
  const progress = (how: string) => (done: number, total: number) =>
    o.status.show(`attaching ${spec.text}: ${int(done)}/${int(total)} functions (${how})`);
  let link: MultiLink;
  switch (family(spec.kind)) {
    case 'kprobe': {
      const byAddress = like?.targets.every((t) => t.address !== 0n);
      link = await prog.attachKprobeMultiAsync({
        ...(like
          ? byAddress
            ? { addresses: like.targets.map((t) => t.address), cookies }
            : { symbols: like.targets.map((t) => t.name), cookies }
          : { symbols: spec.pattern, session: o.session }),
        retprobe: o.retprobe,
        onProgress: progress('one perf kprobe each'),
      });
      break;
    }
    case 'uprobe':
      link = await prog.attachUprobeMultiAsync({
        binary: spec.binary ?? '',
        ...(like ? { offsets: like.targets.map((t) => t.address), cookies } : { symbols: spec.pattern }),
        pid: o.pid,
        retprobe: o.retprobe,
        session: o.session,
        onProgress: progress('one perf uprobe each'),
      });
      break;
    case 'tracing': {
      const [module, functions] = spec.pattern.includes(':') ? spec.pattern.split(':', 2) : [undefined, spec.pattern];
      link = await prog.attachTracingMultiAsync({
        module,
        ...(like ? { btfIds: like.targets.map((t) => Number(t.address)), cookies } : { functions }),
        onProgress: progress('one fentry program each'),
      });
      break;
    }
    case 'tracepoint':
      return attachTracepoints(obj, program, spec, started, o.beforeTracepoint);
  }
  // The programs tell targets apart by cookie: a kernel without cookies (before 5.15)
  // gives them all 0, so counting several would be counting them as one.
  const f = await features();
  if (!f.bpfCookie && link.targets.length > 1) {
    await link.closeAsync();
    throw new BpfError(
      'UNSUPPORTED',
      `${spec.text} matched ${int(link.targets.length)} functions, and this kernel (${f.kernel}) has no attach cookies to tell them apart (features().bpfCookie is false; Linux 5.15+): name one function per spec`,
    );
  }
  // The programs index by cookie; the return side's targets carry the entry side's names
  // (and cookies).
  const names: string[] = o.like ? o.like.names : [];
  if (!o.like) for (const t of link.targets) names[Number(t.cookie)] = t.name;
  return {
    spec,
    names,
    skipped: link.skipped,
    mechanism: o.session || prog.section.startsWith('fsession') ? `${link.mechanism} session` : link.mechanism,
    kernelLinks: link.kernelLinks,
    seconds: (performance.now() - started) / 1000,
    multi: link,
    close: () => link.closeAsync(),
  };
}

function tracefsEvents(): string {
  for (const dir of ['/sys/kernel/tracing/events', '/sys/kernel/debug/tracing/events']) {
    try {
      readdirSync(dir);
      return dir;
    } catch {
      // try the next
    }
  }
  throw new UsageError('tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)');
}

export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/** The tracepoints CATEGORY:NAME (globs) names, as [category, name], and the tracefs events folder. */
export function matchTracepoints(pattern: string): { root: string; events: [string, string][] } {
  const [cat, name] = pattern.split(':');
  const root = tracefsEvents();
  const catRe = globToRegExp(cat);
  const nameRe = globToRegExp(name);
  const events: [string, string][] = [];
  for (const c of readdirSync(root, { withFileTypes: true })) {
    if (!c.isDirectory() || !catRe.test(c.name)) continue;
    for (const e of readdirSync(`${root}/${c.name}`, { withFileTypes: true })) {
      if (e.isDirectory() && nameRe.test(e.name)) events.push([c.name, e.name]);
    }
  }
  if (events.length === 0) throw new UsageError(`no tracepoint matches '${pattern}' (see ${root})`);
  return { root, events };
}

function attachTracepoints(obj: BpfObject, program: string, spec: ProbeSpec, started: number, before?: AttachOptions['beforeTracepoint']): Attachment {
  const { events } = matchTracepoints(spec.pattern);
  const prog = obj.program(program);
  const links: Link[] = [];
  const skipped: MultiSkipped[] = [];
  const names: string[] = [];
  try {
    for (const [c, e] of events) {
      try {
        before?.(names.length, c, e);
        links.push(prog.attachTracepoint(c, e, { cookie: names.length }));
        names.push(`${c}:${e}`);
      } catch (err) {
        if (events.length === 1) throw err;
        skipped.push({ name: `${c}:${e}`, reason: err instanceof Error ? err.message : String(err) });
      }
    }
  } catch (err) {
    for (const l of links) l.close();
    throw err;
  }
  return {
    spec,
    names,
    skipped,
    mechanism: 'tracepoint',
    kernelLinks: links.length,
    seconds: (performance.now() - started) / 1000,
    close: async () => {
      await Promise.all(links.map((l) => l.closeAsync()));
    },
  };
}

/** `notrace: 1,100, duplicate name: 104` from the skip reasons. */
export function skipSummary(skipped: MultiSkipped[]): string {
  const counts = new Map<string, number>();
  for (const s of skipped) {
    const r = s.reason;
    const key = /trampoline runs it/.test(r)
      ? 'run by the BPF trampoline'
      : /not in .*BTF/.test(r)
        ? 'not in BTF'
        : /prototype/.test(r)
          ? 'prototype'
          : /several .* have this name/.test(r)
            ? 'duplicate name'
            : /not a traceable|available_filter_functions/.test(r)
              ? 'notrace'
              : /refused/.test(r)
                ? 'refused by the kernel'
                : /no function of that name/.test(r)
                  ? 'not found'
                  : r.split(/[:(]/)[0].trim().slice(0, 40);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${int(n)}`).join(', ');
}
