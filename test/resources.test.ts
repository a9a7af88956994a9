import { describe, expect, it } from 'vitest';

import { load } from '../dist/index.js';
import { fixture, kernelFeatures as f, openFds } from './helpers.js';

describe('resources', () => {
  // Raw tracepoint links detach in well under a millisecond; perf-event links (tracepoint,
  // uprobe) wait for an RCU grace period in the kernel on detach (~70-110 ms each on our
  // 6.18 VM), so they get fewer rounds: the fd bookkeeping under test is the same.
  it('attaching and closing 1000 links leaves no fd behind', { timeout: 180_000 }, async () => {
    using obj = await load(fixture('trace.bpf.o'));
    using up = await load(fixture('uprobe.bpf.o'));
    // One link held throughout keeps the tracepoint enabled, so the loop does not flip
    // its static key 1000 times (code patching that soft-locks TCG guests on 6.1).
    using keeper = await load(fixture('trace.bpf.o'));
    using _keep = keeper.program('on_sys_enter').attach();
    const before = openFds();
    const raw = obj.program('on_sys_enter');
    for (let i = 0; i < 1000; i++) {
      const link = raw.attach();
      link.close();
      link.close();
    }
    const tp = obj.program('on_getppid');
    const u = up.program('on_entry');
    // Perf-event links detach in the background after close(); closeAsync() (and
    // `await using`) resolve once they are gone.
    for (let i = 0; i < 20; i++) {
      // Cookies where the kernel has them (5.15): a link of each kind either way.
      const cookie = f.bpfCookie ? i : undefined;
      await tp.attachTracepoint('syscalls', 'sys_enter_getppid', { cookie })[Symbol.asyncDispose]();
      const link = u.attachUprobe({ binary: fixture('target'), symbol: 'nodebpf_target', cookie });
      link.close();
      await link.closeAsync(); // waits for the detach close() started
    }
    expect(openFds()).toBe(before);
  });

  it('opening and closing 100 objects (with rings and open links) leaves no fd behind', { timeout: 180_000 }, async () => {
    const warm = await load(fixture('trace.bpf.o'));
    warm.close();
    const before = openFds();
    for (let i = 0; i < 100; i++) {
      const obj = await load(fixture('trace.bpf.o'));
      obj.program('on_getppid').attach(); // closed with the object
      obj.ringbuf('events');
      obj.close();
      await obj.closeAsync(); // waits for the link's background detach
      obj[Symbol.dispose]();
    }
    expect(openFds()).toBe(before);
  });
});
