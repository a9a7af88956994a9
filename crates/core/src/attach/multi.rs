//! What the batch attach paths share: the link they return (targets actually attached,
//! what was skipped and why, the mechanism used) and the attach engine, which splits a
//! batch the kernel cannot take in one piece (ENOMEM on 6.7–6.11 kprobe_multi) and finds
//! the targets the kernel refuses by bisection, so they can be named and left out.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::{Code, Error, Result};
use crate::sys;

/// Reports (done, total) of a long attach and answers whether to go on: the binding
/// answers `false` once the object was closed, and the attach stops with `CLOSED`,
/// detaching what it had attached.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) -> bool + Sync);

pub fn stopped(mechanism: &str) -> Error {
    Error::new(
        Code::Closed,
        format!(
            "the object was closed during the attach ({mechanism}); what was attached is detached"
        ),
    )
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// Kernel address, file offset (uprobes) or BTF id (tracing), by mechanism.
    pub address: u64,
    pub cookie: u64,
}

#[derive(Debug, Clone)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Hits the kernel could not run the program for (kprobe_multi link info, 6.9+).
    pub missed: Option<u64>,
    pub recursion_misses: u64,
    /// Program runs, when `kernel.bpf_stats_enabled` is on.
    pub run_count: Option<u64>,
}

pub struct MultiLink {
    /// "kprobe_multi", "kprobes", "uprobe_multi", "uprobes", "tracing_multi", "fentry", ...
    pub mechanism: &'static str,
    pub targets: Vec<Target>,
    pub skipped: Vec<Skipped>,
    /// The file uprobe targets live in (offsets are only valid for this file version).
    pub path: Option<std::path::PathBuf>,
    links: Vec<OwnedFd>,
    _perf_events: Vec<OwnedFd>,
    /// Program instances loaded for this link (another attach type, or one per target).
    _programs: Vec<OwnedFd>,
    prog_fds: Vec<i32>,
    /// State released once the kernel has let go (a USDT link's spec ids).
    after_detach: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl MultiLink {
    pub(crate) fn new(
        mechanism: &'static str,
        targets: Vec<Target>,
        skipped: Vec<Skipped>,
    ) -> Self {
        MultiLink {
            mechanism,
            targets,
            skipped,
            path: None,
            links: Vec::new(),
            _perf_events: Vec::new(),
            _programs: Vec::new(),
            prog_fds: Vec::new(),
            after_detach: Vec::new(),
        }
    }

    pub(crate) fn with_links(mut self, links: Vec<OwnedFd>) -> Self {
        self.links = links;
        self
    }

    pub(crate) fn own_program(&mut self, fd: OwnedFd) {
        self.prog_fds.push(fd.as_raw_fd());
        self._programs.push(fd);
    }

    /// The program the links run: an instance loaded for this link (owned), or the
    /// object's own (only remembered, for `stats()`).
    pub(crate) fn with_program(mut self, object_fd: i32, own: Option<OwnedFd>) -> Self {
        match own {
            Some(fd) => self.own_program(fd),
            None => self.prog_fds.push(object_fd),
        }
        self
    }

    /// Keeps `state` until every target is detached.
    pub(crate) fn keep(&mut self, state: Box<dyn std::any::Any + Send + Sync>) {
        self.after_detach.push(state);
    }

    pub(crate) fn add_link(&mut self, link: super::Link) {
        let super::Link {
            fd,
            _links,
            _perf_events,
            _program,
            ..
        } = link;
        self.links.push(fd);
        self.links.extend(_links);
        self._perf_events.extend(_perf_events);
        if let Some(p) = _program {
            self.own_program(p);
        }
    }

    /// Detaches every target; `targets` and `skipped` stay readable. Idempotent.
    /// Blocks until the kernel has let go: call it off the JS thread.
    pub fn detach(&mut self) {
        // Links before the perf events under them, as their owners would drop them.
        close_in_parallel(std::mem::take(&mut self.links));
        close_in_parallel(std::mem::take(&mut self._perf_events));
        self._programs.clear();
        self.prog_fds.clear();
        self.after_detach.clear();
    }

    /// Kernel links behind this one (1 for a multi link; more when split or per target).
    pub fn kernel_links(&self) -> usize {
        self.links.len()
    }

    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for &fd in &self.prog_fds {
            if let Ok(info) = sys::obj_info::<sys::ProgInfo>(fd) {
                stats.recursion_misses += info.recursion_misses;
                if info.run_cnt > 0 {
                    *stats.run_count.get_or_insert(0) += info.run_cnt;
                }
            }
        }
        for fd in &self.links {
            if let Ok(info) = sys::obj_info::<sys::LinkInfo>(fd.as_raw_fd()) {
                // kprobe_multi: { addrs, count, flags, missed }
                if info.type_ == 8 && info.u[2] > 0 {
                    *stats.missed.get_or_insert(0) += info.u[2];
                }
            }
        }
        stats
    }
}

