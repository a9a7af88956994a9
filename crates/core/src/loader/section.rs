//! libbpf's SEC() naming conventions: which program type, expected attach type and
//! flags a section name means, and what it says about where to attach.
//! nodebpf adds `fentry.multi`, `fexit.multi` and `fsession.multi` (kernel 7.2).

use crate::sys::*;

/// How a program of this section is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachKind {
    Kprobe {
        ret: bool,
    },
    KprobeMulti {
        ret: bool,
    },
    KprobeSession,
    Ksyscall {
        ret: bool,
    },
    Uprobe {
        ret: bool,
    },
    UprobeMulti {
        ret: bool,
    },
    UprobeSession,
    Usdt,
    Tracepoint,
    RawTracepoint,
    TpBtf,
    Fentry,
    Fexit,
    FmodRet,
    Fsession,
    FentryMulti,
    FexitMulti,
    FsessionMulti,
    Lsm,
    /// `lsm_cgroup/HOOK`: loaded for the hook's BTF id like `lsm`, attached to a cgroup
    /// (not auto-attachable).
    LsmCgroup,
    Iter,
    /// `BPF_PROG_TYPE_EXT`: replaces a global function of another BPF program.
    Freplace,
    /// Attached by other means (networking, cgroups, struct_ops...): loadable, not auto-attachable.
    Other,
}

