import { describe, expect, it } from 'vitest';

import { features, load, BpfError } from '../dist/index.js';
import { Child, drain, fixture, probeEvent } from './helpers.js';

const N = 7;
const BASE = 100;
/** Attach cookies (5.15): without them the program reads 0 and a cookie given is UNSUPPORTED. */
const { bpfCookie: cookies } = await features();

describe('uprobes', () => {
  it(`uprobe and uretprobe see the exact calls, argument, return value and cookie${cookies ? '' : ' (no cookies: 0, and one given is UNSUPPORTED)'}`, async () => {
    const child = new Child(fixture('target'), [String(N), String(BASE)]);
    using obj = await load(fixture('uprobe.bpf.o'));
    const binary = fixture('target');
    if (!cookies) {
      expect(() => obj.program('on_entry').attachUprobe({ binary, symbol: 'nodebpf_target', pid: child.pid, cookie: 0xabcn })).toThrow(
        expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringContaining('features().bpfCookie is false') }),
      );
    }
    using entry = obj.program('on_entry').attachUprobe({ binary, symbol: 'nodebpf_target', pid: child.pid, cookie: cookies ? 0xabcn : undefined });
    using _ret = obj.program('on_return').attachUprobe({
      binary,
      symbol: 'nodebpf_target',
      pid: child.pid,
      retprobe: true,
      cookie: cookies ? 0xdef : undefined,
    });
    // Before 5.15 no perf link: the program is set on the perf event by ioctl.
    expect(entry.info()).toMatchObject(cookies ? { kind: 'uprobe', linkType: 'perf_event', cookie: 0xabcn } : { kind: 'uprobe', linkType: 'perf_event_ioctl', id: 0 });
    const { code, stdout } = await child.run();
    expect(code).toBe(0);
    const events = drain(obj.ringbuf('events')).map(probeEvent);
    const entries = events.filter((e) => e.kind === 0);
    const returns = events.filter((e) => e.kind === 1);
    const args = Array.from({ length: N }, (_, i) => BigInt(BASE + i));
    expect(entries.map((e) => e.value)).toEqual(args);
    expect(returns.map((e) => e.value)).toEqual(args.map((x) => 2n * x + 1n));
    expect(events.every((e) => e.pid === child.pid)).toBe(true);
    expect(new Set(entries.map((e) => e.cookie))).toEqual(new Set([cookies ? 0xabcn : 0n]));
    expect(new Set(returns.map((e) => e.cookie))).toEqual(new Set([cookies ? 0xdefn : 0n]));
    expect(Number(stdout.trim())).toBe(args.reduce((s, x) => s + Number(2n * x + 1n), 0));
  });

  it('attaches by offset and with pid filtering leaves other processes alone', async () => {
    const child = new Child(fixture('target'), ['3', '1']);
    const other = new Child(fixture('target'), ['4', '1']);
    using obj = await load(fixture('uprobe.bpf.o'));
    using _l = obj.program('on_entry').attachUprobe({ binary: fixture('target'), symbol: 'nodebpf_target', offset: 0, pid: child.pid });
    await Promise.all([child.run(), other.run()]);
    const events = drain(obj.ringbuf('events')).map(probeEvent);
    expect(events.map((e) => e.value)).toEqual([1n, 2n, 3n]);
    expect(events.every((e) => e.pid === child.pid)).toBe(true);
  });

  it('names a missing binary or symbol', async () => {
    using obj = await load(fixture('uprobe.bpf.o'));
    const p = obj.program('on_entry');
    expect(() => p.attachUprobe({ binary: '/nonexistent/bin', symbol: 'f' })).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('/nonexistent/bin') }),
    );
    expect(() => p.attachUprobe({ binary: fixture('target'), symbol: 'no_such_function' })).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('no_such_function') }),
    );
    expect(() => p.attachUprobe({ binary: 'nodebpf-no-such-program' })).toThrow(BpfError);
  });

  it('SEC("uprobe") without a target cannot auto-attach', async () => {
    using obj = await load(fixture('uprobe.bpf.o'));
    expect(() => obj.program('on_entry').attach()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});