impl Drop for MultiLink {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Closing a perf event waits for an RCU grace period (~100 ms each on our kernels), one
/// after another when closed in a row: 1,000 perf uprobes took two minutes. Closed from
/// several threads at once they wait for the same grace periods.
const DETACH_THREADS: usize = 64;

fn close_in_parallel(fds: Vec<OwnedFd>) {
    if fds.len() < 2 {
        return;
    }
    let per_thread = fds.len().div_ceil(DETACH_THREADS);
    let mut fds = fds.into_iter();
    std::thread::scope(|s| loop {
        let chunk: Vec<OwnedFd> = fds.by_ref().take(per_thread).collect();
        if chunk.is_empty() {
            break;
        }
        // A thread that cannot be spawned leaves its chunk to be closed here.
        if let Err(e) = std::thread::Builder::new().spawn_scoped(s, move || drop(chunk)) {
            drop(e);
        }
    });
}

/// The fallback shape: one single-target attachment per target (perf kprobes/uprobes,
/// one fentry/fexit program per function).
/// A target that fails is skipped with the reason; `UNSUPPORTED` stops everything.
pub(crate) fn attach_each(
    mechanism: &'static str,
    targets: Vec<Target>,
    mut skipped: Vec<Skipped>,
    user_cookies: bool,
    progress: Option<Progress<'_>>,
    attach_one: &mut dyn FnMut(&Target) -> Result<super::Link>,
) -> Result<MultiLink> {
    let mut attached = Vec::new();
    let mut links = Vec::new();
    let total = targets.len();
    let mut first_error = None;
    // A kernel without attach cookies (before 5.15) takes none: the default cookies are
    // then 0 (what the program reads there); given ones fail UNSUPPORTED at the first.
    let cookies = crate::features::features().bpf_cookie;
    for (i, mut t) in targets.into_iter().enumerate() {
        if progress.is_some_and(|go_on| !go_on(i, total)) {
            return Err(stopped(mechanism));
        }
        // The default cookie stays the index in `targets`, past the ones that failed.
        if !user_cookies {
            t.cookie = if cookies { attached.len() as u64 } else { 0 };
        }
        match attach_one(&t) {
            Ok(l) => {
                links.push(l);
                attached.push(t);
            }
            Err(e) if e.code == Code::Unsupported => return Err(e),
            Err(e) => {
                skipped.push(Skipped {
                    name: t.name,
                    reason: e.message.clone(),
                });
                first_error.get_or_insert(e);
            }
        }
    }
    if progress.is_some_and(|go_on| !go_on(total, total)) {
        return Err(stopped(mechanism));
    }
    if attached.is_empty() {
        if let Some(e) = first_error {
            return Err(none_attached(e, total, mechanism));
        }
    }
    let mut link = MultiLink::new(mechanism, attached, skipped);
    for l in links {
        link.add_link(l);
    }
    Ok(link)
}

/// Nothing attached is a failure, not an empty link: the first error, saying so.
fn none_attached(mut e: Error, total: usize, mechanism: &str) -> Error {
    e.message = format!(
        "none of the {total} targets could be attached one by one ({mechanism}); the first: {}",
        e.message
    );
    e
}

/// Reports the exact names that matched nothing (`matched`: the names the matcher
/// selected, attachable or not), and puts the targets in the caller's order (so their
/// cookies line up).
pub(crate) fn report_missing_names<A>(
    selection: &crate::symbols::pattern::Selection,
    matcher: &crate::symbols::pattern::Matcher<'_>,
    matched: &std::collections::HashSet<&str>,
    reason: &str,
    out: &mut [(String, A)],
    skipped: &mut Vec<Skipped>,
) {
    if let crate::symbols::pattern::Selection::Names(names) = selection {
        for n in names.iter().filter(|n| !matched.contains(n.as_str())) {
            skipped.push(Skipped {
                name: n.clone(),
                reason: reason.to_string(),
            });
        }
        out.sort_by_key(|(name, _)| matcher.position(name));
    }
}

/// Why a selection gave no target: names close to it when it matched nothing, or why the
/// ones it matched were all left out.
pub(crate) fn nothing_attachable<'n>(
    selection: &crate::symbols::pattern::Selection,
    matched: usize,
    skipped: &[Skipped],
    universe: impl Iterator<Item = &'n str>,
) -> String {
    use crate::symbols::pattern::{did_you_mean, near_matches};
    match skipped.first() {
        Some(first) if matched > 0 => format!(
            "; {matched} matched but none can be attached ({}: {})",
            first.name, first.reason
        ),
        _ => did_you_mean(&near_matches(selection, universe, 5)),
    }
}

