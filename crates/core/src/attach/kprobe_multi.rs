//! kprobe_multi (5.18, needs CONFIG_FPROBE): one program on many kernel functions through
//! one link, with cookies, return probes and sessions (6.10). Without the link type:
//! one perf kprobe per function.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};

use super::link_create;
use super::multi::{
    attach_each, attach_targets, cookies_for, nothing_attachable, report_missing_names, MultiLink,
    Skipped, Target,
};
use super::perf_event::{attach_kprobe, KprobeOptions};
use super::uprobe_multi::instance_for;
use crate::error::{einval, enoent, unsupported, Code, Error, Result};
use crate::features::{features, lacking};
use crate::program::Program;
use crate::symbols::kernel::{name_counts, traceable_functions, NOT_TRACEABLE};
use crate::symbols::pattern::{Matcher, Selection};
use crate::sys::{self, LinkCreateAttr};

pub struct KprobeMultiOptions<'a> {
    /// `None` with no addresses: every traceable function.
    pub selection: Option<Selection>,
    pub addresses: Option<Vec<u64>>,
    pub cookies: Option<Vec<u64>>,
    pub retprobe: bool,
    pub session: bool,
    /// Only functions of this module ("vmlinux" for the kernel proper).
    pub module: Option<String>,
    /// Fail instead of skipping what cannot be attached.
    pub strict: bool,
    pub fallback: bool,
    /// Use the fallback even where the multi link exists (for comparisons and tests).
    pub force_fallback: bool,
    /// Called with (done, total) while the fallback attaches one perf kprobe per target.
    pub progress: Option<super::multi::Progress<'a>>,
}

pub fn attach_kprobe_multi(prog: &Program, o: &KprobeMultiOptions<'_>) -> Result<MultiLink> {
    let f = features();
    let multi = if o.session {
        f.kprobe_session
    } else {
        f.kprobe_multi && !o.force_fallback
    };
    if !multi {
        if o.session {
            return Err(unsupported(lacking("kprobeSession")));
        }
        if !o.fallback && !o.force_fallback {
            return Err(unsupported(format!(
                "{}; allow the per-kprobe fallback to attach anyway",
                lacking("kprobeMulti")
            )));
        }
        if !f.kprobe {
            return Err(unsupported(format!(
                "{}, nor the kprobes of its fallback: {}",
                lacking("kprobeMulti"),
                lacking("kprobe")
            )));
        }
    }
    let (targets, mut skipped, by_address) = resolve(o)?;
    if o.strict && !skipped.is_empty() {
        return Err(strict_error(&skipped));
    }
    let user_cookies = o.cookies.is_some();
    let cookies = cookies_for(targets.len(), o.cookies.as_deref())?;
    let targets: Vec<Target> = targets
        .into_iter()
        .zip(cookies)
        .map(|((name, address), cookie)| Target {
            name,
            address,
            cookie,
        })
        .collect();
    if !multi {
        return fallback(prog, targets, skipped, o);
    }

    let attach_type = if o.session {
        sys::BPF_TRACE_KPROBE_SESSION
    } else {
        sys::BPF_TRACE_KPROBE_MULTI
    };
    let own = instance_for(prog, attach_type)?;
    let prog_fd = own
        .as_ref()
        .map(|f| f.as_fd())
        .map_or_else(|| prog.fd(), Ok)?;
    let flags = if o.retprobe {
        sys::BPF_F_KPROBE_MULTI_RETURN
    } else {
        0
    };
    let name_of: HashMap<String, CString> = targets
        .iter()
        .map(|t| {
            Ok((
                t.name.clone(),
                CString::new(t.name.as_str()).map_err(|_| einval("symbol contains a NUL byte"))?,
            ))
        })
        .collect::<Result<_>>()?;
    let (targets, links) = attach_targets(targets, &mut skipped, user_cookies, &mut |t, idx| {
        let cookies: Vec<u64> = idx.iter().map(|&i| t[i].cookie).collect();
        let addrs: Vec<u64> = idx.iter().map(|&i| t[i].address).collect();
        let syms: Vec<*const libc::c_char> = idx
            .iter()
            .map(|&i| {
                name_of
                    .get(t[i].name.as_str())
                    .map_or(std::ptr::null(), |c| c.as_ptr())
            })
            .collect();
        let mut attr = LinkCreateAttr::new(prog_fd.as_raw_fd(), 0, attach_type);
        attr.u[0] = u64::from(flags) | ((idx.len() as u64) << 32);
        if by_address {
            attr.u[2] = sys::ptr(addrs.as_ptr());
        } else {
            attr.u[1] = sys::ptr(syms.as_ptr());
        }
        attr.u[3] = sys::ptr(cookies.as_ptr());
        link_create(
            &mut attr,
            &format!("attaching kprobe_multi to {} functions", idx.len()),
        )
    })?;
    Ok(MultiLink::new("kprobe_multi", targets, skipped)
        .with_links(links)
        .with_program(prog_fd.as_raw_fd(), own))
}

