//! libbpf's names of program, attach and map types (`libbpf_bpf_prog_type_str`,
//! `libbpf_bpf_attach_type_str`, `libbpf_bpf_map_type_str`): the constant's name without
//! its prefix, in lower case (`BPF_PROG_TYPE_KPROBE` is `kprobe`, `BPF_TRACE_FENTRY` is
//! `trace_fentry`, `BPF_MAP_TYPE_ARRAY` is `array`). Made from the constants themselves, so
//! a name cannot drift from its number.

use super::consts::*;

macro_rules! named {
    ($($c:ident,)*) => {
        &[$((stringify!($c), $c),)*]
    };
}

#[rustfmt::skip]
const PROG_TYPES: &[(&str, u32)] = named![
        BPF_PROG_TYPE_SOCKET_FILTER,
        BPF_PROG_TYPE_KPROBE,
        BPF_PROG_TYPE_SCHED_CLS,
        BPF_PROG_TYPE_SCHED_ACT,
        BPF_PROG_TYPE_TRACEPOINT,
        BPF_PROG_TYPE_XDP,
        BPF_PROG_TYPE_PERF_EVENT,
        BPF_PROG_TYPE_CGROUP_SKB,
        BPF_PROG_TYPE_CGROUP_SOCK,
        BPF_PROG_TYPE_LWT_IN,
        BPF_PROG_TYPE_LWT_OUT,
        BPF_PROG_TYPE_LWT_XMIT,
        BPF_PROG_TYPE_SOCK_OPS,
        BPF_PROG_TYPE_SK_SKB,
        BPF_PROG_TYPE_CGROUP_DEVICE,
        BPF_PROG_TYPE_SK_MSG,
        BPF_PROG_TYPE_RAW_TRACEPOINT,
        BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        BPF_PROG_TYPE_LWT_SEG6LOCAL,
        BPF_PROG_TYPE_LIRC_MODE2,
        BPF_PROG_TYPE_SK_REUSEPORT,
        BPF_PROG_TYPE_FLOW_DISSECTOR,
        BPF_PROG_TYPE_CGROUP_SYSCTL,
        BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE,
        BPF_PROG_TYPE_CGROUP_SOCKOPT,
        BPF_PROG_TYPE_TRACING,
        BPF_PROG_TYPE_STRUCT_OPS,
        BPF_PROG_TYPE_EXT,
        BPF_PROG_TYPE_LSM,
        BPF_PROG_TYPE_SK_LOOKUP,
        BPF_PROG_TYPE_SYSCALL,
        BPF_PROG_TYPE_NETFILTER,
];

