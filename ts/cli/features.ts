// nodebpf features: what this kernel supports (probed by trying, not by version), which
// kernel has what it lacks, and what this process may do.
import { readFileSync } from 'node:fs';

import { features, missingCapabilities, type Features } from 'nodebpf';

import { bold, green, red, table, yellow } from './term.js';

type Feature = Exclude<keyof Features, 'kernel'>;

const ABOUT: Record<Feature, [what: string, needs: string]> = {
  btf: ['kernel BTF (CO-RE, fentry)', 'Linux 5.4+ built with CONFIG_DEBUG_INFO_BTF'],
  ringbuf: ['BPF ring buffer', 'Linux 5.8+'],
  bpfCookie: ['attach cookies', 'Linux 5.15+'],
  kprobe: ['kprobes (kprobe:, kretprobe:)', 'a kernel built with CONFIG_KPROBES'],
  kprobeMulti: ['kprobe_multi links (batch kprobes)', 'Linux 5.18+ built with CONFIG_FPROBE'],
  kprobeSession: ['kprobe sessions', 'Linux 6.10+ built with CONFIG_FPROBE'],
  uprobeMulti: ['uprobe_multi links (batch uprobes)', 'Linux 6.6+'],
  uprobeSession: ['uprobe sessions', 'Linux 6.13+'],
  fentry: ['BPF trampolines (fentry:, fexit:)', 'Linux 5.5+ (x86_64; arm64 6.0+), not under lockdown=confidentiality'],
  tracingMulti: ['tracing_multi links (batch fentry/fexit)', 'Linux 7.2+'],
};

export async function featuresCommand(o: { json: boolean }): Promise<void> {
  const f = await features();
  const missing = missingCapabilities();
  const lockdown = readLockdown();
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ ...f, uid: process.getuid?.(), missingCapabilities: missing, lockdown })}\n`);
    return;
  }
  const rows = (Object.keys(ABOUT) as Feature[]).map((k) => [ABOUT[k][0], f[k] ? green('yes') : red('no'), f[k] ? '' : `needs ${ABOUT[k][1]}`]);
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
