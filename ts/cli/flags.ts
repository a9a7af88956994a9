// Symbolic names for the integer arguments people read as flags (open's O_*, mmap's PROT_*
// and MAP_*, the *at calls' AT_*) or as octal (file modes): a small table per kind, and
// which tracepoint fields use which. More kinds are a table and a row in FIELD_DECODERS.

/** How an integer reads: to text, and (for --filter) back from it. */
export interface Decoder {
  readonly name: string;
  render(v: bigint): string;
  /** `O_RDONLY|O_CLOEXEC`, `0644`, ... to the value; undefined if it is not this kind's. */
  parse(text: string): bigint | undefined;
}

type Bits = readonly (readonly [name: string, value: number])[];

/**
 * Flags: one of `choices` (the bits under `mask`, named only by value: O_RDONLY is 0) and
 * each of `bits` set (a bit named by several, like O_SYNC over O_DSYNC, listed first
 * wins); bits no name covers stay as hex.
 */
function flags(name: string, bits: Bits, choice?: { mask: number; names: Bits }): Decoder {
  const lookup = new Map<string, bigint>([...bits, ...(choice?.names ?? [])].map(([n, v]) => [n, BigInt(v)]));
  return {
    name,
    render(v) {
      const names: string[] = [];
      let rest = BigInt.asUintN(64, v);
      if (choice) {
        const mask = BigInt(choice.mask);
        const hit = choice.names.find(([, value]) => BigInt(value) === (rest & mask));
        if (hit) {
          names.push(hit[0]);
          rest &= ~mask;
        }
      }
      for (const [n, value] of bits) {
        const b = BigInt(value);
        if (b !== 0n && (rest & b) === b) {
          names.push(n);
          rest &= ~b;
        }
      }
      if (rest !== 0n || names.length === 0) names.push(`0x${rest.toString(16)}`);
      return names.join('|');
    },
    parse(text) {
      let v = 0n;
      for (const part of text.split('|').map((p) => p.trim())) {
        const known = lookup.get(part) ?? parseInteger(part);
        if (known === undefined) return undefined;
        v |= known;
      }
      return v;
    },
  };
}

/** Decimal, 0x hex, 0o or leading-zero octal, with an optional minus. */
export function parseInteger(text: string): bigint | undefined {
  const m = /^(-?)(0x[0-9a-f]+|0o[0-7]+|0[0-7]*|[1-9][0-9]*)$/i.exec(text.trim());
  if (!m) return undefined;
  const body = m[2].toLowerCase();
  const v = body.startsWith('0x') || body.startsWith('0o') ? BigInt(body) : body.length > 1 && body.startsWith('0') ? BigInt(`0o${body.slice(1)}`) : BigInt(body);
  return m[1] ? -v : v;
}

const octal: Decoder = {
  name: 'mode',
  render: (v) => (v === 0n ? '0' : `0${BigInt.asUintN(64, v).toString(8)}`),
  parse: (text) => (/^[0-7]+$/.test(text.trim()) ? BigInt(`0o${text.trim()}`) : parseInteger(text)),
};

// Values from include/uapi/asm-generic/fcntl.h (x86-64); arm64 moves four of them
// (arch/arm64/include/uapi/asm/fcntl.h).
const ARM64 = process.arch === 'arm64';
const O_DIRECTORY = ARM64 ? 0o40000 : 0o200000;
const O_NOFOLLOW = ARM64 ? 0o100000 : 0o400000;
const O_DIRECT = ARM64 ? 0o200000 : 0o40000;
const O_LARGEFILE = ARM64 ? 0o400000 : 0o100000;

const OPEN = flags(
  'oflags',
  [
    ['O_CREAT', 0o100],
    ['O_EXCL', 0o200],
    ['O_NOCTTY', 0o400],
    ['O_TRUNC', 0o1000],
    ['O_APPEND', 0o2000],
    ['O_NONBLOCK', 0o4000],
    // O_SYNC is __O_SYNC|O_DSYNC: named before O_DSYNC so it takes both bits.
    ['O_SYNC', 0o4010000],
    ['O_DSYNC', 0o10000],
    ['O_ASYNC', 0o20000],
    ['O_DIRECT', O_DIRECT],
    ['O_LARGEFILE', O_LARGEFILE],
    // O_TMPFILE is __O_TMPFILE|O_DIRECTORY.
    ['O_TMPFILE', 0o20000000 | O_DIRECTORY],
    ['O_DIRECTORY', O_DIRECTORY],
    ['O_NOFOLLOW', O_NOFOLLOW],
    ['O_NOATIME', 0o1000000],
    ['O_CLOEXEC', 0o2000000],
    ['O_PATH', 0o10000000],
  ],
  {
    mask: 3,
    names: [
      ['O_RDONLY', 0],
      ['O_WRONLY', 1],
      ['O_RDWR', 2],
    ],
  },
);

