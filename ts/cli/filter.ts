// nodebpf trace --filter: `NAME OP VALUE` predicates joined by `&&`, on the decoded fields
// (and pid, tid, comm, ret). Checked against the fields' types before the run starts;
// evaluated here on each record the kernel sends, except `pid==N`, which the program
// itself applies (as --pid does) so other processes' records never reach user space.
import { parseInteger } from './flags.js';
import type { Field, Layout, Value } from './fields.js';
import { globToRegExp } from './specs.js';
import { UsageError } from './usage.js';

export type Op = '==' | '!=' | '<' | '>' | '<=' | '>=';

export interface Predicate {
  name: string;
  op: Op;
  literal: string;
  /** Quoted: a string, never a number. */
  quoted: boolean;
}

/** What a predicate sees of one record. */
export interface Subject {
  pid: number;
  tid: number;
  comm: string;
  ret?: bigint;
  values: [Field, Value][];
}

export interface Filter {
  test(s: Subject): boolean;
  /** `pid==N` in the chain: the process the program filters on. */
  kernelPid?: number;
}

const PREDICATE = /\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(==|!=|<=|>=|<|>)\s*("(?:[^"\\]|\\.)*"|'[^']*'|(?:(?!&&)[^"'])*?)\s*(&&|$)/y;

