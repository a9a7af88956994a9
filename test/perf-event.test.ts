// perf_event programs on sampling perf events: one process, every online CPU, a cgroup.
// cpu-clock in frequency mode is an hrtimer the kernel runs at a fixed period of
// 1e9/frequency ns of the sampled clock, so the expected count is frequency × the time
// that clock ran. The bounds are loose (0.5×..1.5× plus 2): the CPU time is read from
// /proc in 10 ms ticks and the sampling window's edges are not exact. Under QEMU TCG (the
// kernel matrix) the guest's timer fires late by a factor that varies with the host's
// load: the 6.1, 6.12 and 7.2 guests counted 0.17–0.48× of the expected samples where
// our 6.18 host counts ~1×, so in a guest the lower bound is 0.1×.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';

import { load } from '../dist/index.js';
import { fixture, inGuest, kernelFeatures, openFds } from './helpers.js';

const HZ = 1000;
const RUN_MS = 1000;
/** USER_HZ: the unit of utime/stime in /proc/PID/stat. */
const CLOCK_TICKS = 100;
/** Perf links came with cookies (5.15); before, the program is set on the events by ioctl. */
const LINK_TYPE = kernelFeatures.bpfCookie ? 'perf_event' : 'perf_event_ioctl';
const LOWER = inGuest ? 0.1 : 0.5;

function busy(): ChildProcess {
  return spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
}

/**
 * Runs `f` with a busy task pinned to each of `cpus`, so each one's clock runs: an idle
 * vCPU of a loaded VM can go a whole second without a tick reaching it.
 */
async function busyOn(cpus: number[], f: () => Promise<void>): Promise<void> {
  const spinners = cpus.map((cpu) => spawn('taskset', ['-c', String(cpu), 'sh', '-c', 'while :; do :; done'], { stdio: 'ignore' }));
  try {
    await f();
  } finally {
    await Promise.all(spinners.map((s) => new Promise((resolve) => (s.exitCode !== null ? resolve(null) : (s.once('exit', resolve), s.kill())))));
  }
}

/**
 * Samples cpu-clock at HZ for RUN_MS with `target` (a pid or a cgroup): the busy process
 * `pid` must be the only one sampled, about HZ × its CPU time. Returns the link's info.
 */
async function sampleOnly(pid: number, target: { pid: number } | { cgroup: string }) {
  using obj = await load(fixture('perf_sample.bpf.o'));
  const by = obj.map<number, bigint>('by_pid', { key: 'u32', value: 'u64' });
  const before = cpuSeconds(pid);
  const link = obj.program('on_sample').attachPerfEvent({ event: 'cpu-clock', frequency: HZ, ...target });
  const info = link.info();
  await sleep(RUN_MS);
  link.close();
  const ran = cpuSeconds(pid) - before;
  const seen = new Map(by.entries() as Iterable<[number, bigint]>);
  expect([...seen.keys()]).toEqual([pid]);
  expectPlausible(Number(seen.get(pid)), ran);
  return info;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat; `fields` starts at field 3 (state).
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * `samples` against HZ × `seconds`: never above 1.5× (+2); at least `lower`× (+2) where
 * the clock is a busy task's. A CPU-wide clock also runs while the CPU idles, and an
 * idle vCPU of an overloaded VM gets its timer interrupt late (one sample per late
 * wakeup): our 6.18 host, shared with QEMU guests at a load of 40+, counted 5% there.
 * So CPU-wide, only "some" is asserted below.
 */
function expectPlausible(samples: number, seconds: number, lower = LOWER): void {
  const expected = HZ * seconds;
  expect(samples).toBeGreaterThan(0);
  expect(samples).toBeGreaterThanOrEqual(Math.floor(expected * lower) - 2);
  expect(samples).toBeLessThanOrEqual(Math.ceil(expected * 1.5) + 2);
}

function onlineCpus(): number[] {
  const cpus: number[] = [];
  for (const part of readFileSync('/sys/devices/system/cpu/online', 'utf8').trim().split(',')) {
    const [lo, hi = lo] = part.split('-').map(Number);
    for (let c = lo; c <= hi; c++) cpus.push(c);
  }
  return cpus;
}

/**
 * Seconds each CPU ran (idle included) but was not stolen by the hypervisor, from
 * /proc/stat: a VM's clock keeps going while it is descheduled, its timer does not fire.
 */
function cpuRunSeconds(): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    // user nice system idle iowait irq softirq steal …
    const [user, nice, system, idle, iowait, irq, softirq] = m[2].split(' ').map(Number);
    out.set(Number(m[1]), (user + nice + system + idle + iowait + irq + softirq) / CLOCK_TICKS);
  }
  return out;
}

function ranSince(before: Map<number, number>, cpu: number): number {
  return (cpuRunSeconds().get(cpu) ?? 0) - (before.get(cpu) ?? 0);
}

