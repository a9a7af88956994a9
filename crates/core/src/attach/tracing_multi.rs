//! tracing_multi (7.2): fentry/fexit/fsession on many kernel functions through one link,
//! by BTF id. Without the link type: the program is loaded once per function as a plain
//! fentry/fexit (in parallel, reporting progress) and attached per function.
//! A module's functions have ids in the module's split BTF; the program is then loaded
//! again against the module's BTF object, so one link covers one module.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::link_create;
use super::multi::{
    attach_each, attach_targets, cookies_for, nothing_attachable, report_missing_names, MultiLink,
    Resolved, Skipped, Target,
};
use crate::btf_index::BtfIndex;
use crate::error::{einval, enoent, unsupported, Error, Result};
use crate::features::{features, lacking};
use crate::loader::section::AttachKind;
use crate::program::{BtfTarget, Program};
use crate::symbols::kernel::{traceable_functions, NOT_TRACEABLE};
use crate::symbols::pattern::{glob_match, Matcher, Selection};
use crate::sys::{self, LinkCreateAttr};

pub struct TracingMultiOptions<'a> {
    /// `None` with no ids: every traceable function tracing_multi can take.
    pub selection: Option<Selection>,
    pub btf_ids: Option<Vec<u32>>,
    /// A kernel module's functions instead of vmlinux's (also `module:pattern`).
    pub module: Option<String>,
    pub cookies: Option<Vec<u64>>,
    pub fallback: bool,
    /// Use the fallback even where tracing_multi exists (for comparisons and tests).
    pub force_fallback: bool,
    pub btf_path: Option<&'a Path>,
    /// Called with (done, total) while the fallback loads one program per function.
    pub progress: Option<super::multi::Progress<'a>>,
}

pub fn attach_tracing_multi(prog: &Program, o: &TracingMultiOptions<'_>) -> Result<MultiLink> {
    let (single, name) = match prog.spec.kind {
        AttachKind::FentryMulti => (sys::BPF_TRACE_FENTRY, "fentry"),
        AttachKind::FexitMulti => (sys::BPF_TRACE_FEXIT, "fexit"),
        AttachKind::FsessionMulti => (sys::BPF_TRACE_FSESSION, "fsession"),
        _ => {
            return Err(einval(format!(
            "program '{}' (SEC \"{}\") is not a fentry.multi/fexit.multi/fsession.multi program",
            prog.name, prog.section
        )))
        }
    };
    let f = features();
    let multi = f.tracing_multi && !o.force_fallback;
    if !multi && (!(o.fallback || o.force_fallback) || !f.fentry) {
        return Err(unsupported(if f.fentry {
            format!(
                "{}; allow the per-function fallback to attach anyway",
                lacking("tracingMulti")
            )
        } else {
            format!(
                "{}, nor the trampolines of its fallback: {}",
                lacking("tracingMulti"),
                lacking("fentry")
            )
        }));
    }
    let (module, selection) = split_module(o)?;
    let (btf, module_btf) = match &module {
        None => (BtfIndex::kernel(o.btf_path)?, None),
        Some(m) => (
            Arc::new(BtfIndex::module(m)?),
            Some(Arc::new(crate::btf::module_btf_fd(m)?)),
        ),
    };
    let (targets, mut skipped) = resolve(&btf, module.as_deref(), selection, o)?;
    let module_target = |btf_id| BtfTarget {
        btf_id,
        module_btf: module_btf.clone(),
        ..Default::default()
    };
    let user_cookies = o.cookies.is_some();
    let cookies = cookies_for(targets.len(), o.cookies.as_deref())?;
    let targets: Vec<Target> = targets
        .into_iter()
        .zip(cookies)
        .map(|((name, id), cookie)| Target {
            name,
            address: u64::from(id),
            cookie,
        })
        .collect();

    if !multi {
        return fallback(prog, single, name, targets, skipped, &module_target, o);
    }

    let attach_type = prog.spec.expected_attach_type;
    // The object loaded the program for vmlinux; a module needs its own instance.
    let own = match module_btf {
        Some(_) => Some(prog.load_instance(&module_target(0))?),
        None => None,
    };
    let prog_fd = own.as_ref().map_or_else(|| prog.fd(), |f| Ok(f.as_fd()))?;
    let (targets, links) = attach_targets(targets, &mut skipped, user_cookies, &mut |t, idx| {
        let ids: Vec<u32> = idx.iter().map(|&i| t[i].address as u32).collect();
        let cookies: Vec<u64> = idx.iter().map(|&i| t[i].cookie).collect();
        let mut attr = LinkCreateAttr::new(prog_fd.as_raw_fd(), 0, attach_type);
        attr.u[0] = sys::ptr(ids.as_ptr());
        attr.u[1] = sys::ptr(cookies.as_ptr());
        attr.u[2] = ids.len() as u64;
        link_create(
            &mut attr,
            &format!("attaching tracing_multi to {} functions", idx.len()),
        )
    })?;
    Ok(MultiLink::new("tracing_multi", targets, skipped)
        .with_links(links)
        .with_program(prog_fd.as_raw_fd(), own))
}

