// Profiler overhead and agreement: the CPU-bound Node workload of bench/profile-workload.mjs
// (fixed work, its own wall time), unprofiled, profiled by nodebpf at 99 and 999 Hz, and
// by Debian's `perf record -F 99 -g` on the same process; medians of ROUNDS runs, ratios
// to the unprofiled runs of the same session. Every run, profiled or not, has V8 write a
// perf map (--perf-basic-prof-only-functions --interpreted-frames-native-stack), so the
// baseline pays what the profiled runs pay for naming JS functions. Then the top 10
// functions by self time, nodebpf at 99 Hz beside perf.
//   node bench/profile.mjs
import { execFileSync, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { profile } from '../dist/index.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORKLOAD = path.join(root, 'bench/profile-workload.mjs');
const FLAGS = ['--perf-basic-prof-only-functions', '--interpreted-frames-native-stack'];
const ROUNDS = Number(process.env.PROFILE_BENCH_ROUNDS ?? 5);
const PERF_DATA = path.join(os.tmpdir(), `nodebpf-bench-${process.pid}.perf.data`);

/** Starts the workload held at its stdin; `go()` lets it run, `done` resolves with its wall time (ms). */
function workload() {
  const child = spawn(process.execPath, [...FLAGS, WORKLOAD], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const done = new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve(Number(out.split(' ')[0])) : reject(new Error(`workload exited ${code}`)))));
  return { pid: child.pid, go: () => child.stdin.end('go\n'), done };
}

async function unprofiled() {
  const w = workload();
  await new Promise((r) => setTimeout(r, 200));
  w.go();
  return { ms: await w.done };
}

async function nodebpf(frequency) {
  const w = workload();
  await new Promise((r) => setTimeout(r, 200));
  const stop = new AbortController();
  const running = profile({ pid: w.pid, frequency, signal: stop.signal });
  await new Promise((r) => setTimeout(r, 300)); // loaded and attached
  // This process's own CPU while the workload runs: the drains and the symbolizing.
  const cpu0 = process.cpuUsage();
  w.go();
  const ms = await w.done;
  const cpu = process.cpuUsage(cpu0);
  stop.abort();
  return { ms, profile: await running, cpuShare: (cpu.user + cpu.system) / 1000 / ms };
}

async function perf() {
  const w = workload();
  await new Promise((r) => setTimeout(r, 200));
  const rec = spawn('perf', ['record', '-F', '99', '-g', '-o', PERF_DATA, '-p', String(w.pid)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  w.go();
  const ms = await w.done;
  await new Promise((r) => rec.on('exit', r));
  return { ms };
}

/** perf's functions by self share, from perf report. */
function perfTop() {
  const text = execFileSync('perf', ['report', '-i', PERF_DATA, '--stdio', '--no-children', '--sort', 'sym', '-g', 'none', '--percent-limit', '0.5'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return text
    .split('\n')
    .map((l) => /^\s+([\d.]+)%\s+\[[.k]\]\s+(.*?)\s*$/.exec(l))
    .filter(Boolean)
    .map((m) => ({ name: m[2], self: Number(m[1]) / 100 }));
}

/** One name for both tools: V8's `JS:*name file:line:col` (its tier mark dropped), C++ without arguments. */
const normal = (name) => name.replace(/^JS:[*~^+-]?/, 'JS:').replace(/\(.*$/, '');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

console.log(`profiler overhead: ${os.cpus().length} CPUs, Linux ${os.release()}, Node ${process.version}; medians of ${ROUNDS} runs`);
const runs = { unprofiled: [], 'nodebpf 99 Hz': [], 'nodebpf 999 Hz': [], 'perf -F 99 -g': [] };
const own = { 'nodebpf 99 Hz': [], 'nodebpf 999 Hz': [] };
let last99;
for (let i = 0; i < ROUNDS; i++) {
  runs.unprofiled.push((await unprofiled()).ms);
  const r99 = await nodebpf(99);
  runs['nodebpf 99 Hz'].push(r99.ms);
  own['nodebpf 99 Hz'].push(r99.cpuShare);
  last99 = r99.profile;
  const r999 = await nodebpf(999);
  runs['nodebpf 999 Hz'].push(r999.ms);
  own['nodebpf 999 Hz'].push(r999.cpuShare);
  runs['perf -F 99 -g'].push((await perf()).ms);
}
const base = median(runs.unprofiled);
console.log('                 wall time  ratio   (runs)                        profiler\'s own CPU');
for (const [name, ms] of Object.entries(runs)) {
  const cpu = own[name] ? `${(100 * median(own[name])).toFixed(2)} % of a CPU` : '';
  console.log(`${name.padEnd(16)} ${median(ms).toFixed(0).padStart(7)} ms  ${(median(ms) / base).toFixed(3)}×  (${ms.map((m) => m.toFixed(0)).join(' ')})  ${cpu}`);
}

const ours = last99.top(10).map((r) => ({ name: normal(r.name), self: r.self }));
const theirs = perfTop().slice(0, 10).map((r) => ({ name: normal(r.name), self: r.self }));
rmSync(PERF_DATA, { force: true });
console.log(`\ntop 10 by self time (last run at 99 Hz; ${last99.totals.samples} samples, ${last99.event})`);
console.log(`${'nodebpf'.padEnd(48)} ${'perf'.padEnd(48)}`);
for (let i = 0; i < 10; i++) {
  const a = ours[i] ? `${(100 * ours[i].self).toFixed(1).padStart(5)}% ${ours[i].name.slice(0, 40)}` : '';
  const b = theirs[i] ? `${(100 * theirs[i].self).toFixed(1).padStart(5)}% ${theirs[i].name.slice(0, 40)}` : '';
  console.log(`${a.padEnd(48)} ${b}`);
}
const common = ours.filter((o) => theirs.some((t) => t.name === o.name)).length;
console.log(`\n${common} of nodebpf's top 10 are in perf's top 10`);
