//! Feature probes that ask the kernel, like libbpf's and cilium/ebpf's: load a tiny
//! program, try the link, read the errno. Cached for the life of the process.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::OnceLock;

use crate::error::{Code, Error, Result};
use crate::loader::section::AttachKind;
use crate::sys::{self, LinkCreateAttr, MapCreateAttr, PerfEventAttr, ProgLoadAttr};

/// The one table of kernel features: field, the name JS and error messages use, what it
/// is, and what kernel has it. The struct, `requirement`'s text, `is_supported`, the
/// binding's `Features` object (hence the TypeScript type) and the CLI's table are all
/// generated from it: `for_each_feature!(your_macro)` hands the rows to another macro.
#[macro_export]
macro_rules! for_each_feature {
    ($m:ident) => {
        $m! {
            btf, "btf", "kernel BTF (CO-RE, fentry)",
                "Linux 5.4+ built with CONFIG_DEBUG_INFO_BTF";
            ringbuf, "ringbuf", "BPF ring buffer", "Linux 5.8+";
            bpf_cookie, "bpfCookie", "attach cookies", "Linux 5.15+";
            kprobe, "kprobe", "kprobes (kprobe:, kretprobe:)",
                "a kernel built with CONFIG_KPROBES";
            kprobe_multi, "kprobeMulti", "kprobe_multi links (batch kprobes)",
                "Linux 5.18+ built with CONFIG_FPROBE";
            kprobe_session, "kprobeSession", "kprobe sessions",
                "Linux 6.10+ built with CONFIG_FPROBE";
            uprobe_multi, "uprobeMulti", "uprobe_multi links (batch uprobes)", "Linux 6.6+";
            uprobe_session, "uprobeSession", "uprobe sessions", "Linux 6.13+";
            fentry, "fentry", "BPF trampolines (fentry:, fexit:)",
                "Linux 5.5+ (x86_64; arm64 6.0+), not under lockdown=confidentiality";
            tracing_multi, "tracingMulti", "tracing_multi links (batch fentry/fexit)",
                "Linux 7.2+";
            memcg_accounting, "memcgAccounting",
                "BPF memory charged to memory cgroups, not to RLIMIT_MEMLOCK", "Linux 5.11+";
        }
    };
}

macro_rules! feature_struct {
    ($($field:ident, $js:literal, $what:literal, $needs:literal;)*) => {
        #[derive(Debug, Clone)]
        pub struct Features {
            /// `uname -r`.
            pub kernel: String,
            $(#[doc = $what] pub $field: bool,)*
        }

        impl Features {
            fn probe() -> Self {
                Features {
                    kernel: kernel_release(),
                    $($field: probes::$field(),)*
                }
            }

            /// Every feature as (JS name, what it is, what kernel has it), in table order.
            pub fn table() -> &'static [(&'static str, &'static str, &'static str)] {
                &[$(($js, $what, $needs),)*]
            }

            /// Each feature as (JS name, supported).
            pub fn list(&self) -> Vec<(&'static str, bool)> {
                vec![$(($js, self.$field),)*]
            }
        }
    };
}
for_each_feature!(feature_struct);

/// "this kernel (6.1.0) has no kprobe_multi links (batch kprobes) (features().kprobeMulti
/// is false; it needs Linux 5.18+ built with CONFIG_FPROBE)": the sentence every
/// UNSUPPORTED error about a missing feature starts with, from the table.
pub fn lacking(name: &str) -> String {
    let (what, needs) = row(name).map_or(("this feature", "a newer kernel"), |(_, w, n)| (*w, *n));
    format!(
        "this kernel ({}) has no {what} (features().{name} is false; it needs {needs})",
        features().kernel
    )
}

/// What kernel has a feature, by its JS name.
pub fn needs(name: &str) -> Option<&'static str> {
    row(name).map(|(_, _, needs)| *needs)
}

/// A feature's row of the table, by its JS name.
fn row(name: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    Features::table().iter().find(|(n, _, _)| *n == name)
}

/// A function every kernel we support has and lets ftrace/BPF trace.
const PROBE_FUNCTION: &str = "vfs_read";

