//! Attachments that go through a perf event: tracepoints, kprobes and uprobes. The
//! program is bound with a `BPF_LINK_TYPE_PERF_EVENT` link, which carries the cookie;
//! kernels before 5.15 have no such link and no cookies: there the program is set on the
//! event by ioctl, as libbpf falls back, and the event's fd is the attachment.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{link_create, Link};
use crate::error::{einval, unsupported, Code, Error, Result};
use crate::sys::{self, LinkCreateAttr, PerfEventAttr};
use crate::tracefs;

fn pmu_type(pmu: &str) -> Result<u32> {
    let path = format!("/sys/bus/event_source/devices/{pmu}/type");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        unsupported(format!(
            "this kernel has no {pmu} PMU ({path} is missing): {} need CONFIG_{}",
            if pmu == "kprobe" {
                "kprobes"
            } else {
                "uprobes"
            },
            if pmu == "kprobe" {
                "KPROBE_EVENTS"
            } else {
                "UPROBE_EVENTS"
            }
        ))
    })?;
    text.trim()
        .parse()
        .map_err(|_| einval(format!("unexpected contents of {path}")))
}

/// The bit in `config` that makes a kprobe/uprobe a return probe.
fn retprobe_bit(pmu: &str) -> Result<u64> {
    let path = format!("/sys/bus/event_source/devices/{pmu}/format/retprobe");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "config:0".into());
    Ok(1u64 << config_field_start(&text, &path)?)
}

/// Where in `config` a uprobe takes its reference counter's file offset (a USDT
/// semaphore): "config:32-63" since 4.20.
fn ref_ctr_shift() -> Result<u32> {
    let path = "/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset";
    let text = std::fs::read_to_string(path).map_err(|_| {
        unsupported(format!(
            "this kernel's uprobes take no reference counter ({path} is missing; Linux 4.20+):              semaphore-guarded USDT probes cannot be enabled"
        ))
    })?;
    config_field_start(&text, path)
}

/// The first bit of a PMU format field ("config:0", "config:32-63").
fn config_field_start(text: &str, path: &str) -> Result<u32> {
    text.trim()
        .strip_prefix("config:")
        .and_then(|b| b.split('-').next())
        .and_then(|b| b.parse().ok())
        .filter(|&b: &u32| b < 64)
        .ok_or_else(|| einval(format!("unexpected contents of {path}")))
}

fn bind(
    prog: BorrowedFd<'_>,
    perf: OwnedFd,
    kind: &'static str,
    target: String,
    cookie: Option<u64>,
) -> Result<Link> {
    let mut attr = LinkCreateAttr::new(prog.as_raw_fd(), perf.as_raw_fd(), sys::BPF_PERF_EVENT);
    attr.u[0] = cookie.unwrap_or(0);
    let what = format!("attaching the program to {kind} {target}");
    let already = |mut e: Error| {
        if e.errno == Some(libc::EEXIST) {
            e.code = Code::Einval;
            e.message = format!(
                "the program is already attached to {kind} {target}; the kernel allows one \
                 attachment of a program per event"
            );
        }
        e
    };
    let fd = match link_create(&mut attr, &what) {
        Ok(fd) => fd,
        // EINVAL for the attach type itself: a kernel without perf links (before 5.15).
        Err(e) if e.errno == Some(libc::EINVAL) && !crate::features::features().bpf_cookie => {
            // A cookie of 0 is what the kernel gives without one.
            if cookie.is_some_and(|c| c != 0) {
                return Err(unsupported(format!(
                    "attaching {kind} {target} with a cookie: {}",
                    crate::features::lacking("bpfCookie")
                )));
            }
            set_bpf(prog, &perf).map_err(|e| already(Error::os(&what, e)))?;
            let mut link = Link::new(kind, target, perf);
            link.perf_ioctl = true;
            return Ok(link);
        }
        Err(e) => return Err(already(e)),
    };
    let mut link = Link::new(kind, target, fd);
    link.cookie = cookie;
    link._perf_events = vec![perf];
    Ok(link)
}

