//! Feature probes that ask the kernel, like libbpf's and cilium/ebpf's: load a tiny
//! program, try the link, read the errno. Cached for the life of the process.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

use crate::loader::section::AttachKind;
use crate::sys::{self, LinkCreateAttr, MapCreateAttr, PerfEventAttr, ProgLoadAttr};

#[derive(Debug, Clone)]
pub struct Features {
    pub kernel: String,
    pub btf: bool,
    pub ringbuf: bool,
    pub bpf_cookie: bool,
    pub kprobe: bool,
    pub kprobe_multi: bool,
    pub kprobe_session: bool,
    pub uprobe_multi: bool,
    pub uprobe_session: bool,
    pub fentry: bool,
    pub tracing_multi: bool,
}

/// A function every kernel we support has and lets ftrace/BPF trace.
const PROBE_FUNCTION: &str = "vfs_read";

pub fn features() -> &'static Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    FEATURES.get_or_init(|| Features {
        kernel: kernel_release(),
        btf: probe_btf(),
        ringbuf: probe_ringbuf(),
        bpf_cookie: probe_cookie(),
        kprobe: probe_kprobe(),
        kprobe_multi: probe_kprobe_multi(sys::BPF_TRACE_KPROBE_MULTI),
        kprobe_session: probe_kprobe_multi(sys::BPF_TRACE_KPROBE_SESSION),
        uprobe_multi: probe_uprobe_multi(sys::BPF_TRACE_UPROBE_MULTI),
        uprobe_session: probe_uprobe_multi(sys::BPF_TRACE_UPROBE_SESSION),
        fentry: probe_fentry(),
        tracing_multi: probe_tracing_multi(),
    })
}

/// The feature a kind of attachment depends on, by the name `features()` reports,
/// with the first kernel that has it.
pub fn requirement(kind: AttachKind) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        AttachKind::Kprobe { .. } | AttachKind::Ksyscall { .. } => {
            ("kprobe", "any kernel with CONFIG_KPROBES")
        }
        AttachKind::KprobeMulti { .. } => ("kprobeMulti", "5.18"),
        AttachKind::KprobeSession => ("kprobeSession", "6.10"),
        AttachKind::UprobeMulti { .. } => ("uprobeMulti", "6.6"),
        AttachKind::UprobeSession => ("uprobeSession", "6.13"),
        AttachKind::Fentry | AttachKind::Fexit | AttachKind::FmodRet => ("fentry", "5.5 on x86_64"),
        AttachKind::FentryMulti | AttachKind::FexitMulti | AttachKind::FsessionMulti => {
            ("tracingMulti", "7.2")
        }
        _ => return None,
    })
}

/// Looks up a feature by the name `features()` reports (e.g. "fentry").
pub fn is_supported(name: &str) -> bool {
    let f = features();
    match name {
        "btf" => f.btf,
        "ringbuf" => f.ringbuf,
        "bpfCookie" => f.bpf_cookie,
        "kprobe" => f.kprobe,
        "kprobeMulti" => f.kprobe_multi,
        "kprobeSession" => f.kprobe_session,
        "uprobeMulti" => f.uprobe_multi,
        "uprobeSession" => f.uprobe_session,
        "fentry" => f.fentry,
        "tracingMulti" => f.tracing_multi,
        _ => false,
    }
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

fn load(prog_type: u32, attach_type: u32, attach_btf_id: u32, insns: &[u64]) -> Option<OwnedFd> {
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

fn probe_btf() -> bool {
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

fn probe_ringbuf() -> bool {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32;
    let mut attr = MapCreateAttr {
        map_type: sys::BPF_MAP_TYPE_RINGBUF,
        max_entries: page,
        ..Default::default()
    };
    sys::bpf_fd(sys::BPF_MAP_CREATE, &mut attr).is_ok()
}

fn probe_cookie() -> bool {
    let insns = [
        sys::insn_call(sys::BPF_FUNC_GET_ATTACH_COOKIE),
        sys::INSN_EXIT,
    ];
    load(sys::BPF_PROG_TYPE_TRACEPOINT, 0, 0, &insns).is_some()
}

fn probe_kprobe() -> bool {
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

fn probe_kprobe_multi(attach_type: u32) -> bool {
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

fn probe_uprobe_multi(attach_type: u32) -> bool {
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

fn probe_function_btf_id() -> Option<u32> {
    let btf = crate::btf::kernel_btf(None).ok()?;
    crate::btf::tracing_target(&btf, AttachKind::Fentry, PROBE_FUNCTION)
        .ok()
        .map(|t| t.btf_id)
}

fn probe_fentry() -> bool {
    let Some(id) = probe_function_btf_id() else {
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
    let mut attr = LinkCreateAttr::new(prog.as_raw_fd(), 0, sys::BPF_TRACE_FENTRY);
    sys::bpf_fd(sys::BPF_LINK_CREATE, &mut attr).is_ok()
}

fn probe_tracing_multi() -> bool {
    let Some(id) = probe_function_btf_id() else {
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
