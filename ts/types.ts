// Program, attach and map types by libbpf's names (`'kprobe'`, `'trace_fentry'`,
// `'array'`…): the kernel constant's name without its prefix, in lower case, as
// `libbpf_bpf_prog_type_str`, `libbpf_bpf_attach_type_str` and `libbpf_bpf_map_type_str`
// spell them. Written out here so that the names are string-literal types;
// test/types.test.ts holds these tables to the core's (made from the kernel constants).
// Also: which link `attach()` gives for a SEC() name, as a type (`LinkOf`).
import { num, U32 } from './check.js';
import { BpfError } from './errors.js';
import type { KprobeMultiMechanism, Link, MultiLink, TracingMultiMechanism, UprobeMultiMechanism } from './link.js';

/** `BPF_PROG_TYPE_*` by libbpf's name. */
export const PROG_TYPES = {
  socket_filter: 1, kprobe: 2, sched_cls: 3, sched_act: 4, tracepoint: 5, xdp: 6, perf_event: 7,
  cgroup_skb: 8, cgroup_sock: 9, lwt_in: 10, lwt_out: 11, lwt_xmit: 12, sock_ops: 13, sk_skb: 14,
  cgroup_device: 15, sk_msg: 16, raw_tracepoint: 17, cgroup_sock_addr: 18, lwt_seg6local: 19,
  lirc_mode2: 20, sk_reuseport: 21, flow_dissector: 22, cgroup_sysctl: 23, raw_tracepoint_writable: 24,
  cgroup_sockopt: 25, tracing: 26, struct_ops: 27, ext: 28, lsm: 29, sk_lookup: 30, syscall: 31,
  netfilter: 32,
} as const;

/** `BPF_*` attach types by libbpf's name. */
export const ATTACH_TYPES = {
  cgroup_inet_ingress: 0, cgroup_inet_egress: 1, cgroup_inet_sock_create: 2, cgroup_sock_ops: 3,
  sk_skb_stream_parser: 4, sk_skb_stream_verdict: 5, cgroup_device: 6, sk_msg_verdict: 7,
  cgroup_inet4_bind: 8, cgroup_inet6_bind: 9, cgroup_inet4_connect: 10, cgroup_inet6_connect: 11,
  cgroup_inet4_post_bind: 12, cgroup_inet6_post_bind: 13, cgroup_udp4_sendmsg: 14,
  cgroup_udp6_sendmsg: 15, lirc_mode2: 16, flow_dissector: 17, cgroup_sysctl: 18,
  cgroup_udp4_recvmsg: 19, cgroup_udp6_recvmsg: 20, cgroup_getsockopt: 21, cgroup_setsockopt: 22,
  trace_raw_tp: 23, trace_fentry: 24, trace_fexit: 25, modify_return: 26, lsm_mac: 27,
  trace_iter: 28, cgroup_inet4_getpeername: 29, cgroup_inet6_getpeername: 30,
  cgroup_inet4_getsockname: 31, cgroup_inet6_getsockname: 32, xdp_devmap: 33,
  cgroup_inet_sock_release: 34, xdp_cpumap: 35, sk_lookup: 36, xdp: 37, sk_skb_verdict: 38,
  sk_reuseport_select: 39, sk_reuseport_select_or_migrate: 40, perf_event: 41,
  trace_kprobe_multi: 42, lsm_cgroup: 43, netfilter: 45, tcx_ingress: 46, tcx_egress: 47,
  trace_uprobe_multi: 48, cgroup_unix_connect: 49, cgroup_unix_sendmsg: 50,
  cgroup_unix_recvmsg: 51, cgroup_unix_getpeername: 52, cgroup_unix_getsockname: 53,
  netkit_primary: 54, netkit_peer: 55, trace_kprobe_session: 56, trace_uprobe_session: 57,
  trace_fsession: 58, trace_fentry_multi: 59, trace_fexit_multi: 60, trace_fsession_multi: 61,
} as const;

/** `BPF_MAP_TYPE_*` by libbpf's name (what `bpftool map` shows). */
export const MAP_TYPES = {
  hash: 1, array: 2, prog_array: 3, perf_event_array: 4, percpu_hash: 5, percpu_array: 6,
  stack_trace: 7, cgroup_array: 8, lru_hash: 9, lru_percpu_hash: 10, lpm_trie: 11,
  array_of_maps: 12, hash_of_maps: 13, devmap: 14, sockmap: 15, cpumap: 16, xskmap: 17,
  sockhash: 18, cgroup_storage: 19, reuseport_sockarray: 20, percpu_cgroup_storage: 21, queue: 22,
  stack: 23, sk_storage: 24, devmap_hash: 25, struct_ops: 26, ringbuf: 27, inode_storage: 28,
  task_storage: 29, bloom_filter: 30, user_ringbuf: 31, cgrp_storage: 32, arena: 33,
} as const;

export type ProgTypeName = keyof typeof PROG_TYPES;
export type AttachTypeName = keyof typeof ATTACH_TYPES;
export type MapTypeName = keyof typeof MAP_TYPES;

function byNumber<N extends string>(table: Record<N, number>): Map<number, N> {
  return new Map((Object.entries(table) as [N, number][]).map(([name, n]) => [n, name]));
}

const progNames = byNumber(PROG_TYPES);
const attachNames = byNumber(ATTACH_TYPES);
const mapNames = byNumber(MAP_TYPES);

/** libbpf's name of a program type (`2` → `'kprobe'`); undefined for a number it lacks. */
export const progTypeName = (n: number): ProgTypeName | undefined => progNames.get(n);

/**
 * libbpf's name of an attach type (`24` → `'trace_fentry'`); undefined for a number it
 * lacks. 0 is `'cgroup_inet_ingress'`, which is also what "none" is for most programs.
 */