/// The pre-5.15 attachment: the program set on the event, which is then enabled (it is
/// opened enabled; enabling again is what libbpf does and harmless).
pub(crate) fn set_bpf(prog: BorrowedFd<'_>, perf: &OwnedFd) -> std::io::Result<()> {
    for (request, arg) in [
        (sys::PERF_EVENT_IOC_SET_BPF, prog.as_raw_fd()),
        (sys::PERF_EVENT_IOC_ENABLE, 0),
    ] {
        // SAFETY: both requests take an int argument, not a pointer; the fd is open.
        if unsafe { libc::ioctl(perf.as_raw_fd(), request as libc::Ioctl, arg) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn attach_tracepoint(
    prog: BorrowedFd<'_>,
    category: &str,
    name: &str,
    cookie: Option<u64>,
) -> Result<Link> {
    let id = tracefs::tracepoint_id(category, name)?;
    let mut attr = PerfEventAttr {
        type_: sys::PERF_TYPE_TRACEPOINT,
        config: id,
        ..Default::default()
    };
    let perf = sys::perf_event_open(&mut attr, -1)
        .map_err(|e| Error::os(format!("opening tracepoint {category}/{name}"), e))?;
    bind(
        prog,
        perf,
        "tracepoint",
        format!("{category}/{name}"),
        cookie,
    )
}

pub struct KprobeOptions<'a> {
    pub symbol: &'a str,
    pub offset: u64,
    pub retprobe: bool,
    pub cookie: Option<u64>,
}

pub fn attach_kprobe(prog: BorrowedFd<'_>, o: &KprobeOptions<'_>) -> Result<Link> {
    let kind = if o.retprobe { "kretprobe" } else { "kprobe" };
    let pmu = pmu_type("kprobe")?;
    let name = CString::new(o.symbol).map_err(|_| einval("symbol contains a NUL byte"))?;
    let mut attr = PerfEventAttr {
        type_: pmu,
        config: if o.retprobe {
            retprobe_bit("kprobe")?
        } else {
            0
        },
        config1: sys::ptr(name.as_ptr()),
        config2: o.offset,
        ..Default::default()
    };
    let target = if o.offset == 0 {
        o.symbol.to_string()
    } else {
        format!("{}+{:#x}", o.symbol, o.offset)
    };
    let perf = sys::perf_event_open(&mut attr, -1).map_err(|e| {
        let mut err = Error::os(format!("opening {kind} on {target}"), e);
        if err.code == Code::Enoent {
            err.message = format!(
                "kernel symbol '{}' not found or not traceable ({kind})",
                o.symbol
            );
        }
        err
    })?;
    bind(prog, perf, kind, target, o.cookie)
}

pub struct UprobeOptions<'a> {
    pub binary: &'a str,
    pub symbol: Option<&'a str>,
    pub offset: u64,
    pub pid: Option<i32>,
    pub retprobe: bool,
    pub cookie: Option<u64>,
    /// File offset of a counter the kernel increments while the probe is in place (a
    /// USDT semaphore); 0 for none.
    pub ref_ctr_offset: u64,
}

pub fn attach_uprobe(prog: BorrowedFd<'_>, o: &UprobeOptions<'_>) -> Result<Link> {
    let kind = if o.retprobe { "uretprobe" } else { "uprobe" };
    let path: PathBuf = crate::symbols::resolve_binary(o.binary, o.pid)?;
    let file_offset = match o.symbol {
        Some(sym) => crate::symbols::elf::symbol_file_offset(&path, sym)? + o.offset,
        None => o.offset,
    };
    let pmu = pmu_type("uprobe")?;
    let cpath = crate::maps::path_cstring(&path)?;
    let mut attr = PerfEventAttr {
        type_: pmu,
        config: if o.retprobe {
            retprobe_bit("uprobe")?
        } else {
            0
        } | if o.ref_ctr_offset != 0 {
            o.ref_ctr_offset << ref_ctr_shift()?
        } else {
            0
        },
        config1: sys::ptr(cpath.as_ptr()),
        config2: file_offset,
        ..Default::default()
    };
    let target = describe_uprobe(&path, o.symbol, o.offset);
    let perf = sys::perf_event_open(&mut attr, o.pid.unwrap_or(-1)).map_err(|e| {
        let mut err = Error::os(format!("opening {kind} on {target}"), e);
        if err.code == Code::Enoent {
            if let Some(pid) = o.pid {
                err.message = format!("{kind} on {target}: no process with pid {pid}");
            }
        }
        err
    })?;
    bind(prog, perf, kind, target, o.cookie)
}

fn describe_uprobe(path: &Path, symbol: Option<&str>, offset: u64) -> String {
    match (symbol, offset) {
        (Some(s), 0) => format!("{}:{s}", path.display()),
        (Some(s), off) => format!("{}:{s}+{off:#x}", path.display()),
        (None, off) => format!("{}:{off:#x}", path.display()),
    }
}
