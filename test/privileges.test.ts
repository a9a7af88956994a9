// Tracing without root: a copy of node given CAP_BPF and CAP_PERFMON as file
// capabilities runs the CLI and the privileged-helper example for an unprivileged user;
// without them the user is told what is missing.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { readFileSync } from 'node:fs';

import { fixture, kernelFeatures as f, waitFor } from './helpers.js';

const ROOT = path.join(import.meta.dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const T = fixture('cli_target');
const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups', '--'];
const setcap = spawnSync('sh', ['-c', 'command -v setcap']).status === 0;
// Debian's and Ubuntu's level 3 asks CAP_SYS_ADMIN for any perf event: without
// uprobe_multi, uprobes are perf events.
const paranoid = Number(readFileSync('/proc/sys/kernel/perf_event_paranoid', 'utf8'));
const perfOnly = !f.uprobeMulti && paranoid > 2;

describe.skipIf(!setcap)(`as an unprivileged user${setcap ? '' : ' [skipped: no setcap (libcap2-bin)]'}`, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nodebpf-caps-'));
  chmodSync(dir, 0o755);
  const capNode = path.join(dir, 'node-bpf');
  copyFileSync(process.execPath, capNode);
  chmodSync(capNode, 0o755);
  const caps = spawnSync('setcap', ['cap_bpf,cap_perfmon+ep', capNode], { encoding: 'utf8' });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`with file capabilities on a node copy, the CLI counts exactly${perfOnly ? ' (here: says why perf uprobes need more)' : ''}`, () => {
    expect(caps.status).toBe(0);
    const r = spawnSync('setpriv', [...asNobody, capNode, CLI, 'funccount', `uprobe:${T}:cli_count_*`, '--json', '--', T, 'count', '3', '5'], { encoding: 'utf8' });
    if (perfOnly) {
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`kernel.perf_event_paranoid is ${paranoid}`);
      return;
    }
    expect(r.stderr).not.toMatch(/nodebpf:/);
    expect(r.status).toBe(0);
    const total = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as { counts: { function: string; count: number }[] };
    expect(Object.fromEntries(total.counts.map((c) => [c.function, c.count]))).toEqual({ cli_count_a: 3, cli_count_b: 5 });
  });

  // The app ends the helper after SECONDS on its own; the test ends it sooner (SIGINT,
  // as Ctrl-C would) once the traced command has run, so no timer decides what is counted.
  const APP_DEADLINE_S = 120;
  const ATTACH_DEADLINE_MS = 60_000;
  it.skipIf(perfOnly)(`the privileged-helper example: the app runs unprivileged, its helper has the capabilities${perfOnly ? ` [skipped: ${f.kernel}: no uprobe_multi and perf_event_paranoid ${paranoid}: perf uprobes need CAP_SYS_ADMIN; the test above checks that error]` : ''}`, { timeout: APP_DEADLINE_S * 1000 }, async () => {
    const app = spawn('setpriv', [...asNobody, process.execPath, path.join(ROOT, 'examples', 'privileged-helper', 'app.mjs'), T, 'cli_count_*', '', String(APP_DEADLINE_S)], {
      env: { ...process.env, NODEBPF_HELPER_NODE: capNode },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    app.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    app.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => app.on('exit', r));
    try {
      await waitFor('the helper to attach', () => /helper: (attached|[A-Z_]+:)/.test(stderr), ATTACH_DEADLINE_MS);
      expect(stderr).toMatch(/helper: attached 2 functions via uprobe_multi/);
      // The probes run in the traced process: once it has exited, every call is in the
      // ring, and the helper drains the ring when told to stop.
      expect(spawnSync(T, ['count', '2', '4']).status).toBe(0);
      app.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(JSON.parse(stdout.trim())).toEqual({ cli_count_a: 2, cli_count_b: 4 });
    } finally {
      app.kill('SIGKILL');
    }
  });

  it('without them: EPERM naming the capabilities and what to run', () => {
    const r = spawnSync('setpriv', [...asNobody, process.execPath, CLI, 'funccount', `uprobe:${T}:cli_*`, '--duration', '1'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/CAP_BPF/);
    expect(r.stderr).toMatch(/setcap cap_bpf,cap_perfmon\+ep/);
  });
});
