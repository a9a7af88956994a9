#!/usr/bin/env node
// The privileged half of an app that profiles itself (see app.mjs): this process holds
// CAP_BPF and CAP_PERFMON (file capabilities on its node binary, or sudo/pkexec), samples
// the app's stacks, writes the profile as folded stacks and pprof, and sends the app the
// top functions as JSON lines on stdout.
//   profile-helper.mjs PID SECONDS OUT   writes OUT.folded and OUT.pb.gz
import { writeFileSync } from 'node:fs';

import { profile } from 'nodebpf';

const [pid, seconds, outPrefix] = process.argv.slice(2);
const send = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`);

try {
  const p = await profile({ pid: Number(pid), duration: Number(seconds) * 1000, frequency: 499, onStart: () => send({ type: 'started' }) });
  writeFileSync(`${outPrefix}.folded`, p.toFolded());
  writeFileSync(`${outPrefix}.pb.gz`, p.toPprof());
  send({ type: 'profile', samples: p.totals.samples, event: p.event, folded: `${outPrefix}.folded`, pprof: `${outPrefix}.pb.gz`, top: p.top(5) });
} catch (e) {
  send({ type: 'error', code: e.code, message: e.message });
}
