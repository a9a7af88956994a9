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

function row(name, count, ours, ref) {
  const ratio = (a, b) => (b > 0 ? (a / b).toFixed(2) : '-');
  console.log(
    `${name.padEnd(34)} ${String(count).padStart(6)} targets  attach ${ms(ours.attach).padStart(10)} (bare ${ms(ref.attach)}, ${ratio(ours.attach, ref.attach)}x)` +
      `  detach ${ms(ours.detach).padStart(10)} (bare ${ms(ref.detach)}, ${ratio(ours.detach, ref.detach)}x)`,
  );
}

function measure(attach) {
  const [link, a] = timed(attach);
  const kernelLinks = link.kernelLinks;
  const [, d] = timed(() => link.close());
  return { link, kernelLinks, attach: a, detach: d };
}

console.log(`attach benchmark (${mode}): ${os.cpus().length} CPUs, Linux ${os.release()}`);
let obj;
if (mode === 'uprobe') {
  execFileSync('make', ['-s', '-C', path.join(root, 'bench')]);
  const binary = fixture('many');
  obj = await load(fixture('uprobe_multi.bpf.o'));
  const p = obj.program('on_entry');
  // The first attach to a binary parses its ELF symbols; later ones reuse them.
  const cold = measure(() => p.attachUprobeMulti({ binary, symbols: 'many_*' }));
  row('uprobe_multi, every function (cold)', cold.link.targets.length, cold, bare(['uprobe', binary], cold.link.targets));
  const all = measure(() => p.attachUprobeMulti({ binary, symbols: 'many_*' }));
  row('uprobe_multi, every function (warm)', all.link.targets.length, all, bare(['uprobe', binary], all.link.targets));
  const k = measure(() => p.attachUprobeMulti({ binary, symbols: 'many_1???' }));
  row('uprobe_multi, 1,000 functions', k.link.targets.length, k, bare(['uprobe', binary], k.link.targets));
  const fb = measure(() => p.attachUprobeMulti({ binary, symbols: 'many_1???', forceFallback: true }));
  console.log(`perf uprobes (nodebpf fallback), 1,000 functions: attach ${ms(fb.attach)}, detach ${ms(fb.detach)}`);
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
  obj = await load(fixture('kprobe_multi.bpf.o'));
  const all = measure(() => obj.program('on_any').attachKprobeMulti());
  console.log(`skipped: ${all.link.skipped.length}, kernel links: ${all.kernelLinks}`);
  row('kprobe_multi, every function', all.link.targets.length, all, bare(['kprobe'], all.link.targets));
} else if (mode === 'tracing') {
  obj = await load(fixture('tracing_multi.bpf.o'));
  const p = obj.program('on_entry');
  const all = measure(() => p.attachTracingMulti());
  console.log(`tracing_multi, every function: ${all.link.targets.length} attached, ${all.link.skipped.length} skipped, ${all.kernelLinks} kernel links`);
  const reasons = new Map();
  for (const sk of all.link.skipped) {
    const key = sk.reason.replace(/: .*/, '').replace(/argument \d+/, 'argument N');
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  for (const [reason, n] of [...reasons].sort((a, b) => b[1] - a[1])) console.log(`  skipped ${String(n).padStart(5)}: ${reason}`);
  row('tracing_multi, every function', all.link.targets.length, all, bare(['tracing'], all.link.targets));
  const first = all.link.targets.slice(0, 1000).map((t) => t.name);
  const k = measure(() => p.attachTracingMulti({ functions: first }));
  row('tracing_multi, 1,000 functions', k.link.targets.length, k, bare(['tracing'], k.link.targets));
  const fb = measure(() => p.attachTracingMulti({ functions: first, forceFallback: true }));
  console.log(
    `fentry per function (fallback), ${fb.link.targets.length} functions: attach ${ms(fb.attach)}, detach ${ms(fb.detach)}; ` +
      `ratio fallback / tracing_multi: attach ${(fb.attach / k.attach).toFixed(1)}x, detach ${(fb.detach / k.detach).toFixed(1)}x`,
  );
}
obj?.close();