export const attachTypeName = (n: number): AttachTypeName | undefined => attachNames.get(n);

/** libbpf's name of a map type (`2` → `'array'`); undefined for a number it lacks. */
export const mapTypeName = (n: number): MapTypeName | undefined => mapNames.get(n);

/**
 * A map type for messages, both spellings: `array (BPF_MAP_TYPE_ARRAY)`; `map type 99`
 * for a number the table lacks (a newer kernel's). The Rust core writes its own the same way.
 */
export function describeMapType(n: number): string {
  const name = mapTypeName(n);
  return name === undefined ? `map type ${n}` : `${name} (BPF_MAP_TYPE_${name.toUpperCase()})`;
}

function typeNumber(param: string, v: unknown, table: Readonly<Record<string, number>>): number {
  if (typeof v === 'string') {
    const n = Object.hasOwn(table, v) ? table[v] : undefined;
    if (n === undefined) throw new BpfError('EINVAL', `${param} '${v}' is not a name libbpf knows; names: ${Object.keys(table).join(', ')}`);
    return n;
  }
  return num(param, v, U32);
}

/** A program type (`bpf_program__set_type`): a libbpf name or a number. */
export const progTypeOf = (param: string, v: unknown): number => typeNumber(param, v, PROG_TYPES);

/** An expected attach type (`bpf_program__set_expected_attach_type`): a libbpf name or a number. */
export const attachTypeOf = (param: string, v: unknown): number => typeNumber(param, v, ATTACH_TYPES);

/** A map type (`createMap`): a libbpf name or a number. */
export const mapTypeOf = (param: string, v: unknown): number => typeNumber(param, v, MAP_TYPES);

/**
 * What `attach()` gives for each SEC() kind (the name up to its first `/`, as libbpf's
 * section table has them): a `Link`, a `MultiLink` with the mechanisms it may use, or
 * nothing (`'none'`: loaded, attached by other means; `attach()` throws EINVAL).
 * test/types.test.ts holds it to crates/core/src/loader/section.rs.
 */
export const SECTION_ATTACH = {
  tracepoint: 'link', tp: 'link', raw_tracepoint: 'link', raw_tp: 'link', 'raw_tracepoint.w': 'link',
  'raw_tp.w': 'link', kprobe: 'link', kretprobe: 'link', ksyscall: 'link', kretsyscall: 'link',
  uprobe: 'link', 'uprobe.s': 'link', uretprobe: 'link', 'uretprobe.s': 'link', tp_btf: 'link',
  fentry: 'link', 'fentry.s': 'link', fexit: 'link', 'fexit.s': 'link', fmod_ret: 'link',
  'fmod_ret.s': 'link', fsession: 'link', lsm: 'link', 'lsm.s': 'link', iter: 'link', 'iter.s': 'link',
  freplace: 'link',
  'kprobe.multi': 'kprobe_multi', 'kretprobe.multi': 'kprobe_multi', 'kprobe.session': 'kprobe_multi',
  'uprobe.multi': 'uprobe_multi', 'uretprobe.multi': 'uprobe_multi', 'uprobe.session': 'uprobe_multi',
  'uprobe.multi.s': 'uprobe_multi', 'uretprobe.multi.s': 'uprobe_multi', 'uprobe.session.s': 'uprobe_multi',
  usdt: 'uprobe_multi', 'usdt.s': 'uprobe_multi',
  'fentry.multi': 'tracing_multi', 'fexit.multi': 'tracing_multi', 'fsession.multi': 'tracing_multi',
  socket: 'none', sk_reuseport: 'none', tc: 'none', tcx: 'none', netkit: 'none', classifier: 'none',
  action: 'none', syscall: 'none', 'xdp.frags': 'none', xdp: 'none', perf_event: 'none', lwt_in: 'none',
  lwt_out: 'none', lwt_xmit: 'none', lwt_seg6local: 'none', sockops: 'none', sk_skb: 'none',
  sk_msg: 'none', lirc_mode2: 'none', flow_dissector: 'none', cgroup_skb: 'none', cgroup: 'none',
  struct_ops: 'none', 'struct_ops.s': 'none', sk_lookup: 'none', netfilter: 'none', lsm_cgroup: 'none',
} as const;

type SectionAttach = typeof SECTION_ATTACH;

/** The SEC() kind of a section name: `'tp'` of `'tp/syscalls/sys_enter_openat'`, `'?'` (no autoload) dropped. */
export type SectionKind<S extends string> = S extends `?${infer R}` ? KindOf<R> : KindOf<S>;
type KindOf<S extends string> = S extends `${infer K}/${string}` ? K : S;

type LinkOfKind<K> = K extends keyof SectionAttach
  ? {
      link: Link;
      kprobe_multi: MultiLink<KprobeMultiMechanism>;
      uprobe_multi: MultiLink<UprobeMultiMechanism>;
      tracing_multi: MultiLink<TracingMultiMechanism>;
      none: never;
    }[SectionAttach[K]]
  : Link | MultiLink;

/**
 * What `Program<S>.attach()` returns for SEC() name `S`: `Link` for `tp/…`, `kprobe/…`,
 * `fentry/…`, …; `MultiLink<'kprobe_multi' | 'kprobes'>` for `kprobe.multi/…`, and so on;
 * `never` for sections `attach()` cannot attach (`xdp`, `tc`, `cgroup/…`: it throws);
 * `Link | MultiLink` when `S` is just `string` or a kind nodebpf does not know. Typed by the
 * SEC() name: a program whose expected attach type `open()` set to a batch kind
 * (`trace_kprobe_multi`) attaches as that kind, so type it `Program` (`Program<string>`).
 */
export type LinkOf<S extends string> = S extends string ? LinkOfKind<SectionKind<S>> : never;
