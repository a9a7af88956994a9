#!/usr/bin/env node
// The load table: every BPF object under DIR, loaded by `bpftool prog loadall` and by
// nodebpf, as a markdown table with totals and the list of objects bpftool loads and
// nodebpf refuses (with nodebpf's error). Runs on the host and in the matrix guests:
//   node scripts/load-table.mjs DIR [--bpftool /usr/sbin/bpftool] [--json FILE]
//   node test/vm/matrix.mjs --kernel 5.10 --exec 'node scripts/load-table.mjs DIR'
// Columns:
//   bpftool     `bpftool prog loadall OBJ /sys/fs/bpf/<tmp>` (pins removed after)
//   load        nodebpf's one-step `load(path)`
//   configured  what a libbpf front-end does between open and load: maps declared with
//               max_entries 0 sized (perf event arrays to the CPU count, others 10240),
//               stack trace maps without a value size given 127 frames, and programs the
//               kernel refuses turned off one by one (named) while at least one program is
//               left; blank when it is the same as `load`
//   attach      what a skeleton's `__attach()` does, on the object as loaded (configured
//               where needed): every loaded program whose SEC() names its target attached
//               (`perf_event` ones to cpu-clock at 49 Hz on every CPU), then all closed;
//               sections that name no target (`uprobe`, `usdt`, bare `kprobe`…) are left
//               to the front-end's own code, as libbpf leaves them; a program that does
//               not attach is turned off (as front-ends turn off the variant the kernel
//               lacks) and the rest tried again while one is left
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { load, open } from '../dist/index.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { bpftool: { type: 'string', default: '/usr/sbin/bpftool' }, json: { type: 'string' } },
});
if (positionals.length !== 1) {
  console.error('usage: node scripts/load-table.mjs DIR [--bpftool PATH] [--json FILE]');
  process.exit(2);
}
const dir = path.resolve(positionals[0]);
const BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4;
const BPF_MAP_TYPE_STACK_TRACE = 7;
const DEFAULT_MAX_ENTRIES = 10240;
/** libbpf-tools' default --perf-max-stack-depth, in 8-byte addresses. */
const STACK_VALUE_SIZE = 127 * 8;

function objects(d) {
  return readdirSync(d, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => {
      const p = path.join(d, e.name);
      if (e.isDirectory()) return objects(p);
      return e.name.endsWith('.o') && statSync(p).size > 0 ? [p] : [];
    });
}

const oneLine = (s) => s.replace(/\s+/g, ' ').trim().slice(0, 260);

/** bpftool's verdict: ok, or the first libbpf line that says what failed. */
function bpftool(obj) {
  const pins = mkdtempSync('/sys/fs/bpf/load-table-');
  try {
    const r = spawnSync(values.bpftool, ['prog', 'loadall', obj, pins], { encoding: 'utf8', timeout: 300_000 });
    if (r.error) return { ok: false, error: r.error.message };
    if (r.status === 0) return { ok: true };
    const lines = `${r.stderr}\n${r.stdout}`.split('\n').map((l) => l.trim()).filter(Boolean);
    const telling =
      lines.find((l) => /failed to (load|create|resolve|relocate|find)|-E[A-Z]+|invalid|unsupported|unknown/i.test(l) && !/^Error: failed to load object file/.test(l)) ??
      lines.at(-1) ??
      `exit ${r.status}`;
    return { ok: false, error: oneLine(telling) };
  } finally {
    rmSync(pins, { recursive: true, force: true });
  }
}

/** The last verifier line that says why (the log ends with statistics). */
const verifierReason = (log) =>
  log
    ?.split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^(processed \d+ insns|verification time|stack depth|-- END PROG LOAD LOG --)/.test(l))
    .at(-1);

const verdict = (e) => {
  const message = String(e?.message ?? e).split('\n')[0];
  const why = e?.code === 'VERIFIER' ? verifierReason(e.verifierLog) : undefined;
  return {
    ok: false,
    code: e?.code ?? 'THROWN',
    // Not every error names its program as a property yet (UNSUPPORTED, a missing attach
    // target): the message does.
    program: e?.program ?? /program '([^']+)'/.exec(message)?.[1],
    symbol: e?.symbol ?? /kernel function '([^']+)'/.exec(message)?.[1],
    error: oneLine(`${e?.code ?? 'THROWN'}${e?.errno !== undefined ? ` (errno ${e.errno})` : ''}: ${message}${why ? ` [verifier: ${why}]` : ''}`),
  };
};

/** Sections a skeleton cannot attach by itself: nothing after the kind names a target. */
const needsFrontEnd = (section) => !section.includes('/') && section !== 'perf_event';

/** Loads with `options` and attaches what a skeleton would; ok with the number of links. */
async function nodebpfAttach(obj, options) {
  let o;
  try {
    o = await load(obj, options);
  } catch (e) {
    return verdict(e);
  }
  const links = [];
  try {
    for (const p of o.programs.filter((p) => p.loaded !== false && p.autoload !== false && !needsFrontEnd(p.section))) {
      try {
        links.push(p.section === 'perf_event' ? p.attachPerfEvent({ event: 'cpu-clock', frequency: 49 }) : p.attach());
      } catch (e) {
        return { ...verdict(e), program: p.name };
      }
    }
    return { ok: true, links: links.length };
  } finally {
    for (const l of links) await l.closeAsync();
    o.close();
  }
}

async function nodebpfLoad(obj, options) {
  try {
    const o = await load(obj, options);
    o.close();
    return { ok: true };
  } catch (e) {
    return verdict(e);
  }
}

