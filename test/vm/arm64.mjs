#!/usr/bin/env node
// The arm64 guest: Debian's arm64 kernels under qemu-system-aarch64 (TCG), an arm64 root
// assembled from Debian's arm64 packages (nodejs, busybox-static and their dependencies,
// unpacked with dpkg-deb, never installed), the packed tarball installed there with no
// toolchain (tar), and a short smoke suite (test/vm/arm64/smoke.mjs) with exact counts.
//   node test/vm/arm64.mjs                      every arm64 kernel, exit 1 on any failure
//   node test/vm/arm64.mjs --kernel 6.12
//   node test/vm/arm64.mjs --kernel 6.12 --exec 'CMD'   CMD in the guest, from the smoke folder
//   node test/vm/arm64.mjs --addon FILE.node   that arm64 addon in place of the tarball's
// The host builds what the guest runs: the smoke BPF object (clang -target bpf
// -D__TARGET_ARCH_arm64, against a vmlinux.h dumped from the arm64 kernel image's own
// BTF) and an arm64 uprobe target (bookworm's gcc-aarch64-linux-gnu, unpacked privately).
// Everything fetched lives under .cache/ (apt states: .cache/kernels/<suite>-arm64).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { ensureKernel, suiteState } from './kernels.mjs';
import { runInGuest } from './vm.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HERE = path.join(root, 'test/vm/arm64');
const KERNELS = path.join(root, '.cache/kernels');
const CACHE = path.join(root, '.cache/arm64');
const log = (m) => console.error(`arm64: ${m}`);
const ADDON = 'prebuilt/linux-arm64/nodebpf.napi.glibc.node';

/**
 * The kernels the suite boots, and what each is known to lack: Debian's 6.12 arm64 kernel
 * has no fprobe (kprobe_multi came to arm64 with fprobe on function-graph, 6.14), so there
 * the smoke suite checks that features() says so and that the per-function kprobe fallback
 * gives the same events.
 */
export const ARM64_KERNELS = {
  '6.12': { kprobeMulti: false },
  '7.2': { kprobeMulti: true },
};
/** The arm64 userland's suite: Debian's stable, as on an arm64 server (node 20). */
const ROOT_SUITE = 'trixie';
/** What the root holds besides the dependencies they pull in. */
const ROOT_PACKAGES = ['nodejs', 'busybox-static'];
/** Busybox applets linked where the packages left no such command (the guest's shell and tar). */
const APPLETS = ['sh', 'tar', 'gzip', 'ls', 'cat', 'mkdir', 'rm', 'cp', 'mv', 'uname', 'sleep', 'echo', 'env', 'id', 'mount', 'dmesg', 'grep', 'head', 'tail', 'wc', 'sync', 'true', 'false', 'find', 'sed', 'tr', 'cut', 'ln', 'chmod', 'stat', 'date', 'ps', 'kill', 'xargs'];

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26, ...opts });
}

/**
 * The .debs that `apt-get install` of `packages` would fetch in `state` (its status file
 * decides what counts as there already), downloaded into `debsDir` when missing.
 */
function fetchClosure(state, packages, debsDir, extraOpts = []) {
  mkdirSync(path.join(debsDir, 'partial'), { recursive: true });
  const opts = [...state.opts, ...extraOpts, '-o', `Dir::Cache::archives=${debsDir}`];
  // --print-uris leaves out what the archives folder has: ask with an empty one.
  const empty = path.join(debsDir, 'partial', 'none');
  mkdirSync(path.join(empty, 'partial'), { recursive: true });
  const uris = run('apt-get', [...opts, '-o', `Dir::Cache::archives=${empty}`, 'install', '--print-uris', '-qq', '-y', '--no-install-recommends', ...packages]);
  const files = uris.split('\n').filter(Boolean).map((l) => l.split(' ')[1]);
  if (files.length === 0) throw new Error(`apt-get resolved nothing to fetch for ${packages.join(', ')}`);
  if (files.some((f) => !existsSync(path.join(debsDir, f)))) {
    log(`downloading ${files.length} packages (${packages.join(', ')} and their dependencies)`);
    run('apt-get', [...opts, 'install', '--download-only', '-qq', '-y', '--no-install-recommends', ...packages]);
  }
  const missing = files.filter((f) => !existsSync(path.join(debsDir, f)));
  if (missing.length) throw new Error(`apt-get did not download ${missing.join(', ')}`);
  return files.map((f) => path.join(debsDir, f));
}

