// Finds and loads the prebuilt addon for this platform.
import { createRequire } from 'node:module';
import { familySync, MUSL } from 'detect-libc';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import type * as binding from './binding.js';

// The boundary's types are the ones napi-rs generates from crates/napi (checked in as
// binding.ts; test/unit/boundary.test.ts fails when the Rust side changed them unreviewed).
export type {
  NativeObject,
  NativeMap,
  NativeLink,
  NativeMultiLink,
  NativeEvents,
  NativeProgress,
  NativeSymbolizer,
  SymbolizedStacks,
  Features,
  LinkInfo,
  MapDesc,
  ProgramDesc,
  MultiTarget,
  MultiSkipped,
  MultiStats,
} from './binding.js';

/** The addon as napi-rs declares it. */
export type NativeAddon = typeof binding;

/** The platforms this package ships an addon for. */
export const SHIPPED = ['linux-x64-glibc', 'linux-arm64-glibc'];

/**
 * The prebuilt addon for a platform: prebuildify's layout,
 * `prebuilt/<platform>-<arch>/nodebpf.napi.<libc>.node`. Throws naming the platform when
 * none fits.
 */
export function prebuiltPath(root: string, platform: string, arch: string, libc: 'glibc' | 'musl'): string {
  const tag = `${platform}-${arch}`;
  if (platform !== 'linux') {
    throw new Error(`nodebpf runs on Linux only (eBPF is a Linux kernel feature); this is ${tag}`);
  }
  const file = path.join(root, 'prebuilt', tag, `nodebpf.napi.${libc}.node`);
  if (!existsSync(file)) {
    throw new Error(
      `nodebpf has no prebuilt addon for ${tag} with ${libc} (looked for ${file}); this package ships ` +
        `${SHIPPED.join(', ')}. From a clone, \`npm run build\` builds one for this machine (Rust needed).`,
    );
  }
  return file;
}

/** ELF e_machine of the architectures Node names: an addon for another is refused by name. */
const ELF_MACHINES: Readonly<Record<string, number>> = { x64: 62, arm64: 183 };

/**
 * Throws naming both architectures when `file` is an ELF for another CPU than `arch`
 * (a copied or misplaced prebuilt): dlopen's own message for an arm64 addon on x86-64 is
 * "cannot open shared object file: No such file or directory", for a file that is there.
 */
export function checkMachine(file: string, arch: string): void {
  const want = ELF_MACHINES[arch];
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  if (want === undefined || header.readUInt32BE(0) !== 0x7f454c46) return;
  const machine = header.readUInt16LE(18);
  if (machine !== want) {
    const name = Object.keys(ELF_MACHINES).find((a) => ELF_MACHINES[a] === machine) ?? `ELF machine ${machine}`;
    throw new Error(`nodebpf's addon ${file} is built for ${name}, not for this ${arch} machine`);
  }
}

function load(): NativeAddon {
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
  // detect-libc finds musl wherever it is (Alpine, Void, Chimera, distroless...), not only
  // where /etc/alpine-release exists.
  const libc = familySync() === MUSL ? 'musl' : 'glibc';
  const file = prebuiltPath(root, process.platform, process.arch, libc);
  checkMachine(file, process.arch);
  return createRequire(import.meta.url)(file) as NativeAddon;
}

export const addon: NativeAddon = load();
