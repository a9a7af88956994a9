import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { load, type BpfObject, type ReadonlyDataView } from '../dist/index.js';
import { fixture, syscalls } from './helpers.js';

const counters = (obj: BpfObject) => {
  // `produced`/`dropped` are .bss globals: one array map, value = the section's bytes.
  const bss = obj.maps.find((m) => m.name.endsWith('.bss'));
  if (!bss) throw new Error('no .bss map');
  const raw = obj.map(bss.name).get(new Uint8Array(4)) as Uint8Array;
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return { produced: v.getBigUint64(0, true), dropped: v.getBigUint64(8, true) };
};

const seqOf = (view: ReadonlyDataView, off: number) => view.getBigUint64(off, true);

describe('ring buffer', () => {
  it('delivers contiguous sequence numbers when the consumer keeps up', async () => {
    // 20,000 records of 24 ring bytes fit the 1 MiB ring, so even a consumer starved of
    // CPU (TCG guests) cannot lose any: what is tested is order and batching.
    const TRIGGERS = 40;
    const PER = 500;
    const child = syscalls('getppid', TRIGGERS, 0, 500);
    using obj = await load(fixture('ringbuf.bpf.o'), { globals: { target_tgid: child.pid, per_trigger: PER } });
    using _l = obj.program('produce').attach();
    const rb = obj.ringbuf('records');
    let expected = 0n;
    let received = 0;
    let batches = 0;
    let wrong = 0;
    const done = child.run();
    for await (const batch of rb.batches()) {
      batches++;
      batch.forEach((view, off, len) => {
        if (len !== 16 || seqOf(view, off) !== expected || view.getBigUint64(off + 8, true) !== expected * 3n) wrong++;
        expected++;
        received++;
      });
      if (received === TRIGGERS * PER) break;
    }
    await done;
    expect(wrong).toBe(0);
    expect(counters(obj)).toEqual({ produced: BigInt(TRIGGERS * PER), dropped: 0n });
    // Many records per wakeup, not one JS call per record.
    expect(batches).toBeLessThan(received / 10);
  });

  it('with a slow consumer: received + dropped == produced, nothing duplicated or reordered', async () => {
    const TRIGGERS = 200;
    const PER = 1000; // 200k records of 24 ring bytes: far more than the 1 MiB ring holds
    const child = syscalls('getppid', TRIGGERS);
    using obj = await load(fixture('ringbuf.bpf.o'), { globals: { target_tgid: child.pid, per_trigger: PER } });
    using _l = obj.program('produce').attach();
    const rb = obj.ringbuf('records');
    await child.run(); // the consumer has read nothing yet
    let received = 0n;
    let last = -1n;
    for (let b = rb.poll(); b; b = rb.poll()) {
      b.forEach((view, off) => {
        const seq = seqOf(view, off);
        expect(seq).toBeGreaterThan(last);
        last = seq;
        received++;
      });
    }
    const { produced, dropped } = counters(obj);
    expect(produced).toBe(BigInt(TRIGGERS * PER));
    expect(dropped).toBeGreaterThan(0n);
    expect(received + dropped).toBe(produced);
  });

  it('an AbortSignal ends a waiting iteration promptly', async () => {
    using obj = await load(fixture('ringbuf.bpf.o'), { globals: { target_tgid: 1 } });
    const rb = obj.ringbuf('records');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    let n = 0;
    for await (const _ of rb.records({ signal: ac.signal })) n++;
    expect(ac.signal.aborted).toBe(true);
    expect(n).toBe(0);
    // The ring still works after an abort.
    const ac2 = new AbortController();
    ac2.abort();
    for await (const _ of rb.batches({ signal: ac2.signal })) n++;
    expect(n).toBe(0);
  });

  it('close() ends a pending iteration, and is idempotent', async () => {
    using obj = await load(fixture('ringbuf.bpf.o'), { globals: { target_tgid: 1 } });
    const rb = obj.ringbuf('records');
    const iterating = (async () => {
      let n = 0;
      for await (const _ of rb) n++;
      return n;
    })();
    setTimeout(() => rb.close(), 50);
    expect(await iterating).toBe(0);
    rb.close();
    rb[Symbol.dispose]();
    expect(rb.poll()).toBeNull();
  });

  it('closing the object ends iterations on its rings', async () => {
    const obj = await load(fixture('ringbuf.bpf.o'), { globals: { target_tgid: 1 } });
    const rb = obj.ringbuf('records');
    const iterating = (async () => {
      for await (const _ of rb.batches()) return 'batch';
      return 'ended';
    })();
    setTimeout(() => obj.close(), 50);
    expect(await iterating).toBe('ended');
  });

  it('a script that leaves a ring buffer and links open exits on its own', async () => {
    const script = `
      import { load } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
      const obj = await load(${JSON.stringify(fixture('ringbuf.bpf.o'))}, { globals: { target_tgid: process.pid, per_trigger: 3 } });
      obj.program('produce').attach();
      const rb = obj.ringbuf('records');
      process.ppid; // one getppid: three records
      let n = 0;
      for await (const rec of rb) { if (++n === 3) break; }
      console.log('read', n);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(-1);
      }, 15_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(out.trim()).toBe('read 3');
    expect(code).toBe(0);
  });
});