/// Cookies for `n` targets: the user's, or each target's index.
pub(crate) fn cookies_for(n: usize, given: Option<&[u64]>) -> Result<Vec<u64>> {
    match given {
        Some(c) if c.len() != n => Err(Error::new(
            Code::Einval,
            format!("{} cookies given for {n} targets", c.len()),
        )),
        Some(c) => Ok(c.to_vec()),
        None => Ok((0..n as u64).collect()),
    }
}

fn is_enomem(e: &Error) -> bool {
    matches!(e.errno, Some(libc::ENOMEM) | Some(libc::E2BIG))
}

/// Errors that mean "one of these targets is not acceptable", worth a bisection.
fn is_refusal(e: &Error) -> bool {
    matches!(
        e.errno,
        Some(libc::EINVAL)
            | Some(libc::ESRCH)
            | Some(libc::ENOENT)
            | Some(libc::EBUSY)
            | Some(libc::EEXIST)
            | Some(crate::error::ENOTSUPP)
    )
}

/// Bisection stops naming culprits past this many: the whole batch is wrong then.
const MAX_CULPRITS: usize = 256;

pub(crate) enum Outcome {
    Attached(Vec<OwnedFd>),
    /// These targets (indexes) were refused on their own; attach again without them.
    Culprits(Vec<(usize, Error)>),
}

/// Attaches targets `0..n` with `attach(indexes)`, splitting on ENOMEM and bisecting refusals.
pub(crate) fn attach_batch(
    n: usize,
    attach: &mut dyn FnMut(&[usize]) -> Result<OwnedFd>,
) -> Result<Outcome> {
    let all: Vec<usize> = (0..n).collect();
    match attach_split(&all, attach) {
        Ok(links) => Ok(Outcome::Attached(links)),
        Err(e) if is_refusal(&e) && n > 1 => {
            let mut culprits = Vec::new();
            find_culprits(&all, attach, &mut culprits)?;
            if culprits.is_empty() {
                // Refused as a whole, accepted in parts: attach again.
                return attach_split(&all, attach).map(Outcome::Attached);
            }
            if culprits.len() == n {
                return Err(e);
            }
            Ok(Outcome::Culprits(culprits))
        }
        Err(e) => Err(e),
    }
}

fn attach_split(
    idx: &[usize],
    attach: &mut dyn FnMut(&[usize]) -> Result<OwnedFd>,
) -> Result<Vec<OwnedFd>> {
    match attach(idx) {
        Ok(fd) => Ok(vec![fd]),
        Err(e) if is_enomem(&e) && idx.len() > 1 => {
            let (a, b) = idx.split_at(idx.len() / 2);
            let mut links = attach_split(a, attach)?;
            links.extend(attach_split(b, attach)?);
            Ok(links)
        }
        Err(e) => Err(e),
    }
}

