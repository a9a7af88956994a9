// Types that tell the truth: the names of program, attach and map types (string unions
// held to the core's tables), the link `attach()` gives by SEC() name (`LinkOf`, held to
// the core's section table and checked on loaded programs), the mechanisms a MultiLink
// reports (held to the strings the core passes), and messages that name map types.
// The `expectTypeOf` lines are checked by `tsc -p test/tsconfig.json` (scripts/lint.sh).
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, expectTypeOf, it } from 'vitest';

import {
  BpfError,
  createMap,
  load,
  Link,
  MultiLink,
  attachTypeName,
  mapTypeName,
  progTypeName,
  type KprobeMultiMechanism,
  type LinkOf,
  type MapTypeName,
  type MultiLinkMechanism,
  type Program,
  type ProgTypeName,
  type SectionKind,
  type TracingMultiMechanism,
  type UprobeMultiMechanism,
} from '../dist/index.js';
import { MULTI_LINK_MECHANISMS } from '../dist/link.js';
import { ATTACH_TYPES, MAP_TYPES, PROG_TYPES, SECTION_ATTACH, describeMapType } from '../dist/types.js';
import { fixture, kernelFeatures as f, possibleCpus } from './helpers.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CORE = path.join(ROOT, 'crates', 'core', 'src');
const addon = createRequire(import.meta.url)(path.join(ROOT, 'prebuilt/linux-x64/nodebpf.napi.glibc.node')) as {
  typeNames(): Record<'progTypes' | 'attachTypes' | 'mapTypes', { name: string; value: number }[]>;
};

const entries = (rows: { name: string; value: number }[]) => rows.map((r) => [r.name, r.value]);

describe('program, attach and map types by name', () => {
  it("the string unions' tables are the core's (made from the kernel constants), name for name", () => {
    const t = addon.typeNames();
    expect(Object.entries(PROG_TYPES)).toEqual(entries(t.progTypes));
    expect(Object.entries(ATTACH_TYPES)).toEqual(entries(t.attachTypes));
    expect(Object.entries(MAP_TYPES)).toEqual(entries(t.mapTypes));
  });

  it('names numbers as libbpf does, and says nothing of numbers it lacks', () => {
    expect(mapTypeName(2)).toBe('array');
    expect(mapTypeName(27)).toBe('ringbuf');
    expect(mapTypeName(999)).toBeUndefined();
    expect(progTypeName(26)).toBe('tracing');
    expect(attachTypeName(42)).toBe('trace_kprobe_multi');
    expect(describeMapType(12)).toBe('array_of_maps (BPF_MAP_TYPE_ARRAY_OF_MAPS)');
    expect(describeMapType(999)).toBe('map type 999');
    expectTypeOf(mapTypeName).returns.toEqualTypeOf<MapTypeName | undefined>();
    expectTypeOf<'lru_percpu_hash'>().toMatchTypeOf<MapTypeName>();
    expectTypeOf<'kprobe'>().toMatchTypeOf<ProgTypeName>();
    expectTypeOf<'kprobes'>().not.toMatchTypeOf<ProgTypeName>();
  });

  it('a loaded program names its type; messages name map types, not numbers', async () => {
    using obj = await load(fixture('ringbuf.bpf.o'));
    expect(obj.program('produce').progTypeName).toBe('tracepoint');
    // The facade's message (events) and the core's (ringbuf, perfbuf).
    expect(() => obj.events('.bss')).toThrow(/map '\.bss' is neither .*: its type is array \(BPF_MAP_TYPE_ARRAY\)$/);
    expect(() => obj.ringbuf('.bss')).toThrow(/map '\.bss' is not a ring buffer, nor a map of ring buffers: its type is array \(BPF_MAP_TYPE_ARRAY\)/);
    expect(() => obj.perfbuf('records')).toThrow(/map 'records' is not a perf event array: its type is ringbuf \(BPF_MAP_TYPE_RINGBUF\)/);
    expect(() => createMap({ type: MAP_TYPES.hash_of_maps, keySize: 4, valueSize: 4, maxEntries: 1 })).toThrow(
      /an inner map is needed for map type hash_of_maps \(BPF_MAP_TYPE_HASH_OF_MAPS\)/,
    );
  });
});

/** What attach() gives for each AttachKind of crates/core/src/loader/section.rs (attach/auto.rs's match). */
const KIND_ATTACH: Record<string, string> = {
  Kprobe: 'link', Ksyscall: 'link', Uprobe: 'link', Tracepoint: 'link', RawTracepoint: 'link', TpBtf: 'link',
  Fentry: 'link', Fexit: 'link', FmodRet: 'link', Fsession: 'link', Lsm: 'link', Iter: 'link', Freplace: 'link',
  KprobeMulti: 'kprobe_multi', KprobeSession: 'kprobe_multi',
  UprobeMulti: 'uprobe_multi', UprobeSession: 'uprobe_multi', Usdt: 'uprobe_multi',
  FentryMulti: 'tracing_multi', FexitMulti: 'tracing_multi', FsessionMulti: 'tracing_multi',
  Other: 'none', LsmCgroup: 'none',
};

