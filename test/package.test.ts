// The published artifact: `npm pack`, then install the tarball into a fresh project with
// no Rust, clang or C compiler on the PATH, and use it there from ESM, CJS and npx.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { prebuiltPath } from '../dist/native.js';

const ROOT = path.join(import.meta.dirname, '..');
const TOOLCHAIN = /^(cargo|rustc|rustup|rustdoc|clang.*|gcc.*|g\+\+.*|cc|c\+\+|c89|c99|cpp.*|ld|ld\..*|x86_64-linux-gnu-.*|make|node-gyp)$/;
// The guests run the same suites on other kernels; packaging does not depend on one.
const inGuest = process.env.NODEBPF_GUEST_KERNEL !== undefined;

/**
 * A CommonJS TypeScript user (tsx runs it; tsc checks it): the types are the package's,
 * not `any` (the expected errors would be unused otherwise).
 */
const CTS = `
import { load, loadSync, BpfError, type Link, type Program } from 'nodebpf';
declare const p: Program<'tp/syscalls/sys_enter_openat'>;
export const link = (): Link => p.attach();
// @ts-expect-error: a tracepoint gives a Link, which has no mechanism
export const m = () => p.attach().mechanism;
console.log(typeof load, typeof loadSync, new BpfError('EINVAL', 'x') instanceof Error);
`;

/** The same from ESM. */
const MTS = `
import { load, type Link, type MultiLink, type Program } from 'nodebpf';
declare const p: Program<'kprobe.multi/vfs_*'>;
export const link = (): MultiLink<'kprobe_multi' | 'kprobes'> => p.attach();
// @ts-expect-error: a kprobe.multi program gives a MultiLink
export const single = (): Link => p.attach();
export const loaded = load;
`;

