import { describe, expect, it } from 'vitest';

import { load } from '../dist/index.js';
import { drain, fixture, kernelFeatures as f, syscalls } from './helpers.js';

interface TaskEvent {
  pid: number;
  tgid: number;
  comm: string;
}

function taskEvent(view: DataView, off: number): TaskEvent {
  const comm = new Uint8Array(view.buffer, view.byteOffset + off + 8, 16);
  const end = comm.indexOf(0);
  return {
    pid: view.getUint32(off, true),
    tgid: view.getUint32(off + 4, true),
    comm: Buffer.from(comm.subarray(0, end < 0 ? 16 : end)).toString(),
  };
}

const N = 37;

describe('tracepoints with CO-RE', () => {
  it('sees exactly N getppid calls of the child, with pid, tgid and comm read from task_struct', async () => {
    const child = syscalls('getppid', N);
    using obj = await load(fixture('trace.bpf.o'), { globals: { target_tgid: child.pid } });
    const link = obj.program('on_getppid').attach();
    // Before 5.15 (no perf links) the program is set on the perf event by ioctl.
    expect(link.info()).toMatchObject({ kind: 'tracepoint', target: 'syscalls/sys_enter_getppid', linkType: f.bpfCookie ? 'perf_event' : 'perf_event_ioctl' });
    const rb = obj.ringbuf('events');
    const seen: TaskEvent[] = [];
    const reading = (async () => {
      for await (const e of rb.events(taskEvent)) {
        seen.push(e);
        if (seen.length === N) break;
      }
    })();
    expect((await child.run()).code).toBe(0);
    await reading;
    expect(seen).toHaveLength(N);
    for (const e of seen) expect(e).toEqual({ pid: child.pid, tgid: child.pid, comm: 'syscalls' });
    link.close();
    expect(rb.poll()).toBeNull();
  });

  it('attachTracepoint by name gives the same events as the SEC() name', async () => {
    const child = syscalls('getppid', N);
    using obj = await load(fixture('trace.bpf.o'), { globals: { target_tgid: child.pid } });
    using _link = obj.program('on_getppid').attachTracepoint('syscalls', 'sys_enter_getppid');
    await child.run();
    const events = drain(obj.ringbuf('events'));
    expect(events).toHaveLength(N);
  });

  it('raw tracepoints see the syscall id', async () => {
    const child = syscalls('getppid', N);
    using obj = await load(fixture('trace.bpf.o'), { globals: { target_tgid: child.pid } });
    const link = obj.program('on_sys_enter').attach();
    expect(link.info()).toMatchObject({ kind: 'raw_tracepoint', target: 'sys_enter', linkType: 'raw_tracepoint' });
    await child.run();
    const events = drain(obj.ringbuf('events')).map((r) => taskEvent(new DataView(r.buffer, r.byteOffset), 0));
    expect(events).toHaveLength(N);
    expect(new Set(events.map((e) => e.pid))).toEqual(new Set([child.pid]));
  });

  it('the .rodata filter set from JS decides whose calls are seen', async () => {
    const other = syscalls('getppid', 5);
    const child = syscalls('getppid', 3);
    using obj = await load(fixture('trace.bpf.o'), { globals: { target_tgid: other.pid } });
    using _l = obj.program('on_getppid').attach();
    await child.run();
    expect(drain(obj.ringbuf('events'))).toHaveLength(0);
    await other.run();
    expect(drain(obj.ringbuf('events'))).toHaveLength(5);
  });
});
