//! uprobe_multi (6.6): many uprobes of one binary through one link, with cookies, return
//! probes, sessions (6.13) and a pid filter. Without the link type: one perf uprobe per
//! target, which the BPF program cannot tell apart (same cookies, same context).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::link_create;
use super::multi::{
    attach_each, attach_targets, cookies_for, nothing_attachable, report_missing_names, MultiLink,
    Resolved, Skipped, Target,
};
use super::perf_event::{attach_uprobe, UprobeOptions};
use crate::error::{einval, enoent, unsupported, Result};
use crate::features::{features, lacking};
use crate::maps::path_cstring;
use crate::program::{BtfTarget, Program};
use crate::symbols::elf::functions;
use crate::symbols::pattern::{Matcher, Selection};
use crate::symbols::resolve_binary;
use crate::sys::{self, LinkCreateAttr};

pub struct UprobeMultiOptions<'a> {
    pub binary: &'a str,
    pub selection: Option<Selection>,
    /// File offsets, instead of (or when no) symbols are given.
    pub offsets: Option<Vec<u64>>,
    pub pid: Option<i32>,
    pub cookies: Option<Vec<u64>>,
    pub retprobe: bool,
    pub session: bool,
    pub include_clones: bool,
    /// Use one perf uprobe per target when the kernel has no uprobe_multi.
    pub fallback: bool,
    /// Use the fallback even where the multi link exists (for comparisons and tests).
    pub force_fallback: bool,
    /// Called with (done, total) while the fallback attaches one perf uprobe per target.
    pub progress: Option<super::multi::Progress<'a>>,
}

pub fn attach_uprobe_multi(prog: &Program, o: &UprobeMultiOptions<'_>) -> Result<MultiLink> {
    let path = resolve_binary(o.binary, o.pid)?;
    let (targets, mut skipped) = resolve(&path, o)?;
    let user_cookies = o.cookies.is_some();
    let cookies = cookies_for(targets.len(), o.cookies.as_deref())?;
    let targets: Vec<Target> = targets
        .into_iter()
        .zip(cookies)
        .map(|((name, offset), cookie)| Target {
            name,
            address: offset,
            cookie,
        })
        .collect();

    let f = features();
    let multi = if o.session {
        f.uprobe_session
    } else {
        f.uprobe_multi && !o.force_fallback
    };
    if !multi {
        if o.session {
            return Err(unsupported(lacking("uprobeSession")));
        }
        if !o.fallback && !o.force_fallback {
            return Err(unsupported(format!(
                "{}; allow the per-uprobe fallback to attach anyway",
                lacking("uprobeMulti")
            )));
        }
        return fallback(prog, &path, targets, skipped, o);
    }

    let attach_type = if o.session {
        sys::BPF_TRACE_UPROBE_SESSION
    } else {
        sys::BPF_TRACE_UPROBE_MULTI
    };
    let own = instance_for(prog, attach_type)?;
    let prog_fd = own
        .as_ref()
        .map(|f| f.as_fd())
        .map_or_else(|| prog.fd(), Ok)?;
    let cpath = path_cstring(&path)?;
    let flags = if o.retprobe {
        sys::BPF_F_UPROBE_MULTI_RETURN
    } else {
        0
    };
    let what = format!("attaching uprobe_multi to {}", path.display());
    let (targets, links) = attach_targets(targets, &mut skipped, user_cookies, &mut |t, idx| {
        let offsets: Vec<u64> = idx.iter().map(|&i| t[i].address).collect();
        let cookies: Vec<u64> = idx.iter().map(|&i| t[i].cookie).collect();
        let mut attr = LinkCreateAttr::new(prog_fd.as_raw_fd(), 0, attach_type);
        attr.u[0] = sys::ptr(cpath.as_ptr());
        attr.u[1] = sys::ptr(offsets.as_ptr());
        attr.u[3] = sys::ptr(cookies.as_ptr());
        attr.u[4] = offsets.len() as u64 | (u64::from(flags) << 32);
        attr.u[5] = o.pid.unwrap_or(0) as u32 as u64;
        link_create(&mut attr, &what)
    })?;
    let mut link = MultiLink::new("uprobe_multi", targets, skipped)
        .with_links(links)
        .with_program(prog_fd.as_raw_fd(), own);
    link.path = Some(path.clone());
    Ok(link)
}

/// A program instance with the attach type this path needs, when the loaded one has another.
pub(crate) fn instance_for(prog: &Program, attach_type: u32) -> Result<Option<OwnedFd>> {
    if prog.spec.prog_type != sys::BPF_PROG_TYPE_KPROBE {
        return Err(einval(format!(
            "program '{}' (SEC \"{}\") is not a kprobe/uprobe program",
            prog.name, prog.section
        )));
    }
    if prog.is_loaded() && prog.spec.expected_attach_type == attach_type {
        return Ok(None);
    }
    prog.load_with_attach_type(attach_type, &BtfTarget::default())
        .map(Some)
}

fn resolve(path: &std::path::Path, o: &UprobeMultiOptions<'_>) -> Result<Resolved<u64>> {
    let mut skipped = Vec::new();
    let mut out: Vec<(String, u64)> = Vec::new();
    match (&o.selection, &o.offsets) {
        (None, None) => return Err(einval("uprobe_multi: give symbols or offsets")),
        (Some(_), Some(_)) => {
            return Err(einval("uprobe_multi: give symbols or offsets, not both"))
        }
        (None, Some(offsets)) => {
            out = offsets
                .iter()
                .map(|&off| (format!("{off:#x}"), off))
                .collect();
        }
        (Some(sel), None) => {
            let funcs = functions(path)?;
            let matcher = Matcher::new(sel, o.include_clones);
            let mut matched = std::collections::HashSet::new();
            let mut seen = std::collections::HashSet::new();
            for f in funcs.iter().filter(|f| matcher.matches(&f.name)) {
                matched.insert(f.name.as_str());
                // Aliases (same address) are attached and reported once.
                if seen.insert(f.offset) {
                    out.push((f.name.clone(), f.offset));
                }
            }
            let reason = format!("no function of that name in {}", path.display());
            report_missing_names(sel, &matcher, &matched, &reason, &mut out, &mut skipped);
            if out.is_empty() {
                return Err(enoent(format!(
                    "no function of {} matches {}{}",
                    path.display(),
                    sel.describe(),
                    nothing_attachable(
                        sel,
                        matched.len(),
                        &skipped,
                        funcs.iter().map(|f| f.name.as_str())
                    )
                )));
            }
        }
    }
    Ok((out, skipped))
}

fn fallback(
    prog: &Program,
    path: &std::path::Path,
    targets: Vec<Target>,
    skipped: Vec<Skipped>,
    o: &UprobeMultiOptions<'_>,
) -> Result<MultiLink> {
    let own = instance_for(prog, 0)?;
    let prog_fd: BorrowedFd<'_> = own
        .as_ref()
        .map(|f| f.as_fd())
        .map_or_else(|| prog.fd(), Ok)?;
    let binary = path.to_string_lossy();
    let mut link = attach_each(
        "uprobes",
        targets,
        skipped,
        o.cookies.is_some(),
        o.progress,
        &mut |t| {
            let uprobe = UprobeOptions {
                binary: &binary,
                symbol: None,
                offset: t.address,
                pid: o.pid,
                retprobe: o.retprobe,
                cookie: Some(t.cookie),
                ref_ctr_offset: 0,
            };
            attach_uprobe(prog_fd, &uprobe)
        },
    )?;
    link.path = Some(path.to_path_buf());
    Ok(link.with_program(prog_fd.as_raw_fd(), own))
}
