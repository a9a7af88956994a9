// Program and attach types by libbpf's names (`'kprobe'`, `'tracepoint'`, `'trace_fentry'`,
// `'lsm_mac'`…) or numbers. The names come from the core's table (made from the kernel
// constants), read once.
import { num, U32 } from './check.js';
import { BpfError } from './errors.js';
import { addon } from './native.js';

let tables: { prog: Map<string, number>; attach: Map<string, number> } | undefined;

function names() {
  if (!tables) {
    const t = addon.typeNames();
    tables = {
      prog: new Map(t.progTypes.map((r) => [r.name, r.value])),
      attach: new Map(t.attachTypes.map((r) => [r.name, r.value])),
    };
  }
  return tables;
}

function typeNumber(param: string, v: unknown, table: Map<string, number>): number {
  if (typeof v === 'string') {
    const n = table.get(v);
    if (n === undefined) throw new BpfError('EINVAL', `${param} '${v}' is not a name libbpf knows; names: ${[...table.keys()].join(', ')}`);
    return n;
  }
  return num(param, v, U32);
}

/** A program type (`bpf_program__set_type`): a libbpf name or a number. */
export const progTypeOf = (param: string, v: unknown): number => typeNumber(param, v, names().prog);

/** An expected attach type (`bpf_program__set_expected_attach_type`): a libbpf name or a number. */
export const attachTypeOf = (param: string, v: unknown): number => typeNumber(param, v, names().attach);
