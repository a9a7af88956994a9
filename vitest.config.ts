import { defineConfig } from 'vitest/config';

// Two projects; scripts/test.sh runs `--project unit` first, then `--project kernel` (a bare
// `npx vitest run` runs both):
// - unit: pure TypeScript (codecs, batch parsing, spec parsing, the prebuilt path): no
//   root, no BPF, seconds.
// - kernel: loads BPF programs into the running kernel, as root; the matrix guests run it.
export default defineConfig({
  test: {
    // Probes see every process on the machine and fd counts are per process: one file at a
    // time (a root-only option, so the unit files are serial too: they take seconds).
    fileParallelism: false,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'kernel',
          include: ['test/*.test.ts'],
          // One worker for all the files, one after another.
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 30_000,
        },
      },
    ],
  },
});
