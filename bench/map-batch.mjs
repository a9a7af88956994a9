// Whole-map reads of a 100,000-entry hash map: one BPF_MAP_LOOKUP_BATCH walk next to key
// by key (BPF_MAP_GET_NEXT_KEY, then BPF_MAP_LOOKUP_ELEM per key: what entries() did
// before), as bytes across the binding and decoded by the facade; writes as one
// BPF_MAP_UPDATE_BATCH next to one update per key. Alternating, medians of ROUNDS.
//   node bench/map-batch.mjs [entries]
import os from 'node:os';

import { createMap, MapType } from '../dist/index.js';

const ENTRIES = Number(process.argv[2] ?? 100_000);
const ROUNDS = 5;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function timed(f) {
  const t0 = performance.now();
  const r = f();
  return [r, performance.now() - t0];
}

const m = createMap(
  { type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: ENTRIES },
  { key: 'u32', value: 'u64' },
);
const n = m._native();
const entries = Array.from({ length: ENTRIES }, (_, k) => [k, BigInt(k) * 3n]);
m.setMany(entries);

const cases = {
  'read, bytes: batch': () => n.lookupBatch().count,
  'read, bytes: key by key': () => n.keys().filter((k) => n.lookup(k) !== null).length,
  'read, decoded: lookupBatch()': () => m.lookupBatch().length,
  'read, decoded: keys() + get()': () => m.keys().filter((k) => m.get(k) !== undefined).length,
  'write: setMany()': () => m.setMany(entries),
  'write: set() per key': () => {
    for (const [k, v] of entries) m.set(k, v);
    return entries.length;
  },
};
const times = Object.fromEntries(Object.keys(cases).map((c) => [c, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, f] of Object.entries(cases)) {
    const [count, ms] = timed(f);
    if (count !== ENTRIES) throw new Error(`${name}: ${count} entries, expected ${ENTRIES}`);
    times[name].push(ms);
  }
}
const med = Object.fromEntries(Object.entries(times).map(([c, t]) => [c, median(t)]));
console.log(`${ENTRIES.toLocaleString('en-US')} entries (u32 → u64 hash), ${os.release()}, ${os.cpus().length} CPUs, medians of ${ROUNDS}`);
console.log('| case | batch | key by key | ratio |');
console.log('| --- | ---: | ---: | ---: |');
const row = (what, batch, each) =>
  console.log(`| ${what} | ${med[batch].toFixed(1)} ms | ${med[each].toFixed(1)} ms | **${(med[each] / med[batch]).toFixed(1)}×** |`);
row('read, bytes across the binding', 'read, bytes: batch', 'read, bytes: key by key');
row('read, decoded by the facade', 'read, decoded: lookupBatch()', 'read, decoded: keys() + get()');
row('write', 'write: setMany()', 'write: set() per key');
m.close();
