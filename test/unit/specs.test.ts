// The CLI's probe specs (ts/cli/specs.ts): bpftrace's forms and short forms, the usage
// errors a person sees, globs, and the skip summary.
import { describe, expect, it } from 'vitest';

import { family, globToRegExp, isReturn, parseSpec, skipSummary, type ProbeSpec } from '../../ts/cli/specs.js';
import { UsageError } from '../../ts/cli/usage.js';

describe('parseSpec', () => {
  const cases: [string, Omit<ProbeSpec, 'text'>][] = [
    ['kprobe:vfs_*', { kind: 'kprobe', pattern: 'vfs_*' }],
    ['k:vfs_read', { kind: 'kprobe', pattern: 'vfs_read' }],
    ['kretprobe:tcp_*', { kind: 'kretprobe', pattern: 'tcp_*' }],
    ['kr:tcp_sendmsg', { kind: 'kretprobe', pattern: 'tcp_sendmsg' }],
    ['uprobe:/usr/bin/node:uv_fs_*', { kind: 'uprobe', binary: '/usr/bin/node', pattern: 'uv_fs_*' }],
    ['u:libc.so.6:malloc', { kind: 'uprobe', binary: 'libc.so.6', pattern: 'malloc' }],
    // The pattern is after the last colon, so a binary path may contain colons.
    ['uretprobe:/opt/a:b/app:main', { kind: 'uretprobe', binary: '/opt/a:b/app', pattern: 'main' }],
    ['ur:node:uv_run', { kind: 'uretprobe', binary: 'node', pattern: 'uv_run' }],
    ['fentry:tcp_*', { kind: 'fentry', pattern: 'tcp_*' }],
    ['f:overlay:ovl_*', { kind: 'fentry', pattern: 'overlay:ovl_*' }],
    ['kfunc:vfs_read', { kind: 'fentry', pattern: 'vfs_read' }],
    ['fexit:vfs_read', { kind: 'fexit', pattern: 'vfs_read' }],
    ['fr:vfs_read', { kind: 'fexit', pattern: 'vfs_read' }],
    ['kretfunc:vfs_read', { kind: 'fexit', pattern: 'vfs_read' }],
    ['tracepoint:syscalls:sys_enter_*', { kind: 'tracepoint', pattern: 'syscalls:sys_enter_*' }],
    ['t:sched:sched_switch', { kind: 'tracepoint', pattern: 'sched:sched_switch' }],
  ];
  for (const [text, spec] of cases) {
    it(`${text}`, () => expect(parseSpec(text)).toEqual({ text, ...spec }));
  }

  const mistakes: [string, RegExp][] = [
    ['vfs_read', /'vfs_read' is not a probe spec\nprobe specs/],
    [':vfs_read', /is not a probe spec/],
    ['kprobes:vfs_read', /is not a probe spec/],
    ['uprobe:malloc', /'uprobe:malloc': write uprobe:BINARY:PATTERN/],
    ['uprobe:/bin/ls:', /write uprobe:BINARY:PATTERN/],
    ['ur::main', /write uretprobe:BINARY:PATTERN/],
    ['tracepoint:sched_switch', /write tracepoint:CATEGORY:NAME/],
    ['t:a:b:c', /write tracepoint:CATEGORY:NAME/],
    ['kprobe:', /give a function name or pattern after 'kprobe:'/],
  ];
  for (const [text, message] of mistakes) {
    it(`'${text}' is a usage error: ${message.source}`, () => {
      let err: unknown;
      try {
        parseSpec(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).message).toMatch(message);
    });
  }
});

describe('kinds', () => {
  it('returns and families', () => {
    expect(['kretprobe', 'uretprobe', 'fexit'].every((k) => isReturn(parseSpec(`${k}:x:y`).kind))).toBe(true);
    expect(['kprobe', 'uprobe', 'fentry', 'tracepoint'].some((k) => isReturn(parseSpec(`${k}:x:y`).kind))).toBe(false);
    expect(['k:f', 'kr:f', 'u:b:f', 'ur:b:f', 'f:f', 'fr:f', 't:a:b'].map((s) => family(parseSpec(s).kind))).toEqual([
      'kprobe',
      'kprobe',
      'uprobe',
      'uprobe',
      'tracing',
      'tracing',
      'tracepoint',
    ]);
  });
});

describe('globToRegExp', () => {
  it('* and ? are wildcards; everything else, regex syntax included, is literal', () => {
    const re = globToRegExp('uv_fs_*');
    expect(['uv_fs_', 'uv_fs_stat'].every((s) => re.test(s))).toBe(true);
    expect(['uv_fs', 'xuv_fs_stat', 'uv_fsXstat'].some((s) => re.test(s))).toBe(false);
    expect(globToRegExp('__x64_sys_getpgi?').test('__x64_sys_getpgid')).toBe(true);
    expect(globToRegExp('__x64_sys_getpgi?').test('__x64_sys_getpgidd')).toBe(false);
    const literal = globToRegExp('a.b+c(d)[e]$^|{f}\\');
    expect(literal.test('a.b+c(d)[e]$^|{f}\\')).toBe(true);
    expect(literal.test('aXb+c(d)[e]$^|{f}\\')).toBe(false);
  });
});

describe('skipSummary', () => {
  it('groups the kernel\'s reasons into a few kinds, most frequent first', () => {
    const skipped = [
      { name: 'a', reason: 'not a traceable function (not in available_filter_functions)' },
      { name: 'b', reason: 'not a traceable function (not in available_filter_functions)' },
      { name: 'c', reason: 'not in vmlinux BTF' },
      { name: 'd', reason: 'several functions have this name' },
      { name: 'e', reason: 'prototype: more than 6 arguments' },
      { name: 'f', reason: 'the BPF trampoline runs it' },
      { name: 'g', reason: 'refused by the kernel: EINVAL' },
      { name: 'h', reason: 'no function of that name' },
      { name: 'i', reason: 'something new: with details' },
    ];
    expect(skipSummary(skipped)).toBe(
      'notrace: 2, not in BTF: 1, duplicate name: 1, prototype: 1, run by the BPF trampoline: 1, refused by the kernel: 1, not found: 1, something new: 1',
    );
    expect(skipSummary([])).toBe('');
  });
});
