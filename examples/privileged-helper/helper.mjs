#!/usr/bin/env node
// The privileged half of an app that traces without running as root (e.g. an Electron
// app): this small process holds CAP_BPF and CAP_PERFMON (file capabilities on its own
// node binary, or started through sudo/pkexec), loads and attaches, and streams what the
// probes see to its parent as JSON lines on stdout. It exits when its stdin closes, so it
// never outlives the app.
//   helper.mjs BINARY PATTERN [PID]   uprobes on BINARY's functions matching PATTERN
import { createRequire } from 'node:module';

import { load, BpfError } from 'nodebpf';

const [binary, pattern, pid] = process.argv.slice(2);
const out = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`);
// The CLI's trace object, built per architecture: x86-64's in dist/bpf, arm64's in dist/bpf/arm64.
const bpf = createRequire(import.meta.url).resolve('nodebpf/package.json').replace(/package\.json$/, `dist/bpf/${process.arch === 'arm64' ? 'arm64/' : ''}trace.bpf.o`);

try {
  const obj = await load(bpf, { globals: { target_tgid: Number(pid ?? 0) } });
  const link = obj.program('entry_probe').attachUprobeMulti({ binary, symbols: pattern, pid: pid ? Number(pid) : undefined });
  const names = link.targets.map((t) => t.name);
  out({ type: 'attached', mechanism: link.mechanism, functions: names.length });
  const stop = new AbortController();
  process.stdin.on('close', () => stop.abort()).resume();
  const rb = obj.ringbuf('events');
  // struct event in bpf/trace.bpf.c: time, pid, tid, target, has_ret, ret, args[6], comm
  const send = (batch) => batch.forEach((v, off) => out({ type: 'call', pid: v.getUint32(off + 8, true), function: names[v.getUint32(off + 16, true)] }));
  for await (const batch of rb.batches({ signal: stop.signal })) send(batch);
  // The calls the probes saw before the app said stop may still be in the ring: hand them
  // over too, so a stop right after the traced work loses none of it.
  for (let batch = rb.poll(); batch; batch = rb.poll()) send(batch);
  link.close();
  obj.close();
} catch (e) {
  out({ type: 'error', code: e instanceof BpfError ? e.code : 'EIO', message: e instanceof Error ? e.message : String(e) });
  process.exitCode = 1;
}
