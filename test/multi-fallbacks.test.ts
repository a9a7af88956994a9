// Batch links against their forced fallbacks (one perf uprobe / kprobe per target) with
// custom cookies on entry and return probes, and uprobe session cookies on a recursive
// function. Every test checks the exact event stream: which target (by cookie), what
// argument or return value, in what order.
import { describe, expect, it } from 'vitest';

import { load, type RingBuffer } from '../dist/index.js';
import { Child, drain, fixture, kernelFeatures as f, probeEvent, syscalls } from './helpers.js';

const skipReason = (ok: boolean, why: string) => (ok ? '' : ` [skipped: ${f.kernel}: ${why}]`);
const noCookies = skipReason(f.bpfCookie, 'no attach cookies (5.15)');
/** struct event's kind (probe_event.h). */
const ENTRY = 0;
const RETURN = 1;

type Seen = [kind: string, cookie: bigint, value: bigint];
const events = (rb: RingBuffer): Seen[] =>
  drain(rb).map((r) => {
    const e = probeEvent(r);
    return [e.kind === ENTRY ? 'entry' : e.kind === RETURN ? 'return' : `kind ${e.kind}`, e.cookie, e.value];
  });

describe('uprobe_multi and its perf-uprobe fallback: custom cookies, entries and returns', () => {
  // many_i(x) returns x + i and runs with x = 0 .. i % 3 (gen-many.sh), functions in order.
  const TARGETS = [
    { name: 'many_1', cookie: 1001n, i: 1n },
    { name: 'many_2', cookie: 2002n, i: 2n },
    { name: 'many_4', cookie: 4004n, i: 4n },
  ];
  const expected: Seen[] = TARGETS.flatMap((t) =>
    Array.from({ length: Number(t.i % 3n) + 1 }, (_, x): Seen[] => [
      ['entry', t.cookie, BigInt(x)],
      ['return', t.cookie, BigInt(x) + t.i],
    ]).flat(),
  );

  // The fallback always; the batch link too where the kernel has it (the same events).
  for (const forceFallback of f.uprobeMulti ? [true, false] : [true]) {
    const mechanism = forceFallback || !f.uprobeMulti ? 'uprobes' : 'uprobe_multi';
    it.skipIf(!f.bpfCookie)(`each target's own cookie at entry and return, with the argument and the return value (${mechanism}${forceFallback ? ', forced' : ''})${noCookies}`, async () => {
      const child = new Child(fixture('many'), []);
      using obj = await load(fixture('fallbacks.bpf.o'), { globals: { target_tgid: child.pid } });
      const common = { binary: fixture('many'), symbols: TARGETS.map((t) => t.name), cookies: TARGETS.map((t) => t.cookie), forceFallback };
      using entry = obj.program('on_uentry').attachUprobeMulti(common);
      using ret = obj.program('on_ureturn').attachUprobeMulti({ ...common, retprobe: true });
      for (const link of [entry, ret]) {
        expect(link.mechanism).toBe(mechanism);
        expect(link.kernelLinks).toBe(mechanism === 'uprobes' ? TARGETS.length : 1);
        expect(link.targets.map((t) => [t.name, t.cookie])).toEqual(TARGETS.map((t) => [t.name, t.cookie]));
      }
      expect((await child.run()).code).toBe(0);
      expect(events(obj.ringbuf('events'))).toEqual(expected);
    });
  }
});

describe('kprobe_multi and its perf-kprobe fallback: custom cookies, entries and returns', () => {
  // `syscalls mixed N ARG`: per round getpgid(ARG), getsid(ARG), getsid(ARG); no such pid.
  const ARG = 999_999n;
  const ESRCH = -3n;
  const ROUNDS = 3;
  const TARGETS = [
    { name: '__x64_sys_getpgid', cookie: 11n },
    { name: '__x64_sys_getsid', cookie: 22n },
  ];
  const [pgid, sid] = TARGETS.map((t) => t.cookie);
  const round: Seen[] = [pgid, sid, sid].flatMap((c): Seen[] => [
    ['entry', c, ARG],
    ['return', c, ESRCH],
  ]);
  const expected: Seen[] = Array.from({ length: ROUNDS }, () => round).flat();

  for (const forceFallback of f.kprobeMulti ? [true, false] : [true]) {
    const mechanism = forceFallback || !f.kprobeMulti ? 'kprobes' : 'kprobe_multi';
    it.skipIf(!f.kprobe || !f.bpfCookie)(`each target's own cookie at entry and return, with the argument and the return value (${mechanism}${forceFallback ? ', forced' : ''})${skipReason(f.kprobe, 'no kprobes (features().kprobe is false)') || noCookies}`, async () => {
      const child = syscalls('mixed', ROUNDS, String(ARG));
      using obj = await load(fixture('fallbacks.bpf.o'), { globals: { target_tgid: child.pid } });
      const common = { symbols: TARGETS.map((t) => t.name), cookies: TARGETS.map((t) => t.cookie), forceFallback };
      using entry = obj.program('on_kentry').attachKprobeMulti(common);
      using ret = obj.program('on_kreturn').attachKprobeMulti({ ...common, retprobe: true });
      for (const link of [entry, ret]) {
        expect(link.mechanism).toBe(mechanism);
        expect(link.kernelLinks).toBe(mechanism === 'kprobes' ? TARGETS.length : 1);
        expect(link.targets.map((t) => [t.name, t.cookie])).toEqual(TARGETS.map((t) => [t.name, t.cookie]));
      }
      expect((await child.run()).code).toBe(0);
      expect(events(obj.ringbuf('events'))).toEqual(expected);
    });
  }
});

describe('uprobe session cookies', () => {
  it.skipIf(!f.uprobeSession)(`a recursive function: each return gets the cookie its own entry set${skipReason(f.uprobeSession, 'no uprobe sessions (6.13)')}`, async () => {
    const DEPTH = 6;
    using obj = await load(fixture('session_kfuncs.bpf.o'));
    using link = obj.program('on_nested').attachUprobeMulti({ binary: fixture('cli_target'), symbols: ['nested_sum'], session: true });
    expect(link.mechanism).toBe('uprobe_multi');
    const run = await new Child(fixture('cli_target'), ['nested', String(DEPTH)]).exited;
    const sum = (n: number) => (n * (n + 1)) / 2;
    expect(run).toEqual({ code: 0, stdout: `${sum(DEPTH)}\n` });
    // struct nested_event: is_return, pad, arg (the return's: from its cookie), ret.
    const seen = drain(obj.ringbuf('nested_events')).map((r) => {
      const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
      return [v.getUint32(0, true) ? 'return' : 'entry', Number(v.getBigInt64(8, true)), Number(v.getBigInt64(16, true))];
    });
    // Entries outermost first, returns innermost first, each return with its own
    // argument back from its cookie and the value nested_sum(arg) really returned.
    const depths = Array.from({ length: DEPTH + 1 }, (_, i) => DEPTH - i);
    expect(seen).toEqual([
      ...depths.map((n) => ['entry', n, 0]),
      ...depths.reverse().map((n) => ['return', n, sum(n)]),
    ]);
  });
});
