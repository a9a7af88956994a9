#!/usr/bin/env node
// The kernel matrix: boots Debian's 6.1 (bookworm), 6.12 (trixie) and newest (sid) kernels
// under QEMU and runs the integration suites inside each, on the host's own build.
//   node test/vm/matrix.mjs                         all kernels, table, exit 1 on any failure
//   node test/vm/matrix.mjs --kernel 7.2 [--kernel 6.1]
//   node test/vm/matrix.mjs --kernel 7.2 --exec 'CMD'   run CMD in the guest from the repo root
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { ensureKernel, SUITES } from './kernels.mjs';
import { countReport, projectFiles } from './report.mjs';
import { runInGuest } from './vm.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values } = parseArgs({
  options: {
    kernel: { type: 'string', multiple: true },
    exec: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
});
const labels = values.kernel?.flatMap((k) => k.split(',')) ?? Object.keys(SUITES);
const cache = path.join(root, '.cache/kernels');
const log = (m) => console.error(`matrix: ${m}`);

for (const needed of ['dist/index.js', 'test/fixtures/build/trace.bpf.o']) {
  if (!existsSync(path.join(root, needed))) {
    console.error(`matrix: ${needed} is missing: run \`npm run build\` first`);
    process.exit(2);
  }
}

if (values.exec !== undefined) {
  let status = 0;
  for (const label of labels) {
    const kernel = ensureKernel(cache, label, log);
    const r = await runInGuest(kernel, values.exec, { cwd: root, echo: true });
    console.log(`\nmatrix: ${label} (${kernel.release}): exit ${r.exitCode ?? `none: ${r.reason}`}, boot ${(r.bootMs / 1000).toFixed(1)} s, total ${(r.totalMs / 1000).toFixed(1)} s`);
    status ||= r.exitCode ?? 1;
    rmSync(r.outDir, { recursive: true, force: true });
  }
  process.exit(status);
}

const rows = [];
const started = Date.now();
// The guests run every file of the kernel project: each must be in a guest's report.
const kernelFiles = projectFiles('kernel');
for (const label of labels) {
  const row = { label, release: '-', passed: 0, failed: 0, skipped: 0, skips: [], failures: [], slowest: [], features: '', boot: '-', run: '-', ok: false, error: '' };
  rows.push(row);
  try {
    const kernel = ensureKernel(cache, label, log);
    row.release = kernel.release;
    log(`${label}: booting ${kernel.release}`);
    const r = await runInGuest(kernel, 'node test/vm/guest.mjs', { cwd: root, echo: values.verbose });
    row.boot = r.bootMs === undefined ? '-' : `${(r.bootMs / 1000).toFixed(1)} s`;
    row.run = `${(r.totalMs / 1000).toFixed(0)} s${r.attempts > 1 ? ` (${r.attempts} boots)` : ''}`;
    const report = path.join(r.outDir, 'vitest.json');
    const feats = path.join(r.outDir, 'features.json');
    if (existsSync(feats)) row.features = JSON.stringify(JSON.parse(readFileSync(feats, 'utf8')));
    if (!existsSync(report)) {
      row.error = `no test report: ${r.reason ?? `exit ${r.exitCode}`}`;
      if (!values.verbose) console.error(r.output.slice(-4000));
    } else {
      const c = countReport(JSON.parse(readFileSync(report, 'utf8')), kernelFiles);
      Object.assign(row, { passed: c.passed, failed: c.failed, skipped: c.skipped, failures: c.failures, skips: c.skips, slowest: c.slowest });
      row.ok = row.failed === 0 && row.passed > 0 && r.exitCode === 0;
      if (!row.ok && row.failed === 0) {
        // vitest exits 1 for an error outside any test (an unhandled rejection, a worker
        // timeout) that its report leaves out: its own words, kept for the summary.
        const at = r.output.search(/Unhandled (Error|Rejection)/);
        row.error = `guest exit ${r.exitCode ?? r.reason}\n${r.output.slice(at < 0 ? -1500 : at, at < 0 ? undefined : at + 1500)}`;
      }
    }
    rmSync(r.outDir, { recursive: true, force: true });
  } catch (e) {
    row.error = e instanceof Error ? e.message.split('\n')[0] : String(e);
  }
  log(`${label}: ${row.ok ? 'ok' : 'FAILED'} (${row.passed} passed, ${row.failed} failed, ${row.skipped} skipped)`);
}

console.log('\nkernel matrix');
console.log('| kernel | release | passed | failed | skipped | boot | boot + run |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(`| ${r.label} | ${r.release} | ${r.passed} | ${r.failed} | ${r.skipped} | ${r.boot} | ${r.run} |`);
}
for (const r of rows) {
  console.log(`\n${r.label}: ${r.ok ? 'ok' : `FAILED${r.error ? `: ${r.error}` : ''}`}`);
  if (r.features) console.log(`  features(): ${r.features}`);
  if (r.slowest.length) console.log(`  slowest files: ${r.slowest.map((f) => `${path.basename(f.file)} ${f.s.toFixed(0)} s`).join(', ')}`);
  for (const s of r.skips) console.log(`  skipped: ${s}`);
  for (const f of r.failures) console.log(`  failed: ${f}`);
}
const total = rows.reduce((a, r) => ({ passed: a.passed + r.passed, failed: a.failed + r.failed, skipped: a.skipped + r.skipped }), { passed: 0, failed: 0, skipped: 0 });
console.log(`\nmatrix time: ${((Date.now() - started) / 60000).toFixed(1)} min`);
console.log(`matrix: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(rows.every((r) => r.ok) ? 0 : 1);
