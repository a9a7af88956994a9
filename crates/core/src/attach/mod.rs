//! Links: what an attach returns. A link owns every fd that keeps the attachment alive
//! (the bpf link, the perf event under it, a program instance loaded just for it), so
//! dropping it detaches completely.

pub mod auto;
pub mod freplace;
pub mod iter;
pub mod kprobe_multi;
pub mod multi;
pub mod perf_event;
pub mod raw_tracepoint;
pub mod sampling;
pub mod tracing;
pub mod tracing_multi;
pub mod uprobe_multi;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::error::{Error, Result};
use crate::sys::{self, LinkCreateAttr};

pub struct Link {
    /// What was attached: "tracepoint", "raw_tracepoint", "kprobe", "kretprobe",
    /// "uprobe", "uretprobe", "fentry", "fexit", ...
    pub kind: &'static str,
    /// Where, as the user would write it (e.g. "syscalls/sys_enter_getppid").
    pub target: String,
    pub cookie: Option<u64>,
    /// The bpf link; for a program set on perf events by ioctl (kernels without perf
    /// links), its first perf event.
    fd: OwnedFd,
    /// `fd` is a perf event the program was set on by ioctl (kernels before 5.15 have no
    /// perf links): no BPF link to describe, and closing it waits like a perf event's.
    perf_ioctl: bool,
    /// Further bpf links of the same attachment (perf sampling on several CPUs); dropped
    /// before the perf events under them.
    _links: Vec<OwnedFd>,
    _perf_events: Vec<OwnedFd>,
    _program: Option<OwnedFd>,
}

#[derive(Debug, Clone, Copy)]
pub struct LinkInfo {
    pub link_type: &'static str,
    pub id: u32,
    pub prog_id: u32,
}

impl Link {
    pub(crate) fn new(kind: &'static str, target: String, fd: OwnedFd) -> Self {
        Link {
            kind,
            target,
            cookie: None,
            fd,
            perf_ioctl: false,
            _links: Vec::new(),
            _perf_events: Vec::new(),
            _program: None,
        }
    }

    /// One attachment over several perf events: a bpf link on each, or (`links` empty,
    /// kernels without perf links) the program set on each event.
    pub(crate) fn owning_perf_events(
        kind: &'static str,
        target: String,
        mut links: Vec<OwnedFd>,
        mut perf_events: Vec<OwnedFd>,
    ) -> Result<Self> {
        let (fd, perf_ioctl) = if !links.is_empty() {
            (links.remove(0), false)
        } else if !perf_events.is_empty() {
            (perf_events.remove(0), true)
        } else {
            return Err(crate::error::einval(format!(
                "{kind} {target}: no perf event to attach to"
            )));
        };
        Ok(Link {
            kind,
            target,
            cookie: None,
            fd,
            perf_ioctl,
            _links: links,
            _perf_events: perf_events,
            _program: None,
        })
    }

    /// The link keeps the program instance it runs (loaded for this target alone).
    pub(crate) fn owning_program(mut self, program: OwnedFd) -> Self {
        self._program = Some(program);
        self
    }

    /// Whether dropping it waits on the kernel: a perf event's close waits for an RCU
    /// grace period.
    pub fn detach_is_slow(&self) -> bool {
        self.perf_ioctl || !self._perf_events.is_empty()
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn info(&self) -> Result<LinkInfo> {
        if self.perf_ioctl {
            // No BPF link to ask: no link id, and the program's id is the program's to tell.
            return Ok(LinkInfo {
                link_type: "perf_event_ioctl",
                id: 0,
                prog_id: 0,
            });
        }
        let info: sys::LinkInfo =
            sys::obj_info(self.fd.as_raw_fd()).map_err(|e| Error::os("reading link info", e))?;
        Ok(LinkInfo {
            link_type: link_type_name(info.type_),
            id: info.id,
            prog_id: info.prog_id,
        })
    }
}

fn link_type_name(t: u32) -> &'static str {
    match t {
        1 => "raw_tracepoint",
        2 => "tracing",
        3 => "cgroup",
        4 => "iter",
        5 => "netns",
        6 => "xdp",
        7 => "perf_event",
        8 => "kprobe_multi",
        9 => "struct_ops",
        10 => "netfilter",
        11 => "tcx",
        12 => "uprobe_multi",
        13 => "netkit",
        14 => "sockmap",
        15 => "tracing_multi",
        _ => "unknown",
    }
}

/// `BPF_LINK_CREATE` with the attribute prepared by the caller.
pub(crate) fn link_create(attr: &mut LinkCreateAttr, what: &str) -> Result<OwnedFd> {
    sys::bpf_fd(sys::BPF_LINK_CREATE, attr).map_err(|e| Error::os(what, e))
}
