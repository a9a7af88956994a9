// Ring-buffer delivery benchmark: one BPF producer (bench/ringbuf_bench.bpf.c, which never
// waits for room), libbpf's C consumer and nodebpf's JS consumers side by side, ratios to
// libbpf in the same run.
//   drain      the ring filled (699,000 records of 16 bytes, 16 MiB), then drained, timed;
//              15 rounds. Each consumer reads every record's sequence number.
//   perf       the same drain through a perf buffer (perf_buffer__consume for libbpf), the
//              process pinned to one CPU so one ring holds them in order.
//   sustained  10 M records from a trigger process making getppids as fast as it can
//              (4,096 records each), consumed while produced: records/s and how many
//              the producer could not write (the ring was full); then the same paced
//              to ~4 M records/s, a rate libbpf keeps up with.
// Drains run 3 untimed warm-up rounds first, for every consumer.
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';

import { load } from '../dist/index.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const OBJ = path.join(root, 'bench/build/ringbuf_bench.bpf.o');
const PERF_OBJ = path.join(root, 'bench/build/perfbuf_bench.bpf.o');
/** Perf buffer drains: 16 MiB per CPU, 100 getppids of 4,096 records (32 ring bytes each) per round. */
const PERF_PAGES = 4096;
const PERF_TRIGGERS = 100;
const TRIGGER = path.join(root, 'test/fixtures/build/syscalls');
const LIBBPF = path.join(root, 'bench/build/libbpf_consumer');
/** Records that fill the 16 MiB ring: 24 bytes each with the kernel's header. */
const FILL = 699_000;
const ROUNDS = Number(process.env.RINGBUF_BENCH_ROUNDS ?? 15);
/** Untimed drain rounds first, for every consumer: JS runs its optimized code after them, as a long-lived consumer does. */
const WARMUP = 3;
const TOTAL = Number(process.env.RINGBUF_BENCH_RECORDS ?? 10_000_000);
const PER = 4096;
/**
 * The paced sustained run's pause between getppids: a producer below what every consumer
 * can take (4,096 records per ms, ~4 M/s, what libbpf's consumer sustains unpaced).
 */
const PACED_US = 1000;

execFileSync('make', ['-s', '-C', path.join(root, 'bench')], { stdio: 'inherit' });

function libbpf(args, pinned = false) {
  const [cmd, argv] = pinned ? ['taskset', ['-c', '0', LIBBPF, ...args]] : [LIBBPF, args];
  const [received, seconds, dropped, errors, timed] = execFileSync(cmd, argv, { encoding: 'utf8' }).trim().split(' ').map(Number);
  return { received, seconds, dropped, errors, timed };
}

/** The producer's .bss: attempted, dropped. */
function counters(obj) {
  const bss = obj.maps.find((m) => m.name.endsWith('.bss'));
  const raw = obj.map(bss.name).get(new Uint8Array(4));
  const v = new DataView(raw.buffer, raw.byteOffset);
  return { attempted: Number(v.getBigUint64(0, true)), dropped: Number(v.getBigUint64(8, true)) };
}

/**
 * Sequence numbers as they come (their low 32 bits: enough for 10 M records, and no
 * BigInt per record): gaps must be drops, nothing out of order. Consumers keep these in
 * locals while they walk a batch, as a C callback keeps them in registers.
 */
class Checker {
  received = 0;
  next = 0;
  gaps = 0;
  errors = 0;
}

const finish = (s, c, seconds, timed = s.received) => ({
  received: s.received,
  timed,
  seconds,
  dropped: c.dropped,
  errors: s.errors + (s.gaps + (c.attempted - s.next) !== c.dropped ? 1 : 0),
});

/** The JS consumers, each reading every record's sequence number until `want` records or `signal`. */
const JS = {
  // for (const rec of batch): one reused record.
  'js-iter': async (rb, s, want, signal) => {
    if (s.received >= want) return;
    for await (const batch of rb.batches({ signal })) {
      let { next, gaps, errors, received } = s;
      for (const rec of batch) {
        const seq = rec.view.getUint32(rec.offset, true);
        if (seq < next) errors++;
        gaps += seq - next;
        next = seq + 1;
        received++;
      }
      Object.assign(s, { next, gaps, errors, received });
      if (received >= want) break;
    }
  },
  // batch.forEach((view, offset, length) => …)
  'js-forEach': async (rb, s, want, signal) => {
    let { next, gaps, errors, received } = s;
    const see = (view, off) => {
      const seq = view.getUint32(off, true);
      if (seq < next) errors++;
      gaps += seq - next;
      next = seq + 1;
      received++;
    };
    if (received < want) {
      for await (const batch of rb.batches({ signal })) {
        batch.forEach(see);
        if (received >= want) break;
      }
    }
    Object.assign(s, { next, gaps, errors, received });
  },
  // for await (const seq of rb.events(decode))
  'js-events': async (rb, s, want, signal) => {
    if (s.received >= want) return;
    let { next, gaps, errors, received } = s;
    for await (const seq of rb.events((view, off) => view.getUint32(off, true), { signal })) {
      if (seq < next) errors++;
      gaps += seq - next;
      next = seq + 1;
      if (++received >= want) break;
    }
    Object.assign(s, { next, gaps, errors, received });
  },
  // for await (const rec of rb)
  'js-await': async (rb, s, want, signal) => {
    if (s.received >= want) return;
    let { next, gaps, errors, received } = s;
    for await (const rec of rb.records({ signal })) {
      const seq = rec.view.getUint32(rec.offset, true);
      if (seq < next) errors++;
      gaps += seq - next;
      next = seq + 1;
      if (++received >= want) break;
    }
    Object.assign(s, { next, gaps, errors, received });
  },
};