describe('attach() returns the link its SEC() name implies', () => {
  it("SECTION_ATTACH (behind LinkOf) covers the core's section table, kind for kind", () => {
    const source = readFileSync(path.join(CORE, 'loader', 'section.rs'), 'utf8');
    const defs = [...source.matchAll(/^\s*def\("([^"]+)", \w+, \w+, \w+, K::(\w+)/gm)].map((m) => [m[1], m[2]] as const);
    expect(defs.length).toBeGreaterThan(90);
    const derived: Record<string, string> = {};
    for (const [prefix, kind] of defs) {
      const word = prefix.split('/')[0];
      expect(KIND_ATTACH[kind], `AttachKind ${kind}`).toBeDefined();
      expect(derived[word] ?? KIND_ATTACH[kind], `SEC("${prefix}")`).toBe(KIND_ATTACH[kind]);
      derived[word] = KIND_ATTACH[kind];
    }
    expect(Object.fromEntries(Object.entries(SECTION_ATTACH).sort())).toEqual(Object.fromEntries(Object.entries(derived).sort()));
  });

  it('LinkOf maps section names to link types', () => {
    expectTypeOf<SectionKind<'tp/syscalls/sys_enter_openat'>>().toEqualTypeOf<'tp'>();
    expectTypeOf<SectionKind<'?uprobe.multi.s//usr/bin/node:uv_*'>>().toEqualTypeOf<'uprobe.multi.s'>();
    expectTypeOf<LinkOf<'tp/syscalls/sys_enter_openat'>>().toEqualTypeOf<Link>();
    expectTypeOf<LinkOf<'tracepoint/sched/sched_switch'>>().toEqualTypeOf<Link>();
    expectTypeOf<LinkOf<'fentry/do_unlinkat'>>().toEqualTypeOf<Link>();
    expectTypeOf<LinkOf<'uprobe//usr/bin/bash:readline'>>().toEqualTypeOf<Link>();
    expectTypeOf<LinkOf<'iter/task'>>().toEqualTypeOf<Link>();
    expectTypeOf<LinkOf<'kprobe.multi/vfs_*'>>().toEqualTypeOf<MultiLink<KprobeMultiMechanism>>();
    expectTypeOf<LinkOf<'kprobe.session/vfs_*'>>().toEqualTypeOf<MultiLink<'kprobe_multi' | 'kprobes'>>();
    expectTypeOf<LinkOf<`uprobe.multi/${string}`>>().toEqualTypeOf<MultiLink<UprobeMultiMechanism>>();
    expectTypeOf<LinkOf<'usdt/libc.so.6:libc:setjmp'>>().toEqualTypeOf<MultiLink<UprobeMultiMechanism>>();
    expectTypeOf<LinkOf<'fexit.multi/tcp_*'>>().toEqualTypeOf<MultiLink<TracingMultiMechanism>>();
    // attach() throws for these: nothing is returned.
    expectTypeOf<LinkOf<'xdp'>>().toBeNever();
    expectTypeOf<LinkOf<'cgroup/connect4'>>().toBeNever();
    // Unknown statically: either.
    expectTypeOf<LinkOf<string>>().toEqualTypeOf<Link | MultiLink>();
    expectTypeOf<LinkOf<'my_section'>>().toEqualTypeOf<Link | MultiLink>();
    expectTypeOf<LinkOf<'tp/a/b' | 'kprobe.multi/x'>>().toEqualTypeOf<Link | MultiLink<KprobeMultiMechanism>>();
    expectTypeOf<Program['attach']>().returns.toEqualTypeOf<Link | MultiLink>();
    expectTypeOf<Program<'tp/syscalls/sys_enter_openat'>['attach']>().returns.toEqualTypeOf<Link>();
    // A typed program is still a Program (freplace targets, arrays of programs).
    expectTypeOf<Program<'tp/a/b'>>().toMatchTypeOf<Program>();
  });

  it('on loaded programs: a tracepoint gives a Link, uprobe.multi a MultiLink, tc nothing', async () => {
    using tp = await load(fixture('ringbuf.bpf.o'), { globals: { target_tgid: process.pid } });
    const produce = tp.program('produce').expectSection('tp/syscalls/sys_enter_getppid');
    expectTypeOf(produce.section).toEqualTypeOf<'tp/syscalls/sys_enter_getppid'>();
    using link = produce.attach();
    expectTypeOf(link).toEqualTypeOf<Link>();
    expect(link).toBeInstanceOf(Link);
    expect(link.info()).toMatchObject({ kind: 'tracepoint' });
    expect(() => tp.program('produce').expectSection('tp/syscalls/sys_enter_getpid')).toThrow(
      expect.objectContaining({ code: 'INCOMPATIBLE', program: 'produce', message: expect.stringContaining('is SEC("tp/syscalls/sys_enter_getppid"), not SEC("tp/syscalls/sys_enter_getpid")') }),
    );

    using multi = await load(fixture('uprobe_multi.bpf.o'));
    const auto = multi.program('on_auto');
    const typed = auto.expectSection(auto.section as `uprobe.multi/${string}`);
    using ml = typed.attach();
    expectTypeOf(ml.mechanism).toEqualTypeOf<'uprobe_multi' | 'uprobes'>();
    expect(ml).toBeInstanceOf(MultiLink);
    expect(ml.mechanism).toBe(f.uprobeMulti ? 'uprobe_multi' : 'uprobes');

    using tc = await load(fixture('tc.bpf.o'));
    const cls = tc.program('tc_ingress').expectSection('tc');
    expectTypeOf(cls.attach).returns.toBeNever();
    expect(() => cls.attach()).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('cannot auto-attach') }));
  });
});

