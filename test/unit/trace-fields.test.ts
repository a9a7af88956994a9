// nodebpf trace's typed fields without a kernel: tracepoint format files to layouts (the
// syscall quirks), flag tables both ways, --args and --filter parsing and their errors.
import { describe, expect, it } from 'vitest';

import { argsLayout, configBytes, CONFIG_SIZE, parseFormat, tracepointLayout, type FieldKind } from '../../ts/cli/fields.js';
import { compileFilter, parseFilter } from '../../ts/cli/filter.js';
import { DECODERS, parseInteger } from '../../ts/cli/flags.js';
import { UsageError } from '../../ts/cli/usage.js';

// As 6.18 (and 5.10, the same lines) writes it.
const OPENAT = `name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: "dfd: 0x%08lx, filename: 0x%08lx, flags: 0x%08lx, mode: 0x%08lx", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename)), ((unsigned long)(REC->flags)), ((unsigned long)(REC->mode))
`;

const kinds = (l: { fields: { name: string; kind: FieldKind }[] }) => Object.fromEntries(l.fields.map((f) => [f.name, { ...f.kind, ...('decoder' in f.kind && f.kind.decoder ? { decoder: f.kind.decoder.name } : {}) }]));

describe('tracepoint formats', () => {
  it('syscall arguments: stored in 8 bytes, read as their C type (int dfd: 4 bytes, signed)', () => {
    const fields = parseFormat(OPENAT);
    expect(fields.map((f) => f.name)).toEqual(['__syscall_nr', 'dfd', 'filename', 'flags', 'mode']);
    const l = tracepointLayout('syscalls:sys_enter_openat', fields);
    expect(kinds(l)).toEqual({
      __syscall_nr: { t: 'int', size: 4, signed: true },
      dfd: { t: 'int', size: 4, signed: true },
      filename: { t: 'str', mem: 0 },
      flags: { t: 'int', size: 4, signed: true, decoder: 'oflags' },
      mode: { t: 'int', size: 2, signed: false, decoder: 'mode' },
    });
    expect(l.rawLen).toBe(48);
    expect(l.mems).toEqual([{ src: 24, len: 0, kind: 1 }]);
    const config = new DataView(configBytes(l).buffer);
    expect(config.byteLength).toBe(CONFIG_SIZE);
    expect([config.getUint16(0, true), config.getUint8(2), config.getUint16(8, true), config.getUint8(12)]).toEqual([48, 1, 24, 1]);
  });

  it('7.x syscall records: the string copies for ftrace (not in the record BPF gets) left out', () => {
    const text = `${OPENAT}\tfield:__data_loc char[] __filename_val;\toffset:48;\tsize:4;\tsigned:0;\n`;
    const l = tracepointLayout('syscalls:sys_enter_openat', parseFormat(text));
    expect(l.fields.map((f) => f.name)).toEqual(['__syscall_nr', 'dfd', 'filename', 'flags', 'mode']);
    expect([l.rawLen, l.mems.length]).toEqual([48, 1]);
  });

  it('__data_loc strings, char arrays, pointers, output buffers, addresses, unknown typedefs', () => {
    const text = [
      'field:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;',
      'field:char comm[16];\toffset:12;\tsize:16;\tsigned:0;',
      'field:u64 stack[4];\toffset:32;\tsize:32;\tsigned:0;',
      'field:struct file * file;\toffset:64;\tsize:8;\tsigned:0;',
      'field:char * buf;\toffset:72;\tsize:8;\tsigned:0;',
      'field:unsigned long addr;\toffset:80;\tsize:8;\tsigned:0;',
      'field:xfs_ino_t ino;\toffset:88;\tsize:8;\tsigned:0;',
      'field:__data_loc u32[] ids;\toffset:96;\tsize:4;\tsigned:0;',
    ].join('\n');
    const l = tracepointLayout('syscalls:sys_enter_x', parseFormat(text));
    expect(kinds(l)).toEqual({
      filename: { t: 'loc', mem: 0, elem: 1, signed: false, chars: true },
      comm: { t: 'array', elem: 1, signed: false, count: 16, chars: true },
      stack: { t: 'array', elem: 8, signed: false, count: 4, chars: false },
      file: { t: 'ptr' },
      // read()'s buf at the entry: memory the call will fill.
      buf: { t: 'ptr' },
      addr: { t: 'ptr' },
      ino: { t: 'int', size: 8, signed: false },
      ids: { t: 'loc', mem: 1, elem: 4, signed: false, chars: false },
    });
    expect(l.mems).toEqual([
      { src: 8, len: 0, kind: 3 },
      { src: 96, len: 0, kind: 3 },
    ]);
  });

  it('write()\'s buf is a string as long as its count; openat2\'s how a struct read through its pointer', () => {
    const write = tracepointLayout(
      'syscalls:sys_enter_write',
      parseFormat('field:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;\nfield:const char * buf;\toffset:24;\tsize:8;\tsigned:0;\nfield:size_t count;\toffset:32;\tsize:8;\tsigned:0;'),
    );
    const buf = write.fields.find((f) => f.name === 'buf')!;
    expect(buf.kind).toMatchObject({ t: 'str', limit: { name: 'count' } });
    const openat2 = tracepointLayout('syscalls:sys_enter_openat2', parseFormat('field:struct open_how * how;\toffset:32;\tsize:8;\tsigned:0;'));
    expect(openat2.mems).toEqual([{ src: 32, len: 24, kind: 2 }]);
  });

  it('more than 6 memory reads: the rest are pointers, named', () => {
    const text = Array.from({ length: 8 }, (_, i) => `field:const char * s${i};\toffset:${8 + i * 8};\tsize:8;\tsigned:0;`).join('\n');
    const l = tracepointLayout('x:y', parseFormat(text));
    expect(l.mems).toHaveLength(6);
    expect(l.unread).toEqual(['s6', 's7']);
    expect(l.fields[7].kind).toEqual({ t: 'ptr' });
  });
});