fn find_culprits(
    idx: &[usize],
    attach: &mut dyn FnMut(&[usize]) -> Result<OwnedFd>,
    out: &mut Vec<(usize, Error)>,
) -> Result<()> {
    match attach_split(idx, attach) {
        Ok(_links) => Ok(()),
        Err(e) if idx.len() == 1 => {
            out.push((idx[0], e));
            Ok(())
        }
        Err(e) if is_refusal(&e) && out.len() < MAX_CULPRITS => {
            let (a, b) = idx.split_at(idx.len() / 2);
            find_culprits(a, attach, out)?;
            find_culprits(b, attach, out)
        }
        Err(e) => Err(e),
    }
}

/// Attaches the given targets (by index into the slice) as one kernel link.
pub(crate) type AttachFn<'a> = dyn FnMut(&[Target], &[usize]) -> Result<OwnedFd> + 'a;

/// Resolved targets as (name, address-like value), and what was left out.
pub(crate) type Resolved<A> = (Vec<(String, A)>, Vec<Skipped>);

/// Runs the engine to the end: culprits become `skipped`, the rest is attached again
/// with their cookies recomputed (so the default cookie stays the index in `targets`).
pub(crate) fn attach_targets(
    mut targets: Vec<Target>,
    skipped: &mut Vec<Skipped>,
    user_cookies: bool,
    attach: &mut AttachFn<'_>,
) -> Result<(Vec<Target>, Vec<OwnedFd>)> {
    loop {
        let outcome = attach_batch(targets.len(), &mut |idx| attach(&targets, idx))?;
        match outcome {
            Outcome::Attached(links) => return Ok((targets, links)),
            Outcome::Culprits(culprits) => {
                let mut bad = vec![false; targets.len()];
                for (i, e) in culprits {
                    bad[i] = true;
                    skipped.push(Skipped {
                        name: targets[i].name.clone(),
                        reason: format!("the kernel refused it: {}", e.message),
                    });
                }
                let mut i = 0;
                targets.retain(|_| {
                    i += 1;
                    !bad[i - 1]
                });
                if !user_cookies {
                    for (i, t) in targets.iter_mut().enumerate() {
                        t.cookie = i as u64;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::io;

    /// A kernel stand-in: refuses batches larger than `max` with ENOMEM (6.7–6.11 on big
    /// kprobe_multi attaches) and any batch holding a `bad` target with EINVAL.
    fn kernel<'a>(
        max: usize,
        bad: &[usize],
        seen: &'a mut Vec<Vec<usize>>,
    ) -> impl FnMut(&[usize]) -> Result<OwnedFd> + 'a {
        let bad: HashSet<usize> = bad.iter().copied().collect();
        move |idx| {
            let fail = |errno| {
                Err(Error::os(
                    "link_create",
                    io::Error::from_raw_os_error(errno),
                ))
            };
            if idx.len() > max {
                return fail(libc::ENOMEM);
            }
            if idx.iter().any(|i| bad.contains(i)) {
                return fail(libc::EINVAL);
            }
            seen.push(idx.to_vec());
            Ok(std::fs::File::open("/dev/null").expect("/dev/null").into())
        }
    }

    #[test]
    fn splits_a_batch_the_kernel_has_no_memory_for() {
        let mut seen = Vec::new();
        let outcome = attach_batch(1000, &mut kernel(300, &[], &mut seen)).expect("attached");
        let Outcome::Attached(links) = outcome else {
            panic!("expected links");
        };
        assert_eq!(links.len(), 4);
        let mut all: Vec<usize> = seen.concat();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn names_the_refused_targets_by_bisection_even_while_splitting() {
        let mut seen = Vec::new();
        let outcome =
            attach_batch(1000, &mut kernel(300, &[7, 512, 999], &mut seen)).expect("outcome");
        let Outcome::Culprits(culprits) = outcome else {
            panic!("expected culprits");
        };
        let idx: Vec<usize> = culprits.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, [7, 512, 999]);
        assert!(culprits.iter().all(|(_, e)| e.errno == Some(libc::EINVAL)));
    }

    #[test]
    fn a_lone_refused_target_is_the_error() {
        let mut seen = Vec::new();
        let err = attach_batch(1, &mut kernel(10, &[0], &mut seen))
            .err()
            .expect("refused");
        assert_eq!(err.errno, Some(libc::EINVAL));
    }
}