/// The module to attach in, from `module` or libbpf's `module:pattern`, and the selection
/// without the prefix.
fn split_module(o: &TracingMultiOptions<'_>) -> Result<(Option<String>, Option<Selection>)> {
    let prefixed = match &o.selection {
        Some(Selection::Glob(g)) => g
            .split_once(':')
            .map(|(m, p)| (m.to_string(), Selection::Glob(p.to_string()))),
        _ => None,
    };
    match (prefixed, &o.module) {
        (Some((m, _)), Some(want)) if &m != want => Err(einval(format!(
            "tracing_multi: the pattern names module '{m}' but module is '{want}'"
        ))),
        (Some((m, sel)), _) => Ok((Some(m), Some(sel))),
        (None, m) => Ok((m.clone().filter(|m| m != "vmlinux"), o.selection.clone())),
    }
}

/// Functions the BPF trampoline itself runs: a program on them re-enters the trampoline
/// until the kernel stack overflows (seen on 7.2: `rcu_read_unlock_special` from
/// `__bpf_prog_exit_recur`). Patterns leave them out; naming one explicitly still tries.
const TRAMPOLINE_RUNTIME: &[&str] = &[
    "bpf_*",
    "__bpf_*",
    "rcu_*",
    "__rcu_*",
    "migrate_*",
    "___migrate_*",
    "preempt_count_*",
    "copy_from_kernel_nofault*",
    "*_nofault_allowed",
];

fn resolve(
    btf: &BtfIndex,
    module: Option<&str>,
    selection: Option<Selection>,
    o: &TracingMultiOptions<'_>,
) -> Result<Resolved<u32>> {
    let mut skipped = Vec::new();
    if let Some(ids) = &o.btf_ids {
        if selection.is_some() {
            return Err(einval("tracing_multi: give functions or BTF ids, not both"));
        }
        return Ok((
            ids.iter().map(|&id| (format!("btf#{id}"), id)).collect(),
            skipped,
        ));
    }
    let selection = selection.unwrap_or(Selection::Glob("*".into()));
    let traceable = traceable_functions(false)?;
    let matcher = Matcher::new(&selection, false);
    let mut matched = std::collections::HashSet::new();
    let mut out = Vec::new();
    for f in traceable
        .iter()
        .filter(|f| f.module.as_deref() == module && matcher.matches(&f.name))
    {
        if !matched.insert(f.name.as_str()) {
            continue;
        }
        let skip = |reason: String| Skipped {
            name: f.name.clone(),
            reason,
        };
        if matches!(selection, Selection::Glob(_))
            && TRAMPOLINE_RUNTIME.iter().any(|p| glob_match(p, &f.name))
        {
            skipped.push(skip(
                "the BPF trampoline runs it: tracing it recurses (name it explicitly to try anyway)".into(),
            ));
            continue;
        }
        match btf.func_ids(&f.name) {
            [] => skipped.push(skip(format!(
                "not in {}'s BTF",
                module.unwrap_or("the kernel")
            ))),
            [id] => match btf.check_prototype(*id) {
                Ok(()) => out.push((f.name.clone(), *id)),
                Err(why) => skipped.push(skip(format!(
                    "tracing_multi cannot take its prototype: {why}"
                ))),
            },
            _ => skipped.push(skip(
                "several kernel functions have this name in BTF".into(),
            )),
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
            "no {} function tracing_multi can take matches {}{}{}",
            module.map_or("kernel".to_string(), |m| format!("'{m}' module")),
            selection.describe(),
            nothing_attachable(
                &selection,
                matched.len(),
                &skipped,
                traceable
                    .iter()
                    .filter(|f| f.module.as_deref() == module)
                    .map(|f| f.name.as_str())
            ),
            module.map_or(
                " (module functions need module: NAME or NAME:pattern)",
                |_| ""
            )
        )));
    }
    Ok((out, skipped))
}

/// Loads the program once per function in parallel (the verifier's work, reported as
/// progress), then links them in order, so that the default cookie stays the index in
/// `targets` past the functions that failed.
fn fallback(
    prog: &Program,
    attach_type: u32,
    name: &'static str,
    targets: Vec<Target>,
    skipped: Vec<Skipped>,
    btf_target: &(dyn Fn(u32) -> BtfTarget + Sync),
    o: &TracingMultiOptions<'_>,
) -> Result<MultiLink> {
    let total = targets.len();
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let loaded: Mutex<Vec<Option<Result<OwnedFd>>>> =
        Mutex::new((0..total).map(|_| None).collect());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(total.max(1));
    std::thread::scope(|s| {
        for t in 0..threads {
            let (targets, loaded, done, stop) = (&targets, &loaded, &done, &stop);
            s.spawn(move || {
                for i in (t..total).step_by(threads) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let r = prog
                        .load_with_attach_type(attach_type, &btf_target(targets[i].address as u32));
                    if let Ok(mut l) = loaded.lock() {
                        l[i] = Some(r);
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if o.progress.is_some_and(|go_on| !go_on(n, total)) {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    if stop.into_inner() {
        return Err(super::multi::stopped(name));
    }
    // Linked in order through the shared per-target loop, which keeps the default cookie
    // the index in `targets` and reports what failed.
    let mut loaded = loaded
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter();
    attach_each(
        name,
        targets,
        skipped,
        o.cookies.is_some(),
        None,
        &mut |t| {
            let program = loaded
                .next()
                .flatten()
                .unwrap_or_else(|| Err(crate::error::einval("not attempted")))?;
            let fd = super::tracing::tracing_link(program.as_fd(), attach_type, Some(t.cookie))
                .map_err(|e| Error::os(format!("attaching {name} to {}", t.name), e))?;
            Ok(super::Link::new(name, t.name.clone(), fd).owning_program(program))
        },
    )
}