describe('flag tables', () => {
  const oflags = DECODERS.oflags;
  it.each([
    [0n, 'O_RDONLY'],
    [0o2000000n, 'O_RDONLY|O_CLOEXEC'],
    [0o1101n, 'O_WRONLY|O_CREAT|O_TRUNC'],
    [0o4010002n, 'O_RDWR|O_SYNC'],
    [0o10000n, 'O_RDONLY|O_DSYNC'],
    [0x40000000n, 'O_RDONLY|0x40000000'],
  ])('open flags %s: %s, and back', (v, text) => {
    expect(oflags.render(v)).toBe(text);
    expect(oflags.parse(text)).toBe(v);
  });
  it('modes in octal, mmap, AT_*', () => {
    expect(DECODERS.mode.render(0o644n)).toBe('0644');
    expect(DECODERS.mode.render(0n)).toBe('0');
    expect(DECODERS.mode.parse('0644')).toBe(0o644n);
    expect(DECODERS.mmap_prot.render(0n)).toBe('PROT_NONE');
    expect(DECODERS.mmap_prot.render(5n)).toBe('PROT_READ|PROT_EXEC');
    expect(DECODERS.mmap_flags.render(0x22n)).toBe('MAP_PRIVATE|MAP_ANONYMOUS');
    expect(DECODERS.at_flags.render(0x1100n)).toBe('AT_SYMLINK_NOFOLLOW|AT_EMPTY_PATH');
    expect(DECODERS.unlinkat_flags.render(0x200n)).toBe('AT_REMOVEDIR');
  });
  it('integers: decimal, hex, octal, negative', () => {
    expect(['-100', '0x1f', '0o17', '017', '0', 'x', '1e3'].map(parseInteger)).toEqual([-100n, 31n, 15n, 15n, 0n, undefined, undefined]);
  });
});

describe('--args', () => {
  it('types, names, positions', () => {
    const l = argsLayout('path:str,n:int,ptr,flags:oflags');
    expect(l.fields.map((f) => [f.name, f.kind.t, f.positional])).toEqual([
      ['path', 'str', false],
      ['n', 'int', false],
      ['arg2', 'ptr', true],
      ['flags', 'int', false],
    ]);
    expect(l.mems).toEqual([{ src: 0, len: 0, kind: 1 }]);
  });
  it.each([
    ['a:str,a:int', "'a' is named twice"],
    ['str,,int', "'' is not TYPE or NAME:TYPE"],
    ['path:string', "unknown type 'string'"],
    ['u8,u8,u8,u8,u8,u8,u8', 'at most 6 arguments'],
  ])('%s: %s', (text, message) => {
    expect(() => argsLayout(text)).toThrow(UsageError);
    expect(() => argsLayout(text)).toThrow(message);
  });
});

describe('--filter', () => {
  const layout = tracepointLayout('syscalls:sys_enter_openat', parseFormat(OPENAT));
  it('parses predicates joined by &&, quoted values keep their spaces and &&', () => {
    expect(parseFilter(`pid==12 && filename=="/a b&&c" && flags!=O_RDONLY|O_CLOEXEC&&mode>=0644`)).toEqual([
      { name: 'pid', op: '==', literal: '12', quoted: false },
      { name: 'filename', op: '==', literal: '/a b&&c', quoted: true },
      { name: 'flags', op: '!=', literal: 'O_RDONLY|O_CLOEXEC', quoted: false },
      { name: 'mode', op: '>=', literal: '0644', quoted: false },
    ]);
  });
  it('the kernel takes pid==N', () => {
    expect(compileFilter('pid==42 && dfd==-100', [layout], false).kernelPid).toBe(42);
    expect(compileFilter('pid!=42', [layout], false).kernelPid).toBeUndefined();
  });
  it.each([
    ['dfd=-100', 'cannot read'],
    ['dfd==', 'has no value'],
    ['dfd==x', 'dfd is an integer'],
    ['filename>a', 'strings compare with == and !='],
    ['nope==1', "no field 'nope'"],
    ['ret==0', 'needs --ret or a return probe'],
    ['dfd==1 || dfd==2', 'only predicates joined by &&'],
  ])('%s: %s', (text, message) => {
    expect(() => compileFilter(text, [layout], false)).toThrow(message);
  });
});
