//! `perf_event` programs on sampling perf events (libbpf's
//! `bpf_program__attach_perf_event` on fds the caller opened, done here in one call):
//! one event per online CPU, or one for a process, or one per CPU for a cgroup. The
//! program is bound to each through a perf link (5.15+) or, on older kernels, through
//! `PERF_EVENT_IOC_SET_BPF`; one [`Link`] owns every fd.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::{link_create, Link};
use crate::error::{einval, Code, Error, Result};
use crate::sys::{self, LinkCreateAttr, PerfEventAttr};

/// Named events, as `perf list` names them (with its aliases): (name, perf type, config).
#[rustfmt::skip]
pub const PERF_EVENTS: &[(&str, u32, u64)] = &[
    // PERF_TYPE_SOFTWARE: enum perf_sw_ids.
    ("cpu-clock", sys::PERF_TYPE_SOFTWARE, 0),
    ("task-clock", sys::PERF_TYPE_SOFTWARE, 1),
    ("page-faults", sys::PERF_TYPE_SOFTWARE, 2),
    ("faults", sys::PERF_TYPE_SOFTWARE, 2),
    ("context-switches", sys::PERF_TYPE_SOFTWARE, 3),
    ("cs", sys::PERF_TYPE_SOFTWARE, 3),
    ("cpu-migrations", sys::PERF_TYPE_SOFTWARE, 4),
    ("migrations", sys::PERF_TYPE_SOFTWARE, 4),
    ("minor-faults", sys::PERF_TYPE_SOFTWARE, 5),
    ("major-faults", sys::PERF_TYPE_SOFTWARE, 6),
    ("alignment-faults", sys::PERF_TYPE_SOFTWARE, 7),
    ("emulation-faults", sys::PERF_TYPE_SOFTWARE, 8),
    ("dummy", sys::PERF_TYPE_SOFTWARE, 9),
    ("bpf-output", sys::PERF_TYPE_SOFTWARE, 10),
    ("cgroup-switches", sys::PERF_TYPE_SOFTWARE, 11),
    // PERF_TYPE_HARDWARE: enum perf_hw_id.
    ("cpu-cycles", sys::PERF_TYPE_HARDWARE, 0),
    ("cycles", sys::PERF_TYPE_HARDWARE, 0),
    ("instructions", sys::PERF_TYPE_HARDWARE, 1),
    ("cache-references", sys::PERF_TYPE_HARDWARE, 2),
    ("cache-misses", sys::PERF_TYPE_HARDWARE, 3),
    ("branch-instructions", sys::PERF_TYPE_HARDWARE, 4),
    ("branches", sys::PERF_TYPE_HARDWARE, 4),
    ("branch-misses", sys::PERF_TYPE_HARDWARE, 5),
    ("bus-cycles", sys::PERF_TYPE_HARDWARE, 6),
    ("stalled-cycles-frontend", sys::PERF_TYPE_HARDWARE, 7),
    ("stalled-cycles-backend", sys::PERF_TYPE_HARDWARE, 8),
    ("ref-cycles", sys::PERF_TYPE_HARDWARE, 9),
];

/// Which perf event to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerfEvent {
    /// A name from [`PERF_EVENTS`].
    Named(String),
    /// `perf_event_attr.type` and `.config` as given (a PMU's raw event).
    Raw { type_: u32, config: u64 },
}

/// How often the program runs: `Frequency` samples per second (the kernel adjusts the
/// period), or once every `Period` events (for the clocks: nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    Frequency(u64),
    Period(u64),
}

/// Where to sample: every online CPU (neither `pid` nor `cgroup`), one process (on every
/// CPU, or `cpu`), or the tasks of one cgroup v2 directory (on every CPU, or `cpu`).
#[derive(Debug, Clone)]
pub struct PerfEventOptions<'a> {
    pub event: PerfEvent,
    pub sampling: Sampling,
    pub cpu: Option<u32>,
    pub pid: Option<i32>,
    pub cgroup: Option<&'a Path>,
}

