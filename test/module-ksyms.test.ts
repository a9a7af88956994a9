// __ksym externs that live in kernel modules, and program.testRun(). Debian's kernels
// (the guests) build nf_conntrack and x_tables as modules, so there the kfunc is called
// through the module's BTF and the per-CPU variable is named by it; this VM builds them
// in, and the same objects take vmlinux's.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { load } from '../dist/index.js';
import { fixture, syscalls } from './helpers.js';

const kallsyms = readFileSync('/proc/kallsyms', 'utf8').split('\n').map((l) => l.split(/\s+/));

/** Where kallsyms puts a symbol: its address and module (undefined: built in), or undefined. */
function symbol(name: string): { address: bigint; module?: string } | undefined {
  const f = kallsyms.find((l) => l[2] === name);
  return f && { address: BigInt(`0x${f[0]}`), module: f[3]?.replace(/^\[|\]$/g, '') };
}

/** Whether the kernel's BTF (vmlinux's, or the symbol's module's) can name `name`. */
function inBtf(name: string): boolean {
  const s = symbol(name);
  const btf = s?.module === undefined ? '/sys/kernel/btf/vmlinux' : `/sys/kernel/btf/${s.module}`;
  return s !== undefined && existsSync(btf) && readFileSync(btf).includes(`\0${name}\0`);
}

const where = (name: string) => {
  const s = symbol(name);
  return s === undefined ? 'not in this kernel' : s.module ? `in module ${s.module}` : 'built in';
};

/** An IPv4 Ethernet frame's worth of bytes (the kernel wants at least a header). */
function frame(): Buffer {
  const f = Buffer.alloc(64);
  f.writeUInt16BE(0x0800, 12);
  return f;
}

describe('__ksym externs in kernel modules', () => {
  const kfunc = inBtf('bpf_xdp_ct_lookup');
  it.skipIf(!kfunc)(
    `a kfunc (bpf_xdp_ct_lookup, ${where('bpf_xdp_ct_lookup')}) called from XDP, run with testRun: no conntrack entry, so -ENOENT and XDP_PASS${kfunc ? '' : ' [skipped: no bpf_xdp_ct_lookup in kernel or module BTF (kernels before 6.0, or nf_conntrack without BTF)]'}`,
    async () => {
      await using obj = await load(fixture('module_kfunc.bpf.o'));
      const XDP_PASS = 2;
      const ENOENT = 2;
      const input = frame();
      const r = await obj.program('ct_lookup').testRun({ data: input, repeat: 100 });
      expect(r.retval).toBe(XDP_PASS);
      expect(r.data).toEqual(input);
      expect(r.ctx.length).toBe(0);
      expect(r.duration).toBeGreaterThan(0);
      const data = obj.map('.data').get(new Uint8Array(4)) as Uint8Array;
      expect(Buffer.from(data).readInt32LE(0)).toBe(-ENOENT);
    },
  );

  // The verifier finds a typed variable's address by name in kallsyms, which lists data
  // symbols only with CONFIG_KALLSYMS_ALL (Debian's kernels; not this VM's).
  const vars = inBtf('xt_recseq') && symbol('nf_conntrack_locks_all') !== undefined;
  it.skipIf(!vars)(
    `a typed per-CPU variable (xt_recseq, ${where('xt_recseq')}) through bpf_per_cpu_ptr/bpf_this_cpu_ptr, and a typeless one's address (nf_conntrack_locks_all, ${where('nf_conntrack_locks_all')})${vars ? '' : ' [skipped: no data symbols in /proc/kallsyms (CONFIG_KALLSYMS_ALL), or x_tables has no BTF]'}`,
    async () => {
      const child = syscalls('getppid', 1);
      await using obj = await load(fixture('module_vars.bpf.o'), { globals: { target_tgid: child.pid } });
      const link = obj.program('read_module_vars').attach();
      await child.run();
      await link.closeAsync();
      const raw = obj.map('.data').get(new Uint8Array(4)) as Uint8Array;
      const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      expect(v.getBigUint64(0, true)).toBe(symbol('nf_conntrack_locks_all')?.address);
      expect([v.getUint32(8, true), v.getUint32(12, true)]).toEqual([1, 1]);
    },
  );
});

describe('program.testRun()', () => {
  it('checks its numbers and its data, and a program type without test runs is UNSUPPORTED', async () => {
    await using obj = await load(fixture('tc.bpf.o'));
    const p = obj.program('tc_ingress');
    await expect(p.testRun({ repeat: -1 })).rejects.toMatchObject({ code: 'RANGE', message: expect.stringContaining('repeat') });
    await expect(p.testRun({ cpu: 2 ** 31 })).rejects.toMatchObject({ code: 'RANGE', message: expect.stringContaining('cpu') });
    await expect(p.testRun({ data: 'x' as unknown as Uint8Array })).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('data') });
    // Shorter than an Ethernet header.
    await expect(p.testRun({ data: Buffer.alloc(2) })).rejects.toMatchObject({ code: 'EINVAL', program: 'tc_ingress' });
    const r = await p.testRun({ data: frame(), dataOutSize: 16 });
    expect(r.data.length).toBe(16);
    await using tp = await load(fixture('ksyms.bpf.o'));
    await expect(tp.program('read_ksyms').testRun()).rejects.toMatchObject({ code: 'UNSUPPORTED', program: 'read_ksyms' });
  });
});
