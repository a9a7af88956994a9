// A CPU-bound Node workload for the profiler benchmark: a fixed amount of work in a few
// named functions, started by a line on stdin (so a profiler can be attached first); it
// prints its own wall time in milliseconds.
import { createInterface } from 'node:readline';

function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

function primes(limit) {
  let count = 0;
  for (let n = 2; n < limit; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return count;
}

function shuffleSort(size) {
  const a = Array.from({ length: size }, (_, i) => (i * 2654435761) % 1000003);
  return a.sort((x, y) => x - y)[size >> 1];
}

function jsonRoundTrip(rounds) {
  let o = { a: [1, 2, 3], b: { c: 'text', d: [true, false, null] } };
  for (let i = 0; i < rounds; i++) o = JSON.parse(JSON.stringify({ ...o, i }));
  return o.i;
}

function work() {
  let sink = 0;
  for (let round = 0; round < 30; round++) {
    sink += fib(27);
    sink += primes(300_000);
    sink += shuffleSort(200_000);
    sink += jsonRoundTrip(20_000);
  }
  return sink;
}

const rl = createInterface({ input: process.stdin });
rl.once('line', () => {
  rl.close();
  const t0 = performance.now();
  const sink = work();
  process.stdout.write(`${(performance.now() - t0).toFixed(1)} ${sink & 1}\n`);
});