impl PerfEvent {
    /// The perf type and config; an unknown name is `EINVAL` listing the names.
    pub fn resolve(&self) -> Result<(u32, u64)> {
        match self {
            PerfEvent::Raw { type_, config } => Ok((*type_, *config)),
            PerfEvent::Named(name) => PERF_EVENTS
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|&(_, t, c)| (t, c))
                .ok_or_else(|| {
                    let names: Vec<&str> = PERF_EVENTS.iter().map(|(n, _, _)| *n).collect();
                    einval(format!(
                        "unknown perf event '{name}'; known events: {} (or give {{ type, config }})",
                        names.join(", ")
                    ))
                }),
        }
    }

    fn describe(&self) -> String {
        match self {
            PerfEvent::Named(n) => n.clone(),
            PerfEvent::Raw { type_, config } => format!("type {type_} config {config:#x}"),
        }
    }
}

/// The `perf_event_attr` for sampling `event` as `sampling` says.
pub fn sampling_attr(event: &PerfEvent, sampling: Sampling) -> Result<PerfEventAttr> {
    let (type_, config) = event.resolve()?;
    let (period, flags) = match sampling {
        Sampling::Frequency(0) => return Err(Error::range("frequency", 0, "1..=2^64-1")),
        Sampling::Period(0) => return Err(Error::range("period", 0, "1..=2^64-1")),
        Sampling::Frequency(hz) => (hz, sys::PERF_ATTR_FLAG_FREQ),
        Sampling::Period(n) => (n, 0),
    };
    Ok(PerfEventAttr {
        type_,
        config,
        sample_period: period,
        flags,
        ..Default::default()
    })
}

/// CPUs in a sysfs CPU list such as `0-3,5,7-8`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>> {
    let bad = || einval(format!("unexpected CPU list '{}'", text.trim()));
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: u32 = lo.parse().map_err(|_| bad())?;
        let hi: u32 = hi.parse().map_err(|_| bad())?;
        if hi < lo {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    Ok(cpus)
}

const ONLINE_CPUS: &str = "/sys/devices/system/cpu/online";

pub fn online_cpus() -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(ONLINE_CPUS)
        .map_err(|e| Error::os(format!("reading {ONLINE_CPUS}"), e))?;
    parse_cpu_list(&text)
}

pub fn attach_perf_event(prog: BorrowedFd<'_>, o: &PerfEventOptions<'_>) -> Result<Link> {
    let mut attr = sampling_attr(&o.event, o.sampling)?;
    let event = o.event.describe();
    if o.pid.is_some() && o.cgroup.is_some() {
        return Err(einval("perf event options: give pid or cgroup, not both"));
    }
    let cgroup_dir = o
        .cgroup
        .map(|dir| {
            std::fs::File::open(dir)
                .map(OwnedFd::from)
                .map_err(|e| Error::os(format!("opening cgroup {}", dir.display()), e))
        })
        .transpose()?;
    // A process is followed across CPUs by one event; the others need one per CPU.
    let cpus: Vec<i32> = match (o.cpu, o.pid) {
        (Some(cpu), _) => vec![cpu_arg(cpu)?],
        (None, Some(_)) => vec![-1],
        (None, None) => online_cpus()?
            .into_iter()
            .map(cpu_arg)
            .collect::<Result<_>>()?,
    };
    if cpus.is_empty() {
        return Err(einval(format!("{ONLINE_CPUS} lists no CPU")));
    }
    let (pid, flags) = match (&cgroup_dir, o.pid) {
        (Some(dir), _) => (dir.as_raw_fd(), sys::PERF_FLAG_PID_CGROUP),
        (None, Some(pid)) => (pid, 0),
        (None, None) => (-1, 0),
    };
    let target = match (o.cgroup, o.pid, o.cpu) {
        (Some(dir), _, _) => format!("{event} cgroup {}", dir.display()),
        (None, Some(pid), _) => format!("{event} pid {pid}"),
        (None, None, Some(cpu)) => format!("{event} cpu {cpu}"),
        (None, None, None) => format!("{event} every CPU"),
    };
    let mut perf_events = Vec::with_capacity(cpus.len());
    for &cpu in &cpus {
        let fd = sys::perf_event_open_on(&mut attr, pid, cpu, flags)
            .map_err(|e| open_error(&event, cpu, e))?;
        perf_events.push(fd);
    }
    let mut links = Vec::with_capacity(perf_events.len());
    for perf in &perf_events {
        match bind_one(prog, perf, &target)? {
            Some(link) => links.push(link),
            None => {
                // No perf links on this kernel: the events themselves hold the program.
                super::perf_event::set_bpf(prog, perf).map_err(|e| {
                    Error::os(
                        format!("attaching the program to perf event {target} (ioctl)"),
                        e,
                    )
                })?;
            }
        }
    }
    Link::owning_perf_events("perf_event", target, links, perf_events)
}