/** The cgroup v2 hierarchy: /sys/fs/cgroup, or its `unified` mount on a hybrid host. */
const CGROUP2 = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find((d) => existsSync(`${d}/cgroup.procs`) && existsSync(`${d}/cgroup.subtree_control`));

describe('perf_event programs', () => {
  it('samples one busy process by cpu-clock frequency: every sample is that process, about HZ × its CPU time', async () => {
    const child = busy();
    const pid = child.pid!;
    try {
      const info = await sampleOnly(pid, { pid });
      expect(info).toMatchObject({ kind: 'perf_event', target: `cpu-clock pid ${pid}`, linkType: LINK_TYPE });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('samples every online CPU by default: each sampled, never above HZ × the time it ran', async () => {
    using obj = await load(fixture('perf_sample.bpf.o'));
    const byCpu = obj.map<number, bigint>('by_cpu', { key: 'u32', value: 'u64' });
    await busyOn(onlineCpus(), async () => {
      const before = cpuRunSeconds();
      const link = obj.program('on_sample').attachPerfEvent({ event: 'cpu-clock', frequency: HZ });
      expect(link.info()).toMatchObject({ kind: 'perf_event', target: 'cpu-clock every CPU', linkType: LINK_TYPE });
      await sleep(RUN_MS);
      link.close();
      for (const cpu of onlineCpus()) expectPlausible(Number(byCpu.get(cpu)), ranSince(before, cpu), 0);
    });
  });

  it('one CPU by period: only that CPU is sampled', async () => {
    using obj = await load(fixture('perf_sample.bpf.o'));
    const byCpu = obj.map<number, bigint>('by_cpu', { key: 'u32', value: 'u64' });
    const cpus = onlineCpus();
    const cpu = cpus[cpus.length - 1];
    await busyOn([cpu], async () => {
      const before = cpuRunSeconds();
      const link = obj.program('on_sample').attachPerfEvent({ event: 'cpu-clock', period: 1_000_000_000 / HZ, cpu });
      await sleep(RUN_MS);
      link.close();
      for (const c of cpus) {
        if (c === cpu) expectPlausible(Number(byCpu.get(c)), ranSince(before, c), 0);
        else expect(byCpu.get(c)).toBe(0n);
      }
    });
  });

  it('one link owns every per-CPU perf event and link: closing it leaves no fd behind', async () => {
    using obj = await load(fixture('perf_sample.bpf.o'));
    const before = openFds();
    const link = obj.program('on_sample').attachPerfEvent({ event: 'cpu-clock', frequency: HZ });
    // A perf event and (with perf links) a bpf link per online CPU.
    const perCpu = LINK_TYPE === 'perf_event' ? 2 : 1;
    expect(openFds() - before).toBe(onlineCpus().length * perCpu);
    await link.closeAsync();
    expect(openFds()).toBe(before);
  });

  it.skipIf(!CGROUP2)('samples the tasks of one cgroup (v2) on every CPU: only the process put in it', async () => {
    const dir = `${CGROUP2}/nodebpf-perf-${process.pid}`;
    mkdirSync(dir);
    const child = busy();
    const pid = child.pid!;
    try {
      writeFileSync(`${dir}/cgroup.procs`, String(pid));
      await sampleOnly(pid, { cgroup: dir });
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      rmdirSync(dir);
    }
  });

  it('a hardware event without a PMU is UNSUPPORTED naming the event; unknown names and bad options are refused', async () => {
    using obj = await load(fixture('perf_sample.bpf.o'));
    const p = obj.program('on_sample');
    const hasCycles = existsSync('/sys/bus/event_source/devices/cpu/events/cpu-cycles');
    if (!hasCycles) {
      expect(() => p.attachPerfEvent({ event: 'cycles', frequency: HZ })).toThrow(
        expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringContaining('perf event cycles is not available') }),
      );
    }
    expect(() => p.attachPerfEvent({ event: 'cpu_clock' as 'cpu-clock', frequency: HZ })).toThrow(
      expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining("unknown perf event 'cpu_clock'") }),
    );
    expect(() => p.attachPerfEvent({ event: 'cpu-clock' })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => p.attachPerfEvent({ event: 'cpu-clock', frequency: 0 })).toThrow(expect.objectContaining({ code: 'RANGE' }));
    expect(() => p.attachPerfEvent({ event: 'cpu-clock', frequency: HZ, cpu: -1 })).toThrow(expect.objectContaining({ code: 'RANGE' }));
    expect(() => p.attachPerfEvent({ event: 'cpu-clock', frequency: HZ, pid: 1, cgroup: '/sys/fs/cgroup' })).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    expect(() => p.attach()).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('attachPerfEvent') }));
    // A raw { type, config } is the same event as its name.
    p.attachPerfEvent({ event: { type: 1, config: 0 }, frequency: HZ, cpu: 0 }).close();
  });
});