/** Records left in the ring at the end, checked the same way. */
function drainLeft(rb, s) {
  for (let b = rb.poll(); b; b = rb.poll()) {
    for (const rec of b) {
      const seq = rec.view.getUint32(rec.offset, true);
      if (seq < s.next) s.errors++;
      s.gaps += seq - s.next;
      s.next = seq + 1;
      s.received++;
    }
    b.release();
  }
}

async function jsDrain(consume) {
  const obj = await load(OBJ, { globals: { target_tgid: process.pid, per_trigger: FILL } });
  obj.program('produce').attach();
  const rb = obj.ringbuf('records');
  const s = new Checker();
  let seconds = 0;
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    void process.ppid; // fills the ring
    const t0 = performance.now();
    await consume(rb, s, (i + 1) * FILL);
    if (i >= WARMUP) seconds += (performance.now() - t0) / 1000;
  }
  const r = finish(s, counters(obj), seconds, ROUNDS * FILL);
  obj.close();
  return r;
}

/** Pins this process (every thread) to CPU 0, or lets it run anywhere again. */
const pin = (on) => execFileSync('taskset', ['-a', '-p', '-c', on ? '0' : `0-${os.cpus().length - 1}`, String(process.pid)], { stdio: 'ignore' });

async function jsPerfDrain(consume) {
  const obj = await load(PERF_OBJ, { globals: { target_tgid: process.pid, per_trigger: 4096 } });
  obj.program('produce').attach();
  const pb = obj.perfbuf('records', { pagesPerCpu: PERF_PAGES });
  const s = new Checker();
  let seconds = 0;
  const perRound = PERF_TRIGGERS * 4096;
  pin(true); // one CPU's ring: records in the order they were written
  try {
    for (let i = 0; i < WARMUP + ROUNDS; i++) {
      for (let t = 0; t < PERF_TRIGGERS; t++) void process.ppid;
      const t0 = performance.now();
      await consume(pb, s, (i + 1) * perRound);
      if (i >= WARMUP) seconds += (performance.now() - t0) / 1000;
    }
  } finally {
    pin(false);
  }
  const r = finish(s, counters(obj), seconds, ROUNDS * perRound);
  obj.close();
  return r;
}

async function jsSustained(consume, sleepUs) {
  const triggers = Math.floor(TOTAL / PER);
  const child = spawn(TRIGGER, ['getppid', String(triggers), '0', String(sleepUs)], { stdio: ['pipe', 'ignore', 'inherit'] });
  const exited = new Promise((r) => child.on('exit', r));
  const obj = await load(OBJ, { globals: { target_tgid: child.pid, per_trigger: PER } });
  obj.program('produce').attach();
  const rb = obj.ringbuf('records');
  const s = new Checker();
  const t0 = performance.now();
  child.stdin.write('go\n');
  // Consumes until the trigger has exited, then what is left in the ring.
  const ac = new AbortController();
  void exited.then(() => setImmediate(() => ac.abort()));
  await consume(rb, s, triggers * PER, ac.signal);
  await exited;
  drainLeft(rb, s);
  const r = finish(s, counters(obj), (performance.now() - t0) / 1000);
  obj.close();
  return r;
}

const rate = (r) => r.timed / r.seconds;
const line = (name, r, ref) =>
  `${name.padEnd(11)} ${(rate(r) / 1e6).toFixed(1).padStart(7)} M rec/s  ${(rate(r) / rate(ref)).toFixed(2).padStart(5)}×  ` +
  `received ${r.received}  dropped ${r.dropped} (${((100 * r.dropped) / (r.received + r.dropped)).toFixed(2)} %)  errors ${r.errors}`;

console.log(`ring buffer, 16-byte records; ${os.cpus().length} CPUs, Linux ${os.release()}, Node ${process.version}`);
let failed = false;
const report = (name, r, ref) => {
  failed ||= r.errors !== 0;
  console.log(line(name, r, ref));
};

console.log(`\ndrain of a filled ring (${ROUNDS} × ${FILL.toLocaleString('en')} records)`);
const refDrain = libbpf(['drain', OBJ, String(ROUNDS), String(FILL), String(WARMUP)]);
report('libbpf', refDrain, refDrain);
for (const [name, consume] of Object.entries(JS)) report(name, await jsDrain(consume), refDrain);

console.log(`\nperf buffer: drain of ${ROUNDS} × ${(PERF_TRIGGERS * 4096).toLocaleString('en')} records (one CPU's ring, ${PERF_PAGES} pages)`);
const refPerf = libbpf(['perfdrain', PERF_OBJ, String(ROUNDS), String(PERF_TRIGGERS), String(PERF_PAGES), String(WARMUP)], true);
report('libbpf', refPerf, refPerf);
for (const [name, consume] of Object.entries(JS)) report(name, await jsPerfDrain(consume), refPerf);

for (const [sleepUs, how] of [
  [0, 'no pacing'],
  [PACED_US, `paced: ${PACED_US} µs between getppids, at most ${(PER / PACED_US).toFixed(1)} M records/s`],
]) {
  console.log(`\nsustained (${TOTAL.toLocaleString('en')} records, ${PER} per getppid, ${how})`);
  const ref = libbpf(['sustained', OBJ, TRIGGER, String(TOTAL), String(PER), String(sleepUs)]);
  report('libbpf', ref, ref);
  for (const [name, consume] of Object.entries(JS)) report(name, await jsSustained(consume, sleepUs), ref);
}
if (failed) {
  console.error('a consumer lost track of records (out of order, or missing without a drop)');
  process.exit(1);
}
