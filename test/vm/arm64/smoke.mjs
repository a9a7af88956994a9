// The arm64 guest's smoke suite (test/vm/arm64.mjs boots the guest and stages this folder:
// node_modules/nodebpf unpacked from the packed tarball, smoke.bpf.o, smoke_target). Plain
// node:assert, exact expectations; results in $NODEBPF_GUEST_OUT/smoke.json for the host.
// NODEBPF_EXPECT_ADDON=0: the tarball has no linux-arm64 addon, and the one check is that
// importing nodebpf fails naming the platform.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const HERE = process.cwd();
const OUT = process.env.NODEBPF_GUEST_OUT ?? '/tmp';
const TARGET = path.join(HERE, 'smoke_target');
const OBJECT = path.join(HERE, 'smoke.bpf.o');
const PKG = path.join(HERE, 'node_modules/nodebpf');
const expectAddon = process.env.NODEBPF_EXPECT_ADDON !== '0';
const expectKprobeMulti = process.env.NODEBPF_EXPECT_KPROBE_MULTI === '1';

const results = { arch: process.arch, node: process.version, kernel: os.release(), tests: [] };
const save = () => writeFileSync(path.join(OUT, 'smoke.json'), JSON.stringify(results, null, 1));

async function test(name, fn) {
  const start = Date.now();
  try {
    const detail = await fn();
    results.tests.push({ name, ok: true, detail, ms: Date.now() - start });
    console.log(`ok   ${name} (${Date.now() - start} ms)${detail ? `: ${detail}` : ''}`);
  } catch (e) {
    results.tests.push({ name, ok: false, detail: String(e?.message ?? e).split('\n').slice(0, 6).join(' | '), ms: Date.now() - start });
    console.log(`FAIL ${name}\n${e?.stack ?? e}`);
  }
  save();
}

/** smoke_target started, waiting for a line on stdin before it runs `args`. */
function child(args) {
  const proc = spawn(TARGET, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let stdout = '';
  proc.stdout.on('data', (d) => (stdout += d));
  const exited = new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('exit', (code) => resolve({ code, stdout }));
  });
  return {
    pid: proc.pid,
    /** Lets it run; resolves when it has exited. */
    go: async () => {
      proc.stdin.end('go\n');
      return exited;
    },
  };
}

// struct event (smoke.bpf.c): u32 kind, u32 pid, s64 value, u64 cookie.
const KIND = ['tp', 'entry', 'return'];
function drain(rb) {
  const out = [];
  for (let b = rb.poll(); b; b = rb.poll()) {
    for (const r of b) {
      const v = r.view; // the batch's: the record at r.offset
      const o = r.offset;
      out.push({ kind: KIND[v.getUint32(o, true)], pid: v.getUint32(o + 4, true), value: v.getBigInt64(o + 8, true), cookie: v.getBigUint64(o + 16, true) });
    }
  }
  return out;
}
const seen = (events) => events.map((e) => [e.kind, e.cookie, e.value]);

// Written for arm64; on x64 (a check of the suite itself on the host) the same with x64's names.
const SYS = process.arch === 'arm64' ? '__arm64_sys_' : '__x64_sys_';
const want = `prebuilt/linux-${process.arch}/nodebpf.napi.glibc.node`;
let nb;
await test(expectAddon ? `import 'nodebpf' loads ${want}` : `import 'nodebpf' fails naming linux-arm64 (no arm64 addon in the tarball)`, async () => {
  if (!expectAddon) {
    await assert.rejects(import('nodebpf'), /no prebuilt addon for linux-arm64 with glibc/);
    return 'rejected as expected';
  }
  nb = await import('nodebpf');
  const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.endsWith('.node'));
  assert.deepEqual(loaded, [path.join(PKG, want)]);
  const elf = readFileSync(loaded[0]);
  assert.equal(elf.readUInt16LE(18), { arm64: 183, x64: 62 }[process.arch], 'e_machine is EM_AARCH64');
  return `${(elf.length / 1e6).toFixed(1)} MB`;
});