/** Unpacks `debs` into `dir` (replaced whole) unless that exact set is there; returns whether it did. */
function unpackInto(dir, debs, finish = () => {}) {
  const key = debs.map((d) => path.basename(d)).sort().join('\n');
  const stamp = path.join(dir, '.unpacked');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === key) return false;
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  for (const deb of debs) run('dpkg-deb', ['-x', deb, tmp]);
  finish(tmp);
  writeFileSync(path.join(tmp, '.unpacked'), key);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return true;
}

/** /bin, /sbin and /lib as links into /usr, what dpkg-deb -x of trixie packages does not make. */
function mergeUsr(rootDir) {
  for (const d of ['bin', 'sbin', 'lib']) {
    const top = path.join(rootDir, d);
    const under = path.join(rootDir, 'usr', d);
    mkdirSync(under, { recursive: true });
    if (existsSync(top) && !lstatSync(top).isSymbolicLink()) {
      run('cp', ['-a', `${top}/.`, under]);
      rmSync(top, { recursive: true });
    }
    if (!existsSync(top)) symlinkSync(`usr/${d}`, top);
  }
}

/** The arm64 root: nodejs and busybox-static of ROOT_SUITE with their dependencies. */
export function ensureRootfs() {
  const rootDir = path.join(CACHE, 'rootfs');
  const state = suiteState(KERNELS, ROOT_SUITE, log, 'arm64');
  const debs = fetchClosure(state, ROOT_PACKAGES, path.join(state.dir, 'rootfs-debs'));
  const done = unpackInto(rootDir, debs, (dir) => {
    mergeUsr(dir);
    const bin = path.join(dir, 'usr/bin');
    for (const a of APPLETS) if (!existsSync(path.join(bin, a))) symlinkSync('busybox', path.join(bin, a));
    for (const d of ['proc', 'sys', 'dev', 'run', 'root', 'tmp', 'opt', 'etc']) mkdirSync(path.join(dir, d), { recursive: true });
    run('chmod', ['1777', path.join(dir, 'tmp')]);
    writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n');
    writeFileSync(path.join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  });
  log(`root: ${debs.length} packages${done ? ' unpacked' : ''} in ${path.relative(root, rootDir)}`);
  return { rootDir, busybox: path.join(rootDir, 'usr/bin/busybox') };
}

/**
 * bookworm's gcc-aarch64-linux-gnu, unpacked privately: what it needs beyond what the
 * host has installed (the host's dpkg status decides), no system-wide change.
 */
export function ensureCrossGcc() {
  const dir = path.join(CACHE, 'cross');
  const gcc = path.join(dir, 'usr/bin/aarch64-linux-gnu-gcc');
  if (existsSync(path.join(dir, '.unpacked')) && existsSync(gcc)) return gcc;
  const state = suiteState(CACHE, 'bookworm', log);
  const debs = fetchClosure(state, ['gcc-aarch64-linux-gnu', 'libc6-dev-arm64-cross'], path.join(CACHE, 'cross-debs'), ['-o', 'Dir::State::status=/var/lib/dpkg/status']);
  unpackInto(dir, debs);
  if (!existsSync(gcc)) throw new Error(`no ${gcc} after unpacking the cross compiler`);
  return gcc;
}

/** The environment the unpacked cross gcc runs in: its binutils' own libbfd/libopcodes are in the folder. */
export function crossEnv(gcc) {
  const usr = path.resolve(path.dirname(gcc), '..');
  const lib = path.join(usr, 'lib/x86_64-linux-gnu');
  return { ...process.env, PATH: `${path.dirname(gcc)}:${process.env.PATH}`, LD_LIBRARY_PATH: [lib, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
}

/** The BTF an arm64 kernel Image carries (its .BTF section is plain bytes in it), as a file. */
export function imageBtf(vmlinuz, out) {
  const image = readFileSync(vmlinuz);
  const magic = Buffer.from([0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0]);
  for (let i = image.indexOf(magic); i >= 0; i = image.indexOf(magic, i + 1)) {
    const typeLen = image.readUInt32LE(i + 12);
    const strOff = image.readUInt32LE(i + 16);
    const strLen = image.readUInt32LE(i + 20);
    // vmlinux's: types then strings, megabytes of them (a module's BTF is not in the Image).
    if (strOff === typeLen && typeLen > 1 << 20 && i + 24 + typeLen + strLen <= image.length) {
      writeFileSync(out, image.subarray(i, i + 24 + typeLen + strLen));
      return out;
    }
  }
  throw new Error(`${vmlinuz}: no vmlinux BTF found in the image`);
}

/** vmlinux.h for arm64 BPF programs, from the 6.12 arm64 kernel's BTF (CO-RE relocates at load). */
export function ensureVmlinuxH() {
  const out = path.join(CACHE, 'vmlinux.h');
  if (existsSync(out)) return out;
  const kernel = ensureKernel(KERNELS, '6.12', log, 'arm64');
  mkdirSync(CACHE, { recursive: true });
  const btf = imageBtf(kernel.vmlinuz, path.join(CACHE, 'vmlinux.btf'));
  writeFileSync(`${out}.tmp`, run('bpftool', ['btf', 'dump', 'file', btf, 'format', 'c']));
  renameSync(`${out}.tmp`, out);
  return out;
}

/** The smoke suite's BPF object and arm64 target, built into .cache/arm64/smoke-build. */
function buildSmoke() {
  const build = path.join(CACHE, 'smoke-build');
  mkdirSync(build, { recursive: true });
  const vmlinuxH = ensureVmlinuxH();
  cpSync(vmlinuxH, path.join(build, 'vmlinux.h'));
  run('clang', ['-target', 'bpf', '-g', '-O2', '-D__TARGET_ARCH_arm64', `-I${build}`, '-c', path.join(HERE, 'smoke.bpf.c'), '-o', path.join(build, 'smoke.bpf.o')]);
  const gcc = ensureCrossGcc();
  // --sysroot: the cross libc's linker scripts name /usr/aarch64-linux-gnu/lib/...; in the folder they are under it.
  run(gcc, [`--sysroot=${path.resolve(path.dirname(gcc), '../..')}`, '-O1', '-g', '-o', path.join(build, 'smoke_target'), path.join(HERE, 'smoke_target.c')], { env: crossEnv(gcc) });
  const machine = readFileSync(path.join(build, 'smoke_target')).readUInt16LE(18);
  if (machine !== 183) throw new Error(`smoke_target is not an arm64 binary (ELF machine ${machine})`);
  return build;
}

/**
 * `npm pack` of the work tree (it only reads it) and the registry's tarballs of the runtime
 * dependencies at the versions installed here (from npm's cache when it has them).
 */
function pack(into) {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  const packOne = (spec) => {
    const j = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--prefer-offline', '--pack-destination', into, spec], { cwd: root }));
    return { file: j[0].filename, files: j[0].files.map((f) => f.path), size: j[0].size };
  };
  const main = packOne(root);
  const deps = Object.keys(pkg.dependencies ?? {}).map((d) => {
    const { version } = JSON.parse(readFileSync(path.join(root, 'node_modules', d, 'package.json'), 'utf8'));
    return { name: d, ...packOne(`${d}@${version}`) };
  });
  return { main, deps };
}

/**
 * The folder the guest runs in: the tarballs, an install script, the suite and what it loads.
 * `addon`: an arm64 addon put where the package looks for it, as if the tarball shipped it.
 */
function stage(rootDir, build, addon) {
  const dir = path.join(rootDir, 'opt/nodebpf-smoke');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const packed = pack(dir);
  for (const f of ['smoke.bpf.o', 'smoke_target']) cpSync(path.join(build, f), path.join(dir, f));
  cpSync(path.join(HERE, 'smoke.mjs'), path.join(dir, 'smoke.mjs'));
  // npm's layout, by tar alone: no npm, no registry, no compiler in the guest.
  const install = [
    'set -e',
    'rm -rf node_modules && mkdir -p node_modules',
    ...[{ name: 'nodebpf', ...packed.main }, ...packed.deps].map(
      (p) => `mkdir -p node_modules/${p.name} && tar -xzf ${p.file} -C node_modules/${p.name} --strip-components=1`,
    ),
    ...(addon ? ['mkdir -p node_modules/nodebpf/prebuilt/linux-arm64', `cp addon.node node_modules/nodebpf/${ADDON}`] : []),
    'echo "installed: $(ls node_modules | tr "\\n" " ")"',
  ];
  if (addon) cpSync(addon, path.join(dir, 'addon.node'));
  writeFileSync(path.join(dir, 'install.sh'), install.join('\n') + '\n');
  return { dir, packed };
}

async function main() {
  const { values } = parseArgs({
    options: {
      kernel: { type: 'string', multiple: true },
      exec: { type: 'string' },
      verbose: { type: 'boolean', default: false },
      addon: { type: 'string' },
    },
  });
  const labels = values.kernel?.flatMap((k) => k.split(',')) ?? Object.keys(ARM64_KERNELS);
  for (const needed of ['dist/index.js', 'dist/cli/main.js']) {
    if (!existsSync(path.join(root, needed))) {
      console.error(`arm64: ${needed} is missing: run \`npm run build\` first (the guest gets the packed tarball)`);
      process.exit(2);
    }
  }
  const started = Date.now();
  const { rootDir, busybox } = ensureRootfs();
  const build = buildSmoke();
  const { dir, packed } = stage(rootDir, build, values.addon && path.resolve(values.addon));
  const arm64Addon = values.addon ? `${ADDON} (--addon ${values.addon})` : packed.main.files.find((f) => f === ADDON);
  log(`${packed.main.file}: ${(packed.main.size / 1e6).toFixed(1)} MB packed, ${arm64Addon ? `with ${arm64Addon}` : 'NO linux-arm64 addon: the suite checks the error that names it'}`);
  const cwd = '/opt/nodebpf-smoke';
  const prepMs = Date.now() - started;
  let status = 0;
  const rows = [];
  for (const label of labels) {
    const expect = ARM64_KERNELS[label];
    if (!expect) throw new Error(`unknown arm64 kernel '${label}' (known: ${Object.keys(ARM64_KERNELS).join(', ')})`);
    const kernel = ensureKernel(KERNELS, label, log, 'arm64');
    log(`${label}: booting ${kernel.release}`);
    const command = values.exec ?? 'sh install.sh && node smoke.mjs';
    const env = {
      NODEBPF_EXPECT_ADDON: arm64Addon ? '1' : '0',
      NODEBPF_EXPECT_KPROBE_MULTI: expect.kprobeMulti ? '1' : '0',
      NODEBPF_EXPECT_KERNEL: kernel.release,
    };
    const r = await runInGuest(kernel, command, { cwd, echo: values.verbose || values.exec !== undefined, env, arch: 'arm64', rootDir, busybox, bootDeadlineMs: 300_000, timeoutMs: 20 * 60_000 });
    const row = { label, release: kernel.release, boot: r.bootMs, total: r.totalMs, attempts: r.attempts, exit: r.exitCode ?? r.reason, passed: 0, failed: 0, lines: [] };
    const report = path.join(r.outDir, 'smoke.json');
    if (existsSync(report)) {
      const j = JSON.parse(readFileSync(report, 'utf8'));
      row.passed = j.tests.filter((t) => t.ok).length;
      row.failed = j.tests.filter((t) => !t.ok).length;
      row.lines = j.tests.map((t) => `  ${t.ok ? 'ok  ' : 'FAIL'} ${t.name}${t.detail ? `: ${t.detail}` : ''}`);
      row.features = j.features;
    } else if (values.exec === undefined) {
      row.failed = 1;
      row.lines = [`  FAIL no smoke report (${r.reason ?? `exit ${r.exitCode}`})`];
      if (!values.verbose) console.error(r.output.slice(-4000));
    }
    if (r.exitCode !== 0) status = 1;
    rows.push(row);
    rmSync(r.outDir, { recursive: true, force: true });
    log(`${label}: exit ${row.exit}, boot ${(r.bootMs / 1000).toFixed(1)} s, boot + run ${(r.totalMs / 1000).toFixed(0)} s`);
  }
  rmSync(dir, { recursive: true, force: true });
  if (values.exec !== undefined) process.exit(status);

  console.log('\narm64 guests');
  console.log('| kernel | release | passed | failed | boot | boot + run |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const boot = r.boot === undefined ? '-' : `${(r.boot / 1000).toFixed(1)} s`;
    console.log(`| ${r.label} | ${r.release} | ${r.passed} | ${r.failed} | ${boot} | ${(r.total / 1000).toFixed(0)} s${r.attempts > 1 ? ` (${r.attempts} boots)` : ''} |`);
  }
  for (const r of rows) {
    console.log(`\n${r.label} (${r.release}):${r.features ? ` features() ${JSON.stringify(r.features)}` : ''}`);
    for (const l of r.lines) console.log(l);
  }
  const p = rows.reduce((a, r) => a + r.passed, 0);
  let f = rows.reduce((a, r) => a + r.failed, 0);
  if (!arm64Addon) {
    // The import error is right, but nothing else could run: not a pass.
    console.log(`\nFAIL the tarball has no ${ADDON} (scripts/build-arm64.sh builds it): only the error naming the platform was checked`);
    f++;
  }
  console.log(`\narm64 time: ${((Date.now() - started) / 60000).toFixed(1)} min (${(prepMs / 1000).toFixed(0)} s preparing)`);
  console.log(`arm64: ${p} passed, ${f} failed`);
  process.exit(status || f > 0 || p === 0 ? 1 : 0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
