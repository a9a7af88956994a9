// USDT probes attached the way libbpf does, for programs built with libbpf's
// <bpf/usdt.bpf.h>: exact argument values of every size, signedness and location
// (register, stack, constant), the attach cookie, semaphores set only while attached, pid
// filtering, auto-attach from SEC("usdt/…"), spec slots given back on detach, and a real
// probe of Debian's libstdc++. Each on uprobe_multi where the kernel has it and on the
// per-site perf-uprobe fallback always.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { load, type BpfObject, type MultiLink } from '../dist/index.js';
import { Child, drain, fixture, kernelFeatures as f, openFds, probeEvent, rejects } from './helpers.js';

const TARGET = fixture('usdt_target');
const MAX_ARGS = 12;

interface UsdtEvent {
  which: number;
  pid: number;
  cookie: bigint;
  argc: number;
  err: number;
  args: bigint[];
}

/** `struct usdt_event` of usdt.bpf.c. */
function usdtEvent(r: Uint8Array): UsdtEvent {
  const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
  const argc = v.getInt32(16, true);
  return {
    which: v.getUint32(0, true),
    pid: v.getUint32(4, true),
    cookie: v.getBigUint64(8, true),
    argc,
    err: v.getInt32(20, true),
    args: Array.from({ length: Math.max(0, Math.min(argc, MAX_ARGS)) }, (_, i) => v.getBigInt64(24 + 8 * i, true)),
  };
}

const events = (obj: BpfObject) => drain(obj.ringbuf('events')).map(usdtEvent);

/** What usdt_target.c passes to nodebpf:args for round i (see its fire()). */
const argsOf = (i: number): bigint[] => {
  const n = BigInt(i);
  return [-1n - n, 250n + n, -30000n - n, 65000n + n, -2000000000n - n, 4000000000n + n, -(1n << 40n) - n, 0xfedcba9876543210n + n, -5n, 200n].map(
    // bpf_usdt_arg() hands out a long: an unsigned 64-bit value above 2^63 reads negative.
    (x) => BigInt.asIntN(64, x),
  );
};

/** usdt_target, driven a line at a time: `fire(n)` returns once its probes have fired. */
class Target {
  readonly proc: ChildProcessWithoutNullStreams;
  #lines: string[] = [];
  #waiting: ((line: string) => void) | undefined;

  constructor() {
    this.proc = spawn(TARGET, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const w = this.#waiting;
        this.#waiting = undefined;
        if (w) w(line);
        else this.#lines.push(line);
      }
    });
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error('usdt_target did not start');
    return this.proc.pid;
  }

  /** Fires the probes n times; the semaphore of nodebpf:guarded and the guarded count so far. */
  async fire(n: number): Promise<{ sem: number; guarded: number }> {
    const line = new Promise<string>((resolve) => {
      const queued = this.#lines.shift();
      if (queued !== undefined) resolve(queued);
      else this.#waiting = resolve;
    });
    this.proc.stdin.write(`fire ${n}\n`);
    const m = /^sem=(\d+) guarded=(\d+)$/.exec(await line);
    if (!m) throw new Error('unexpected output from usdt_target');
    return { sem: Number(m[1]), guarded: Number(m[2]) };
  }

  [Symbol.dispose](): void {
    this.proc.stdin.end();
    this.proc.kill();
  }
}

const mechanisms = f.uprobeMulti ? [true, false] : [true];
const mechanismOf = (forceFallback: boolean) => (forceFallback || !f.uprobeMulti ? 'uprobes' : 'uprobe_multi');

