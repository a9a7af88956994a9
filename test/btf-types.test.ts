// The object's BTF as a table (ObjectSpec.types, NativeObject.types()), the BTF type ids
// of maps and globals, and globalData(): a data section's map value mapped into memory.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { createMap, load, MapType } from '../dist/index.js';
import type { BtfType, GlobalSpec, ObjectSpec } from '../dist/binding.js';
import { addon } from '../dist/native.js';
import { fixture, syscalls } from './helpers.js';

const OBJ = fixture('btf_types.bpf.o');
/** BPF_F_MMAPABLE, BPF_F_RDONLY_PROG. */
const MMAPABLE = 1 << 10;
const RDONLY_PROG = 1 << 7;

const openSpec = (): Promise<ObjectSpec> => addon.openObject(readFileSync(OBJ));

function find(types: BtfType[], kind: string, name: string): BtfType {
  const t = types.find((x) => x.kind === kind && x.name === name);
  if (!t) throw new Error(`no ${kind} ${name} in the table`);
  return t;
}

/** A type as C names it, from the table alone (every id it refers to must be in it). */
function cName(types: BtfType[], id: number): string {
  const t = types[id];
  expect(t?.id).toBe(id);
  switch (t.kind) {
    case 'struct':
    case 'union':
    case 'enum':
    case 'enum64':
      return `${t.kind === 'enum64' ? 'enum' : t.kind} ${t.name}`;
    case 'const':
    case 'volatile':
      return `${t.kind} ${cName(types, t.typeId)}`;
    case 'ptr':
      return `${cName(types, t.typeId)} *`;
    case 'array':
      return `${cName(types, t.typeId)}[${t.len}]`;
    default:
      return t.name;
  }
}

/** A struct's or union's members as [name, C type, bit offset, bitfield size]. */
const members = (types: BtfType[], t: BtfType) => (t.members ?? []).map((m) => [m.name, cName(types, m.typeId), m.bitOffset, m.bitSize]);

const global = (globals: GlobalSpec[], name: string): GlobalSpec => {
  const g = globals.find((x) => x.name === name);
  if (!g) throw new Error(`no global ${name}`);
  return g;
};

