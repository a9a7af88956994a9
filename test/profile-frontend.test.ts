// A profiler wired the way bcc's libbpf-tools `profile` front-end wires it: open the object,
// size the stack map before load (value size for the stack depth, max_entries for the
// number of stacks), set the target pid, load, sample on cpu-clock, then read the stacks
// back by id. The hottest stack must be the busy function under main.
import { describe, expect, it } from 'vitest';

import { open } from '../dist/index.js';
import { Child, fixture, symbolizer } from './helpers.js';

/** libbpf-tools' profile: 127 frames (PERF_MAX_STACK_DEPTH) of 8 bytes, 1024 stacks. */
const STACK_DEPTH = 127;
const STACKS = 1024;
/** Iterations of the target's busy loop: about a second of CPU on our VMs. */
const SPIN = 400_000_000;

describe('profile, configured as its front-end does', () => {
  it('stack map sized before load, cpu-clock samples of one process, hottest user stack is nodebpf_spin ← main', async () => {
    const target = fixture('stack_target');
    const { inside } = symbolizer(target);

    const o = await open(fixture('profile.bpf.o'));
    expect([o.map('stackmap').valueSize, o.map('stackmap').maxEntries]).toEqual([0, 0]);
    o.map('stackmap').valueSize = STACK_DEPTH * 8;
    o.map('stackmap').maxEntries = STACKS;
    const child = new Child(target, ['spin', String(SPIN)]);
    o.setGlobal('target_tgid', child.pid);
    await using obj = await o.load();
    const link = obj.program('on_sample').attachPerfEvent({ event: 'cpu-clock', frequency: 999, pid: child.pid });
    const { code } = await child.run();
    await link.closeAsync();
    expect(code).toBe(0);

    const counts = [...obj.map('counts', { key: 'i32', value: 'u64' }).entries()] as [number, bigint][];
    expect(counts.length).toBeGreaterThan(0);
    const [hottest] = counts.sort((a, b) => Number(b[1] - a[1]))[0];
    const stack = obj.map('stackmap').stack(hottest);
    expect(stack?.slice(0, 2).map(inside)).toEqual(['nodebpf_spin', 'main']);
  });
});