#[rustfmt::skip]
const ATTACH_TYPES: &[(&str, u32)] = named![
        BPF_CGROUP_INET_INGRESS,
        BPF_CGROUP_INET_EGRESS,
        BPF_CGROUP_INET_SOCK_CREATE,
        BPF_CGROUP_SOCK_OPS,
        BPF_SK_SKB_STREAM_PARSER,
        BPF_SK_SKB_STREAM_VERDICT,
        BPF_CGROUP_DEVICE,
        BPF_SK_MSG_VERDICT,
        BPF_CGROUP_INET4_BIND,
        BPF_CGROUP_INET6_BIND,
        BPF_CGROUP_INET4_CONNECT,
        BPF_CGROUP_INET6_CONNECT,
        BPF_CGROUP_INET4_POST_BIND,
        BPF_CGROUP_INET6_POST_BIND,
        BPF_CGROUP_UDP4_SENDMSG,
        BPF_CGROUP_UDP6_SENDMSG,
        BPF_LIRC_MODE2,
        BPF_FLOW_DISSECTOR,
        BPF_CGROUP_SYSCTL,
        BPF_CGROUP_UDP4_RECVMSG,
        BPF_CGROUP_UDP6_RECVMSG,
        BPF_CGROUP_GETSOCKOPT,
        BPF_CGROUP_SETSOCKOPT,
        BPF_TRACE_RAW_TP,
        BPF_TRACE_FENTRY,
        BPF_TRACE_FEXIT,
        BPF_MODIFY_RETURN,
        BPF_LSM_MAC,
        BPF_TRACE_ITER,
        BPF_CGROUP_INET4_GETPEERNAME,
        BPF_CGROUP_INET6_GETPEERNAME,
        BPF_CGROUP_INET4_GETSOCKNAME,
        BPF_CGROUP_INET6_GETSOCKNAME,
        BPF_XDP_DEVMAP,
        BPF_CGROUP_INET_SOCK_RELEASE,
        BPF_XDP_CPUMAP,
        BPF_SK_LOOKUP,
        BPF_XDP,
        BPF_SK_SKB_VERDICT,
        BPF_SK_REUSEPORT_SELECT,
        BPF_SK_REUSEPORT_SELECT_OR_MIGRATE,
        BPF_PERF_EVENT,
        BPF_TRACE_KPROBE_MULTI,
        BPF_LSM_CGROUP,
        BPF_NETFILTER,
        BPF_TCX_INGRESS,
        BPF_TCX_EGRESS,
        BPF_TRACE_UPROBE_MULTI,
        BPF_CGROUP_UNIX_CONNECT,
        BPF_CGROUP_UNIX_SENDMSG,
        BPF_CGROUP_UNIX_RECVMSG,
        BPF_CGROUP_UNIX_GETPEERNAME,
        BPF_CGROUP_UNIX_GETSOCKNAME,
        BPF_NETKIT_PRIMARY,
        BPF_NETKIT_PEER,
        BPF_TRACE_KPROBE_SESSION,
        BPF_TRACE_UPROBE_SESSION,
        BPF_TRACE_FSESSION,
        BPF_TRACE_FENTRY_MULTI,
        BPF_TRACE_FEXIT_MULTI,
        BPF_TRACE_FSESSION_MULTI,
];

#[rustfmt::skip]
const MAP_TYPES: &[(&str, u32)] = named![
        BPF_MAP_TYPE_HASH,
        BPF_MAP_TYPE_ARRAY,
        BPF_MAP_TYPE_PROG_ARRAY,
        BPF_MAP_TYPE_PERF_EVENT_ARRAY,
        BPF_MAP_TYPE_PERCPU_HASH,
        BPF_MAP_TYPE_PERCPU_ARRAY,
        BPF_MAP_TYPE_STACK_TRACE,
        BPF_MAP_TYPE_CGROUP_ARRAY,
        BPF_MAP_TYPE_LRU_HASH,
        BPF_MAP_TYPE_LRU_PERCPU_HASH,
        BPF_MAP_TYPE_LPM_TRIE,
        BPF_MAP_TYPE_ARRAY_OF_MAPS,
        BPF_MAP_TYPE_HASH_OF_MAPS,
        BPF_MAP_TYPE_DEVMAP,
        BPF_MAP_TYPE_SOCKMAP,
        BPF_MAP_TYPE_CPUMAP,
        BPF_MAP_TYPE_XSKMAP,
        BPF_MAP_TYPE_SOCKHASH,
        BPF_MAP_TYPE_CGROUP_STORAGE,
        BPF_MAP_TYPE_REUSEPORT_SOCKARRAY,
        BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
        BPF_MAP_TYPE_QUEUE,
        BPF_MAP_TYPE_STACK,
        BPF_MAP_TYPE_SK_STORAGE,
        BPF_MAP_TYPE_DEVMAP_HASH,
        BPF_MAP_TYPE_STRUCT_OPS,
        BPF_MAP_TYPE_RINGBUF,
        BPF_MAP_TYPE_INODE_STORAGE,
        BPF_MAP_TYPE_TASK_STORAGE,
        BPF_MAP_TYPE_BLOOM_FILTER,
        BPF_MAP_TYPE_USER_RINGBUF,
        BPF_MAP_TYPE_CGRP_STORAGE,
        BPF_MAP_TYPE_ARENA,
];

const PROG_TYPE_PREFIX: &str = "BPF_PROG_TYPE_";
const ATTACH_TYPE_PREFIX: &str = "BPF_";
const MAP_TYPE_PREFIX: &str = "BPF_MAP_TYPE_";

