// Object features libbpf-tools use: .kconfig externs (each value the program reads is the
// running kernel's as libbpf gives it: LINUX_KERNEL_VERSION from uname, features, kallsyms,
// the kernel config) and CO-RE into flexible array members.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';

import { load, type BpfError, type BpfObject } from '../dist/index.js';
import { Child, fixture, kernelAtLeast, kernelFeatures, possibleCpus, syscalls } from './helpers.js';

/** What the program wrote into its `seen` struct in .data/.bss after the child's getppid. */
async function run(object: string, child = syscalls('getppid', 1)): Promise<DataView> {
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

describe('__ksym externs', () => {
  const kallsyms = readFileSync('/proc/kallsyms', 'utf8');
  /** A symbol's address as /proc/kallsyms lists it, or undefined. */
  const addressOf = (name: string): bigint | undefined => {
    const line = kallsyms.split('\n').find((l) => l.split(/\s+/)[2] === name);
    return line === undefined ? undefined : BigInt(`0x${line.split(' ')[0]}`);
  };

  it("a typeless symbol's address; weak kfuncs tested with bpf_ksym_exists(): one called where the kernel has it, one missing (0, its call dropped); a missing weak symbol is 0", async () => {
    const v = await run('ksyms.bpf.o');
    expect(v.getBigUint64(0, true)).toBe(addressOf('schedule'));
    expect(v.getUint32(8, true)).toBe(addressOf('bpf_rcu_read_lock') === undefined ? 0 : 1);
    expect(v.getUint32(12, true)).toBe(0);
    expect(v.getBigUint64(16, true)).toBe(0n);
  });

  const perCpuStart = addressOf('__per_cpu_start');
  it.skipIf(perCpuStart === undefined)(
    `a typeless symbol listed at address 0 (x86-64's __per_cpu_start) is taken, as libbpf does, not mistaken for a hidden address${perCpuStart === undefined ? ' [skipped: /proc/kallsyms lists no __per_cpu_start (CONFIG_KALLSYMS_ALL is off)]' : ''}`,
    async () => {
      const v = await run('ksym_at_zero.bpf.o');
      expect(v.getBigUint64(0, true)).toBe(perCpuStart);
    },
  );

  // The verifier resolves a typed __ksym's address by name: only kernels built with
  // CONFIG_KALLSYMS_ALL list data symbols (Debian's do; this VM's does not).
  // Kernel BTF lists per-CPU variables only where pahole encoded them (not Debian 11's).
  const btfVar = readFileSync('/sys/kernel/btf/vmlinux').includes('\0runqueues\0');
  const dataSymbols = addressOf('runqueues') !== undefined && btfVar;
  it.skipIf(!dataSymbols)(
    `a typed per-CPU variable (runqueues) through bpf_per_cpu_ptr and bpf_this_cpu_ptr${dataSymbols ? '' : btfVar ? ' [skipped: no data symbols in /proc/kallsyms (CONFIG_KALLSYMS_ALL is off)]' : ' [skipped: the kernel BTF has no per-CPU variables]'}`,
    async () => {
      const v = await run('ksyms_percpu.bpf.o');
      const cpus = possibleCpus();
      expect([v.getInt32(0, true), v.getInt32(4, true)]).toEqual([0, cpus > 1 ? 1 : -1]);
      expect(v.getInt32(8, true)).toBe(1);
    },
  );
  it.skipIf(dataSymbols)(`without the variable in kernel BTF or kallsyms a typed __ksym is UNSUPPORTED, saying why${dataSymbols ? ' [skipped: this kernel has it in both]' : ''}`, async () => {
    await expect(load(fixture('ksyms_percpu.bpf.o'))).rejects.toMatchObject({
      code: 'UNSUPPORTED',
      message: expect.stringMatching(btfVar ? /kernel variable 'runqueues'.*CONFIG_KALLSYMS_ALL/ : /kernel variable 'runqueues'.*does not have in its BTF/),
    });
  });
});

describe('section names shorter than their remapped name', () => {
  it('SEC("tc") and SEC("classifier") load as SCHED_CLS programs with their BTF func info', async () => {
    await using obj = await load(fixture('tc.bpf.o'));
    expect(obj.programs.map((p) => [p.name, p.section, p.progType])).toEqual([
      ['cls_legacy', 'classifier', 3],
      ['tc_ingress', 'tc', 3],
    ]);
    // The kernel keeps a program's BTF only with its func info, which `.BTF.ext` finds
    // by the (renamed) section's name.
    for (const name of ['cls_legacy', 'tc_ingress']) {
      const shown = JSON.parse(execFileSync('bpftool', ['prog', 'show', 'name', name, '-j'], { encoding: 'utf8' }));
      const progs = (Array.isArray(shown) ? shown : [shown]) as { btf_id?: number }[];
      expect(progs.every((p) => (p.btf_id ?? 0) > 0)).toBe(true);
    }
  });
});

describe('CO-RE relocation kinds', () => {
  /** `bpftool btf dump` of a file: each type's header line and its member lines. */
  const dump = (file: string) => execFileSync('bpftool', ['btf', 'dump', 'file', file], { encoding: 'utf8', maxBuffer: 1 << 30 });
  /** The id, size and member lines of the STRUCT of that name in a dump. */
  const struct = (text: string, name: string) => {
    const at = text.search(new RegExp(`^\\[\\d+\\] STRUCT '${name}' size=`, 'm'));
    const [head, ...rest] = text.slice(at).split('\n');
    const [, id, size] = /^\[(\d+)\] STRUCT '\w+' size=(\d+)/.exec(head) ?? [];
    const members = rest.slice(0, rest.findIndex((l) => l.startsWith('[')));
    return { id: Number(id), size: Number(size), members };
  };

  it('field offset/size/exists/signed/lshift/rshift, type id local/target, type exists/size, enum value exists/value', async () => {
    // SCHED_RESET_ON_FORK sets task_struct's sched_reset_on_fork bitfield; chrt execs.
    const child = new Child('chrt', ['--reset-on-fork', '--other', '0', fixture('syscalls'), 'getppid', '1']);
    const v = await run('core_kinds.bpf.o', child);
    const kernel = struct(dump('/sys/kernel/btf/vmlinux'), 'task_struct');
    const local = struct(dump(fixture('core_kinds.bpf.o')), 'task_struct');
    const pidBits = kernel.members.map((l) => /^\s+'pid' type_id=\d+ bits_offset=(\d+)/.exec(l)).find(Boolean)?.[1];
    const u32 = (o: number) => v.getUint32(o, true);
    const comm = new Uint8Array(v.buffer, v.byteOffset + 4, 16);
    expect({
      pid: u32(0),
      comm: Buffer.from(comm.subarray(0, comm.indexOf(0))).toString(),
      sizes: [u32(20), u32(24)],
      pidOffset: u32(28),
      exists: [u32(32), u32(36)],
      signed: [u32(40), u32(44)],
      resetOnFork: v.getBigUint64(48, true),
      ids: [u32(56), u32(60)],
      typeExists: [u32(64), u32(68)],
      taskSize: u32(72),
      enumExists: [u32(76), u32(80)],
      ringbuf: v.getBigUint64(88, true),
    }).toEqual({
      pid: child.pid,
      comm: 'syscalls',
      sizes: [4, 16],
      pidOffset: Number(pidBits) / 8,
      exists: [1, 0],
      signed: [1, 0],
      resetOnFork: 1n,
      ids: [local.id, kernel.id],
      typeExists: [1, 0],
      taskSize: kernel.size,
      enumExists: [1, 0],
      ringbuf: 27n,
    });
    // bpftool's text dump of the kernel's BTF takes tens of seconds under TCG.
  }, 180_000);
});

describe('several .rodata.* / .data.* sections and shared subprograms', () => {
  it('each section is a map, set through globals and read back; static and global subprograms run for programs of two sections', async () => {
    const child = syscalls('mixed', 2);
    await using obj = await load(fixture('sections.bpf.o'), { globals: { target_tgid: child.pid, step: 5n } });
    expect(obj.maps.map((m) => m.name).sort()).toEqual(['.bss', '.data.counters', '.data.more', '.rodata', '.rodata.limits']);
    const links = [obj.program('on_getpgid').attach(), obj.program('on_getsid').attach()];
    await child.run();
    for (const l of links) await l.closeAsync();
    const u64 = (map: string) => new DataView((obj.map(map).get(new Uint8Array(4)) as Uint8Array).buffer).getBigUint64(0, true);
    // mixed 2: getpgid twice, getsid four times; step 5.
    expect([u64('.data.counters'), u64('.data.more'), u64('.bss')]).toEqual([10n, 120n, 1120n]);
  });
});

describe('CO-RE type matches (BPF_CORE_TYPE_MATCHES)', () => {
  it("libbpf's rules: a struct behind a pointer and a subset of the kernel's fields match; a field at the wrong width, a field or enumerator the kernel lacks, an int of the other signedness do not", async () => {
    const v = await run('core_matches.bpf.o');
    expect(Array.from({ length: 7 }, (_, i) => v.getUint32(4 * i, true))).toEqual([1, 1, 0, 0, 1, 0, 0]);
  });
});

describe('CO-RE type id and size of a type the kernel lacks (bpf_core_type_id_kernel, bpf_core_type_size)', () => {
  it("are 0, as libbpf answers, for a struct, a typedef and an enum the kernel has none of; a type it has keeps its size and id", async () => {
    const v = await run('core_absent.bpf.o');
    const words = Array.from({ length: 8 }, (_, i) => v.getUint32(4 * i, true));
    expect(words.slice(0, 7)).toEqual([0, 0, 0, 0, 0, 1, 8]);
    const insnId = /^\[(\d+)\] STRUCT 'bpf_insn' /m.exec(execFileSync('bpftool', ['btf', 'dump', 'file', '/sys/kernel/btf/vmlinux'], { encoding: 'utf8', maxBuffer: 1 << 30 }))?.[1];
    expect(words[7]).toBe(Number(insnId));
  });
});

describe('an object whose BTF the kernel refuses (a forward-declared enum)', () => {
  it('loads without its BTF, as libbpf does, and runs', async () => {
    const child = syscalls('getppid', 2);
    await using obj = await load(fixture('btf_refused.bpf.o'), { globals: { target_tgid: child.pid } });
    const link = obj.program('count').attach();
    await child.run();
    await link.closeAsync();
    expect(seen(obj).getUint32(0, true)).toBe(2);
  });

  it('a program that needs the BTF (a spin lock in a map value) is refused with the verifier\'s reason and the BTF\'s', async () => {
    const err = await load(fixture('btf_refused_lock.bpf.o')).then(
      () => undefined,
      (e: unknown) => e as BpfError,
    );
    expect(err).toMatchObject({ code: 'VERIFIER', program: 'count' });
    // 5.10's verifier refuses the program before it reaches the lock, for its own reasons.
    if (kernelAtLeast(5, 15)) expect(err?.verifierLog).toMatch(/map 'locked' has to have BTF in order to use bpf_spin_lock/);
    expect(err?.message.split('\n')[0]).toMatch(/loaded without its BTF, which the kernel refused: .*ENUM nodebpf_forward size=0 vlen=0 Unexpected size/);
  });
});

describe('a map declared with max_entries 1 << 27 (a 512 MiB array type in its BTF definition, only pointed at)', () => {
  it.skipIf(!kernelFeatures.memcgAccounting)(`loads with that many entries${kernelFeatures.memcgAccounting ? '' : ' [skipped: before 5.11 the kernel charges the whole map to RLIMIT_MEMLOCK up front]'}`, async () => {
    await using obj = await load(fixture('big_map_def.bpf.o'));
    expect(obj.maps.find((m) => m.name === 'big')?.maxEntries).toBe(2 ** 27);
  });
  it.skipIf(kernelFeatures.memcgAccounting)(`is the kernel's to refuse where it charges maps up front (E2BIG creating it), not the loader's${kernelFeatures.memcgAccounting ? ' [skipped: this kernel accounts maps by memcg]' : ''}`, async () => {
    await expect(load(fixture('big_map_def.bpf.o'))).rejects.toMatchObject({ map: 'big', errno: 7 });
  });
});

describe('event maps sized as libbpf sizes them for the kernel', () => {
  it('ring buffers of 1000 and 3 pages + 1 bytes are rounded up to 1 and 4 pages; a map of such ring buffers and one of perf event arrays with no size are created, and an event goes through the ring buffer found in the map of maps', async () => {
    const page = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }));
    const child = syscalls('getppid', 1);
    await using obj = await load(fixture('event_map_sizes.bpf.o'), { globals: { target_tgid: child.pid } });
    const entries = Object.fromEntries(obj.maps.map((m) => [m.name, m.maxEntries]));
    expect(entries).toMatchObject({ ring: page, bigger: 4 * page, rings: 1, perf_buffers: 4 });
    const link = obj.program('emit').attach();
    await child.run();
    await link.closeAsync();
    const pids: number[] = [];
    for await (const batch of obj.ringbuf('ring').batches()) {
      batch.forEach((view, off) => pids.push(view.getUint32(off, true)));
      break;
    }
    expect(pids).toEqual([child.pid]);
  });
});

describe('event maps declared with their record type (cilium/ebpf, bpf2go)', () => {
  it('a ring buffer and a perf event array with __type(value, struct event) load as the kernel wants them, and the ring buffer carries the records', async () => {
    const child = syscalls('getppid', 3);
    await using obj = await load(fixture('typed_events.bpf.o'), { globals: { target_tgid: child.pid } });
    const sizes = obj.maps.filter((m) => m.name === 'events' || m.name === 'perf_events').map((m) => [m.name, m.keySize, m.valueSize]);
    expect(sizes.sort()).toEqual([
      ['events', 0, 0],
      ['perf_events', 4, 4],
    ]);
    const link = obj.program('emit').attach();
    const done = child.run();
    const pids: number[] = [];
    for await (const batch of obj.ringbuf('events').batches()) {
      batch.forEach((view, off, len) => {
        expect(len).toBe(20);
        pids.push(view.getUint32(off, true));
      });
      if (pids.length === 3) break;
    }
    await done;
    await link.closeAsync();
    expect(pids).toEqual([child.pid, child.pid, child.pid]);
  });
});
