// The cross toolchain for the linux-arm64 addon, unpacked under .cache/ from Debian's
// archive with a private apt state (test/vm/kernels.mjs), nothing installed system-wide:
// - sid's rustc with its x86-64 and arm64 standard libraries (rustup cannot fetch targets
//   here; Debian has the arm64 std as libstd-rust-dev:arm64). Sid's rustc needs a newer
//   glibc than bookworm's, so it runs under sid's own ld.so and libraries (a wrapper);
//   the programs it starts (the linkers) run as usual.
// - bookworm's gcc-aarch64-linux-gnu and libc6-dev-arm64-cross (glibc 2.36: the addon can
//   ask for no newer symbol versions), as the arm64 guest unpacks them (test/vm/arm64.mjs).
// Writes wrappers into .cache/arm64/toolchain/bin and prints, for `eval`, the variables
// cargo and cc-rs read. Once unpacked, everything is reused without asking the archive:
// delete .cache/arm64/toolchain (or .cache/arm64/rust) to take sid's newer rustc.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureCrossGcc } from '../test/vm/arm64.mjs';
import { ensurePackages, suiteState } from '../test/vm/kernels.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KERNELS = path.join(root, '.cache/kernels');
const RUST = path.join(root, '.cache/arm64/rust');
const BIN = path.join(root, '.cache/arm64/toolchain/bin');
const log = (m) => process.stderr.write(`arm64-toolchain: ${m}\n`);
/** rustc's dependencies left out: the linker it starts for the host is the host's own. */
const NOT_NEEDED = new Set(['gcc', 'libc-dev', 'binutils']);

const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A package's fields (`Version`, `Depends`, ...) in a suite's apt state. */
function fields(opts, pkg) {
  const show = run('apt-cache', [...opts, 'show', '--no-all-versions', pkg]);
  const out = {};
  for (const m of show.matchAll(/^([A-Za-z-]+): (.*)$/gm)) out[m[1]] ??= m[2];
  return out;
}

/** Package names of a Depends line: the first of each alternative, versions dropped. */
const names = (line = '') => line.split(',').map((d) => d.trim().split(/[\s|(:]/)[0]).filter(Boolean);

/**
 * rustc and what it runs with (sid, amd64: Depends followed from rustc), and the arm64
 * standard library at the version rustc asks for.
 */
function rustPackages() {
  const { opts } = suiteState(KERNELS, 'sid', log);
  const seen = new Map(); // package → fields
  const queue = ['rustc'];
  while (queue.length) {
    const pkg = queue.shift();
    if (seen.has(pkg) || NOT_NEEDED.has(pkg)) continue;
    const f = fields(opts, pkg);
    seen.set(pkg, f);
    queue.push(...names(f['Pre-Depends']), ...names(f.Depends));
  }
  const std = /libstd-rust-dev \(= ([^)]+)\)/.exec(seen.get('rustc').Depends)?.[1];
  if (!std) throw new Error(`sid's rustc names no libstd-rust-dev version: ${seen.get('rustc').Depends}`);
  return [...[...seen].map(([pkg, f]) => `${pkg}=${f.Version}`), `libstd-rust-dev:arm64=${std}`];
}

function ensureRust() {
  if (existsSync(path.join(RUST, '.packages')) && existsSync(path.join(RUST, 'usr/bin/rustc'))) return RUST;
  log('resolving sid\'s rustc, its libraries and libstd-rust-dev:arm64');
  return ensurePackages(KERNELS, 'sid', rustPackages(), RUST, log);
}

function wrapper(name, body) {
  const file = path.join(BIN, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

const q = (s) => `'${s.replaceAll("'", "'\\''")}'`;

const rust = ensureRust();
const gcc = ensureCrossGcc();
mkdirSync(BIN, { recursive: true });
const lib = path.join(rust, 'usr/lib/x86_64-linux-gnu');
const rustc = wrapper('rustc', `exec ${q(path.join(lib, 'ld-linux-x86-64.so.2'))} --library-path ${q(lib)} ${q(path.join(rust, 'usr/bin/rustc'))} "$@"`);
// The cross binutils find their own libbfd/libopcodes through LD_LIBRARY_PATH (that folder
// holds nothing else); --sysroot: the cross libc's linker scripts name
// /usr/aarch64-linux-gnu/lib/..., which are under the unpacked folder.
const crossLib = path.resolve(path.dirname(gcc), '../lib/x86_64-linux-gnu');
const sysroot = path.resolve(path.dirname(gcc), '../..');
const cc = wrapper('aarch64-linux-gnu-gcc', `LD_LIBRARY_PATH=${q(crossLib)} exec ${q(gcc)} --sysroot=${q(sysroot)} "$@"`);
const tool = (t) => wrapper(`aarch64-linux-gnu-${t}`, `LD_LIBRARY_PATH=${q(crossLib)} exec ${q(path.join(path.dirname(gcc), `aarch64-linux-gnu-${t}`))} "$@"`);
const ar = tool('ar');
const objdump = tool('objdump');
log(run(rustc, ['--version']).trim());

for (const [k, v] of Object.entries({
  RUSTC: rustc,
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER: cc,
  CC_aarch64_unknown_linux_gnu: cc,
  AR_aarch64_unknown_linux_gnu: ar,
  ARM64_OBJDUMP: objdump,
})) {
  console.log(`export ${k}=${q(v)}`);
}
