// freplace (BPF_PROG_TYPE_EXT): a program of one object in place of a global function of
// another object's loaded program, configured before load (attachTarget { program,
// function }, libbpf's bpf_program__set_attach_target with a program fd) or given at
// attach (attachFreplace, libbpf's bpf_program__attach_freplace). freplace runs through BPF
// trampolines, which our own kernel refuses (lockdown): the kernel matrix runs this
// (node test/vm/matrix.mjs --kernel 6.12 --exec 'npx vitest run test/freplace.test.ts').
import { describe, expect, it } from 'vitest';

import { load, open, type BpfObject, type Link } from '../dist/index.js';
import { fixture, kernelFeatures as f, openFds, rejects, syscalls } from './helpers.js';

const N = 3;
const ARG = 7;
/** What the replacement adds to the argument (freplace.bpf.c). */
const REPLACED = 1000;
const TRACING = f.fentry ? '' : ` [skipped: this kernel (${f.kernel}) has no BPF trampolines, which freplace runs on: features().fentry is false]`;

/** The target object: its program counts the getpgid calls of this process's children. */
async function loadTarget(): Promise<BpfObject> {
  const target = await load(fixture('freplace_target.bpf.o'), { globals: { parent_tgid: process.pid } });
  target.program('call_policy').attach();
  return target;
}

/** N getpgid(ARG) calls by a child; then what nodebpf_policy returned: the last value and the running sum. */
async function round(target: BpfObject): Promise<{ last: bigint; sum: bigint }> {
  expect((await syscalls('getpgid', N, ARG).run()).code).toBe(0);
  const results = target.map('results', { key: 'u32', value: 'i64' });
  return { last: results.get(0) as bigint, sum: results.get(1) as bigint };
}

/** The sums after a round of the original function, then one of the replacement, then the original again. */
const ORIGINAL = BigInt(N * ARG);
const WITH_REPLACEMENT = ORIGINAL + BigInt(N * (ARG + REPLACED));

describe('freplace', () => {
  it.skipIf(!f.fentry)(`attachTarget { program, function } set before load: the function returns x + 1000 while attached, x before and after${TRACING}`, async () => {
    using target = await loadTarget();
    expect(await round(target)).toEqual({ last: BigInt(ARG), sum: ORIGINAL });

    const o = await open(fixture('freplace.bpf.o'));
    o.program('any_policy').attachTarget = { program: target.program('call_policy'), function: 'nodebpf_policy' };
    o.program('new_policy').autoload = false;
    using ext = await o.load();
    const p = ext.program('any_policy');
    expect(p).toMatchObject({ loaded: true, attachTarget: 'nodebpf_policy', progType: 28 });
    const link = p.attach() as Link;
    expect(link.info()).toMatchObject({ kind: 'freplace', target: 'nodebpf_policy', linkType: 'tracing' });
    expect(await round(target)).toEqual({ last: BigInt(ARG + REPLACED), sum: WITH_REPLACEMENT });

    link.close();
    expect(await round(target)).toEqual({ last: BigInt(ARG), sum: WITH_REPLACEMENT + ORIGINAL });
  });

  it.skipIf(!f.fentry)(`SEC("freplace/nodebpf_policy") with the target program given to load() (a program fd), attached with attach()${TRACING}`, async () => {
    using target = await loadTarget();
    using ext = await load(fixture('freplace.bpf.o'), {
      programs: { new_policy: { attachTarget: { program: target.program('call_policy').fd } }, any_policy: { autoload: false } },
    });
    expect(ext.program('new_policy')).toMatchObject({ loaded: true, attachTarget: 'nodebpf_policy' });
    {
      using _link = ext.program('new_policy').attach() as Link;
      expect(await round(target)).toEqual({ last: BigInt(ARG + REPLACED), sum: BigInt(N * (ARG + REPLACED)) });
    }
    expect(await round(target)).toEqual({ last: BigInt(ARG), sum: BigInt(N * (ARG + REPLACED)) + ORIGINAL });
  });

  it.skipIf(!f.fentry)(`no target configured: the program loads on attachFreplace({ program, function }), and its link owns that instance${TRACING}`, async () => {
    using target = await loadTarget();
    using ext = await load(fixture('freplace.bpf.o'));
    expect(ext.program('any_policy')).toMatchObject({ loaded: false, attachTarget: undefined });
    expect(ext.program('new_policy')).toMatchObject({ loaded: false, attachTarget: 'nodebpf_policy' });
    const fds = openFds();
    const link = ext.program('any_policy').attachFreplace({ program: target.program('call_policy'), function: 'nodebpf_policy' });
    expect(openFds()).toBe(fds + 2); // the link and the program instance
    expect(await round(target)).toEqual({ last: BigInt(ARG + REPLACED), sum: BigInt(N * (ARG + REPLACED)) });
    link.close();
    expect(openFds()).toBe(fds);
    expect(await round(target)).toEqual({ last: BigInt(ARG), sum: BigInt(N * (ARG + REPLACED)) + ORIGINAL });
    // attach() of a program whose SEC() names the function takes the program alone.
    {
      using _link = ext.program('new_policy').attachFreplace({ program: target.program('call_policy') });
      expect((await round(target)).last).toBe(BigInt(ARG + REPLACED));
    }
    expect((await round(target)).last).toBe(BigInt(ARG));
  });

  it.skipIf(!f.fentry)(`a function the target does not have is ENOENT naming it and the functions there are${TRACING}`, async () => {
    using target = await loadTarget();
    using ext = await load(fixture('freplace.bpf.o'));
    const e = await rejects(() => ext.program('any_policy').attachFreplace({ program: target.program('call_policy'), function: 'no_such_policy' }));
    expect(e).toMatchObject({ code: 'ENOENT', message: expect.stringContaining("no function 'no_such_policy' in program 'call_policy'") });
    expect(e.message).toContain('nodebpf_policy');
    const o = await open(fixture('freplace.bpf.o'));
    o.program('any_policy').attachTarget = { program: target.program('call_policy'), function: 'no_such_policy' };
    await expect(o.load()).rejects.toMatchObject({ code: 'ENOENT', program: 'any_policy', message: expect.stringContaining("'no_such_policy'") });
  });
});

