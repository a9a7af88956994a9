#!/usr/bin/env node
// The nodebpf command: funccount, latency, trace, profile and features, on the public API.
import { parseArgs } from 'node:util';

import { BpfError, missingCapabilities } from 'nodebpf';

import { featuresCommand } from './features.js';
import { gen } from './gen.js';
import { funccount } from './funccount.js';
import { latency } from './latency.js';
import { FORMATS, profileCommand } from './profile.js';
import { SPEC_HELP } from './specs.js';
import { red } from './term.js';
import { trace } from './trace.js';
import { TRACE_HELP, UsageError } from './usage.js';

const HELP = `usage: nodebpf COMMAND [options] [SPEC...] [-- COMMAND TO TRACE...]

commands:
  funccount SPEC...   calls per function    [--top N] [--interval S] [--json]
  latency SPEC...     entry→return time as log2 histograms   [--per-function] [--json]
  trace SPEC...       a line per hit        [--args N|TYPES] [--ret] [--filter EXPR] [--json]
  profile             CPU stacks, sampled   [--frequency HZ] [--format ${FORMATS.join('|')}] [--output FILE]
                      [--no-kernel | --no-user] [--perf-map] [--top N]
  offcpu              time blocked, by stack   [--min-block US] and profile's --format, --output, ...
  features            what this kernel supports and what this process may do   [--json]
  gen OBJ.bpf.o       the object's TypeScript skeleton: interfaces, codecs, load<Name>()
                      [--output FILE.ts] [--type NAME]... [--event MAP=TYPE]... [--embed]
                      [--int64 bigint|number-if-safe] [--name NAME]

common options:
  --pid N             only this process
  --duration S        stop after S seconds (else Ctrl-C, or the traced command's exit)
  --verbose           list what was left out, and why
  -- CMD ARGS...      run CMD once the probes are in, trace only it, stop when it exits

${SPEC_HELP}

${TRACE_HELP}

examples:
  nodebpf funccount 'uprobe:libc.so.6:mem*' --duration 5
  nodebpf funccount 'kprobe:vfs_*' --pid 1234
  nodebpf latency 'uprobe:/usr/bin/node:uv_fs_*' --per-function -- node app.js
  nodebpf trace 'uprobe:libc.so.6:open*' --args 2 --ret -- cat /etc/hostname
  nodebpf trace tracepoint:syscalls:sys_enter_openat --filter 'filename==/etc/*' -- cat /etc/hostname
  nodebpf profile --duration 10 --perf-map --output app.pb.gz -- node app.js
  nodebpf profile --pid 1234 --duration 5 --format folded > stacks.folded
  nodebpf offcpu --pid 1234 --duration 5 --min-block 1000
  nodebpf features
  nodebpf gen opensnoop.bpf.o --output opensnoop.ts --type 'struct event'`;

const OPTIONS = {
  pid: { type: 'string' },
  duration: { type: 'string' },
  interval: { type: 'string' },
  top: { type: 'string' },
  args: { type: 'string' },
  ret: { type: 'boolean', default: false },
  'per-function': { type: 'boolean', default: false },
  frequency: { type: 'string' },
  format: { type: 'string' },
  output: { type: 'string', short: 'o' },
  'no-kernel': { type: 'boolean', default: false },
  'no-user': { type: 'boolean', default: false },
  'perf-map': { type: 'boolean', default: false },
  'min-block': { type: 'string' },
  filter: { type: 'string' },
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', short: 'v', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  type: { type: 'string', multiple: true },
  event: { type: 'string', multiple: true },
  embed: { type: 'boolean', default: false },
  int64: { type: 'string' },
  name: { type: 'string' },
} as const;

const ALLOWED: Record<string, (keyof typeof OPTIONS)[]> = {
  funccount: ['pid', 'duration', 'interval', 'top', 'json', 'verbose'],
  latency: ['pid', 'duration', 'per-function', 'json', 'verbose'],
  trace: ['pid', 'duration', 'args', 'ret', 'filter', 'json', 'verbose'],
  profile: ['pid', 'duration', 'frequency', 'format', 'output', 'no-kernel', 'no-user', 'perf-map', 'top', 'verbose'],
  offcpu: ['pid', 'duration', 'format', 'output', 'no-kernel', 'no-user', 'perf-map', 'top', 'min-block', 'verbose'],
  features: ['json'],
  gen: ['output', 'type', 'event', 'embed', 'int64', 'name'],
};

