#!/usr/bin/env node
// Counts syscalls per process for a few seconds and prints the busiest processes.
//   node examples/syscount.mjs [seconds=3] [rows=15]
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { load, BpfError } from '../dist/index.js';

const seconds = Number(process.argv[2] ?? 3);
const rows = Number(process.argv[3] ?? 15);
const here = path.dirname(fileURLToPath(import.meta.url));

try {
  await report(await load(path.join(here, 'build/syscount.bpf.o'), { globals: { self_tgid: process.pid } }));
} catch (e) {
  if (e instanceof BpfError) {
    console.error(`syscount: ${e.code}: ${e.message}`);
    process.exit(1);
  }
  throw e;
}

async function report(obj) {
  try {
    obj.program('count').attach();
    const byProcess = new Map();
    let total = 0;
    console.error(`counting syscalls for ${seconds} s...`);
    // Records decoded by struct event, as the object's BTF lays it out: { tgid, syscall, comm }.
    const events = obj.events('events').events(obj.type('struct event'), { signal: AbortSignal.timeout(seconds * 1000) });
    for await (const { tgid, syscall, comm } of events) {
      let p = byProcess.get(tgid);
      if (!p) byProcess.set(tgid, (p = { comm, count: 0, syscalls: new Map() }));
      p.count++;
      p.syscalls.set(syscall, (p.syscalls.get(syscall) ?? 0) + 1);
      total++;
    }
    const lost = obj.globals.lost;
    const top = [...byProcess.entries()].sort((a, b) => b[1].count - a[1].count).slice(0, rows);
    console.log(`${'PID'.padStart(8)}  ${'COMM'.padEnd(16)} ${'SYSCALLS'.padStart(10)} ${'/s'.padStart(10)}  TOP SYSCALL NUMBERS`);
    for (const [pid, p] of top) {
      const hot = [...p.syscalls.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([nr, n]) => `${nr}×${n}`).join(' ');
      console.log(`${String(pid).padStart(8)}  ${p.comm.padEnd(16)} ${String(p.count).padStart(10)} ${(p.count / seconds).toFixed(0).padStart(10)}  ${hot}`);
    }
    console.log(`${total} syscalls from ${byProcess.size} processes in ${seconds} s; ${lost} lost to a full ring`);
  } finally {
    obj.close();
  }
}