impl AttachKind {
    /// Tracing programs that need the BTF id of their target at load time.
    pub fn needs_btf_target(self) -> bool {
        matches!(
            self,
            AttachKind::TpBtf
                | AttachKind::Fentry
                | AttachKind::Fexit
                | AttachKind::FmodRet
                | AttachKind::Fsession
                | AttachKind::Lsm
                | AttachKind::LsmCgroup
                | AttachKind::Iter
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionSpec {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub prog_flags: u32,
    pub kind: AttachKind,
    /// What follows `prefix/` in the section name, if anything.
    pub target: Option<String>,
    /// `false` for libbpf's `SEC("?…")`: the program is loaded only when configured to be
    /// (`autoload`), e.g. one of several variants a front-end picks from.
    pub autoload: bool,
}

struct Def {
    prefix: &'static str,
    prog_type: u32,
    attach: u32,
    flags: u32,
    kind: AttachKind,
    /// `true`: the name may continue with `/…` (libbpf's `+`).
    extensible: bool,
}

const fn def(
    prefix: &'static str,
    prog_type: u32,
    attach: u32,
    flags: u32,
    kind: AttachKind,
    extensible: bool,
) -> Def {
    Def {
        prefix,
        prog_type,
        attach,
        flags,
        kind,
        extensible,
    }
}

use AttachKind as K;
const S: u32 = BPF_F_SLEEPABLE;

/// Ordered like libbpf's `section_defs`: more specific names before their prefixes.
#[rustfmt::skip]
const DEFS: &[Def] = &[
    def("socket", BPF_PROG_TYPE_SOCKET_FILTER, 0, 0, K::Other, false),
    def("sk_reuseport/migrate", BPF_PROG_TYPE_SK_REUSEPORT, BPF_SK_REUSEPORT_SELECT_OR_MIGRATE, 0, K::Other, false),
    def("sk_reuseport", BPF_PROG_TYPE_SK_REUSEPORT, BPF_SK_REUSEPORT_SELECT, 0, K::Other, false),
    def("kprobe", BPF_PROG_TYPE_KPROBE, 0, 0, K::Kprobe { ret: false }, true),
    def("uprobe", BPF_PROG_TYPE_KPROBE, 0, 0, K::Uprobe { ret: false }, true),
    def("uprobe.s", BPF_PROG_TYPE_KPROBE, 0, S, K::Uprobe { ret: false }, true),
    def("kretprobe", BPF_PROG_TYPE_KPROBE, 0, 0, K::Kprobe { ret: true }, true),
    def("uretprobe", BPF_PROG_TYPE_KPROBE, 0, 0, K::Uprobe { ret: true }, true),
    def("uretprobe.s", BPF_PROG_TYPE_KPROBE, 0, S, K::Uprobe { ret: true }, true),
    def("kprobe.multi", BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI, 0, K::KprobeMulti { ret: false }, true),
    def("kretprobe.multi", BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_MULTI, 0, K::KprobeMulti { ret: true }, true),
    def("kprobe.session", BPF_PROG_TYPE_KPROBE, BPF_TRACE_KPROBE_SESSION, 0, K::KprobeSession, true),
    def("uprobe.multi", BPF_PROG_TYPE_KPROBE, BPF_TRACE_UPROBE_MULTI, 0, K::UprobeMulti { ret: false }, true),
    def("uretprobe.multi", BPF_PROG_TYPE_KPROBE, BPF_TRACE_UPROBE_MULTI, 0, K::UprobeMulti { ret: true }, true),
    def("uprobe.session", BPF_PROG_TYPE_KPROBE, BPF_TRACE_UPROBE_SESSION, 0, K::UprobeSession, true),
    def("uprobe.multi.s", BPF_PROG_TYPE_KPROBE, BPF_TRACE_UPROBE_MULTI, S, K::UprobeMulti { ret: false }, true),
    def("uretprobe.multi.s", BPF_PROG_TYPE_KPROBE, BPF_TRACE_UPROBE_MULTI, S, K::UprobeMulti { ret: true }, true),
    def("uprobe.session.s", BPF_PROG_TYPE_KPROBE, BPF_TRACE_UPROBE_SESSION, S, K::UprobeSession, true),
    def("ksyscall", BPF_PROG_TYPE_KPROBE, 0, 0, K::Ksyscall { ret: false }, true),
    def("kretsyscall", BPF_PROG_TYPE_KPROBE, 0, 0, K::Ksyscall { ret: true }, true),
    def("usdt", BPF_PROG_TYPE_KPROBE, 0, 0, K::Usdt, true),
    def("usdt.s", BPF_PROG_TYPE_KPROBE, 0, S, K::Usdt, true),
    def("tc/ingress", BPF_PROG_TYPE_SCHED_CLS, BPF_TCX_INGRESS, 0, K::Other, false),
    def("tc/egress", BPF_PROG_TYPE_SCHED_CLS, BPF_TCX_EGRESS, 0, K::Other, false),
    def("tcx/ingress", BPF_PROG_TYPE_SCHED_CLS, BPF_TCX_INGRESS, 0, K::Other, false),
    def("tcx/egress", BPF_PROG_TYPE_SCHED_CLS, BPF_TCX_EGRESS, 0, K::Other, false),
    def("netkit/primary", BPF_PROG_TYPE_SCHED_CLS, BPF_NETKIT_PRIMARY, 0, K::Other, false),
    def("netkit/peer", BPF_PROG_TYPE_SCHED_CLS, BPF_NETKIT_PEER, 0, K::Other, false),
    def("tc", BPF_PROG_TYPE_SCHED_CLS, 0, 0, K::Other, true),
    def("classifier", BPF_PROG_TYPE_SCHED_CLS, 0, 0, K::Other, true),
    def("action", BPF_PROG_TYPE_SCHED_ACT, 0, 0, K::Other, true),
    def("tracepoint", BPF_PROG_TYPE_TRACEPOINT, 0, 0, K::Tracepoint, true),
    def("tp", BPF_PROG_TYPE_TRACEPOINT, 0, 0, K::Tracepoint, true),
    def("raw_tracepoint", BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0, K::RawTracepoint, true),
    def("raw_tp", BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0, K::RawTracepoint, true),
    def("raw_tracepoint.w", BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, 0, 0, K::RawTracepoint, true),
    def("raw_tp.w", BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, 0, 0, K::RawTracepoint, true),
    def("tp_btf", BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, 0, K::TpBtf, true),
    def("fentry", BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, 0, K::Fentry, true),
    def("fmod_ret", BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, 0, K::FmodRet, true),
    def("fexit", BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT, 0, K::Fexit, true),
    def("fsession", BPF_PROG_TYPE_TRACING, BPF_TRACE_FSESSION, 0, K::Fsession, true),
    def("fentry.s", BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, S, K::Fentry, true),
    def("fmod_ret.s", BPF_PROG_TYPE_TRACING, BPF_MODIFY_RETURN, S, K::FmodRet, true),
    def("fexit.s", BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT, S, K::Fexit, true),
    def("fentry.multi", BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY_MULTI, 0, K::FentryMulti, true),
    def("fexit.multi", BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT_MULTI, 0, K::FexitMulti, true),
    def("fsession.multi", BPF_PROG_TYPE_TRACING, BPF_TRACE_FSESSION_MULTI, 0, K::FsessionMulti, true),
    def("freplace", BPF_PROG_TYPE_EXT, 0, 0, K::Freplace, true),
    def("lsm", BPF_PROG_TYPE_LSM, BPF_LSM_MAC, 0, K::Lsm, true),
    def("lsm.s", BPF_PROG_TYPE_LSM, BPF_LSM_MAC, S, K::Lsm, true),
    def("lsm_cgroup", BPF_PROG_TYPE_LSM, BPF_LSM_CGROUP, 0, K::LsmCgroup, true),
    def("iter", BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER, 0, K::Iter, true),
    def("iter.s", BPF_PROG_TYPE_TRACING, BPF_TRACE_ITER, S, K::Iter, true),
    def("syscall", BPF_PROG_TYPE_SYSCALL, 0, S, K::Other, false),
    def("xdp.frags/devmap", BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP, BPF_F_XDP_HAS_FRAGS, K::Other, false),
    def("xdp/devmap", BPF_PROG_TYPE_XDP, BPF_XDP_DEVMAP, 0, K::Other, false),
    def("xdp.frags/cpumap", BPF_PROG_TYPE_XDP, BPF_XDP_CPUMAP, BPF_F_XDP_HAS_FRAGS, K::Other, false),
    def("xdp/cpumap", BPF_PROG_TYPE_XDP, BPF_XDP_CPUMAP, 0, K::Other, false),
    def("xdp.frags", BPF_PROG_TYPE_XDP, BPF_XDP, BPF_F_XDP_HAS_FRAGS, K::Other, false),
    def("xdp", BPF_PROG_TYPE_XDP, BPF_XDP, 0, K::Other, true),
    def("perf_event", BPF_PROG_TYPE_PERF_EVENT, 0, 0, K::Other, false),
    def("lwt_in", BPF_PROG_TYPE_LWT_IN, 0, 0, K::Other, false),
    def("lwt_out", BPF_PROG_TYPE_LWT_OUT, 0, 0, K::Other, false),
    def("lwt_xmit", BPF_PROG_TYPE_LWT_XMIT, 0, 0, K::Other, false),
    def("lwt_seg6local", BPF_PROG_TYPE_LWT_SEG6LOCAL, 0, 0, K::Other, false),
    def("sockops", BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS, 0, K::Other, false),
    def("sk_skb/stream_parser", BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_PARSER, 0, K::Other, false),
    def("sk_skb/stream_verdict", BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_VERDICT, 0, K::Other, false),
    def("sk_skb/verdict", BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_VERDICT, 0, K::Other, false),
    def("sk_skb", BPF_PROG_TYPE_SK_SKB, 0, 0, K::Other, false),
    def("sk_msg", BPF_PROG_TYPE_SK_MSG, BPF_SK_MSG_VERDICT, 0, K::Other, false),
    def("lirc_mode2", BPF_PROG_TYPE_LIRC_MODE2, BPF_LIRC_MODE2, 0, K::Other, false),
    def("flow_dissector", BPF_PROG_TYPE_FLOW_DISSECTOR, BPF_FLOW_DISSECTOR, 0, K::Other, false),
    def("cgroup_skb/ingress", BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS, 0, K::Other, false),
    def("cgroup_skb/egress", BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_EGRESS, 0, K::Other, false),
    def("cgroup/skb", BPF_PROG_TYPE_CGROUP_SKB, 0, 0, K::Other, false),
    def("cgroup/sock_create", BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE, 0, K::Other, false),
    def("cgroup/sock_release", BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_RELEASE, 0, K::Other, false),
    def("cgroup/sock", BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE, 0, K::Other, false),
    def("cgroup/post_bind4", BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET4_POST_BIND, 0, K::Other, false),
    def("cgroup/post_bind6", BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET6_POST_BIND, 0, K::Other, false),
    def("cgroup/bind4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_BIND, 0, K::Other, false),
    def("cgroup/bind6", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_BIND, 0, K::Other, false),
    def("cgroup/connect4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, 0, K::Other, false),
    def("cgroup/connect6", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_CONNECT, 0, K::Other, false),
    def("cgroup/connect_unix", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UNIX_CONNECT, 0, K::Other, false),
    def("cgroup/sendmsg4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_SENDMSG, 0, K::Other, false),
    def("cgroup/sendmsg6", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP6_SENDMSG, 0, K::Other, false),
    def("cgroup/sendmsg_unix", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UNIX_SENDMSG, 0, K::Other, false),
    def("cgroup/recvmsg4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_RECVMSG, 0, K::Other, false),
    def("cgroup/recvmsg6", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP6_RECVMSG, 0, K::Other, false),
    def("cgroup/recvmsg_unix", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UNIX_RECVMSG, 0, K::Other, false),
    def("cgroup/getpeername4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_GETPEERNAME, 0, K::Other, false),
    def("cgroup/getpeername6", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_GETPEERNAME, 0, K::Other, false),
    def("cgroup/getpeername_unix", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UNIX_GETPEERNAME, 0, K::Other, false),
    def("cgroup/getsockname4", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_GETSOCKNAME, 0, K::Other, false),
    def("cgroup/getsockname6", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_GETSOCKNAME, 0, K::Other, false),
    def("cgroup/getsockname_unix", BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UNIX_GETSOCKNAME, 0, K::Other, false),
    def("cgroup/sysctl", BPF_PROG_TYPE_CGROUP_SYSCTL, BPF_CGROUP_SYSCTL, 0, K::Other, false),
    def("cgroup/getsockopt", BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_GETSOCKOPT, 0, K::Other, false),
    def("cgroup/setsockopt", BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_SETSOCKOPT, 0, K::Other, false),
    def("cgroup/dev", BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, 0, K::Other, false),
    def("struct_ops", BPF_PROG_TYPE_STRUCT_OPS, 0, 0, K::Other, true),
    def("struct_ops.s", BPF_PROG_TYPE_STRUCT_OPS, 0, S, K::Other, true),
    def("sk_lookup", BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP, 0, K::Other, false),
    def("netfilter", BPF_PROG_TYPE_NETFILTER, BPF_NETFILTER, 0, K::Other, false),
];

/// Parses a SEC() name; `None` for names libbpf would not know either.
pub fn parse(section: &str) -> Option<SectionSpec> {
    let (section, autoload) = match section.strip_prefix('?') {
        Some(rest) => (rest, false),
        None => (section, true),
    };
    DEFS.iter().find_map(|d| {
        let target = if section == d.prefix {
            None
        } else if d.extensible {
            let rest = section.strip_prefix(d.prefix)?.strip_prefix('/')?;
            Some(rest.to_string()).filter(|r| !r.is_empty())
        } else {
            return None;
        };
        Some(SectionSpec {
            prog_type: d.prog_type,
            expected_attach_type: d.attach,
            prog_flags: d.flags,
            kind: d.kind,
            target,
            autoload,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_names() {
        let s = parse("kprobe.multi/vfs_*").unwrap();
        assert_eq!(s.expected_attach_type, BPF_TRACE_KPROBE_MULTI);
        assert_eq!(s.kind, AttachKind::KprobeMulti { ret: false });
        assert_eq!(s.target.as_deref(), Some("vfs_*"));

        let s = parse("uprobe//usr/bin/node:uv_run").unwrap();
        assert_eq!(s.kind, AttachKind::Uprobe { ret: false });
        assert_eq!(s.target.as_deref(), Some("/usr/bin/node:uv_run"));

        let s = parse("fentry.multi/tcp_*").unwrap();
        assert_eq!(s.prog_type, BPF_PROG_TYPE_TRACING);
        assert_eq!(s.expected_attach_type, BPF_TRACE_FENTRY_MULTI);

        let s = parse("fexit.s/do_sys_open").unwrap();
        assert_eq!(s.prog_flags, BPF_F_SLEEPABLE);
        assert_eq!(s.kind, AttachKind::Fexit);

        assert_eq!(
            parse("tp/syscalls/sys_enter_getppid").unwrap().kind,
            AttachKind::Tracepoint
        );
        assert_eq!(
            parse("tc/ingress").unwrap().expected_attach_type,
            BPF_TCX_INGRESS
        );
        assert_eq!(parse("tc").unwrap().expected_attach_type, 0);
        assert_eq!(parse("xdp.frags").unwrap().prog_flags, BPF_F_XDP_HAS_FRAGS);
        assert_eq!(parse("kprobe").unwrap().target, None);
        assert_eq!(
            parse("kprobe.session/x").unwrap().expected_attach_type,
            BPF_TRACE_KPROBE_SESSION
        );
        assert_eq!(
            parse("uprobe.session.s/x").unwrap().prog_flags,
            BPF_F_SLEEPABLE
        );
    }

    #[test]
    fn lsm_cgroup_is_loaded_for_its_hook() {
        let s = parse("lsm_cgroup/socket_post_create").unwrap();
        assert_eq!(s.kind, AttachKind::LsmCgroup);
        assert!(s.kind.needs_btf_target());
        assert_eq!(s.expected_attach_type, BPF_LSM_CGROUP);
        assert_eq!(s.target.as_deref(), Some("socket_post_create"));
    }

    #[test]
    fn question_mark_turns_autoload_off() {
        let s = parse("?tp/syscalls/sys_enter_getppid").unwrap();
        assert_eq!(s.kind, AttachKind::Tracepoint);
        assert_eq!(s.target.as_deref(), Some("syscalls/sys_enter_getppid"));
        assert!(!s.autoload);
        assert!(parse("tc").unwrap().autoload);
        assert!(parse("??tc").is_none());
        assert!(parse("?").is_none());
    }

    #[test]
    fn unknown_names() {
        assert!(parse("kprobes/x").is_none());
        assert!(parse("socket/x").is_none());
        assert!(parse("my_section").is_none());
        assert!(parse("").is_none());
    }
}