export function parseFilter(text: string): Predicate[] {
  if (/\|\||(^|[^=!<>])!(?!=)|\(/.test(text.replace(/"(?:[^"\\]|\\.)*"|'[^']*'/g, ''))) {
    throw new UsageError(`--filter '${text}': only predicates joined by && (no ||, !, parentheses)`);
  }
  const preds: Predicate[] = [];
  PREDICATE.lastIndex = 0;
  while (PREDICATE.lastIndex < text.length) {
    const at = PREDICATE.lastIndex;
    const m = PREDICATE.exec(text);
    if (!m || (m[3] === '' && m[4] !== '')) {
      throw new UsageError(`--filter: cannot read '${text.slice(at).trim()}': write NAME==VALUE (or != < > <= >=), joined by &&`);
    }
    const raw = m[3];
    const quoted = raw.startsWith('"') || raw.startsWith("'");
    const literal = raw.startsWith('"') ? (JSON.parse(raw) as string) : quoted ? raw.slice(1, -1) : raw.trim();
    if (!quoted && literal === '') throw new UsageError(`--filter: '${m[1]}${m[2]}' has no value`);
    preds.push({ name: m[1], op: m[2] as Op, literal, quoted });
    if (m[4] === '') break;
  }
  if (preds.length === 0) throw new UsageError('--filter: empty');
  return preds;
}

/** The record's own values; `ret` only where there is a return value (else a field's). */
const builtin = (name: string, hasRet: boolean) => name === 'pid' || name === 'tid' || name === 'comm' || (name === 'ret' && hasRet);

/** A field's path: `args.` reaches a field named like a built-in (sched's `pid`). */
const fieldPath = (name: string) => (name.startsWith('args.') ? name.slice('args.'.length) : name);

/** The value of a field (or a struct field's member, `how.flags`) in a record. */
function lookup(values: [Field, Value][], path: string): Value | undefined {
  const [head, member, ...more] = path.split('.');
  if (more.length) return undefined;
  const v = values.find(([f]) => f.name === head)?.[1];
  if (!member || v === undefined) return v;
  return v.t === 'struct' ? v.members.find(([n]) => n === member)?.[1] : undefined;
}

function compare(a: bigint, op: Op, b: bigint): boolean {
  switch (op) {
    case '==':
      return a === b;
    case '!=':
      return a !== b;
    case '<':
      return a < b;
    case '>':
      return a > b;
    case '<=':
      return a <= b;
    case '>=':
      return a >= b;
  }
}

/** An integer literal for this value (a flag field takes its names: O_RDONLY|O_CLOEXEC). */
function intLiteral(p: Predicate, v: Value & { t: 'int' }): bigint | undefined {
  return p.quoted ? undefined : (v.decoder?.parse(p.literal) ?? parseInteger(p.literal));
}

function matches(p: Predicate, v: Value | undefined, glob: RegExp): boolean {
  if (v === undefined || v.t === 'missing') return false;
  switch (v.t) {
    case 'int': {
      const lit = intLiteral(p, v);
      return lit !== undefined && compare(v.v, p.op, lit);
    }
    case 'ptr':
    case 'null': {
      const lit = p.literal === 'NULL' ? 0n : parseInteger(p.literal);
      return lit !== undefined && compare(v.t === 'ptr' ? v.v : 0n, p.op, lit);
    }
    case 'str':
      return glob.test(v.s) === (p.op === '==');
    case 'unreadable':
      // Memory the program could not read equals no string.
      return p.op === '!=';
    default:
      return false;
  }
}

/** Why the predicate cannot apply to this value's type, if it cannot. */
function mismatch(p: Predicate, v: Value): string | undefined {
  const what = `--filter ${p.name}${p.op}${p.literal}`;
  switch (v.t) {
    case 'int':
      return intLiteral(p, v) === undefined ? `${what}: ${p.name} is an integer${v.decoder ? ` (or ${v.decoder.name} names)` : ''}, '${p.literal}' is not` : undefined;
    case 'str':
    case 'unreadable':
      return p.op === '==' || p.op === '!=' ? undefined : `${what}: strings compare with == and != (globs: * ?)`;
    case 'ptr':
    case 'null':
      return p.literal === 'NULL' || parseInteger(p.literal) !== undefined ? undefined : `${what}: ${p.name} is a pointer; compare it with a number`;
    default:
      return `${what}: ${p.name} is not a number or a string`;
  }
}

/** A sample value of each field's type, to check the predicates before the run. */
function sample(f: Field): Value {
  switch (f.kind.t) {
    case 'int':
      return { t: 'int', v: 0n, decoder: f.kind.decoder };
    case 'ptr':
      return { t: 'ptr', v: 0n };
    case 'str':
      return { t: 'str', s: '', truncated: false };
    case 'struct':
      return { t: 'struct', members: f.kind.struct.members.map(([n, , , decoder]) => [n, { t: 'int', v: 0n, decoder }]) };
    case 'array':
    case 'loc':
      return f.kind.chars ? { t: 'str', s: '', truncated: false } : { t: 'list', items: [] };
    case 'bytes':
      return { t: 'bytes', hex: '' };
  }
}

/**
 * The filter of `text` for records of these layouts: a name is pid, tid, comm, ret (with
 * --ret), or a field of at least one of them (a record without it does not match).
 */
export function compileFilter(text: string, layouts: Layout[], hasRet: boolean): Filter {
  const preds = parseFilter(text);
  for (const p of preds) {
    if (builtin(p.name, hasRet)) {
      const problem = mismatch(p, p.name === 'comm' ? { t: 'str', s: '', truncated: false } : { t: 'int', v: 0n });
      if (problem) throw new UsageError(problem);
      continue;
    }
    const path = fieldPath(p.name);
    const samples = layouts.flatMap((l) => l.fields.map((f): [Field, Value] => [f, sample(f)])).filter(([f]) => f.name === path.split('.')[0]);
    const found = samples.map(([f, v]) => lookup([[f, v]], path)).filter((v): v is Value => v !== undefined);
    if (found.length === 0) {
      const names = [...new Set(layouts.flatMap((l) => l.fields.map((f) => f.name)))];
      const why = p.name === 'ret' ? ' (a function\'s return value needs --ret or a return probe)' : '';
      throw new UsageError(`--filter: no field '${p.name}'${why} (names: ${['pid', 'tid', 'comm', ...(hasRet ? ['ret'] : []), ...names].join(', ')})`);
    }
    for (const v of found) {
      const problem = mismatch(p, v);
      if (problem) throw new UsageError(problem);
    }
  }
  const pids = preds.filter((p) => p.name === 'pid' && p.op === '==').map((p) => parseInteger(p.literal)!);
  const kernelPid = pids.length && pids.every((p) => p === pids[0]) && pids[0] > 0n && pids[0] <= 0xffffffffn ? Number(pids[0]) : undefined;
  const globs = preds.map((p) => globToRegExp(p.literal));
  return {
    kernelPid,
    test(s) {
      return preds.every((p, i) => {
        switch (builtin(p.name, hasRet) ? p.name : '') {
          case 'pid':
            return compare(BigInt(s.pid), p.op, parseInteger(p.literal)!);
          case 'tid':
            return compare(BigInt(s.tid), p.op, parseInteger(p.literal)!);
          case 'ret':
            return s.ret !== undefined && compare(s.ret, p.op, parseInteger(p.literal)!);
          case 'comm':
            return globs[i].test(s.comm) === (p.op === '==');
          default:
            return matches(p, lookup(s.values, fieldPath(p.name)), globs[i]);
        }
      });
    },
  };
}
