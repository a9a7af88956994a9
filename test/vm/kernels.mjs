// Debian kernels for the matrix, downloaded with a private apt state (never the system's
// sources: adding trixie or sid there would half-upgrade the machine) and unpacked with
// dpkg-deb. Versions are resolved at run time; .debs are cached and reused.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync, statSync } from 'node:fs';
import path from 'node:path';

export const SUITES = {
  '5.10': 'bullseye',
  '6.1': 'bookworm',
  '6.12': 'trixie',
  '7.2': 'sid',
};

const MIRROR = 'http://deb.debian.org/debian';
/** Where a suite's kernel is updated after release: bullseye's only moves in its security suite. */
const EXTRA_SOURCES = {
  bullseye: ['deb http://deb.debian.org/debian-security bullseye-security main'],
};

function aptOptions(dir, arch = 'amd64') {
  return [
    ...(arch === 'amd64' ? [] : ['-o', `APT::Architecture=${arch}`, '-o', `APT::Architectures::=${arch}`]),
    '-o', `Dir::Etc::SourceList=${dir}/sources.list`,
    '-o', 'Dir::Etc::SourceParts=/dev/null',
    '-o', `Dir::State::Lists=${dir}/lists`,
    '-o', `Dir::Cache=${dir}/cache`,
    '-o', 'Dir::State::status=/dev/null',
    '-o', 'Debug::NoLocking=1',
    '-o', 'Acquire::Languages=none',
  ];
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

function depends(opts, pkg) {
  const show = run('apt-cache', [...opts, 'show', '--no-all-versions', pkg]);
  const line = show.split('\n').find((l) => l.startsWith('Depends:')) ?? '';
  const version = show.split('\n').find((l) => l.startsWith('Version:'))?.slice(9).trim();
  const deps = line
    .slice('Depends:'.length)
    .split(',')
    .map((d) => d.trim().split(/[\s|(]/)[0])
    .filter((d) => /^linux-(image|binary|modules)-/.test(d));
  return { version, deps };
}

/** The suite's private apt state, its lists updated once per process. */
const updated = new Set();
export function suiteState(cacheRoot, suite, log, arch = 'amd64') {
  const dir = path.resolve(cacheRoot, arch === 'amd64' ? suite : `${suite}-${arch}`);
  for (const d of ['lists/partial', 'cache/archives/partial', 'debs']) mkdirSync(path.join(dir, d), { recursive: true });
  writeFileSync(path.join(dir, 'sources.list'), [`deb ${MIRROR} ${suite} main`, ...(EXTRA_SOURCES[suite] ?? [])].join('\n') + '\n');
  const opts = aptOptions(dir, arch);
  if (!updated.has(dir)) {
    log(`${suite}: updating the package lists`);
    run('apt-get', [...opts, 'update', '-qq']);
    updated.add(dir);
  }
  return { dir, opts };
}

/** Downloads (when not cached) `pkg` at `version` into the suite's debs/, returning the .deb. */
function download({ dir, opts }, suite, pkg, version, log, arch = 'amd64') {
  const file = `${pkg}_${version.replace(/:/g, '%3a')}_${arch}.deb`;
  const debPath = path.join(dir, 'debs', file);
  if (!existsSync(debPath)) {
    log(`${suite}: downloading ${pkg} ${version}`);
    run('apt-get', [...opts, 'download', '-qq', `${pkg}=${version}`], { cwd: path.join(dir, 'debs') });
  }
  if (!existsSync(debPath)) throw new Error(`${suite}: apt-get download did not produce ${file}`);
  return debPath;
}

/** Unpacks `debs` into `root` unless that exact set is unpacked there already. */
export function unpack(root, debs) {
  const key = debs.map((d) => path.basename(d)).sort().join('\n');
  const stamp = path.join(root, '.unpacked');
  if (!existsSync(stamp) || run('cat', [stamp]) !== key) {
    run('rm', ['-rf', root]);
    mkdirSync(root, { recursive: true });
    for (const deb of debs) run('dpkg-deb', ['-x', deb, root]);
    writeFileSync(stamp, key);
  }
}

/** Resolves, downloads (when not cached) and unpacks the newest kernel of `suite` for `arch` (Debian's name). */
export function ensureKernel(cacheRoot, label, log = () => {}, arch = 'amd64') {
  const suite = SUITES[label];
  if (!suite) throw new Error(`unknown kernel '${label}' (known: ${Object.keys(SUITES).join(', ')})`);
  const state = suiteState(cacheRoot, suite, log, arch);
  const meta = `linux-image-${arch}`;
  log(`${label}: resolving ${meta} in ${suite}`);
  // Follow linux-image-ARCH → linux-image-X (→ linux-binary-X, linux-modules-X in sid).
  const wanted = new Map(); // package → version, one apt-cache call each
  const seen = new Set([meta]);
  const queue = [meta];
  while (queue.length) {
    const pkg = queue.shift();
    const { version, deps } = depends(state.opts, pkg);
    if (pkg !== meta) wanted.set(pkg, version);
    for (const d of deps.filter((d) => !seen.has(d))) {
      seen.add(d);
      queue.push(d);
    }
  }
  if (wanted.size === 0) throw new Error(`${suite}: ${meta} depends on no kernel package`);
  const debs = [...wanted].map(([pkg, version]) => download(state, suite, pkg, version, log, arch));
  const root = path.join(state.dir, 'root');
  unpack(root, debs);
  return locate(root, label, suite);
}

/**
 * One package of `suite` (its newest amd64 version when first fetched), unpacked on its own
 * into `<cache>/<suite>/pkg/<name>`, which is returned; once unpacked, it is reused without
 * asking the archive. Its dependencies are not fetched.
 */
export function ensurePackage(cacheRoot, suite, pkg, log = () => {}) {
  const unpacked = path.resolve(cacheRoot, suite, 'pkg', pkg);
  if (existsSync(path.join(unpacked, '.unpacked'))) return unpacked;
  const state = suiteState(cacheRoot, suite, log);
  const { version } = depends(state.opts, pkg);
  if (!version) throw new Error(`${suite}: no package ${pkg}`);
  const root = path.join(state.dir, 'pkg', pkg);
  unpack(root, [download(state, suite, pkg, version, log)]);
  return root;
}

/**
 * Packages of `suite` (no dependencies), each `name`, `name:arch` (Debian's arch, amd64
 * when none) or either with `=version` (else the newest), unpacked together into `root`,
 * which is returned; once unpacked, the same list is reused without asking the archive.
 */
export function ensurePackages(cacheRoot, suite, pkgs, root, log = () => {}) {
  const key = pkgs.join('\n');
  const stamp = path.join(root, '.packages');
  if (existsSync(stamp) && run('cat', [stamp]) === key) return root;
  const debs = pkgs.map((spec) => {
    const [name, pinned] = spec.split('=');
    const [pkg, arch = 'amd64'] = name.split(':');
    const state = suiteState(cacheRoot, suite, log, arch);
    const version = pinned ?? depends(state.opts, pkg).version;
    if (!version) throw new Error(`${suite}: no package ${spec}`);
    return download(state, suite, pkg, version, log, arch);
  });
  unpack(root, debs);
  writeFileSync(stamp, key);
  return root;
}

function locate(root, label, suite) {
  for (const modBase of ['usr/lib/modules', 'lib/modules']) {
    const base = path.join(root, modBase);
    if (!existsSync(base)) continue;
    for (const release of readdirSync(base)) {
      const modulesDir = path.join(base, release);
      const candidates = [path.join(modulesDir, 'vmlinuz'), path.join(root, 'boot', `vmlinuz-${release}`)];
      const vmlinuz = candidates.find((c) => existsSync(c) && statSync(c).size > 0);
      if (vmlinuz) return { label, suite, release, vmlinuz, modulesDir };
    }
  }
  throw new Error(`${suite}: no vmlinuz found in the unpacked packages`);
}
