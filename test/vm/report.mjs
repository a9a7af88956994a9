// Counts a vitest JSON report, the one way test.sh and the matrix both count: every test by
// its status; a file that failed outside its tests (an import, a hook, an unhandled error in
// it) as one failure more, since vitest exits 1 for it while numFailedTests stays 0; and a
// file of the project missing from the report (the run ended before it: the kernel project
// runs every file in one worker) as one failure.
// Run as a script (`report.mjs REPORT PROJECT`), prints `passed failed skipped`.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The test files of a vitest project, relative to the repository, as vitest's config picks them. */
export function projectFiles(project) {
  const out = execFileSync(process.execPath, [path.join(root, 'node_modules/vitest/vitest.mjs'), 'list', '--filesOnly', '--project', project, '--json'], { cwd: root, encoding: 'utf8' });
  return JSON.parse(out).map((f) => path.relative(root, f.file));
}

/** `expected`: the project's files (projectFiles()), each of which must be in the report. */
export function countReport(report, expected = []) {
  const c = { passed: 0, failed: 0, skipped: 0, failures: [], skips: [], slowest: [] };
  for (const file of expected) {
    if (!report.testResults.some((r) => r.name.endsWith(`/${file}`))) {
      c.failed++;
      c.failures.push(`${file}: not in the report (the run ended before it)`);
    }
  }
  for (const file of report.testResults) {
    c.slowest.push({ file: path.relative(root, file.name), s: (file.endTime - file.startTime) / 1000 });
    let failedHere = 0;
    for (const t of file.assertionResults) {
      if (t.status === 'passed') c.passed++;
      else if (t.status === 'failed') {
        failedHere++;
        c.failures.push(`${t.fullName}: ${(t.failureMessages[0] ?? '').split('\n')[0]}`);
      } else {
        c.skipped++;
        c.skips.push(t.fullName);
      }
    }
    if (file.status === 'failed' && failedHere === 0) {
      failedHere = 1;
      c.failures.push(`${file.name}: ${(file.message || 'failed outside its tests').split('\n')[0]}`);
    }
    c.failed += failedHere;
  }
  // Where a run's time goes: the five slowest files.
  c.slowest = c.slowest.sort((a, b) => b.s - a.s).slice(0, 5);
  return c;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const c = countReport(JSON.parse(readFileSync(process.argv[2], 'utf8')), projectFiles(process.argv[3]));
  for (const f of c.failures) console.error(`failed: ${f}`);
  console.log(c.passed, c.failed, c.skipped);
}
