import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { BpfError, load, loadSync } from '../dist/index.js';
import { fixture } from './helpers.js';

describe('errors', () => {
  it('garbage bytes → BAD_OBJECT', async () => {
    await expect(load(readFileSync(fixture('garbage.bin')))).rejects.toMatchObject({ code: 'BAD_OBJECT' });
    expect(() => loadSync(new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'BAD_OBJECT' }));
    // A valid ELF that is not BPF.
    expect(() => loadSync(fixture('target'))).toThrow(
      expect.objectContaining({ code: 'BAD_OBJECT', message: expect.stringContaining('not BPF') }),
    );
  });

  it('an unknown section → BAD_OBJECT naming it', async () => {
    await expect(load(fixture('unknown.bpf.o'))).rejects.toMatchObject({
      code: 'BAD_OBJECT',
      message: expect.stringContaining('nodebpf_bogus/x'),
    });
  });

  it('a kernel function (kfunc) the kernel lacks → UNSUPPORTED naming it', async () => {
    await expect(load(fixture('kfunc_missing.bpf.o'))).rejects.toMatchObject({
      code: 'UNSUPPORTED',
      message: expect.stringContaining("kernel function 'nodebpf_no_such_kfunc'"),
    });
  });

  it('a load error names its program or map as a property', async () => {
    // ENOENT where the kernel has trampolines, UNSUPPORTED where it has none.
    await expect(load(fixture('fentry_missing.bpf.o'))).rejects.toMatchObject({ program: 'on_missing' });
    // A stack map its front-end has not sized yet.
    await expect(load(fixture('profile.bpf.o'))).rejects.toMatchObject({ code: 'EINVAL', map: 'stackmap' });
    await expect(load(fixture('bad.bpf.o'))).rejects.toMatchObject({ code: 'VERIFIER', program: 'unchecked' });
  });

  it('a program the verifier rejects → VERIFIER with the log', async () => {
    const err = await load(fixture('bad.bpf.o')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BpfError);
    const e = err as BpfError;
    expect(e.code).toBe('VERIFIER');
    expect(e.message).toContain("program 'unchecked'");
    expect(e.message).toMatch(/invalid mem access 'map_value_or_null'/);
    expect(e.verifierLog).toBeDefined();
    expect(e.verifierLog!.length).toBeGreaterThan(e.message.length / 4);
    expect(e.verifierLog).toContain('processed');
  });

  it('a verifier log longer than the buffer (the kernel then answers ENOSPC) still gives the verdict: EACCES and the log\'s tail', async () => {
    const e = (await load(fixture('long_log.bpf.o')).catch((x: unknown) => x)) as BpfError;
    expect(e).toMatchObject({ code: 'VERIFIER', program: 'long_log', errno: 13 });
    expect(e.message.split('\n')[0]).toContain('Permission denied');
    // The verdict is the log's last line, and the message quotes the tail (what the verifier
    // says there differs between kernels).
    const last = (e.verifierLog ?? '').trim().split('\n').at(-1) ?? '';
    expect(last.length).toBeGreaterThan(0);
    expect(e.message).toContain(last);
  });

  it('missing files and names → ENOENT naming them', async () => {
    await expect(load('/nonexistent/x.bpf.o')).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('/nonexistent/x.bpf.o') });
    using obj = await load(fixture('trace.bpf.o'));
    expect(() => obj.program('nope')).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('on_getppid') }));
    expect(() => obj.program('on_getppid').attachTracepoint('syscalls', 'sys_enter_nonexistent')).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('sys_enter_nonexistent') }),
    );
    expect(() => obj.program('on_sys_enter').attachRawTracepoint('no_such_raw_tp')).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('no_such_raw_tp') }),
    );
  });

  it('attaching a program twice to one tracepoint → EINVAL saying so', async () => {
    using obj = await load(fixture('trace.bpf.o'));
    using _l = obj.program('on_getppid').attach();
    expect(() => obj.program('on_getppid').attach()).toThrow(
      expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('already attached') }),
    );
  });

  it('use after close → CLOSED', async () => {
    const obj = await load(fixture('trace.bpf.o'));
    const p = obj.program('on_getppid');
    obj.close();
    obj.close();
    expect(() => p.attach()).toThrow(expect.objectContaining({ code: 'CLOSED' }));
    expect(() => obj.ringbuf('events')).toThrow(expect.objectContaining({ code: 'CLOSED' }));
  });

  it('without CAP_BPF/CAP_PERFMON → EPERM naming them', () => {
    const script = `
      import { load } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)};
      try { await load(${JSON.stringify(fixture('trace.bpf.o'))}); console.log('loaded'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, errno: e.errno, message: e.message })); }
    `;
    const r = spawnSync(
      'setpriv',
      ['--inh-caps=-all', '--bounding-set=-all', '--', process.execPath, '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { code: string; errno: number; message: string };
    expect(out.code).toBe('EPERM');
    expect(out.message).toContain('CAP_BPF');
    expect(out.message).toContain('CAP_PERFMON');
    expect(out.message).toContain('setcap');
  });
});
