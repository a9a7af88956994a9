// Ring-buffer delivery benchmark: one BPF producer, four consumers, run side by side.
//   (a) libbpf ring_buffer__poll in C   (b) nodebpf's Rust consumer
//   (c) nodebpf batches in JS, touching every record   (d) nodebpf per-record `for await`
// Every consumer checks that sequence numbers arrive contiguous and counts what the BPF
// side failed to output. Prints one line per consumer and the ratios to (a).
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';

import { load } from '../dist/index.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const OBJ = path.join(root, 'bench/build/ringbuf_bench.bpf.o');
const TRIGGER = path.join(root, 'test/fixtures/build/syscalls');
const TOTAL = Number(process.env.RINGBUF_BENCH_RECORDS ?? 10_000_000);

execFileSync('make', ['-s', '-C', path.join(root, 'bench')], { stdio: 'inherit' });
execFileSync('cargo', ['build', '--release', '-q', '--example', 'ringbuf_consumer'], { cwd: root, stdio: 'inherit' });

function external(cmd) {
  const [received, seconds, dropped, errors] = execFileSync(cmd, [OBJ, TRIGGER, String(TOTAL)], { encoding: 'utf8' })
    .trim()
    .split(' ')
    .map(Number);
  return { received, seconds, dropped, errors };
}

async function js(mode) {
  const child = spawn(TRIGGER, ['getppid', '1000000000000'], { stdio: ['pipe', 'ignore', 'inherit'] });
  const obj = await load(OBJ, { globals: { target_tgid: child.pid, total: BigInt(TOTAL) } });
  obj.program('produce').attach();
  const rb = obj.ringbuf('records');
  let received = 0;
  let next = 0n;
  let errors = 0;
  const t0 = performance.now();
  child.stdin.write('go\n');
  if (mode === 'batch') {
    outer: for await (const batch of rb.batches()) {
      batch.forEach((view, off, len) => {
        const seq = view.getBigUint64(off, true);
        if (len !== 16 || seq !== next || view.getBigUint64(off + 8, true) !== seq * 3n) errors++;
        next = seq + 1n;
        received++;
      });
      if (received >= TOTAL) break outer;
    }
  } else {
    for await (const rec of rb) {
      const view = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
      const seq = view.getBigUint64(0, true);
      if (rec.byteLength !== 16 || seq !== next || view.getBigUint64(8, true) !== seq * 3n) errors++;
      next = seq + 1n;
      if (++received >= TOTAL) break;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  child.kill('SIGKILL');
  const bss = obj.maps.find((m) => m.name.endsWith('.bss'));
  const raw = obj.map(bss.name).get(new Uint8Array(4));
  const dropped = Number(new DataView(raw.buffer, raw.byteOffset).getBigUint64(8, true));
  obj.close();
  return { received, seconds, dropped, errors };
}

const consumers = [
  ['libbpf', 'C, libbpf ring_buffer__poll', () => external(path.join(root, 'bench/build/libbpf_consumer'))],
  ['rust', 'nodebpf Rust consumer', () => external(path.join(root, 'target/release/examples/ringbuf_consumer'))],
  ['js-batch', 'nodebpf JS batches, every record read', () => js('batch')],
  ['js-record', 'nodebpf JS per-record for await', () => js('record')],
];

console.log(`ring buffer: ${TOTAL.toLocaleString('en')} records of 16 bytes; ${os.cpus().length} CPUs, Linux ${os.release()}`);
const rates = {};
let failed = false;
for (const [name, label, run] of consumers) {
  const r = await run();
  const rate = r.received / r.seconds;
  rates[name] = rate;
  const ok = r.received === TOTAL && r.errors === 0 && r.dropped === 0;
  failed ||= !ok;
  console.log(
    `${name.padEnd(10)} ${(rate / 1e6).toFixed(2).padStart(6)} M records/s  ${r.seconds.toFixed(2)} s  ` +
      `received ${r.received} dropped ${r.dropped} out-of-order ${r.errors}  (${label})`,
  );
}
for (const name of ['rust', 'js-batch', 'js-record']) {
  console.log(`ratio ${name}/libbpf = ${(rates[name] / rates.libbpf).toFixed(2)}`);
}
if (failed) {
  console.error('a consumer lost or reordered records');
  process.exit(1);
}