/// Probes once per process. Without CAP_BPF every probe fails, which says nothing about
/// the kernel: that is an `EPERM` error naming what is missing, not a row of `false`.
pub fn probe() -> Result<&'static Features> {
    let missing = crate::caps::missing_caps();
    if !missing.is_empty() && FEATURES.get().is_none() {
        return Err(Error::new(
            Code::Eperm,
            format!(
                "probing kernel features needs {} (this process lacks them): run as root or \
                 grant them with `setcap cap_bpf,cap_perfmon+ep <node binary>`",
                missing.join(" and ")
            ),
        )
        .with_errno(libc::EPERM));
    }
    Ok(features())
}

static FEATURES: OnceLock<Features> = OnceLock::new();

/// The probed features (all `false` without privileges; [`probe`] says why instead).
pub fn features() -> &'static Features {
    FEATURES.get_or_init(Features::probe)
}

/// The feature a kind of attachment depends on, by the name `features()` reports,
/// with what kernel has it.
pub fn requirement(kind: AttachKind) -> Option<(&'static str, &'static str)> {
    let name = match kind {
        AttachKind::Kprobe { .. } | AttachKind::Ksyscall { .. } => "kprobe",
        AttachKind::KprobeMulti { .. } => "kprobeMulti",
        AttachKind::KprobeSession => "kprobeSession",
        AttachKind::UprobeMulti { .. } => "uprobeMulti",
        AttachKind::UprobeSession => "uprobeSession",
        AttachKind::Fentry | AttachKind::Fexit | AttachKind::FmodRet | AttachKind::Freplace => {
            "fentry"
        }
        AttachKind::FentryMulti | AttachKind::FexitMulti | AttachKind::FsessionMulti => {
            "tracingMulti"
        }
        _ => return None,
    };
    Some((name, needs(name)?))
}

/// Looks up a feature by the name `features()` reports (e.g. "fentry").
pub fn is_supported(name: &str) -> bool {
    features()
        .list()
        .into_iter()
        .any(|(n, supported)| n == name && supported)
}