fn strict_error(skipped: &[Skipped]) -> Error {
    let list: Vec<String> = skipped
        .iter()
        .take(10)
        .map(|s| format!("{} ({})", s.name, s.reason))
        .collect();
    Error::new(
        Code::Enoent,
        format!(
            "{} targets cannot be attached: {}",
            skipped.len(),
            list.join("; ")
        ),
    )
}

/// The functions to attach, as (name, address), what was left out, and whether to
/// attach by address (the kernel publishes ftrace addresses, 6.5+).
type Resolved = (Vec<(String, u64)>, Vec<Skipped>, bool);

fn resolve(o: &KprobeMultiOptions<'_>) -> Result<Resolved> {
    if let Some(addrs) = &o.addresses {
        if o.selection.is_some() {
            return Err(einval("kprobe_multi: give symbols or addresses, not both"));
        }
        return Ok((
            addrs.iter().map(|&a| (format!("{a:#x}"), a)).collect(),
            Vec::new(),
            true,
        ));
    }
    let all = traceable_functions(true)?;
    let by_address = all.first().is_some_and(|f| f.address.is_some());
    let counts = name_counts(&all);
    let selection = o.selection.clone().unwrap_or(Selection::Glob("*".into()));
    let matcher = Matcher::new(&selection, false);
    let in_module = |m: &Option<String>| match o.module.as_deref() {
        None => true,
        Some("vmlinux") => m.is_none(),
        Some(want) => m.as_deref() == Some(want),
    };
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut matched = std::collections::HashSet::new();
    for f in all
        .iter()
        .filter(|f| in_module(&f.module) && matcher.matches(&f.name))
    {
        matched.insert(f.name.as_str());
        match (
            by_address,
            counts.get(f.name.as_str()).copied().unwrap_or(0),
        ) {
            (true, _) => out.push((f.name.clone(), f.address.unwrap_or(0))),
            (false, 1) => out.push((f.name.clone(), 0)),
            (false, _) => {
                if !skipped.iter().any(|s: &Skipped| s.name == f.name) {
                    skipped.push(Skipped {
                        name: f.name.clone(),
                        reason: "several kernel functions have this name and this kernel publishes no \
                                 addresses to tell them apart (available_filter_functions_addrs, 6.5+)"
                            .into(),
                    });
                }
            }
        }
    }
    report_missing_names(
        &selection,
        &matcher,
        &matched,
        NOT_TRACEABLE,
        &mut out,
        &mut skipped,
    );
    if out.is_empty() {
        return Err(enoent(format!(
            "no traceable kernel function matches {}{}",
            selection.describe(),
            nothing_attachable(
                &selection,
                matched.len(),
                &skipped,
                all.iter().map(|f| f.name.as_str())
            )
        )));
    }
    Ok((out, skipped, by_address))
}

fn fallback(
    prog: &Program,
    targets: Vec<Target>,
    mut skipped: Vec<Skipped>,
    o: &KprobeMultiOptions<'_>,
) -> Result<MultiLink> {
    // Perf kprobes (unlike kprobe_multi, which is ftrace) refuse the kprobe blacklist:
    // leave those out up front, where debugfs shows the list.
    let blacklist = kprobe_blacklist();
    let (targets, listed): (Vec<Target>, Vec<Target>) = targets
        .into_iter()
        .partition(|t| !blacklist.contains(t.name.as_str()));
    skipped.extend(listed.into_iter().map(|t| Skipped {
        name: t.name,
        reason: format!("on the kernel's kprobe blacklist ({KPROBE_BLACKLIST})"),
    }));
    let own = instance_for(prog, 0)?;
    let prog_fd = own
        .as_ref()
        .map(|f| f.as_fd())
        .map_or_else(|| prog.fd(), Ok)?;
    let link = attach_each(
        "kprobes",
        targets,
        skipped,
        o.cookies.is_some(),
        o.progress,
        &mut |t| {
            let kprobe = KprobeOptions {
                symbol: &t.name,
                offset: 0,
                retprobe: o.retprobe,
                cookie: Some(t.cookie),
            };
            attach_kprobe(prog_fd, &kprobe)
        },
    )?;
    Ok(link.with_program(prog_fd.as_raw_fd(), own))
}

const KPROBE_BLACKLIST: &str = "/sys/kernel/debug/kprobes/blacklist";

/// Functions perf kprobes may not probe; empty when debugfs is not mounted.
fn kprobe_blacklist() -> std::collections::HashSet<String> {
    std::fs::read_to_string(KPROBE_BLACKLIST)
        .map(|text| parse_blacklist(&text))
        .unwrap_or_default()
}

/// Lines are `0xSTART-0xEND\tname` (`[module]` may follow).
fn parse_blacklist(text: &str) -> std::collections::HashSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_kprobe_blacklist() {
        let text = "0xffffffff81001000-0xffffffff81001020\tdo_int3\n\
                    0xffffffffc0001000-0xffffffffc0001040\tovl_x\t[overlay]\n";
        let names = super::parse_blacklist(text);
        assert!(names.contains("do_int3") && names.contains("ovl_x"));
        assert_eq!(names.len(), 2);
    }
}
