// Which addon file ts/native.ts loads: prebuildify's layout, and errors that name the platform.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { BPF_ARCH_DIRS, bpfObjectPath } from '../../ts/bpf-objects.js';
import { checkMachine, prebuiltPath, SHIPPED } from '../../ts/native.js';

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

  it('what ships is linux-x64 and linux-arm64 with glibc', () => {
    expect(SHIPPED).toEqual(['linux-x64-glibc', 'linux-arm64-glibc']);
  });

  it('names both shipped platforms where none fits: musl, another arch', () => {
    const ships = 'this package ships linux-x64-glibc, linux-arm64-glibc.';
    expect(() => prebuiltPath(root, 'linux', 'arm64', 'glibc')).toThrow(ships);
    expect(() => prebuiltPath(root, 'linux', 'x64', 'musl')).toThrow(ships);
    expect(() => prebuiltPath(root, 'linux', 'ppc64', 'glibc')).toThrow(/no prebuilt addon for linux-ppc64 with glibc.*linux-x64-glibc, linux-arm64-glibc/);
    expect(() => prebuiltPath(root, 'win32', 'x64', 'glibc')).toThrow('this is win32-x64');
  });
});

describe('checkMachine', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nodebpf-elf-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** An ELF header's first 20 bytes with e_machine `machine`. */
  const elf = (name: string, machine: number) => {
    const h = Buffer.alloc(64);
    h.writeUInt32BE(0x7f454c46, 0);
    h.writeUInt16LE(machine, 18);
    writeFileSync(path.join(dir, name), h);
    return path.join(dir, name);
  };

  it('takes an addon built for this architecture', () => {
    expect(() => checkMachine(elf('x64.node', 62), 'x64')).not.toThrow();
    expect(() => checkMachine(elf('arm64.node', 183), 'arm64')).not.toThrow();
  });

  it("refuses another architecture's addon by name, before dlopen", () => {
    const arm = elf('a.node', 183);
    expect(() => checkMachine(arm, 'x64')).toThrow(`nodebpf's addon ${arm} is built for arm64, not for this x64 machine`);
    expect(() => checkMachine(elf('b.node', 62), 'arm64')).toThrow('is built for x64, not for this arm64 machine');
    expect(() => checkMachine(elf('c.node', 243), 'x64')).toThrow('is built for ELF machine 243, not for this x64 machine');
  });

  it("leaves what it cannot judge to dlopen: an unknown arch, a file that is not ELF", () => {
    expect(() => checkMachine(elf('d.node', 62), 'riscv64')).not.toThrow();
    writeFileSync(path.join(dir, 'e.node'), 'not an ELF file at all');
    expect(() => checkMachine(path.join(dir, 'e.node'), 'x64')).not.toThrow();
  });
});

describe('bpfObjectPath', () => {
  it("x86-64's objects are in dist/bpf, arm64's in dist/bpf/arm64", () => {
    expect(bpfObjectPath('/p/dist/bpf', 'trace', 'x64')).toBe('/p/dist/bpf/trace.bpf.o');
    expect(bpfObjectPath('/p/dist/bpf', 'trace', 'arm64')).toBe('/p/dist/bpf/arm64/trace.bpf.o');
    expect(Object.keys(BPF_ARCH_DIRS)).toEqual(['x64', 'arm64']);
  });

  it("this machine's by default", () => {
    expect(bpfObjectPath('/d', 'profile')).toBe(bpfObjectPath('/d', 'profile', process.arch));
  });

  it('another architecture: names it and what ships', () => {
    expect(() => bpfObjectPath('/d', 'trace', 'riscv64')).toThrow('nodebpf ships its BPF programs for x64 and arm64, not riscv64');
  });
});
