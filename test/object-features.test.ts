// Object features libbpf-tools use: .kconfig externs (each value the program reads is the
// running kernel's as libbpf gives it: LINUX_KERNEL_VERSION from uname, features, kallsyms,
// the kernel config) and CO-RE into flexible array members.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';

import { load, type BpfObject } from '../dist/index.js';
import { fixture, kernelFeatures, syscalls } from './helpers.js';

/** What the program wrote into its `seen` struct in .data/.bss after one getppid. */
async function run(object: string): Promise<DataView> {
  const child = syscalls('getppid', 1);
  await using obj = await load(fixture(object), { globals: { target_tgid: child.pid } });
  const link = obj.program(obj.programs[0].name).attach();
  await child.run();
  await link.closeAsync();
  return seen(obj);
}

function seen(obj: BpfObject): DataView {
  const sec = obj.maps.find((m) => m.name === '.data' || m.name === '.bss');
  if (!sec) throw new Error('no .data/.bss');
  const raw = obj.map(sec.name).get(new Uint8Array(4)) as Uint8Array;
  return new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** The running kernel's config, as libbpf finds it; undefined where there is none. */
function kernelConfig(): Map<string, string> | undefined {
  const text = existsSync('/proc/config.gz')
    ? gunzipSync(readFileSync('/proc/config.gz')).toString()
    : existsSync(`/boot/config-${os.release()}`)
      ? readFileSync(`/boot/config-${os.release()}`, 'utf8')
      : undefined;
  if (text === undefined) return undefined;
  return new Map(text.split('\n').flatMap((l) => (l.includes('=') && !l.startsWith('#') ? [l.split('=', 2) as [string, string]] : [])));
}

describe('.kconfig externs', () => {
  it('LINUX_KERNEL_VERSION, LINUX_HAS_BPF_COOKIE, LINUX_HAS_SYSCALL_WRAPPER, and a missing __weak CONFIG_ is 0', async () => {
    const v = await run('kconfig.bpf.o');
    const [a, b, c] = os.release().split(/[^0-9]+/).map(Number);
    expect(v.getUint32(0, true)).toBe((a << 16) + (b << 8) + Math.min(c, 255));
    expect(v.getUint32(4, true)).toBe(kernelFeatures.bpfCookie ? 1 : 0);
    const wrapper = readFileSync('/proc/kallsyms', 'utf8').split('\n').some((l) => l.endsWith(' __x64_sys_bpf'));
    expect(v.getUint32(8, true)).toBe(wrapper ? 1 : 0);
    expect(v.getUint32(12, true)).toBe(0);
  });

  const config = kernelConfig();
  it.skipIf(!config)(
    `CONFIG_* from the kernel's config: an int, a tristate, a string${config ? '' : ' [skipped: this kernel has neither /proc/config.gz nor /boot/config-$(uname -r)]'}`,
    async () => {
      const v = await run('kconfig_config.bpf.o');
      expect(v.getInt32(0, true)).toBe(Number(config?.get('CONFIG_HZ')));
      expect(v.getUint32(4, true)).toBe({ y: 1, m: 2 }[config?.get('CONFIG_BPF_SYSCALL') ?? ''] ?? 0);
      const host = (config?.get('CONFIG_DEFAULT_HOSTNAME') ?? '""').slice(1, -1).slice(0, 15);
      const bytes = new Uint8Array(v.buffer, v.byteOffset + 8, 16);
      expect(Buffer.from(bytes.subarray(0, bytes.indexOf(0))).toString()).toBe(host);
    },
  );

  it.skipIf(!!config)(`CONFIG_* without a kernel config is UNSUPPORTED, naming the extern${config ? ' [skipped: this kernel has its config]' : ''}`, async () => {
    await expect(load(fixture('kconfig_config.bpf.o'))).rejects.toMatchObject({ code: 'UNSUPPORTED' });
  });
});

describe('CO-RE into a flexible array member', () => {
  it("reads a syscall's arguments through syscall_trace_enter.args[] (index 0 and 1)", async () => {
    const child = syscalls('getppid', 1);
    await using obj = await load(fixture('flexarray.bpf.o'), { globals: { target_tgid: process.pid } });
    const link = obj.program('on_kill').attach();
    const SIGCONT = 18;
    for (let i = 0; i < 3; i++) process.kill(child.pid, SIGCONT);
    await link.closeAsync();
    await child.run();
    const v = seen(obj);
    expect([v.getBigUint64(0, true), v.getBigUint64(8, true), v.getBigUint64(16, true)]).toEqual([BigInt(child.pid), BigInt(SIGCONT), 3n]);
  });
});