interface Packed {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

describe.skipIf(inGuest)(`the npm package${inGuest ? ' [skipped: in a kernel-matrix guest: packaging is tested on the host]' : ''}`, () => {
  let dir = '';
  let packed: Packed;
  let env: NodeJS.ProcessEnv;
  const run = (cmd: string, args: string[], input?: string) =>
    spawnSync(cmd, args, { cwd: path.join(dir, 'app'), env, encoding: 'utf8', input, timeout: 120_000 });

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nodebpf-pack-'));
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' });
    packed = (JSON.parse(out) as Packed[])[0];
    // A PATH of everything on this machine but a toolchain.
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    for (const d of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
      let names: string[] = [];
      try {
        names = readdirSync(d);
      } catch {
        continue;
      }
      for (const n of names) {
        if (TOOLCHAIN.test(n)) continue;
        try {
          symlinkSync(path.join(d, n), path.join(bin, n));
        } catch {
          // the same name in an earlier directory wins, as on a PATH
        }
      }
    }
    env = { ...process.env, PATH: bin, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
    for (const k of Object.keys(env)) if (k.startsWith('npm_') && !k.startsWith('npm_config_')) delete env[k];
    mkdirSync(path.join(dir, 'app'));
    writeFileSync(path.join(dir, 'app', 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const install = run('npm', ['install', '--prefer-offline', '--ignore-scripts=false', path.join(dir, packed.filename)]);
    expect(install.stderr).not.toMatch(/ERR!/);
    expect(install.status).toBe(0);
  }, 180_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds the facade (ESM and CommonJS), the addon, the CLI with its BPF objects and the examples, and nothing else from the repository', () => {
    const files = packed.files.map((f) => f.path);
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/index.cjs', 'dist/cjs/index.d.ts', 'dist/cjs/package.json', 'dist/cli/main.js', 'dist/bpf/funccount.bpf.o', 'dist/bpf/latency.bpf.o', 'dist/bpf/latency_session.bpf.o', 'dist/bpf/trace.bpf.o', 'prebuilt/linux-x64/nodebpf.napi.glibc.node', 'prebuilt/linux-arm64/nodebpf.napi.glibc.node', ...['funccount', 'latency', 'latency_session', 'offcpu', 'profile', 'trace'].map((p) => `dist/bpf/arm64/${p}.bpf.o`), 'examples/syscount.bpf.c', 'examples/syscount.mjs', 'examples/build/syscount.bpf.o', 'package.json', 'README.md']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => /^(test|crates|bench|scripts|\.cache|target|ts|bpf)\//.test(f))).toEqual([]);
    const sizes = ['linux-x64', 'linux-arm64'].map((p) => `${p} ${(statSync(path.join(ROOT, 'prebuilt', p, 'nodebpf.napi.glibc.node')).size / 1024).toFixed(0)} KiB`);
    console.log(`tarball ${packed.filename}: ${(packed.size / 1024).toFixed(0)} KiB packed, ${(packed.unpackedSize / 1024).toFixed(0)} KiB unpacked, ${files.length} files; addons: ${sizes.join(', ')}`);
  });

  it('asks for no newer glibc than 2.34, on x64 and arm64 alike', () => {
    for (const [p, machine] of [['linux-x64', 62], ['linux-arm64', 183]] as const) {
      const file = path.join(ROOT, 'prebuilt', p, 'nodebpf.napi.glibc.node');
      expect(readFileSync(file).readUInt16LE(18)).toBe(machine);
      const dump = execFileSync('objdump', ['-T', file], { encoding: 'utf8' });
      const versions = [...dump.matchAll(/GLIBC_2\.(\d+)/g)].map((m) => Number(m[1]));
      expect(Math.max(...versions), p).toBeLessThanOrEqual(34);
    }
  });

  it("the CLI's objects for arm64 read arm64's registers (user_pt_regs), x86-64's do not", () => {
    const has = (rel: string) => readFileSync(path.join(ROOT, rel)).includes('user_pt_regs');
    expect(has('dist/bpf/arm64/trace.bpf.o')).toBe(true);
    expect(has('dist/bpf/trace.bpf.o')).toBe(false);
  });

  it('installs with no toolchain on the PATH and no install scripts', () => {
    for (const tool of ['cargo', 'rustc', 'clang', 'gcc', 'cc']) expect(run('sh', ['-c', `command -v ${tool}`]).status).not.toBe(0);
    const manifest = JSON.parse(run('cat', ['node_modules/nodebpf/package.json']).stdout) as { scripts?: Record<string, string> };
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) expect(manifest.scripts?.[hook]).toBeUndefined();
    expect(statSync(path.join(dir, 'app', 'node_modules', 'nodebpf', 'prebuilt', 'linux-x64', 'nodebpf.napi.glibc.node')).size).toBeGreaterThan(100_000);
  });

  it('imports from ESM and CJS; npx nodebpf features runs', () => {
    const esm = run('node', ['--input-type=module', '-e', "import { load, features, BpfError } from 'nodebpf'; console.log(typeof load, typeof BpfError, (await features()).ringbuf)"]);
    expect(esm.stderr).toBe('');
    expect(esm.stdout.trim()).toBe('function function true');
    const cjs = run('node', ['-e', "const n = require('nodebpf'); console.log(typeof n.load, typeof n.loadSync)"]);
    expect(cjs.stdout.trim()).toBe('function function');
    const npx = run('npx', ['--offline', 'nodebpf', 'features', '--json']);
    expect(npx.status).toBe(0);
    expect(JSON.parse(npx.stdout)).toMatchObject({ btf: true, ringbuf: true, missingCapabilities: [] });
  });

  it('require() gives the CommonJS build: from .cjs under node, from .cts under tsx; one BpfError class for both entries', () => {
    writeFileSync(path.join(dir, 'app', 'a.cjs'), `
      const n = require('nodebpf');
      const esm = import('nodebpf');
      n.features().then(async (f) => {
        const { BpfError } = await esm;
        console.log(require.resolve('nodebpf').endsWith('dist/index.cjs'), n.BpfError !== BpfError, new n.BpfError('EINVAL', 'x') instanceof BpfError, f.ringbuf, n.mapTypeName(2));
      });
    `);
    const cjs = run('node', ['a.cjs']);
    expect(cjs.stderr).toBe('');
    expect(cjs.stdout.trim()).toBe('true true true true array');
    writeFileSync(path.join(dir, 'app', 'b.cts'), CTS);
    const tsx = run('node', [path.join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'b.cts']);
    expect(tsx.stderr).toBe('');
    expect(tsx.stdout.trim()).toBe('function function true');
  });

  it('its types resolve for both entries (tsc, module nodenext): the CommonJS declarations for a .cts, the ESM ones for a .mts', () => {
    writeFileSync(path.join(dir, 'app', 'b.cts'), CTS);
    writeFileSync(path.join(dir, 'app', 'c.mts'), MTS);
    writeFileSync(path.join(dir, 'app', 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'nodenext', target: 'es2022', strict: true, noEmit: true, types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')] },
      files: ['b.cts', 'c.mts'],
    }));
    const tsc = run('node', [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.', '--explainFiles']);
    expect(tsc.stdout).not.toMatch(/error TS/);
    expect(tsc.status).toBe(0);
    // Which declarations each file's import resolved to.
    const importers = (decl: string) => [...tsc.stdout.matchAll(new RegExp(`^node_modules/nodebpf/${decl}\\n((?:  .*\\n)+)`, 'gm'))].map((m) => m[1]).join('');
    expect(importers('dist/cjs/index\\.d\\.ts')).toMatch(/Imported via 'nodebpf' from file 'b\.cts'/);
    expect(importers('dist/cjs/index\\.d\\.ts')).not.toMatch(/c\.mts/);
    expect(importers('dist/index\\.d\\.ts')).toMatch(/Imported via 'nodebpf' from file 'c\.mts'/);
    expect(importers('dist/index\\.d\\.ts')).not.toMatch(/b\.cts/);
  });

  it("loads a BPF object shipped in the tarball, attaches it to a tracepoint and reads its ring buffer", () => {
    const script = `
      import { load } from 'nodebpf';
      import { createRequire } from 'node:module';
      const obj = await load(createRequire(import.meta.url).resolve('nodebpf/package.json').replace('package.json', 'dist/bpf/trace.bpf.o'), { globals: { target_tgid: process.pid } });
      const link = obj.program('entry_tracepoint').attachTracepoint('syscalls', 'sys_enter_getppid', { cookie: 7 });
      for (let i = 0; i < 5; i++) process.ppid;
      const events = [];
      const rb = obj.ringbuf('events');
      for (let b = rb.poll(); b; b = rb.poll()) b.forEach((v, off) => events.push([v.getUint32(off + 8, true), v.getUint32(off + 16, true)]));
      link.close(); obj.close();
      console.log(JSON.stringify({ pid: process.pid, events }));
    `;
    const r = run('node', ['--input-type=module', '-e', script]);
    expect(r.stderr).toBe('');
    const { pid, events } = JSON.parse(r.stdout) as { pid: number; events: [number, number][] };
    expect(events).toEqual(Array(5).fill([pid, 7]));
  });
});

describe('the addon loader', () => {
  it('names the platform when no binary fits, and tells musl from glibc', () => {
    expect(() => prebuiltPath(ROOT, 'linux', 'riscv64', 'glibc')).toThrow(/no prebuilt addon for linux-riscv64 with glibc.*ships linux-x64-glibc, linux-arm64-glibc/);
    expect(() => prebuiltPath(ROOT, 'linux', 'arm64', 'musl')).toThrow(/linux-arm64 with musl/);
    expect(() => prebuiltPath(ROOT, 'linux', 'x64', 'musl')).toThrow(/linux-x64 with musl/);
    expect(() => prebuiltPath(ROOT, 'darwin', 'arm64', 'glibc')).toThrow(/Linux only.*darwin-arm64/);
    expect(prebuiltPath(ROOT, 'linux', 'x64', 'glibc')).toMatch(/prebuilt\/linux-x64\/nodebpf\.napi\.glibc\.node$/);
    expect(prebuiltPath(ROOT, 'linux', 'arm64', 'glibc')).toMatch(/prebuilt\/linux-arm64\/nodebpf\.napi\.glibc\.node$/);
  });
});