if (nb) {
  const { features, load } = nb;

  await test("the x64 addon put in linux-arm64's place is refused by name, before dlopen", async () => {
    if (process.arch !== 'arm64') return 'not arm64: nothing to check';
    // A copy of the installed packages with the tarball's other addon where this one goes.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wrong-cpu-'));
    cpSync(path.join(HERE, 'node_modules'), path.join(dir, 'node_modules'), { recursive: true });
    cpSync(path.join(PKG, 'prebuilt/linux-x64/nodebpf.napi.glibc.node'), path.join(dir, 'node_modules/nodebpf', want));
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('nodebpf')"], { cwd: dir, encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /nodebpf's addon \S+prebuilt\/linux-arm64\/nodebpf\.napi\.glibc\.node is built for x64, not for this arm64 machine/);
  });
  let f;
  await test('features(): this kernel, BTF, ring buffers, cookies, kprobes, uprobe_multi; kprobe_multi as expected', async () => {
    f = await features();
    results.features = f;
    assert.equal(f.kernel, os.release());
    if (process.env.NODEBPF_EXPECT_KERNEL) assert.equal(f.kernel, process.env.NODEBPF_EXPECT_KERNEL);
    assert.ok(existsSync('/sys/kernel/btf/vmlinux'));
    for (const k of ['btf', 'ringbuf', 'bpfCookie', 'kprobe', 'uprobeMulti', 'fentry']) assert.equal(f[k], true, k);
    assert.equal(f.kprobeMulti, expectKprobeMulti, 'kprobeMulti');
    return JSON.stringify(f);
  });

  await test('load smoke.bpf.o: its programs, maps and globals', async () => {
    const obj = await load(OBJECT, { globals: { target_tgid: 4242 } });
    try {
      assert.deepEqual(obj.programs.map((p) => p.name).sort(), [
        'on_getppid', 'on_kmulti_entry', 'on_kmulti_return', 'on_uentry', 'on_umulti_entry', 'on_umulti_return', 'on_ureturn',
      ]);
      assert.ok(obj.maps.some((m) => m.name === 'events'), 'an events map');
      assert.equal(obj.globals.target_tgid, 4242);
      assert.equal(obj.globals.dropped, 0n);
    } finally {
      obj.close();
    }
  });

  const N = 1000;
  await test(`tracepoint + ring buffer: ${N} getppid() → ${N} records, numbered 0..${N - 1}`, async () => {
    const obj = await load(OBJECT, { globals: { target_tgid: process.pid } });
    try {
      const rb = obj.ringbuf('events');
      const link = obj.program('on_getppid').attachTracepoint('syscalls', 'sys_enter_getppid');
      for (let i = 0; i < N; i++) process.ppid; // one getppid each
      await link.closeAsync(); // close() detaches in the background: this waits for the kernel
      process.ppid; // detached: not counted
      const events = drain(rb);
      assert.equal(events.length, N);
      assert.deepEqual(events.map((e) => e.value), Array.from({ length: N }, (_, i) => BigInt(i)));
      assert.ok(events.every((e) => e.kind === 'tp' && e.pid === process.pid));
      assert.equal(obj.globals.seq, BigInt(N));
      assert.equal(obj.globals.dropped, 0n);
      return `${events.length} records`;
    } finally {
      obj.close();
    }
  });

  await test('uprobe + uretprobe on an arm64 binary: smoke_add(i, 100) for i < 5, arguments and returns in order', async () => {
    const c = child(['add', '5']);
    const obj = await load(OBJECT, { globals: { target_tgid: c.pid } });
    try {
      const rb = obj.ringbuf('events');
      obj.program('on_uentry').attachUprobe({ binary: TARGET, symbol: 'smoke_add', pid: c.pid, cookie: 7n });
      obj.program('on_ureturn').attachUprobe({ binary: TARGET, symbol: 'smoke_add', pid: c.pid, retprobe: true, cookie: 8n });
      const r = await c.go();
      assert.equal(r.code, 0);
      assert.equal(r.stdout.trim(), String(0 + 1 + 2 + 3 + 4 + 5 * 100));
      const events = drain(rb);
      assert.deepEqual(seen(events), Array.from({ length: 5 }, (_, i) => [['entry', 7n, BigInt(i)], ['return', 8n, BigInt(i + 100)]]).flat());
      assert.ok(events.every((e) => e.pid === c.pid));
      return `${events.length} events`;
    } finally {
      obj.close();
    }
  });

  // multi_1(0); multi_2(0), multi_2(1); multi_3(0..2); multi_k(x) returns x + k.
  const UTARGETS = [
    { name: 'multi_1', cookie: 11n, k: 1 },
    { name: 'multi_2', cookie: 22n, k: 2 },
    { name: 'multi_3', cookie: 33n, k: 3 },
  ];
  const uexpected = UTARGETS.flatMap((t) => Array.from({ length: t.k }, (_, x) => [['entry', t.cookie, BigInt(x)], ['return', t.cookie, BigInt(x + t.k)]]).flat());
  for (const forceFallback of [false, true]) {
    const mechanism = forceFallback ? 'uprobes' : 'uprobe_multi';
    await test(`uprobe_multi on 3 functions with cookies: 12 events in order (${mechanism}${forceFallback ? ', forced' : ''})`, async () => {
      const c = child(['multi']);
      const obj = await load(OBJECT, { globals: { target_tgid: c.pid } });
      try {
        const rb = obj.ringbuf('events');
        const common = { binary: TARGET, symbols: UTARGETS.map((t) => t.name), cookies: UTARGETS.map((t) => t.cookie), forceFallback };
        const links = [obj.program('on_umulti_entry').attachUprobeMulti(common), obj.program('on_umulti_return').attachUprobeMulti({ ...common, retprobe: true })];
        for (const l of links) {
          assert.equal(l.mechanism, mechanism);
          assert.equal(l.kernelLinks, forceFallback ? 3 : 1);
          assert.deepEqual(l.targets.map((t) => [t.name, t.cookie]), UTARGETS.map((t) => [t.name, t.cookie]));
        }
        assert.equal((await c.go()).code, 0);
        const events = drain(rb);
        assert.deepEqual(seen(events), uexpected);
        return `${events.length} events`;
      } finally {
        obj.close();
      }
    });
  }

  // 3 rounds of getpgid(ARG), getsid(ARG), getsid(ARG); no such process: -ESRCH.
  const ARG = 999_999n;
  const ESRCH = -3n;
  const KTARGETS = [
    { name: `${SYS}getpgid`, cookie: 101n },
    { name: `${SYS}getsid`, cookie: 202n },
  ];
  const round = [101n, 202n, 202n].flatMap((c) => [['entry', c, ARG], ['return', c, ESRCH]]);
  const kexpected = [round, round, round].flat();
  for (const forceFallback of expectKprobeMulti ? [false, true] : [false]) {
    const mechanism = expectKprobeMulti && !forceFallback ? 'kprobe_multi' : 'kprobes';
    await test(`kprobe_multi on __arm64_sys_getpgid/getsid with cookies: 18 events, the syscall's argument and -ESRCH (${mechanism}${forceFallback ? ', forced' : expectKprobeMulti ? '' : ': the fallback, no kprobe_multi here'})`, async () => {
      const c = child(['syscalls', '3', String(ARG)]);
      const obj = await load(OBJECT, { globals: { target_tgid: c.pid } });
      try {
        const rb = obj.ringbuf('events');
        const common = { symbols: KTARGETS.map((t) => t.name), cookies: KTARGETS.map((t) => t.cookie), forceFallback };
        const links = [obj.program('on_kmulti_entry').attachKprobeMulti(common), obj.program('on_kmulti_return').attachKprobeMulti({ ...common, retprobe: true })];
        for (const l of links) {
          assert.equal(l.mechanism, mechanism);
          assert.equal(l.kernelLinks, mechanism === 'kprobes' ? 2 : 1);
        }
        assert.equal((await c.go()).code, 0);
        const events = drain(rb);
        assert.deepEqual(seen(events), kexpected);
        return `${events.length} events`;
      } finally {
        obj.close();
      }
    });
  }

  const cli = (args) => {
    const r = spawnSync(process.execPath, [path.join(PKG, 'dist/cli/main.js'), ...args], { encoding: 'utf8', cwd: HERE, maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`nodebpf ${args.join(' ')}: exit ${r.status}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  };

  // One set per architecture: x86-64's in dist/bpf, arm64's in dist/bpf/arm64 (ts/bpf-objects.ts).
  const objDir = path.join(PKG, 'dist/bpf', process.arch === 'arm64' ? 'arm64' : '');
  await test(`the CLI's objects load: every ${path.relative(PKG, objDir)}/*.bpf.o in the package`, async () => {
    assert.ok(existsSync(objDir), `no ${path.relative(PKG, objDir)} in the package`);
    const files = readdirSync(objDir).filter((f) => f.endsWith('.bpf.o')).sort();
    assert.ok(files.length > 0);
    const failed = [];
    for (const f of files) {
      try {
        (await load(path.join(objDir, f))).close();
      } catch (e) {
        failed.push(`${f}: ${String(e.message).split('\n')[0]}`);
      }
    }
    assert.deepEqual(failed, []);
    return files.join(' ');
  });

  await test('CLI trace: uprobe arguments and return values read from arm64 registers (--args 2 --ret)', async () => {
    const lines = cli(['trace', '--json', '--args', '2', '--ret', `u:${TARGET}:smoke_add`, '--', TARGET, 'now', 'add', '3']);
    assert.deepEqual(lines.map((l) => [l.function, l.args, l.ret]), [0, 1, 2].map((i) => ['smoke_add', [i, 100], i + 100]));
    return `${lines.length} lines`;
  });

  await test('CLI funccount: uprobes, a kprobe on __arm64_sys_getsid and a tracepoint, exact counts', async () => {
    const [total] = cli(['funccount', '--json', `u:${TARGET}:multi_*`, `k:${SYS}getsid`, 't:syscalls:sys_enter_getppid', '--', TARGET, 'now', 'all']);
    const counts = Object.fromEntries(total.counts.map((c) => [c.function, c.count]));
    assert.deepEqual(counts, {
      'uprobe:multi_1': 1,
      'uprobe:multi_2': 2,
      'uprobe:multi_3': 3,
      [`kprobe:${SYS}getsid`]: 6,
      'tracepoint:syscalls:sys_enter_getppid': 4,
    });
    return JSON.stringify(counts);
  });
}

const failed = results.tests.filter((t) => !t.ok).length;
console.log(`smoke: ${results.tests.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
