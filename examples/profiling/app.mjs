#!/usr/bin/env node
// A Node app standing in for an Electron app's main process, profiling itself through a
// privileged helper (profile-helper.mjs): the app never holds CAP_BPF or CAP_PERFMON.
// Start it with the V8 flags that name JS functions in native profiles (Electron: the same
// flags in --js-flags="..." on its command line):
//   node --perf-basic-prof-only-functions --interpreted-frames-native-stack app.mjs [NODE]
// NODE: the node binary that has the capabilities (default: this one, e.g. under sudo).
// It works for 3 seconds, then prints the functions the helper saw most, and where the
// helper wrote the profile (folded stacks and pprof).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';

import { frame } from './work.mjs';

const helperNode = process.argv[2] ?? process.execPath;
const out = path.join(os.tmpdir(), `app-${process.pid}`);
const helper = spawn(helperNode, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'profile-helper.mjs'), String(process.pid), '2', out], {
  stdio: ['pipe', 'pipe', 'inherit'],
});
const lines = createInterface({ input: helper.stdout });

for await (const line of lines) {
  const msg = JSON.parse(line);
  if (msg.type === 'started') {
    // Work in slices, so the helper's answer is read as soon as it comes.
    const end = Date.now() + 3000;
    const tick = () => {
      const slice = Date.now() + 50;
      while (Date.now() < Math.min(slice, end)) frame();
      if (Date.now() < end) setImmediate(tick);
    };
    tick();
  } else if (msg.type === 'profile') {
    console.log(`${msg.samples} samples (${msg.event}); the profile is in ${msg.folded} and ${msg.pprof}`);
    for (const r of msg.top) console.log(`${(100 * r.self).toFixed(1).padStart(5)}%  ${r.name}  (${r.module})`);
  } else if (msg.type === 'error') {
    console.error(`the helper could not profile: ${msg.message}`);
    process.exitCode = 1;
  }
}
