// npm's prepack: the tarball holds every shipped platform's addon and every architecture's
// BPF objects, or `npm pack` / `npm publish` stops, naming what is missing and
// `npm run build:all` (scripts/build.sh, then scripts/build-arm64.sh for linux-arm64).
// An arm64 half built before the x64 addon last changed is stale: a warning for
// `npm pack` (the tests pack the work tree after a plain build), an error for
// `npm publish`. Prints on stderr only (`npm pack --json` owns stdout).
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { BPF_ARCH_DIRS } from '../dist/bpf-objects.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// ts/native.ts's SHIPPED, without loading the addon.
const SHIPPED = [
  ['x64', 'prebuilt/linux-x64/nodebpf.napi.glibc.node'],
  ['arm64', 'prebuilt/linux-arm64/nodebpf.napi.glibc.node'],
];
const publishing = process.env.npm_command === 'publish';
const missing = [];
const stale = [];

const x64 = path.join(root, SHIPPED[0][1]);
for (const [arch, rel] of SHIPPED) {
  const file = path.join(root, rel);
  if (!existsSync(file)) missing.push(rel);
  else if (arch !== 'x64' && existsSync(x64) && statSync(file).mtimeMs < statSync(x64).mtimeMs) stale.push(`${rel} (older than ${SHIPPED[0][1]})`);
}
const programs = readdirSync(path.join(root, 'bpf')).filter((f) => f.endsWith('.bpf.c'));
const newestSource = Math.max(...readdirSync(path.join(root, 'bpf')).filter((f) => /\.(c|h)$/.test(f)).map((f) => statSync(path.join(root, 'bpf', f)).mtimeMs));
for (const sub of Object.values(BPF_ARCH_DIRS)) {
  for (const p of programs) {
    const rel = path.join('dist/bpf', sub, p.replace(/\.c$/, '.o'));
    const file = path.join(root, rel);
    if (!existsSync(file)) missing.push(rel);
    else if (statSync(file).mtimeMs < newestSource) stale.push(`${rel} (older than bpf/)`);
  }
}

const fix = '`npm run build:all` builds them (scripts/build-arm64.sh cross-builds linux-arm64)';
if (missing.length) {
  console.error(`prepack: the tarball would lack ${missing.join(', ')}: ${fix}`);
  process.exit(1);
}
if (stale.length) {
  console.error(`prepack: stale: ${stale.join(', ')}: ${fix}`);
  if (publishing) process.exit(1);
}