/** Configured as a front-end would (see the header); undefined when there is nothing to configure. */
async function nodebpfConfigured(obj, plain) {
  let spec;
  try {
    spec = await open(obj);
  } catch {
    return undefined; // open fails the same way load did
  }
  const maps = {};
  for (const m of spec.maps) {
    const c = {};
    if (m.maxEntries === 0) c.maxEntries = m.mapType === BPF_MAP_TYPE_PERF_EVENT_ARRAY ? os.availableParallelism() : DEFAULT_MAX_ENTRIES;
    if (m.valueSize === 0 && m.mapType === BPF_MAP_TYPE_STACK_TRACE) c.valueSize = STACK_VALUE_SIZE;
    if (Object.keys(c).length > 0) maps[m.name] = c;
  }
  const sized = Object.keys(maps);
  const off = [];
  let last = sized.length > 0 ? await nodebpfLoad(obj, { maps }) : plain;
  while (!last.ok) {
    // A missing attach target names the function: its program is the BTF-attached one
    // (fentry, fexit, ...) whose section ends in it.
    const culprit =
      last.program ??
      spec.programs.find((p) => !off.includes(p.name) && last.symbol && /^(fentry|fexit|fmod_ret|tp_btf|lsm|iter|freplace)[./]/.test(p.section) && p.section.endsWith(`/${last.symbol}`))?.name;
    const left = spec.programs.filter((p) => !off.includes(p.name));
    if (!culprit || left.length <= 1 || !left.some((p) => p.name === culprit)) break;
    off.push(culprit);
    last = await nodebpfLoad(obj, { maps, programs: Object.fromEntries(off.map((p) => [p, { autoload: false }])) });
  }
  return off.length === 0 && sized.length === 0 ? undefined : { ...last, off, sized, maps };
}

const kernel = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();
const rows = [];
for (const obj of objects(dir)) {
  const name = path.relative(dir, obj);
  const b = bpftool(obj);
  const n = await nodebpfLoad(obj);
  const configured = n.ok ? undefined : await nodebpfConfigured(obj, n);
  const options = configured?.ok
    ? { maps: configured.maps, programs: Object.fromEntries(configured.off.map((p) => [p, { autoload: false }])) }
    : {};
  let attached = n.ok || configured?.ok ? await nodebpfAttach(obj, options) : undefined;
  const attachOff = [];
  while (attached && !attached.ok && attached.program && !attachOff.includes(attached.program)) {
    const loadedOff = Object.keys(options.programs ?? {});
    const candidates = (await open(obj)).programs.filter((p) => !needsFrontEnd(p.section) && !loadedOff.includes(p.name) && !attachOff.includes(p.name));
    if (candidates.length <= 1) break;
    attachOff.push(attached.program);
    const programs = { ...options.programs, ...Object.fromEntries(attachOff.map((p) => [p, { autoload: false }])) };
    const retry = await nodebpfAttach(obj, { ...options, programs });
    attached = retry.ok ? { ...retry, off: [...attachOff] } : retry;
  }
  rows.push({ name, bpftool: b, load: n, configured, attached });
  process.stderr.write(`load-table: ${name}: bpftool ${b.ok ? 'ok' : 'error'}, nodebpf ${n.ok ? 'ok' : n.code}, attach ${attached ? (attached.ok ? 'ok' : attached.code) : '-'}\n`);
}

const cell = (v) => (v.ok ? 'ok' : `✗ ${v.error}`).replace(/\|/g, '\\|');
const configuredCell = (c) => {
  if (!c) return '';
  const how = [c.sized.length ? `sized ${c.sized.join(', ')}` : '', c.off.length ? `off ${c.off.join(', ')}` : ''].filter(Boolean).join('; ');
  return `${c.ok ? 'ok' : `✗ ${c.error}`}${how ? ` (${how})` : ''}`.replace(/\|/g, '\\|');
};
const count = (f) => rows.filter(f).length;
const out = [];
out.push(`### load table: ${dir} on ${kernel}`, '');
const attachCell = (a) => (!a ? '' : a.ok ? `ok (${a.links} links${a.off ? `; off ${a.off.join(', ')}` : ''})` : `✗ ${a.program ? `${a.program}: ` : ''}${a.error}`).replace(/\|/g, '\\|');
out.push('| object | bpftool | nodebpf load | nodebpf configured | nodebpf attach |', '| --- | --- | --- | --- | --- |');
for (const r of rows) out.push(`| ${r.name} | ${cell(r.bpftool)} | ${cell(r.load)} | ${configuredCell(r.configured)} | ${attachCell(r.attached)} |`);
const configuredOk = count((r) => r.load.ok || r.configured?.ok);
out.push(`| **total ${rows.length}** | **${count((r) => r.bpftool.ok)} ok** | **${count((r) => r.load.ok)} ok** | **${configuredOk} ok (load or configured)** | **${count((r) => r.attached?.ok)} attached** |`);
const refused = rows.filter((r) => r.bpftool.ok && !r.load.ok);
out.push('', `bpftool loads, nodebpf refuses (${refused.length}):`);
for (const r of refused) out.push(`- ${r.name}: ${r.load.error}${r.configured?.ok ? ` (loads configured: ${configuredCell(r.configured)})` : ''}`);
const extra = rows.filter((r) => !r.bpftool.ok && r.load.ok);
if (extra.length) out.push('', `nodebpf loads, bpftool refuses (${extra.length}): ${extra.map((r) => r.name).join(', ')}`);
console.log(out.join('\n'));
if (values.json) writeFileSync(values.json, JSON.stringify({ kernel, dir, rows }, null, 1));
const unattached = rows.filter((r) => r.attached && !r.attached.ok);
if (unattached.length) {
  console.log('', `loaded, not attached (${unattached.length}):`);
  for (const r of unattached) console.log(`- ${r.name}: ${attachCell(r.attached)}`);
}