describe('freplace errors before any trampoline', () => {
  it('a target program without BTF is EINVAL saying why', async () => {
    using nobtf = await load(fixture('nobtf.bpf.o'));
    await expect(
      load(fixture('freplace.bpf.o'), { programs: { new_policy: { attachTarget: { program: nobtf.program('no_btf') } }, any_policy: { autoload: false } } }),
    ).rejects.toMatchObject({ code: 'EINVAL', program: 'new_policy', message: expect.stringContaining("target program 'no_btf' was loaded without BTF and func info") });
  });

  it('attachTarget { program } is for freplace programs; the program must be a program', async () => {
    using nobtf = await load(fixture('nobtf.bpf.o'));
    await expect(load(fixture('freplace_target.bpf.o'), { programs: { call_policy: { attachTarget: { program: nobtf.program('no_btf') } } } })).rejects.toMatchObject({
      code: 'EINVAL',
      message: expect.stringContaining('an attachTarget program is for freplace programs'),
    });
    using target = await load(fixture('freplace_target.bpf.o'));
    const mapFd = target.map('results').fd;
    await expect(load(fixture('freplace.bpf.o'), { programs: { new_policy: { attachTarget: { program: mapFd } } } })).rejects.toMatchObject({
      code: 'EINVAL',
      message: expect.stringContaining('is not a BPF program'),
    });
    const o = await open(fixture('freplace.bpf.o'));
    expect(() => (o.program('new_policy').attachTarget = { program: 'call_policy' as never })).toThrow(/must be a loaded Program or a program fd/);
  });

  it('attachFreplace without a target program, or on another kind of program, is EINVAL', async () => {
    using ext = await load(fixture('freplace.bpf.o'));
    expect(() => ext.program('new_policy').attach()).toThrow(/has no target program/);
    using target = await load(fixture('freplace_target.bpf.o'));
    expect(() => target.program('call_policy').attachFreplace({ program: target.program('call_policy') })).toThrow(/is not an freplace program/);
  });
});