fn kernel_release() -> String {
    // SAFETY: utsname is plain data filled by the kernel.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    // SAFETY: the kernel NUL-terminates `release`.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The probes, one per row of the feature table, named by its field.
mod probes {
    use super::*;

    fn load(
        prog_type: u32,
        attach_type: u32,
        attach_btf_id: u32,
        insns: &[u64],
    ) -> Option<OwnedFd> {
        let license = c"GPL";
        let mut attr = ProgLoadAttr {
            prog_type,
            expected_attach_type: attach_type,
            attach_btf_id,
            insn_cnt: insns.len() as u32,
            insns: sys::ptr(insns.as_ptr()),
            license: sys::ptr(license.as_ptr()),
            ..Default::default()
        };
        sys::bpf_fd(sys::BPF_PROG_LOAD, &mut attr).ok()
    }

    const RETURN_0: [u64; 2] = [sys::INSN_MOV64_R0_0, sys::INSN_EXIT];

    pub(super) fn btf() -> bool {
        // One `int` type: header (24 bytes), BTF_KIND_INT (16 bytes), strings "\0int\0".
        let mut b = Vec::new();
        for v in [
            0xEB9F_u16.to_le_bytes().to_vec(),
            vec![1, 0],
            24u32.to_le_bytes().to_vec(),
        ] {
            b.extend(v);
        }
        for v in [0u32, 16, 16, 5] {
            b.extend(v.to_le_bytes());
        }
        for v in [1u32, 1 << 24, 4, 32] {
            b.extend(v.to_le_bytes());
        }
        b.extend(b"\0int\0");
        crate::loader::load_btf(&b).is_ok()
    }

    pub(super) fn ringbuf() -> bool {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32;
        let mut attr = MapCreateAttr {
            map_type: sys::BPF_MAP_TYPE_RINGBUF,
            max_entries: page,
            ..Default::default()
        };
        sys::bpf_fd(sys::BPF_MAP_CREATE, &mut attr).is_ok()
    }

    /// libbpf's probe: `bpf_ktime_get_coarse_ns` came in the release (5.11) that charged
    /// BPF memory to memory cgroups instead of the locked-memory rlimit.
    pub(super) fn memcg_accounting() -> bool {
        let insns = [
            sys::insn_call(sys::BPF_FUNC_KTIME_GET_COARSE_NS),
            sys::INSN_EXIT,
        ];
        load(sys::BPF_PROG_TYPE_SOCKET_FILTER, 0, 0, &insns).is_some()
    }

    pub(super) fn bpf_cookie() -> bool {
        let insns = [
            sys::insn_call(sys::BPF_FUNC_GET_ATTACH_COOKIE),
            sys::INSN_EXIT,
        ];
        load(sys::BPF_PROG_TYPE_TRACEPOINT, 0, 0, &insns).is_some()
    }

    pub(super) fn kprobe() -> bool {
        let Ok(pmu) = std::fs::read_to_string("/sys/bus/event_source/devices/kprobe/type") else {
            return false;
        };
        let Ok(pmu) = pmu.trim().parse() else {
            return false;
        };
        let Ok(sym) = CString::new(PROBE_FUNCTION) else {
            return false;
        };
        let mut attr = PerfEventAttr {
            type_: pmu,
            config1: sys::ptr(sym.as_ptr()),
            ..Default::default()
        };
        sys::perf_event_open(&mut attr, -1).is_ok()
    }

    fn kprobe_multi_link(attach_type: u32) -> bool {
        let Some(prog) = load(sys::BPF_PROG_TYPE_KPROBE, attach_type, 0, &RETURN_0) else {
            return false;
        };
        let Ok(sym) = CString::new(PROBE_FUNCTION) else {
            return false;
        };
        let syms = [sym.as_ptr()];
        let mut attr = LinkCreateAttr::new(prog.as_raw_fd(), 0, attach_type);
        attr.u[0] = 1u64 << 32; // flags 0, cnt 1
        attr.u[1] = sys::ptr(syms.as_ptr());
        sys::bpf_fd(sys::BPF_LINK_CREATE, &mut attr).is_ok()
    }

    fn uprobe_multi_link(attach_type: u32) -> bool {
        let Some(prog) = load(sys::BPF_PROG_TYPE_KPROBE, attach_type, 0, &RETURN_0) else {
            return false;
        };
        // As libbpf does: a kernel with the link type fails with EBADF because "/" is not a
        // regular file; one without it fails earlier with EINVAL.
        let path = c"/";
        let offsets = [0u64];
        let mut attr = LinkCreateAttr::new(prog.as_raw_fd(), 0, attach_type);
        attr.u[0] = sys::ptr(path.as_ptr());
        attr.u[1] = sys::ptr(offsets.as_ptr());
        attr.u[4] = 1; // cnt 1, flags 0
        matches!(
            sys::bpf(sys::BPF_LINK_CREATE, &mut attr),
            Err(e) if e.raw_os_error() == Some(libc::EBADF)
        )
    }

    fn function_btf_id() -> Option<u32> {
        let btf = crate::btf::kernel_btf(None).ok()?;
        crate::btf::tracing_target(&btf, AttachKind::Fentry, PROBE_FUNCTION)
            .ok()
            .map(|t| t.btf_id)
    }

    pub(super) fn fentry() -> bool {
        let Some(id) = function_btf_id() else {
            return false;
        };
        let Some(prog) = load(
            sys::BPF_PROG_TYPE_TRACING,
            sys::BPF_TRACE_FENTRY,
            id,
            &RETURN_0,
        ) else {
            return false;
        };
        crate::attach::tracing::tracing_link(prog.as_fd(), sys::BPF_TRACE_FENTRY, None).is_ok()
    }

    pub(super) fn tracing_multi() -> bool {
        let Some(id) = function_btf_id() else {
            return false;
        };
        let Some(prog) = load(
            sys::BPF_PROG_TYPE_TRACING,
            sys::BPF_TRACE_FENTRY_MULTI,
            0,
            &RETURN_0,
        ) else {
            return false;
        };
        let ids = [id];
        let mut attr = LinkCreateAttr::new(prog.as_raw_fd(), 0, sys::BPF_TRACE_FENTRY_MULTI);
        attr.u[0] = sys::ptr(ids.as_ptr());
        attr.u[2] = 1; // cnt
        sys::bpf_fd(sys::BPF_LINK_CREATE, &mut attr).is_ok()
    }

    pub(super) fn kprobe_multi() -> bool {
        kprobe_multi_link(sys::BPF_TRACE_KPROBE_MULTI)
    }

    pub(super) fn kprobe_session() -> bool {
        kprobe_multi_link(sys::BPF_TRACE_KPROBE_SESSION)
    }

    pub(super) fn uprobe_multi() -> bool {
        uprobe_multi_link(sys::BPF_TRACE_UPROBE_MULTI)
    }

    pub(super) fn uprobe_session() -> bool {
        uprobe_multi_link(sys::BPF_TRACE_UPROBE_SESSION)
    }
}