/** Rust sources under `dir`, recursively. */
function rustFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? rustFiles(path.join(dir, e.name)) : e.name.endsWith('.rs') ? [path.join(dir, e.name)] : [],
  );
}

describe('MultiLink.mechanism', () => {
  it('the union is every mechanism the core passes to a MultiLink', () => {
    const found = new Set<string>();
    for (const file of rustFiles(CORE)) {
      const source = readFileSync(file, 'utf8');
      // Calls, not the definition (`fn attach_each(`).
      for (const m of source.matchAll(/(?<!fn )\b(?:MultiLink::new|attach_each)\(\s*([^,]+),/g)) {
        const arg = m[1].trim();
        const literal = /^"(\w+)"$/.exec(arg);
        if (literal) {
          found.add(literal[1]);
          continue;
        }
        const call = `${path.relative(CORE, file)}: ${arg}`;
        // The per-target engine passes its caller's on; tracing_multi's fallback is named
        // by kind, from its table.
        expect(['attach/multi.rs: mechanism', 'attach/tracing_multi.rs: name']).toContain(call);
        if (call.startsWith('attach/tracing_multi.rs')) {
          for (const t of source.matchAll(/AttachKind::\w+Multi => \(sys::\w+, "(\w+)"\)/g)) found.add(t[1]);
        }
      }
    }
    expect([...found].sort()).toEqual([...MULTI_LINK_MECHANISMS].sort());
    expectTypeOf<MultiLink['mechanism']>().toEqualTypeOf<MultiLinkMechanism>();
    expectTypeOf<KprobeMultiMechanism | UprobeMultiMechanism | TracingMultiMechanism>().toEqualTypeOf<MultiLinkMechanism>();
  });
});

describe('BpfError across the ESM and CommonJS entries', () => {
  it('instanceof holds both ways', () => {
    const cjs = createRequire(import.meta.url)(path.join(ROOT, 'dist', 'index.cjs')) as { BpfError: typeof BpfError };
    expect(cjs.BpfError).not.toBe(BpfError);
    expect(new cjs.BpfError('EINVAL', 'x')).toBeInstanceOf(BpfError);
    expect(new BpfError('EINVAL', 'x')).toBeInstanceOf(cjs.BpfError);
    expect(new Error('x')).not.toBeInstanceOf(BpfError);
    expect(null).not.toBeInstanceOf(BpfError);
  });
});

describe('maps typed by their codecs and their per-CPU-ness', () => {
  it('named codecs infer K and V; get() is V for other maps, V[] for per-CPU ones', async () => {
    await using obj = await load(fixture('maps.bpf.o'));
    const results = obj.map('results', { key: 'u32', value: 'u64' });
    expectTypeOf(results.get).returns.toEqualTypeOf<bigint | undefined>();
    expectTypeOf(results.set).parameter(0).toEqualTypeOf<number>();
    expect(results.get(0)).toBe(0n);
    const perCpu = obj.map('percpu_array', { key: 'u32', value: 'u64', perCpu: true });
    expectTypeOf(perCpu.get).returns.toEqualTypeOf<bigint[] | undefined>();
    expect(perCpu.get(0)).toHaveLength(possibleCpus());
    // Without codecs: decoded by BTF, typed unknown until a skeleton or type arguments say more.
    expectTypeOf(obj.map('results').get).returns.toEqualTypeOf<unknown>();
    expectTypeOf(obj.map('results', { key: 'raw', value: 'raw' }).get).returns.toEqualTypeOf<Uint8Array | undefined>();
    // createMap: per-CPU from a literal type, by number or by libbpf's name.
    using a = createMap({ type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: 1 }, { key: 'u32', value: 'u64' });
    expectTypeOf(a.get).returns.toEqualTypeOf<bigint[] | undefined>();
    expect(a.typeName).toBe('percpu_array');
  });
});