/// The kernel's CPU number for `perf_event_open`, range-checked.
fn cpu_arg(cpu: u32) -> Result<i32> {
    i32::try_from(cpu).map_err(|_| Error::range("cpu", cpu, "0..=2^31-1"))
}

fn open_error(event: &str, cpu: i32, e: std::io::Error) -> Error {
    let on = if cpu < 0 {
        String::new()
    } else {
        format!(" on CPU {cpu}")
    };
    let mut err = Error::os(format!("opening perf event {event}{on}"), e);
    // No PMU for the event (a VM without a hardware counter): the kernel says ENOENT or
    // EOPNOTSUPP.
    if matches!(err.errno, Some(libc::ENOENT) | Some(libc::EOPNOTSUPP)) {
        err.code = Code::Unsupported;
        err.message = format!(
            "perf event {event} is not available on this machine (no PMU counts it{on}): {}",
            err.message
        );
    }
    err
}

/// A perf link; `None` where the kernel has no perf links (before 5.15 `BPF_LINK_CREATE`
/// does not know `BPF_PERF_EVENT` and says EINVAL).
fn bind_one(prog: BorrowedFd<'_>, perf: &OwnedFd, target: &str) -> Result<Option<OwnedFd>> {
    let mut attr = LinkCreateAttr::new(prog.as_raw_fd(), perf.as_raw_fd(), sys::BPF_PERF_EVENT);
    match link_create(
        &mut attr,
        &format!("attaching the program to perf event {target}"),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.errno == Some(libc::EINVAL) && !crate::features::features().bpf_cookie => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,5,7-8\n").unwrap(),
            [0, 1, 2, 3, 5, 7, 8]
        );
        assert_eq!(parse_cpu_list("0\n").unwrap(), [0]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    #[test]
    fn event_names() {
        let cycles = PerfEvent::Named("cycles".into()).resolve().unwrap();
        assert_eq!(cycles, (sys::PERF_TYPE_HARDWARE, 0));
        let clock = PerfEvent::Named("cpu-clock".into()).resolve().unwrap();
        assert_eq!(clock, (sys::PERF_TYPE_SOFTWARE, 0));
        let e = PerfEvent::Named("cpu_clock".into()).resolve().unwrap_err();
        assert_eq!(e.code, Code::Einval);
        let a = sampling_attr(
            &PerfEvent::Named("cpu-clock".into()),
            Sampling::Frequency(99),
        );
        let a = a.unwrap();
        assert_eq!((a.sample_period, a.flags), (99, sys::PERF_ATTR_FLAG_FREQ));
        let e = sampling_attr(&PerfEvent::Named("cpu-clock".into()), Sampling::Period(0));
        assert!(matches!(e, Err(e) if e.code == Code::Range));
    }
}