describe('the BTF type table', () => {
  it('lists every type by id, structs with their members, bit offsets and bitfields', async () => {
    const { types } = await openSpec();
    expect(types.map((t) => t.id)).toEqual(types.map((_, i) => i));
    expect(types[0]).toEqual({ id: 0, kind: 'void', name: '', size: 0, typeId: 0, len: 0, bits: 0, signed: false, char: false, bool: false });

    const value = find(types, 'struct', 'bt_value');
    expect(value.size).toBe(56);
    expect(members(types, value)).toEqual([
      ['in', 'struct bt_inner', 0, 0],
      ['e', 'union bt_either', 32, 0],
      ['big', '__u64', 64, 0],
      ['neg', '__s32', 128, 0],
      ['flag', 'bool', 160, 0],
      ['tint', 'enum tint', 192, 0],
      ['lo', 'unsigned int', 224, 3],
      ['mid', 'unsigned int', 227, 5],
      ['sbits', 'int', 232, 4],
      ['arr', '__u32[3]', 256, 0],
      ['inners', 'struct bt_inner[2]', 352, 0],
    ]);
    expect(members(types, find(types, 'struct', 'bt_inner'))).toEqual([
      ['a', '__u16', 0, 0],
      ['b', '__s8', 16, 0],
    ]);
    const either = find(types, 'union', 'bt_either');
    expect(either.size).toBe(4);
    expect(members(types, either)).toEqual([
      ['u', '__u32', 0, 0],
      ['halves', '__s16[2]', 0, 0],
      ['bytes', 'char[4]', 0, 0],
    ]);
    expect(members(types, find(types, 'struct', 'bt_key'))).toEqual([
      ['pid', '__u32', 0, 0],
      ['comm', 'char[16]', 32, 0],
    ]);
  });

  it('integers carry their width and encoding, enums their values as exact strings', async () => {
    const { types } = await openSpec();
    const int = (name: string) => {
      const { size, bits, signed, char, bool } = find(types, 'int', name);
      return { size, bits, signed, char, bool };
    };
    expect(int('unsigned long long')).toEqual({ size: 8, bits: 64, signed: false, char: false, bool: false });
    expect(int('long long')).toEqual({ size: 8, bits: 64, signed: true, char: false, bool: false });
    expect(int('short')).toEqual({ size: 2, bits: 16, signed: true, char: false, bool: false });
    expect(int('_Bool')).toEqual({ size: 1, bits: 8, signed: false, char: false, bool: true });
    // clang marks char SIGNED (x86's char), not BTF_INT_CHAR.
    expect(int('char')).toMatchObject({ size: 1, bits: 8, signed: true });
    expect(cName(types, find(types, 'typedef', 'bool').typeId)).toBe('_Bool');

    const tint = find(types, 'enum', 'tint');
    expect(tint.size).toBe(4);
    // Signedness is the enum's kind_flag, which clang emits from 15 on: clang 14 leaves
    // it unset, and -3 is then the unsigned 2^32 - 3 (as bpftool shows it too).
    expect(tint.values).toEqual([
      { name: 'TINT_RED', value: '0' },
      { name: 'TINT_GREEN', value: '1' },
      { name: 'TINT_BLUE', value: '7' },
      { name: 'TINT_NEGATIVE', value: tint.signed ? '-3' : '4294967293' },
    ]);
    // clang 15+ emits an enum with a value past 32 bits as ENUM64 (unit-tested in Rust
    // with hand-made BTF where clang cannot).
    const wide = types.find((t) => t.name === 'bt_wide');
    if (wide) {
      expect(wide.kind).toBe('enum64');
      expect(wide.values).toContainEqual({ name: 'BT_WIDE_BIG', value: '9007199254740993' });
    }
    // DATASEC sizes as aya-obj's fixup fills them in (clang leaves them 0).
    expect(find(types, 'datasec', '.bss').size).toBe(16);
    expect(find(types, 'datasec', '.data').size).toBe(12);
  });

  it('maps carry their key and value type ids, open and loaded; a data section its DATASEC', async () => {
    const spec = await openSpec();
    const { types } = spec;
    const ids = (m: { btfKeyTypeId: number; btfValueTypeId: number }) => [m.btfKeyTypeId, m.btfValueTypeId];
    const things = [find(types, 'struct', 'bt_key').id, find(types, 'struct', 'bt_value').id];
    const bss = [0, find(types, 'datasec', '.bss').id];
    const open = (name: string) => spec.maps.find((m) => m.name === name)!;
    expect(ids(open('things'))).toEqual(things);
    expect(ids(open('.bss'))).toEqual(bss);

    using obj = await load(OBJ);
    const n = obj._native();
    expect(n.types()).toEqual(types);
    const loaded = (name: string) => n.maps().find((m) => m.name === name)!;
    expect(ids(loaded('things'))).toEqual(things);
    expect(ids(loaded('.bss'))).toEqual(bss);
    expect(ids(n.map('things').desc())).toEqual(things);
  });

  it('globals carry their offset in the section and their type id', async () => {
    const spec = await openSpec();
    const { types, globals } = spec;
    // Only data sections' variables: not the license, not the map definitions.
    expect(globals.map((g) => [g.name, g.section])).toEqual([
      ['custom', '.data.custom'],
      ['data_tint', '.data'],
      ['data_value', '.data'],
      ['hits', '.bss'],
      ['rodata_neg', '.rodata'],
      ['seen_data', '.bss'],
      ['target_tgid', '.rodata'],
      ...(types.some((t) => t.name === 'wide_value') ? [['wide_value', '.data']] : []),
    ]);
    const at = (name: string) => {
      const g = global(globals, name);
      return [g.offset, g.size, cName(types, g.typeId)];
    };
    expect(at('data_value')).toEqual([0, 8, '__u64']);
    expect(at('data_tint')).toEqual([8, 4, 'enum tint']);
    expect(at('custom')).toEqual([0, 4, '__u32']);
    expect(at('target_tgid')).toEqual([0, 4, 'const volatile __u32']);
    expect(at('rodata_neg')).toEqual([8, 8, 'const volatile __s64']);
    expect(new Set([at('hits'), at('seen_data')].map(([offset]) => offset))).toEqual(new Set([0, 8]));
    expect(at('hits').slice(1)).toEqual([8, '__u64']);

    using obj = await load(OBJ);
    expect(obj._native().globals()).toEqual(globals);
  });
});

