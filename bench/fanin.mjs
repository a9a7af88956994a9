// Fan-in benchmark: 1, 2, … all CPUs producing into one shared ring buffer, against one
// ring per CPU read as one stream (nodebpf.bpf.h's NODEBPF_RINGBUF_PER_CPU). Producers are
// trigger processes pinned one per CPU making getppids back to back (bench/fanin_bench.bpf.c
// emits 4,096 16-byte records per getppid, never waiting for room); the consumer is
// `batch.forEach` over `rb.batches()`. Reported per setup (median of ROUNDS runs): what the
// BPF side attempted per second (its throughput, where a shared ring's lock shows), what
// reached JS per second, and the share the rings refused (counted BPF-side).
//   node bench/fanin.mjs
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';

import { load } from '../dist/index.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const OBJ = path.join(root, 'bench/build/fanin_bench.bpf.o');
const TRIGGER = path.join(root, 'test/fixtures/build/syscalls');
const PER = 4096;
/** getppids per producer: 10 M records each. */
const TRIGGERS = Math.ceil(10_000_000 / PER);
const ROUNDS = Number(process.env.FANIN_BENCH_ROUNDS ?? 3);

execFileSync('make', ['-s', '-C', path.join(root, 'bench')], { stdio: 'inherit' });

function onlineCpus() {
  return readFileSync('/sys/devices/system/cpu/online', 'utf8')
    .trim()
    .split(',')
    .flatMap((part) => {
      const [a, b = a] = part.split('-').map(Number);
      return Array.from({ length: b - a + 1 }, (_, i) => a + i);
    });
}

async function run(cpus, perCpu) {
  const obj = await load(OBJ, { globals: { parent_tgid: process.pid, per_trigger: PER, per_cpu: perCpu ? 1 : 0 } });
  obj.program('produce').attach();
  const rb = obj.ringbuf(perCpu ? 'rings' : 'shared');
  const children = cpus.map((cpu) => spawn('taskset', ['-c', String(cpu), TRIGGER, 'getppid', String(TRIGGERS), '0', '0'], { stdio: ['pipe', 'ignore', 'inherit'] }));
  const exited = Promise.all(children.map((c) => new Promise((r) => c.on('exit', r))));
  let received = 0;
  const count = () => received++;
  const ac = new AbortController();
  const t0 = performance.now();
  for (const c of children) c.stdin.write('go\n');
  void exited.then(() => setImmediate(() => ac.abort()));
  for await (const batch of rb.batches({ signal: ac.signal })) batch.forEach(count);
  await exited;
  const seconds = (performance.now() - t0) / 1000;
  for (let b = rb.poll(); b; b = rb.poll()) b.forEach(count);
  const perCpuAttempts = obj.map('attempted', { key: 'u32', value: 'u64' }).get(0);
  const attempted = perCpuAttempts.reduce((s, n) => s + Number(n), 0);
  const lost = rb.stats().lost ?? 0;
  obj.close();
  if (received + lost !== attempted) throw new Error(`records unaccounted for: ${attempted} attempted, ${received} received, ${lost} lost`);
  return { attempted: attempted / seconds, received: received / seconds, lost: lost / attempted };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const all = onlineCpus();
console.log(`fan-in: ${all.length} CPUs, Linux ${os.release()}, Node ${process.version}; ${TRIGGERS * PER} records per producer, median of ${ROUNDS}`);
console.log('producers  ring          attempted M/s  received M/s  lost');
for (let n = 1; n <= all.length; n++) {
  const cpus = all.slice(0, n);
  for (const perCpu of [false, true]) {
    const runs = [];
    for (let i = 0; i < ROUNDS; i++) runs.push(await run(cpus, perCpu));
    const m = (k) => median(runs.map((r) => r[k]));
    console.log(
      `${String(n).padStart(9)}  ${(perCpu ? 'one per CPU' : 'one shared').padEnd(12)}  ${(m('attempted') / 1e6).toFixed(1).padStart(13)}  ${(m('received') / 1e6).toFixed(1).padStart(12)}  ${(100 * m('lost')).toFixed(1).padStart(4)} %`,
    );
  }
}
