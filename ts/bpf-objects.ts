// Where the package's own BPF objects are (the CLI's and the profiler's, built by
// bpf/Makefile into dist/bpf): one set per architecture, since a program that reads
// registers (PT_REGS_*, BPF_KPROBE) is compiled for one pt_regs layout.
import path from 'node:path';

/** Each architecture's folder under dist/bpf: x86-64's objects are in dist/bpf itself. */
export const BPF_ARCH_DIRS: Readonly<Record<string, string>> = { x64: '', arm64: 'arm64' };

/**
 * The object `name` (`'trace'`: `trace.bpf.o`) in `dir` (dist/bpf) built for `arch`
 * (Node's name, `process.arch` by default). Throws naming the architecture when the
 * package has no objects for it.
 */
export function bpfObjectPath(dir: string, name: string, arch: string = process.arch): string {
  const sub = BPF_ARCH_DIRS[arch];
  if (sub === undefined) {
    throw new Error(`nodebpf ships its BPF programs for ${Object.keys(BPF_ARCH_DIRS).join(' and ')}, not ${arch}`);
  }
  return path.join(dir, sub, `${name}.bpf.o`);
}
