// Which addon file ts/native.ts loads: prebuildify's layout, and errors that name the platform.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { prebuiltPath, SHIPPED } from '../../ts/native.js';

describe('prebuiltPath', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'nodebpf-prebuilt-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const put = (rel: string) => {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), '');
  };
  put('prebuilt/linux-x64/nodebpf.napi.glibc.node');
  put('prebuilt/linux-arm64/nodebpf.napi.musl.node');

  it('prebuilt/<platform>-<arch>/nodebpf.napi.<libc>.node', () => {
    expect(prebuiltPath(root, 'linux', 'x64', 'glibc')).toBe(path.join(root, 'prebuilt/linux-x64/nodebpf.napi.glibc.node'));
    expect(prebuiltPath(root, 'linux', 'arm64', 'musl')).toBe(path.join(root, 'prebuilt/linux-arm64/nodebpf.napi.musl.node'));
  });

  it('a missing libc or arch names the platform, the file looked for, what ships and how to build one', () => {
    expect(() => prebuiltPath(root, 'linux', 'x64', 'musl')).toThrow(
      `nodebpf has no prebuilt addon for linux-x64 with musl (looked for ${path.join(root, 'prebuilt/linux-x64/nodebpf.napi.musl.node')}); ` +
        `this package ships ${SHIPPED.join(', ')}. From a clone, \`npm run build\` builds one for this machine (Rust needed).`,
    );
    expect(() => prebuiltPath(root, 'linux', 'riscv64', 'glibc')).toThrow(/no prebuilt addon for linux-riscv64 with glibc/);
  });

  it('not Linux: says eBPF is Linux only, even when a file happens to be there', () => {
    put('prebuilt/darwin-arm64/nodebpf.napi.glibc.node');
    expect(() => prebuiltPath(root, 'darwin', 'arm64', 'glibc')).toThrow('nodebpf runs on Linux only (eBPF is a Linux kernel feature); this is darwin-arm64');
  });

  it('what ships is linux-x64 with glibc', () => {
    expect(SHIPPED).toEqual(['linux-x64-glibc']);
  });
});
