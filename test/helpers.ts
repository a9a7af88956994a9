import os from 'node:os';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { BpfError, features, load, type BpfObject, type RingBuffer } from '../dist/index.js';

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'build');
export const fixture = (name: string) => path.join(FIXTURES, name);

export const kernelFeatures = await features();

/** The matrix kernel a guest runs (`5.10`, `7.2`: test/vm/vm.mjs sets it), undefined on the host. */
export const guestKernel = process.env.NODEBPF_GUEST_KERNEL;
/** In a kernel-matrix guest: one slow TCG vCPU, where timing bounds are wider. */
export const inGuest = guestKernel !== undefined;

/** Whether the running kernel is at least `major.minor` (for what features() does not name). */
export function kernelAtLeast(major: number, minor: number): boolean {
  const [a, b] = os.release().split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

/** Whether `bpf` is among the active LSMs (securityfs; unreadable counts as no). */
function bpfLsm(): boolean {
  try {
    return readFileSync('/sys/kernel/security/lsm', 'utf8').trim().split(',').includes('bpf');
  } catch {
    return false;
  }
}
/** Whether lsm/… programs load and attach here, and the skip reason where they do not. */
export const lsmActive = kernelFeatures.fentry && bpfLsm();
export const LSM = lsmActive ? '' : ` [skipped: this kernel (${kernelFeatures.kernel}) has no BPF LSM active (bpf not in /sys/kernel/security/lsm, or no trampolines)]`;

/**
 * Where there are trampolines: whether the verifier knows bpf_get_func_arg/ret (5.17),
 * with which the fentry.multi fixtures and the CLI's fentry programs read arguments. 5.10
 * refuses them as unknown helpers; any other failure leaves this true, for tests to fail.
 * Everything it opens is gone when it resolves (suites count open fds).
 */
export const funcArgHelpers = !kernelFeatures.fentry || (await probeFuncArgHelpers());

async function probeFuncArgHelpers(): Promise<boolean> {
  const o = await load(fixture('tracing_multi.bpf.o')).catch(() => undefined);
  if (!o) return true;
  try {
    await o.program('on_exit').attachTracingMulti({ functions: ['__x64_sys_getpgid'] }).closeAsync();
    return true;
  } catch (e) {
    return !(e instanceof BpfError && e.code === 'VERIFIER' && /invalid func|unknown func/.test(e.verifierLog ?? ''));
  } finally {
    await o.closeAsync();
  }
}

/**
 * A child that waits for a line on stdin before doing its work, so probes can be set up
 * for its pid first.
 */
export class Child {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly exited: Promise<{ code: number | null; stdout: string }>;

  constructor(cmd: string, args: string[], env?: Record<string, string>) {
    this.proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env && { ...process.env, ...env } });
    let stdout = '';
    this.proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    this.exited = new Promise((resolve, reject) => {
      this.proc.on('error', reject);
      this.proc.on('exit', (code) => resolve({ code, stdout }));
    });
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error('child did not start');
    return this.proc.pid;
  }

  /** Lets the child start and waits for it to finish. */
  async run(): Promise<{ code: number | null; stdout: string }> {
    this.proc.stdin.write('go\n');
    this.proc.stdin.end();
    return this.exited;
  }
}

export const syscalls = (...args: (string | number)[]) => new Child(fixture('syscalls'), args.map(String));

/** ringbuf.bpf.o loaded, after its producer emitted `n` records with sequence numbers 0..n-1 into `records`. */
export async function produceRecords(n: number): Promise<BpfObject> {
  const child = syscalls('getppid', 1);
  const obj = await load(fixture('ringbuf.bpf.o'), { globals: { target_tgid: child.pid, per_trigger: n } });
  const link = obj.program('produce').attach();
  await child.run();
  link.close();
  return obj;
}

/** Everything in the ring right now (the producers are done). */
export function drain(rb: RingBuffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let b = rb.poll(); b; b = rb.poll()) for (const r of b) out.push(r.slice());
  return out;
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

export interface ProbeEvent {
  kind: number;
  pid: number;
  value: bigint;
  cookie: bigint;
}

/** `struct event` of uprobe.bpf.c and probe_event.h. */
export function probeEvent(r: Uint8Array): ProbeEvent {
  const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
  return {
    kind: v.getUint32(0, true),
    pid: v.getUint32(4, true),
    value: v.getBigInt64(8, true),
    cookie: v.getBigUint64(16, true),
  };
}

/**
 * Resolves once `condition()` holds, checking every `everyMs`; rejects naming `what` after
 * `deadlineMs`. For waiting on something to happen (a line printed, an event counted)
 * instead of sleeping a duration a busy machine (a TCG guest) may not keep.
 */
export async function waitFor(what: string, condition: () => boolean, deadlineMs: number, everyMs = 20): Promise<void> {
  const deadline = performance.now() + deadlineMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`waited ${deadlineMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The BpfError a call or promise fails with; fails the test when it does not. */
export async function rejects(p: Promise<unknown> | (() => unknown)): Promise<BpfError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (!(e instanceof BpfError)) throw e;
    return e;
  }
  throw new Error('did not throw');
}

/**
 * A non-PIE executable's functions by its symbols (`nm -S`): which one an address lies in
 * (a user stack's frames as names), and where one starts.
 */
export function symbolizer(binary: string): { inside: (ip: bigint) => string | undefined; start: (name: string) => bigint | undefined } {
  const symbols = new Map<string, [bigint, bigint]>();
  for (const line of execFileSync('nm', ['-S', '--defined-only', binary], { encoding: 'utf8' }).split('\n')) {
    const [addr, size, , name] = line.split(' ');
    if (name && size) symbols.set(name, [BigInt(`0x${addr}`), BigInt(`0x${addr}`) + BigInt(`0x${size}`)]);
  }
  return {
    inside: (ip) => [...symbols].find(([, [lo, hi]]) => ip >= lo && ip < hi)?.[0],
    start: (name) => symbols.get(name)?.[0],
  };
}

/** Possible CPUs (`/sys/devices/system/cpu/possible`, "0-N"): how many values a per-CPU map holds. */
export function possibleCpus(): number {
  const [lo, hi] = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split('-').map(Number);
  return (hi ?? lo!) + 1;
}
