// Batch-attach benchmarks: nodebpf next to the bare BPF_LINK_CREATE syscall on the same
// resolved targets (bench/bare_link.c), in one run.
//   node bench/attach.mjs uprobe    native: uprobe_multi on 50,000 functions; bpftrace on 1,000
//   node bench/attach.mjs kprobe    kprobe_multi on every traceable function (needs kprobe_multi)
//   node bench/attach.mjs tracing   tracing_multi vs per-function fentry (needs 7.2)
// In a TCG guest times are only comparable with each other within one run.
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { load } from '../dist/index.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixture = (n) => path.join(root, 'test/fixtures/build', n);
const BARE = path.join(root, 'bench/build/bare_link');
const mode = process.argv[2] ?? 'uprobe';
const ms = (s) => `${(s * 1000).toFixed(1)} ms`;

function timed(f) {
  const t0 = performance.now();
  const r = f();
  return [r, (performance.now() - t0) / 1000];
}

function bare(args, targets) {
  const file = path.join(os.tmpdir(), `nodebpf-bench-${process.pid}.txt`);
  writeFileSync(file, targets.map((t) => t.address.toString()).join('\n'));
  const [attach, detach, count] = execFileSync(BARE, [...args, file], { encoding: 'utf8' }).trim().split(' ').map(Number);
  return { attach, detach, count };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ratio = (a, b) => (b > 0 ? (a / b).toFixed(2) : '-');

/**
 * Attach, then detach: `close()` returns at once (what the JS thread pays), and the
 * detach is timed until `closeAsync()` says the kernel has let go of every target.
 */
async function measure(attach) {
  const [link, a] = timed(attach);
  const kernelLinks = link.kernelLinks;
  const t0 = performance.now();
  const [, closeCall] = timed(() => link.close());
  await link.closeAsync();
  const d = (performance.now() - t0) / 1000;
  return { link, kernelLinks, attach: a, detach: d, closeCall };
}

/**
 * nodebpf next to the bare syscall on the same targets: the first attach of the process
 * (it reads the kernel's or the binary's symbol lists) on its own, then REPS rounds of
 * nodebpf and bare alternating, reported as medians (single runs on a shared VM vary 2x).
 */
async function compare(name, attach, bareArgs, reps = REPS) {
  const cold = await measure(attach);
  const ours = [];
  const ref = [];
  for (let i = 0; i < reps; i++) {
    ours.push(await measure(attach));
    ref.push(bare(bareArgs, cold.link.targets));
  }
  const m = (xs, k) => median(xs.map((x) => x[k]));
  const r = {
    count: cold.link.targets.length,
    cold: cold.attach,
    attach: m(ours, 'attach'),
    detach: m(ours, 'detach'),
    bareAttach: m(ref, 'attach'),
    bareDetach: m(ref, 'detach'),
  };
  console.log(
    `${name.padEnd(34)} ${String(r.count).padStart(6)} targets  first attach ${ms(r.cold)} (${ratio(r.cold, r.bareAttach)}x)` +
      `  attach ${ms(r.attach)} (bare ${ms(r.bareAttach)}, ${ratio(r.attach, r.bareAttach)}x)` +
      `  detach ${ms(r.detach)} (bare ${ms(r.bareDetach)}, ${ratio(r.detach, r.bareDetach)}x)  [medians of ${reps}]`,
  );
  return { ...r, link: cold.link };
}

const REPS = Number(process.env.REPS ?? 5);
console.log(`attach benchmark (${mode}): ${os.cpus().length} CPUs, Linux ${os.release()}`);
let obj;
execFileSync('make', ['-s', '-C', path.join(root, 'bench')]);
if (mode === 'uprobe') {
  const binary = fixture('many');
  obj = await load(path.join(root, 'bench/build/trivial.bpf.o'));
  const p = obj.program('on_uprobe');
  // The first attach to a binary parses its ELF symbols; later ones reuse them.
  await compare('uprobe_multi, every function', () => p.attachUprobeMulti({ binary, symbols: 'many_*' }), ['uprobe', binary]);
  const k = await compare('uprobe_multi, 1,000 functions', () => p.attachUprobeMulti({ binary, symbols: 'many_1???' }), ['uprobe', binary]);
  const fb = await measure(() => p.attachUprobeMulti({ binary, symbols: 'many_1???', forceFallback: true }));
  console.log(
    `perf uprobes (nodebpf fallback), 1,000 functions: attach ${ms(fb.attach)}, detach ${ms(fb.detach)} ` +
      `(close() itself, on the JS thread: ${ms(fb.closeCall)})`,
  );
  // bpftrace globs only with `*`: name the same 1,000 functions one by one.
  const probes = Array.from({ length: 1000 }, (_, i) => `uprobe:${binary}:many_${1000 + i}`).join(',');
  const script = `${probes} { @c = count(); } BEGIN { exit(); }`;
  const env = { ...process.env, BPFTRACE_MAX_PROBES: '2000' };
  const [bt, total] = timed(() => spawnSync('bpftrace', ['-e', script], { encoding: 'utf8', env }));
  if (bt.error || bt.status !== 0) {
    console.log(`bpftrace: not run (${bt.error?.message ?? bt.stderr.trim().split('\n').slice(-3).join(' ')})`);
  } else {
    const version = execFileSync('bpftrace', ['--version'], { encoding: 'utf8' }).trim();
    console.log(`${version}, 1,000 uprobes (perf, no uprobe_multi): start + attach + detach + exit ${ms(total)}`);
    console.log(`ratio bpftrace / nodebpf uprobe_multi (1,000, attach + detach) = ${(total / (k.attach + k.detach)).toFixed(1)}`);
  }
} else if (mode === 'kprobe') {
  obj = await load(path.join(root, 'bench/build/trivial.bpf.o'));
  const all = await compare('kprobe_multi, every function', () => obj.program('on_kprobe').attachKprobeMulti(), ['kprobe'], 3);
  console.log(`skipped: ${all.link.skipped.length}: ${all.link.skipped.map((s) => `${s.name} (${s.reason})`).join(', ')}`);
} else if (mode === 'tracing') {
  obj = await load(path.join(root, 'bench/build/trivial.bpf.o'));
  const p = obj.program('on_fentry');
  const all = await compare('tracing_multi, every function', () => p.attachTracingMulti(), ['tracing'], 3);
  console.log(`tracing_multi, every function: ${all.link.targets.length} attached, ${all.link.skipped.length} skipped`);
  const reasons = new Map();
  for (const sk of all.link.skipped) {
    const key = sk.reason.replace(/: .*/, '').replace(/argument \d+/, 'argument N');
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  for (const [reason, n] of [...reasons].sort((a, b) => b[1] - a[1])) console.log(`  skipped ${String(n).padStart(5)}: ${reason}`);
  const first = all.link.targets.slice(0, 1000).map((t) => t.name);
  const k = await compare('tracing_multi, 1,000 functions', () => p.attachTracingMulti({ functions: first }), ['tracing']);
  const fb = await measure(() => p.attachTracingMulti({ functions: first, forceFallback: true }));
  console.log(
    `fentry per function (fallback), ${fb.link.targets.length} functions: attach ${ms(fb.attach)}, detach ${ms(fb.detach)}; ` +
      `ratio fallback / tracing_multi: attach ${(fb.attach / k.attach).toFixed(1)}x, detach ${(fb.detach / k.detach).toFixed(1)}x`,
  );
}
obj?.close();
