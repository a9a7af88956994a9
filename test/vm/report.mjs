// Counts a vitest JSON report, the one way test.sh and the matrix both count: every test by
// its status, and a file that failed outside its tests (an import, a hook, an unhandled
// error in it) as one failure more, since vitest exits 1 for it while numFailedTests stays 0.
// Run as a script, prints `passed failed skipped` of the report named by its argument.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function countReport(report) {
  const c = { passed: 0, failed: 0, skipped: 0, failures: [], skips: [] };
  for (const file of report.testResults) {
    let failedHere = 0;
    for (const t of file.assertionResults) {
      if (t.status === 'passed') c.passed++;
      else if (t.status === 'failed') {
        failedHere++;
        c.failures.push(`${t.fullName}: ${(t.failureMessages[0] ?? '').split('\n')[0]}`);
      } else c.skips.push(t.fullName);
    }
    c.skipped += file.assertionResults.filter((t) => t.status !== 'passed' && t.status !== 'failed').length;
    if (file.status === 'failed' && failedHere === 0) {
      failedHere = 1;
      c.failures.push(`${file.name}: ${(file.message || 'failed outside its tests').split('\n')[0]}`);
    }
    c.failed += failedHere;
  }
  return c;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const c = countReport(JSON.parse(readFileSync(process.argv[2], 'utf8')));
  for (const f of c.failures) console.error(`failed: ${f}`);
  console.log(c.passed, c.failed, c.skipped);
}