describe('globalData()', () => {
  it('maps .bss and .data: counters the program increments read live, writes the program sees', async () => {
    const child = syscalls('getppid', 5);
    using obj = await load(OBJ, { globals: { target_tgid: child.pid } });
    const n = obj._native();
    const globals = n.globals();
    const flags = (name: string) => n.maps().find((m) => m.name === name)!.flags;
    for (const s of ['.bss', '.data', '.data.custom']) expect(flags(s)).toBe(MMAPABLE);
    expect(flags('.rodata')).toBe(MMAPABLE | RDONLY_PROG);

    const bss = n.globalData('.bss')!;
    expect(bss).toBeInstanceOf(ArrayBuffer);
    expect(bss.byteLength).toBe(16);
    expect(n.globalData('.bss')).toBe(bss);
    const data = new DataView(n.globalData('.data')!);
    expect(data.getBigUint64(global(globals, 'data_value').offset, true)).toBe(42n);
    expect(data.getUint32(global(globals, 'data_tint').offset, true)).toBe(7);
    data.setBigUint64(global(globals, 'data_value').offset, 1234n, true);

    using _l = obj.program('count').attach();
    const view = new DataView(bss);
    const hits = global(globals, 'hits').offset;
    expect(view.getBigUint64(hits, true)).toBe(0n);
    await child.run();
    expect(view.getBigUint64(hits, true)).toBe(5n);
    expect(view.getBigUint64(global(globals, 'seen_data').offset, true)).toBe(1234n);
    // The same memory the map's value is.
    const raw = obj.map('.bss').get(new Uint8Array(4)) as Uint8Array;
    expect(Buffer.from(raw)).toEqual(Buffer.from(bss));
  });

  it('.rodata, frozen and mapped read-only, is a copy: writing it changes nothing the program or a later call sees', async () => {
    const child = syscalls('getppid', 1);
    using obj = await load(OBJ, { globals: { target_tgid: child.pid } });
    const n = obj._native();
    const tgid = global(n.globals(), 'target_tgid').offset;
    const ro = n.globalData('.rodata')!;
    const view = new DataView(ro);
    expect(view.getUint32(tgid, true)).toBe(child.pid);
    expect(view.getBigInt64(global(n.globals(), 'rodata_neg').offset, true)).toBe(-5n);
    view.setUint32(tgid, 1, true);
    const again = n.globalData('.rodata')!;
    expect(again).not.toBe(ro);
    expect(new DataView(again).getUint32(tgid, true)).toBe(child.pid);
    using _l = obj.program('count').attach();
    await child.run();
    expect(new DataView(n.globalData('.bss')!).getBigUint64(global(n.globals(), 'hits').offset, true)).toBe(1n);
    // The kernel refuses writes to the frozen map itself.
    expect(() => obj.map('.rodata').set(new Uint8Array(4), new Uint8Array(16))).toThrow(expect.objectContaining({ code: 'EPERM' }));
  });

  it('close() detaches the buffers; unknown sections are ENOENT', async () => {
    const obj = await load(OBJ);
    const n = obj._native();
    const bss = n.globalData('.bss')!;
    const data = n.globalData('.data')!;
    const code = (nodebpfCode: string) => expect.objectContaining({ nodebpfCode });
    expect(() => n.globalData('things')).toThrow(code('ENOENT'));
    expect(() => n.globalData('.nope')).toThrow(code('ENOENT'));
    obj.close();
    expect([bss.byteLength, data.byteLength]).toEqual([0, 0]);
    expect(() => n.globalData('.bss')).toThrow(code('CLOSED'));
  });

  it('a reused data map: shared when mmapable, null (look up key 0) when made without the flag', async () => {
    using first = await load(OBJ);
    using second = await load(OBJ, { maps: { '.data': { reuseFd: first.map('.data') } } });
    new DataView(first._native().globalData('.data')!).setBigUint64(0, 77n, true);
    expect(new DataView(second._native().globalData('.data')!).getBigUint64(0, true)).toBe(77n);

    using plain = createMap({ type: MapType.ARRAY, keySize: 4, valueSize: 12, maxEntries: 1, name: 'data' });
    using third = await load(OBJ, { maps: { '.data': { reuseFd: plain } } });
    expect(third._native().maps().find((m) => m.name === '.data')!.flags).toBe(0);
    expect(third._native().globalData('.data')).toBeNull();
    expect(third._native().globalData('.bss')).not.toBeNull();
  });
});