describe('USDT', () => {
  // First, before any child's pipes are open or closing.
  it('leaves no fd behind: links, perf events, program instances and the address map\'s duplicate are closed', async () => {
    const before = openFds();
    const obj = await load(fixture('usdt.bpf.o'));
    for (const forceFallback of mechanisms) {
      const links = ['args', 'guarded'].map((name) => obj.program('on_usdt').attachUsdt({ binary: TARGET, provider: 'nodebpf', name, forceFallback }));
      expect(openFds()).toBeGreaterThan(before);
      await Promise.all(links.map((l) => l.closeAsync()));
    }
    await obj.closeAsync();
    expect(openFds()).toBe(before);
  });

  for (const forceFallback of mechanisms) {
    const mechanism = mechanismOf(forceFallback);

    it(`reads every argument exactly, with the cookie; the semaphore is set only while attached (${mechanism}${forceFallback ? ', forced' : ''})`, async () => {
      using target = new Target();
      using obj = await load(fixture('usdt.bpf.o'));
      expect(await target.fire(1)).toEqual({ sem: 0, guarded: 0 });
      expect(events(obj)).toEqual([]);

      const args = obj.program('on_usdt').attachUsdt({ binary: TARGET, provider: 'nodebpf', name: 'args', cookie: 0xfeedn, forceFallback });
      const guarded = obj.program('on_guarded').attachUsdt({ binary: TARGET, provider: 'nodebpf', name: 'guarded', cookie: 7, forceFallback });
      for (const [link, name] of [
        [args, 'nodebpf:args'],
        [guarded, 'nodebpf:guarded'],
      ] as [MultiLink, string][]) {
        expect(link.mechanism).toBe(mechanism);
        expect(link.kernelLinks).toBe(1);
        expect(link.targets).toHaveLength(1);
        expect(link.targets[0].name).toBe(name);
        expect(link.skipped).toEqual([]);
      }
      expect(args.targets[0].cookie).toBe(0xfeedn);

      expect(await target.fire(3)).toEqual({ sem: 1, guarded: 3 });
      const expected = [0, 1, 2].flatMap((i) => [
        { which: 0, pid: target.pid, cookie: 0xfeedn, argc: 10, err: 0, args: argsOf(i) },
        { which: 1, pid: target.pid, cookie: 7n, argc: 2, err: 0, args: [BigInt(i), BigInt(-i)] },
      ]);
      expect(events(obj)).toEqual(expected);

      await args.closeAsync();
      await guarded.closeAsync();
      expect(await target.fire(2)).toEqual({ sem: 0, guarded: 3 });
      expect(events(obj)).toEqual([]);
    });

    it(`attachUsdtAsync: the same probe off the JS thread, its progress reported, then closed (${mechanism}${forceFallback ? ', forced' : ''})`, async () => {
      using target = new Target();
      using obj = await load(fixture('usdt.bpf.o'));
      const reports: [number, number][] = [];
      const link = await obj.program('on_usdt').attachUsdtAsync({
        binary: TARGET,
        provider: 'nodebpf',
        name: 'args',
        cookie: 5,
        forceFallback,
        onProgress: (done, total) => reports.push([done, total]),
      });
      expect(link.mechanism).toBe(mechanism);
      expect(link.targets.map((t) => [t.name, t.cookie])).toEqual([['nodebpf:args', 5n]]);
      // Only the per-site fallback works target by target; uprobe_multi is one call.
      expect(reports.at(-1)).toEqual(forceFallback || !f.uprobeMulti ? [1, 1] : undefined);
      expect(await target.fire(2)).toEqual({ sem: 0, guarded: 0 });
      expect(events(obj)).toEqual([0, 1].map((i) => ({ which: 0, pid: target.pid, cookie: 5n, argc: 10, err: 0, args: argsOf(i) })));
      await link.closeAsync();
      expect(await target.fire(1)).toEqual({ sem: 0, guarded: 0 });
      expect(events(obj)).toEqual([]);
    });

    it(`a pid restricts the probes and the semaphore to that process (${mechanism}${forceFallback ? ', forced' : ''})`, async () => {
      using mine = new Target();
      using other = new Target();
      using obj = await load(fixture('usdt.bpf.o'));
      const common = { binary: TARGET, provider: 'nodebpf', pid: mine.pid, forceFallback };
      using _a = obj.program('on_usdt').attachUsdt({ ...common, name: 'args' });
      using _g = obj.program('on_guarded').attachUsdt({ ...common, name: 'guarded' });
      expect(await other.fire(2)).toEqual({ sem: 0, guarded: 0 });
      expect(await mine.fire(2)).toEqual({ sem: 1, guarded: 2 });
      const seen = events(obj);
      expect(seen.map((e) => [e.which, e.pid, e.cookie, e.args[0]])).toEqual([
        [0, mine.pid, 0n, -1n],
        [1, mine.pid, 0n, 0n],
        [0, mine.pid, 0n, -2n],
        [1, mine.pid, 0n, 1n],
      ]);
    });

    it(`a probe of Debian's libstdc++ (libstdcxx:throw) fires with the exception object and its type_info (${mechanism}${forceFallback ? ', forced' : ''})`, async () => {
      const N = 3;
      const child = new Child(fixture('usdt_cxx'), [String(N)]);
      using obj = await load(fixture('usdt.bpf.o'));
      using link = obj.program('on_usdt').attachUsdt({
        binary: 'libstdc++.so.6',
        provider: 'libstdcxx',
        name: 'throw',
        pid: child.pid,
        cookie: 42,
        forceFallback,
      });
      expect(link.mechanism).toBe(mechanism);
      const { code, stdout } = await child.run();
      expect(code).toBe(0);
      const printed = stdout
        .trim()
        .split('\n')
        .map((l) => l.split(' ').map((a) => BigInt(a)));
      expect(printed).toHaveLength(N);
      expect(events(obj)).toEqual(printed.map((args) => ({ which: 0, pid: child.pid, cookie: 42n, argc: 2, err: 0, args })));
    });
  }

  // libbpf 1.7's usdt.bpf.h lays out its specs anew (304-byte values) and reads
  // base+index*scale operands; the same usdt.bpf.c built against it.
  describe("libbpf 1.7's usdt.bpf.h (usdt_libbpf17.bpf.o)", () => {
    /** What usdt_target.c passes to nodebpf:sib for round i (see its sib()). */
    const sibOf = (i: number): bigint[] => {
      const n = BigInt(i);
      const loc = [n, 3n * n, -n, 7n];
      const small = [BigInt.asIntN(16, -n), 2n, 3n, 4n];
      const j = i & 3;
      return [loc[j], loc[(j + 1) & 3], small[j]];
    };

    for (const forceFallback of mechanisms) {
      const mechanism = mechanismOf(forceFallback);
      it(`reads registers, stack slots, constants and base+index*scale operands exactly (${mechanism}${forceFallback ? ', forced' : ''})`, async () => {
        using target = new Target();
        using obj = await load(fixture('usdt_libbpf17.bpf.o'));
        expect(obj.maps.find((m) => m.name === '__bpf_usdt_specs')?.valueSize).toBe(304);
        const common = { binary: TARGET, provider: 'nodebpf', forceFallback };
        using _a = obj.program('on_usdt').attachUsdt({ ...common, name: 'args', cookie: 1 });
        using _s = obj.program('on_usdt').attachUsdt({ ...common, name: 'sib', cookie: 2 });
        expect(await target.fire(5)).toEqual({ sem: 0, guarded: 0 });
        expect(events(obj)).toEqual(
          [0, 1, 2, 3, 4].flatMap((i) => [
            { which: 0, pid: target.pid, cookie: 1n, argc: 10, err: 0, args: argsOf(i) },
            { which: 0, pid: target.pid, cookie: 2n, argc: 3, err: 0, args: sibOf(i) },
          ]),
        );
      });
    }

    it("an object built with an older usdt.bpf.h cannot read them: UNSUPPORTED, saying so", async () => {
      using obj = await load(fixture('usdt.bpf.o'));
      expect(obj.maps.find((m) => m.name === '__bpf_usdt_specs')?.valueSize).toBe(208);
      expect(() => obj.program('on_usdt').attachUsdt({ binary: TARGET, provider: 'nodebpf', name: 'sib' })).toThrow(
        expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringMatching(/nodebpf:sib has a base\+index\*scale argument .*predates libbpf 1\.7/) }),
      );
    });
  });

  // Kernels before 5.15 have no BPF cookies: usdt.bpf.h finds the spec by the probe's
  // address. usdt_ip.bpf.c is usdt.bpf.h built to do so on any kernel.
  describe('specs by address (__bpf_usdt_ip_to_spec_id), as without BPF cookies', () => {
    interface IpEvent {
      ip: bigint;
      cookie: bigint;
      argc: number;
      err: number;
      args: bigint[];
    }
    const ipEvents = (obj: BpfObject): IpEvent[] =>
      drain(obj.ringbuf('events')).map((r) => {
        const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
        return {
          ip: v.getBigUint64(0, true),
          cookie: v.getBigUint64(8, true),
          argc: v.getInt32(16, true),
          err: v.getInt32(20, true),
          args: [v.getBigInt64(24, true), v.getBigInt64(32, true)],
        };
      });
    const ipMap = (obj: BpfObject) => obj.map('__bpf_usdt_ip_to_spec_id', { key: 'u64', value: 'u32' });

    for (const forceFallback of mechanisms) {
      const mechanism = mechanismOf(forceFallback);

      it(`a fixed-address executable: its sites by their addresses, removed on detach (${mechanism}${forceFallback ? ', forced' : ''})`, async () => {
        using target = new Target();
        using obj = await load(fixture('usdt_ip.bpf.o'));
        const link = obj.program('on_usdt_by_ip').attachUsdt({
          binary: TARGET,
          provider: 'nodebpf',
          name: 'guarded',
          cookie: 11,
          forceFallback,
          forceAddressLookup: true,
        });
        expect(link.mechanism).toBe(mechanism);
        const keys = ipMap(obj).keys();
        expect(keys).toHaveLength(1);
        expect(await target.fire(2)).toEqual({ sem: 1, guarded: 2 });
        expect(ipEvents(obj)).toEqual([0n, 1n].map((i) => ({ ip: keys[0], cookie: 11n, argc: 2, err: 0, args: [i, -i] })));
        await link.closeAsync();
        expect(ipMap(obj).keys()).toEqual([]);
      });

      it(`a shared library: its sites by their addresses in the pid's mapping (${mechanism}${forceFallback ? ', forced' : ''})`, async () => {
        const child = new Child(fixture('usdt_cxx'), ['2']);
        using obj = await load(fixture('usdt_ip.bpf.o'));
        const options = { binary: 'libstdc++.so.6', provider: 'libstdcxx', name: 'throw', cookie: 12, forceFallback, forceAddressLookup: true };
        const noPid = await rejects(() => obj.program('on_usdt_by_ip').attachUsdt(options));
        expect(noPid.code).toBe('UNSUPPORTED');
        expect(noPid.message).toContain('with a pid');
        using _link = obj.program('on_usdt_by_ip').attachUsdt({ ...options, pid: child.pid });
        const keys = ipMap(obj).keys();
        expect(keys).toHaveLength(1);
        const { code, stdout } = await child.run();
        expect(code).toBe(0);
        const printed = stdout
          .trim()
          .split('\n')
          .map((l) => l.split(' ').map((a) => BigInt(a)));
        expect(ipEvents(obj)).toEqual(printed.map((args) => ({ ip: keys[0], cookie: 12n, argc: 2, err: 0, args })));
      });
    }
  });

  it('SEC("usdt/<binary>:<provider>:<name>") auto-attaches as a MultiLink', async () => {
    using target = new Target();
    using obj = await load(fixture('usdt.bpf.o'));
    const p = obj.program('auto_args');
    expect(p.isMulti).toBe(true);
    using link = p.attach() as MultiLink;
    expect(link.targets.map((t) => t.name)).toEqual(['nodebpf:args']);
    await target.fire(2);
    expect(events(obj)).toEqual([0, 1].map((i) => ({ which: 2, pid: target.pid, cookie: 0n, argc: 10, err: 0, args: argsOf(i) })));
    expect(() => obj.program('on_usdt').attach()).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('attachUsdt') }));
  });

  it('spec slots are given back on detach: a full __bpf_usdt_specs is BUSY until a link closes', async () => {
    using obj = await load(fixture('usdt.bpf.o'), { maps: { __bpf_usdt_specs: { maxEntries: 2 } } });
    const attach = (name: string) => obj.program('on_usdt').attachUsdt({ binary: TARGET, provider: 'nodebpf', name });
    const a = attach('args');
    const b = attach('guarded');
    const full = await rejects(() => attach('args'));
    expect(full.code).toBe('BUSY');
    expect(full.message).toMatch(/__bpf_usdt_specs has 2 slots/);
    await a.closeAsync();
    for (let i = 0; i < 5; i++) await attach('args').closeAsync();
    using target = new Target();
    using _c = obj.program('on_usdt').attachUsdt({ binary: TARGET, provider: 'nodebpf', name: 'args', cookie: 3 });
    await b.closeAsync();
    await target.fire(1);
    expect(events(obj).map((e) => [e.cookie, e.args])).toEqual([[3n, argsOf(0)]]);
  });

  it('names what is wrong: unknown probe, binary without probes, object without usdt.bpf.h, ranges', async () => {
    using obj = await load(fixture('usdt.bpf.o'));
    const p = obj.program('on_usdt');
    const missing = await rejects(() => p.attachUsdt({ binary: TARGET, provider: 'nodebpf', name: 'nope' }));
    expect(missing.code).toBe('ENOENT');
    expect(missing.message).toContain('nodebpf:nope');
    expect(missing.message).toContain('nodebpf:args, nodebpf:guarded');
    const none = await rejects(() => p.attachUsdt({ binary: fixture('target'), provider: 'a', name: 'b' }));
    expect(none.code).toBe('ENOENT');
    expect(none.message).toContain('no USDT probes');
    expect((await rejects(() => p.attachUsdt({ binary: TARGET, provider: 'nodebpf', name: 'args', pid: -1 }))).code).toBe('RANGE');
    expect((await rejects(() => p.attachUsdt({ binary: TARGET, provider: 'nodebpf', name: 'args', cookie: 1n << 64n }))).code).toBe('RANGE');
    expect((await rejects(() => p.attachUsdt({ binary: TARGET, provider: 'nodebpf', name: 'args', cookie: 1.5 }))).code).toBe('RANGE');

    using tp = await load(fixture('trace.bpf.o'));
    const e = await rejects(() => tp.program('on_getppid').attachUsdt({ binary: TARGET, provider: 'nodebpf', name: 'args' }));
    expect(e.code).toBe('EINVAL');
    expect(e.message).toContain('not a kprobe/uprobe program');
    expect(e.program).toBe('on_getppid');
  });

  // bcc's javagc: SEC("usdt") programs that read no arguments, built without usdt.bpf.h.
  it('an object without usdt.bpf.h attaches too: the cookie is the BPF cookie, the semaphore is set', async () => {
    using target = new Target();
    using obj = await load(fixture('uprobe.bpf.o'));
    using link = obj.program('on_entry').attachUsdt({ binary: TARGET, provider: 'nodebpf', name: 'guarded', cookie: 9 });
    expect(link.targets.map((t) => [t.name, t.cookie])).toEqual([['nodebpf:guarded', 9n]]);
    expect(await target.fire(2)).toEqual({ sem: 1, guarded: 2 });
    // on_entry reports its first argument register: nodebpf:guarded's first argument is in %rdi.
    const seen = drain(obj.ringbuf('events')).map(probeEvent);
    expect(seen).toEqual([0n, 1n].map((value) => ({ kind: 0, pid: target.pid, value, cookie: f.bpfCookie ? 9n : 0n })));
  });
});
