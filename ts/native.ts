// Finds and loads the prebuilt addon for this platform.
import { createRequire } from 'node:module';
import { familySync, MUSL } from 'detect-libc';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface NativeLoadOptions {
  globals?: Record<string, Uint8Array>;
  intGlobals?: Record<string, bigint>;
  btfPath?: string;
  pinPath?: string;
}

export interface ProgramDesc {
  name: string;
  section: string;
  progType: number;
  expectedAttachType: number;
  loaded: boolean;
  insnCount: number;
}

export interface MapDesc {
  name: string;
  mapType: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  percpu: boolean;
  pinned?: string;
}

export interface LinkInfo {
  /** What was attached: 'tracepoint', 'uprobe', 'kretprobe', 'fentry', ... */
  kind: string;
  /** Where, e.g. 'syscalls/sys_enter_getppid' or '/usr/bin/node:uv_run'. */
  target: string;
  /** The kernel's link type: 'perf_event', 'raw_tracepoint', 'tracing', ... */
  linkType: string;
  id: number;
  progId: number;
  cookie?: bigint;
}

export interface Features {
  kernel: string;
  btf: boolean;
  ringbuf: boolean;
  bpfCookie: boolean;
  kprobe: boolean;
  kprobeMulti: boolean;
  kprobeSession: boolean;
  uprobeMulti: boolean;
  uprobeSession: boolean;
  fentry: boolean;
  tracingMulti: boolean;
}

export interface NativeLink {
  info(): LinkInfo;
  close(): void;
}

export interface MultiTarget {
  name: string;
  /** Kernel address, file offset (uprobes) or BTF id (tracing), by mechanism. */
  address: bigint;
  cookie: bigint;
}

export interface MultiSkipped {
  name: string;
  reason: string;
}

export interface MultiStats {
  missed?: bigint;
  recursionMisses: bigint;
  runCount?: bigint;
}

export interface NativeMultiLink {
  readonly mechanism: string;
  path(): string | null;
  targets(): MultiTarget[];
  skipped(): MultiSkipped[];
  kernelLinks(): number;
  stats(): MultiStats;
  close(): void;
}

interface Selection {
  pattern?: string;
  names?: string[];
}

export interface NativeKprobeMultiOptions extends Selection {
  addresses?: bigint[];
  cookies?: bigint[];
  retprobe?: boolean;
  session?: boolean;
  module?: string;
  strict?: boolean;
  fallback?: boolean;
  forceFallback?: boolean;
}

export interface NativeUprobeMultiOptions extends Selection {
  binary: string;
  offsets?: bigint[];
  pid?: number;
  cookies?: bigint[];
  retprobe?: boolean;
  session?: boolean;
  includeClones?: boolean;
  fallback?: boolean;
  forceFallback?: boolean;
}

export interface NativeTracingMultiOptions extends Selection {
  btfIds?: number[];
  module?: string;
  cookies?: bigint[];
  fallback?: boolean;
  forceFallback?: boolean;
}

export interface NativeRingBuf {
  nextBatch(): Promise<Buffer | null>;
  tryBatch(): Buffer | null;
  wake(): void;
  close(): void;
}

export interface NativeObject {
  programs(): ProgramDesc[];
  maps(): MapDesc[];
  close(): void;
  attach(prog: string): NativeLink;
  attachTracepoint(prog: string, category: string, name: string, cookie?: bigint): NativeLink;
  attachRawTracepoint(prog: string, name: string): NativeLink;
  attachUprobe(
    prog: string,
    o: { binary: string; symbol?: string; offset?: bigint; pid?: number; retprobe?: boolean; cookie?: bigint },
  ): NativeLink;
  attachKprobe(prog: string, o: { symbol: string; offset?: bigint; retprobe?: boolean; cookie?: bigint }): NativeLink;
  attachFentry(prog: string, fn?: string, cookie?: bigint): NativeLink;
  attachMulti(prog: string): NativeMultiLink;
  attachKprobeMulti(prog: string, o: NativeKprobeMultiOptions): NativeMultiLink;
  attachUprobeMulti(prog: string, o: NativeUprobeMultiOptions): NativeMultiLink;
  attachTracingMulti(prog: string, o: NativeTracingMultiOptions): NativeMultiLink;
  attachKprobeMultiAsync(prog: string, o: NativeKprobeMultiOptions, progress: NativeProgress): Promise<NativeMultiLink>;
  attachUprobeMultiAsync(prog: string, o: NativeUprobeMultiOptions, progress: NativeProgress): Promise<NativeMultiLink>;
  attachTracingMultiAsync(prog: string, o: NativeTracingMultiOptions, progress: NativeProgress): Promise<NativeMultiLink>;
  mapLookup(map: string, key: Uint8Array): Buffer | null;
  mapUpdate(map: string, key: Uint8Array, value: Uint8Array, flags?: number): void;
  mapDelete(map: string, key: Uint8Array): boolean;
  mapKeys(map: string): Buffer[];
  ringbuf(map: string): NativeRingBuf;
}

export interface NativeProgress {
  done(): number;
  total(): number;
}

export interface NativeAddon {
  NativeProgress: new () => NativeProgress;
  loadObject(data: Uint8Array, options?: NativeLoadOptions): Promise<NativeObject>;
  loadObjectSync(data: Uint8Array, options?: NativeLoadOptions): NativeObject;
  features(): Promise<Features>;
  possibleCpus(): number;
  missingCapabilities(): string[];
}

/** The platforms this package ships an addon for. */
export const SHIPPED = ['linux-x64-glibc'];

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

function load(): NativeAddon {
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
  // detect-libc finds musl wherever it is (Alpine, Void, Chimera, distroless...), not only
  // where /etc/alpine-release exists.
  const libc = familySync() === MUSL ? 'musl' : 'glibc';
  const file = prebuiltPath(root, process.platform, process.arch, libc);
  return createRequire(import.meta.url)(file) as NativeAddon;
}

export const addon: NativeAddon = load();