const PROT = flags('mmap_prot', [
  ['PROT_READ', 1],
  ['PROT_WRITE', 2],
  ['PROT_EXEC', 4],
  ['PROT_SEM', 8],
  ['PROT_GROWSDOWN', 0x01000000],
  ['PROT_GROWSUP', 0x02000000],
]);
// PROT_NONE is 0: a flags table names 0 only as a choice.
const PROT_WITH_NONE: Decoder = { ...PROT, render: (v) => (v === 0n ? 'PROT_NONE' : PROT.render(v)), parse: (t) => (t.trim() === 'PROT_NONE' ? 0n : PROT.parse(t)) };

const MAP = flags(
  'mmap_flags',
  [
    ['MAP_FIXED', 0x10],
    ['MAP_ANONYMOUS', 0x20],
    ['MAP_32BIT', 0x40],
    ['MAP_GROWSDOWN', 0x100],
    ['MAP_DENYWRITE', 0x800],
    ['MAP_EXECUTABLE', 0x1000],
    ['MAP_LOCKED', 0x2000],
    ['MAP_NORESERVE', 0x4000],
    ['MAP_POPULATE', 0x8000],
    ['MAP_NONBLOCK', 0x10000],
    ['MAP_STACK', 0x20000],
    ['MAP_HUGETLB', 0x40000],
    ['MAP_SYNC', 0x80000],
    ['MAP_FIXED_NOREPLACE', 0x100000],
    ['MAP_UNINITIALIZED', 0x4000000],
  ],
  {
    mask: 0xf,
    names: [
      ['MAP_SHARED', 1],
      ['MAP_PRIVATE', 2],
      ['MAP_SHARED_VALIDATE', 3],
    ],
  },
);

/** include/uapi/linux/fcntl.h; 0x200 is AT_REMOVEDIR for unlinkat and AT_EACCESS for faccessat. */
const atBits = (x200: string): Bits => [
  ['AT_SYMLINK_NOFOLLOW', 0x100],
  [x200, 0x200],
  ['AT_SYMLINK_FOLLOW', 0x400],
  ['AT_NO_AUTOMOUNT', 0x800],
  ['AT_EMPTY_PATH', 0x1000],
  ['AT_STATX_FORCE_SYNC', 0x2000],
  ['AT_STATX_DONT_SYNC', 0x4000],
  ['AT_RECURSIVE', 0x8000],
];
const AT = flags('at_flags', atBits('AT_EACCESS'));
const UNLINK_AT = flags('unlinkat_flags', atBits('AT_REMOVEDIR'));

/** openat2's struct open_how resolve field (include/uapi/linux/openat2.h). */
const RESOLVE = flags('resolve', [
  ['RESOLVE_NO_XDEV', 1],
  ['RESOLVE_NO_MAGICLINKS', 2],
  ['RESOLVE_NO_SYMLINKS', 4],
  ['RESOLVE_BENEATH', 8],
  ['RESOLVE_IN_ROOT', 0x10],
  ['RESOLVE_CACHED', 0x20],
]);

/** By name: what --args accepts as a type (`flags:oflags`). */
export const DECODERS: Record<string, Decoder> = Object.fromEntries(
  [OPEN, octal, PROT_WITH_NONE, MAP, AT, UNLINK_AT, RESOLVE].map((d) => [d.name, d]),
);

/** Tracepoint fields read as flags: (tracepoint, field) patterns and their decoder. */
const FIELD_DECODERS: readonly (readonly [event: RegExp, field: RegExp, decoder: Decoder])[] = [
  [/^syscalls:sys_enter_(open|openat|open_by_handle_at)$/, /^flags$/, OPEN],
  [/^syscalls:sys_enter_(open|openat|creat|mkdir|mkdirat|mknod|mknodat|chmod|fchmod|fchmodat|fchmodat2|mq_open)$/, /^mode$/, octal],
  [/^syscalls:sys_enter_(mmap|mprotect|pkey_mprotect)$/, /^prot$/, PROT_WITH_NONE],
  [/^syscalls:sys_enter_mmap$/, /^flags$/, MAP],
  [/^syscalls:sys_enter_unlinkat$/, /^flag$/, UNLINK_AT],
  [/^syscalls:sys_enter_(newfstatat|fstatat64|statx|faccessat2|fchownat|linkat|utimensat|execveat|fchmodat2|open_tree|name_to_handle_at)$/, /^flags?$/, AT],
];

export function fieldDecoder(event: string, field: string): Decoder | undefined {
  return FIELD_DECODERS.find(([e, f]) => e.test(event) && f.test(field))?.[2];
}

/** A struct read through a pointer field, its members as integers. */
export interface PointeeStruct {
  readonly size: number;
  readonly members: readonly (readonly [name: string, offset: number, size: 8 | 4, decoder?: Decoder])[];
}

/** openat2's `how` (struct open_how: three u64s). */
const OPEN_HOW: PointeeStruct = {
  size: 24,
  members: [
    ['flags', 0, 8, OPEN],
    ['mode', 8, 8, octal],
    ['resolve', 16, 8, RESOLVE],
  ],
};

const POINTEES: readonly (readonly [event: RegExp, field: RegExp, struct: PointeeStruct])[] = [[/^syscalls:sys_enter_openat2$/, /^how$/, OPEN_HOW]];

export function fieldPointee(event: string, field: string): PointeeStruct | undefined {
  return POINTEES.find(([e, f]) => e.test(event) && f.test(field))?.[2];
}
