// nodebpf features: what this kernel supports (probed by trying, not by version), which
// kernel has what it lacks, and what this process may do.
import { readFileSync } from 'node:fs';

import { features, featureTable, missingCapabilities } from 'nodebpf';

import { bold, green, red, table, yellow } from './term.js';

export async function featuresCommand(o: { json: boolean }): Promise<void> {
  const f = await features();
  const missing = missingCapabilities();
  const lockdown = readLockdown();
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ ...f, uid: process.getuid?.(), missingCapabilities: missing, lockdown })}\n`);
    return;
  }
  const rows = featureTable().map(({ name, what, needs }) => [what, f[name] ? green('yes') : red('no'), f[name] ? '' : `needs ${needs}`]);
  process.stdout.write(`${bold('kernel')} ${f.kernel}${lockdown ? `  (lockdown: ${lockdown})` : ''}\n\n`);
  process.stdout.write(`${table(['FEATURE', 'HERE', ''], rows, [0, 2])}\n\n`);
  const fallbacks = [
    !f.kprobeMulti && f.kprobe && 'kprobe: specs use one perf kprobe per function',
    !f.uprobeMulti && 'uprobe: specs use one perf uprobe per function',
    !f.tracingMulti && f.fentry && 'fentry:/fexit: specs load one program per function',
  ].filter(Boolean);
  for (const line of fallbacks) process.stdout.write(`${yellow('fallback')} ${line}\n`);
  const who = process.getuid?.() === 0 ? 'root' : `uid ${process.getuid?.()}`;
  process.stdout.write(
    missing.length === 0
      ? `${bold('privileges')} ${who}: has everything nodebpf needs\n`
      : `${bold('privileges')} ${who}: lacks ${missing.join(', ')}: run as root (sudo), or give node these file capabilities (setcap cap_bpf,cap_perfmon+ep "$(command -v node)")\n`,
  );
}

function readLockdown(): string | undefined {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/security/lockdown', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}