function number(name: string, v: string | undefined, integer = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw new UsageError(`--${name} takes a ${integer ? 'whole ' : ''}number, not '${v}'`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const dash = argv.indexOf('--');
  const command = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values, positionals } = parseArgs({ args: dash >= 0 ? argv.slice(0, dash) : argv, options: OPTIONS, allowPositionals: true, strict: true });
  const [sub, ...specs] = positionals;
  if (values.help || sub === undefined || sub === 'help') {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const allowed = ALLOWED[sub];
  if (!allowed) throw new UsageError(`unknown command '${sub}' (${Object.keys(ALLOWED).join(', ')})`);
  if ((sub === 'profile' || sub === 'offcpu') && specs.length) throw new UsageError(`${sub} takes no probe specs ('${specs[0]}')`);
  for (const [k, v] of Object.entries(values)) {
    const key = k as keyof typeof OPTIONS;
    const option: { type: string; default?: boolean } = OPTIONS[key];
    if (key !== 'help' && v !== option.default && !allowed.includes(key)) throw new UsageError(`${sub} takes no --${k}`);
  }
  if (command.length && (sub === 'features' || sub === 'gen')) throw new UsageError(`${sub} runs no command`);
  const common = {
    pid: number('pid', values.pid, true),
    duration: number('duration', values.duration),
    verbose: values.verbose,
    command,
  };
  switch (sub) {
    case 'features':
      return featuresCommand({ json: values.json });
    case 'gen':
      return gen(specs, { output: values.output, types: values.type ?? [], events: values.event ?? [], embed: values.embed, int64: values.int64, name: values.name });
    case 'funccount':
      return funccount(specs, { ...common, interval: number('interval', values.interval), top: number('top', values.top, true), json: values.json });
    case 'latency':
      return latency(specs, { ...common, perFunction: values['per-function'], json: values.json });
    case 'trace':
      return trace(specs, { ...common, args: values.args, ret: values.ret, filter: values.filter, json: values.json });
    case 'profile':
    case 'offcpu':
      return profileCommand({
        ...common,
        frequency: number('frequency', values.frequency, true),
        format: values.format,
        output: values.output,
        kernel: !values['no-kernel'],
        user: !values['no-user'],
        perfMap: values['perf-map'],
        top: number('top', values.top, true),
        minBlock: number('min-block', values['min-block'], true),
      }, sub === 'profile' ? 'cpu' : 'off-cpu');
  }
}

/** A message for a person: what went wrong, and what to do about it. */
function explain(e: unknown): [string, number] {
  if (e instanceof UsageError) return [`${e.message}\n(nodebpf --help for usage)`, 2];
  if (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS')) return [`${e.message}\n(nodebpf --help for usage)`, 2];
  if (e instanceof BpfError) {
    switch (e.code) {
      case 'EPERM': {
        const missing = missingCapabilities();
        return [
          `${e.message}\nnodebpf needs ${missing.length ? missing.join(' and ') : 'CAP_BPF and CAP_PERFMON'}: run it as root (sudo npx nodebpf ...), ` +
            'or give node the capabilities: sudo setcap cap_bpf,cap_perfmon+ep "$(command -v node)"',
          1,
        ];
      }
      case 'UNSUPPORTED':
        return [`${e.message}\n(nodebpf features shows what this kernel has; kprobe: specs work without BPF trampolines)`, 1];
      default:
        return [e.message, 1];
    }
  }
  return [e instanceof Error ? (e.stack ?? e.message) : String(e), 1];
}

try {
  await main(process.argv.slice(2));
} catch (e) {
  const [message, status] = explain(e);
  process.stderr.write(`${red('nodebpf:')} ${message}\n`);
  process.exitCode = status;
}