fn libbpf_name(constant: &str, prefix: &str) -> String {
    constant
        .strip_prefix(prefix)
        .unwrap_or(constant)
        .to_ascii_lowercase()
}

fn names<'a>(
    table: &'a [(&'a str, u32)],
    prefix: &'a str,
) -> impl Iterator<Item = (String, u32)> + 'a {
    table.iter().map(move |&(c, v)| (libbpf_name(c, prefix), v))
}

/// How messages name a type: libbpf's name and the kernel's constant, so both the
/// libbpf/bpftool spelling and the header's can be searched for (`array
/// (BPF_MAP_TYPE_ARRAY)`); the number, with `what`, for one the table lacks (a newer
/// kernel's).
fn describe(table: &[(&str, u32)], prefix: &str, what: &str, v: u32) -> String {
    match table.iter().find(|&&(_, n)| n == v) {
        Some(&(c, _)) => format!("{} ({c})", libbpf_name(c, prefix)),
        None => format!("{what} {v}"),
    }
}

/// Every program type as (libbpf name, number).
pub fn prog_types() -> Vec<(String, u32)> {
    names(PROG_TYPES, PROG_TYPE_PREFIX).collect()
}

/// Every attach type as (libbpf name, number).
pub fn attach_types() -> Vec<(String, u32)> {
    names(ATTACH_TYPES, ATTACH_TYPE_PREFIX).collect()
}

/// Every map type as (libbpf name, number).
pub fn map_types() -> Vec<(String, u32)> {
    names(MAP_TYPES, MAP_TYPE_PREFIX).collect()
}

/// A program type for messages: `kprobe (BPF_PROG_TYPE_KPROBE)`.
pub fn describe_prog_type(v: u32) -> String {
    describe(PROG_TYPES, PROG_TYPE_PREFIX, "program type", v)
}

/// An attach type for messages: `trace_fentry (BPF_TRACE_FENTRY)`.
pub fn describe_attach_type(v: u32) -> String {
    describe(ATTACH_TYPES, ATTACH_TYPE_PREFIX, "attach type", v)
}

/// A map type for messages: `array (BPF_MAP_TYPE_ARRAY)`.
pub fn describe_map_type(v: u32) -> String {
    describe(MAP_TYPES, MAP_TYPE_PREFIX, "map type", v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_spelling() {
        let p = prog_types();
        assert!(p.contains(&("kprobe".into(), BPF_PROG_TYPE_KPROBE)));
        assert!(p.contains(&(
            "raw_tracepoint_writable".into(),
            BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE
        )));
        let a = attach_types();
        assert!(a.contains(&("trace_fentry".into(), BPF_TRACE_FENTRY)));
        assert!(a.contains(&("lsm_mac".into(), BPF_LSM_MAC)));
        assert!(a.contains(&("perf_event".into(), BPF_PERF_EVENT)));
        assert!(a.contains(&("cgroup_inet_ingress".into(), BPF_CGROUP_INET_INGRESS)));
        let m = map_types();
        assert!(m.contains(&("array".into(), BPF_MAP_TYPE_ARRAY)));
        assert!(m.contains(&("lru_percpu_hash".into(), BPF_MAP_TYPE_LRU_PERCPU_HASH)));
        assert!(m.contains(&("cgrp_storage".into(), BPF_MAP_TYPE_CGRP_STORAGE)));
    }

    #[test]
    fn messages_name_both_spellings() {
        assert_eq!(
            describe_map_type(BPF_MAP_TYPE_ARRAY),
            "array (BPF_MAP_TYPE_ARRAY)"
        );
        assert_eq!(
            describe_prog_type(BPF_PROG_TYPE_TRACING),
            "tracing (BPF_PROG_TYPE_TRACING)"
        );
        assert_eq!(
            describe_attach_type(BPF_TRACE_KPROBE_MULTI),
            "trace_kprobe_multi (BPF_TRACE_KPROBE_MULTI)"
        );
        // A number the table lacks (a newer kernel's) is shown as the number.
        assert_eq!(describe_map_type(999), "map type 999");
    }
}
