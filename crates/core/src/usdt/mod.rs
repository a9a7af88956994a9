//! USDT probes, attached the way libbpf does so that programs written against libbpf's
//! `<bpf/usdt.bpf.h>` run unchanged: every probe site is a uprobe (with the semaphore as
//! its `ref_ctr_offset`, so `if (PROBE_ENABLED())` code runs only while attached), each
//! distinct argument-spec set is one `struct __bpf_usdt_spec` in the object's
//! `__bpf_usdt_specs` map, and the program finds its spec by the BPF cookie (the spec id),
//! or, on kernels without cookies, by the probe's address in `__bpf_usdt_ip_to_spec_id`.
//! Attached through uprobe_multi where the kernel has it, else one perf uprobe per site.

pub mod args;
pub mod note;

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::attach::link_create;
use crate::attach::multi::{attach_each, attach_targets, MultiLink, Target};
use crate::attach::perf_event::{attach_uprobe, UprobeOptions};
use crate::attach::uprobe_multi::instance_for;
use crate::error::{bad_object, einval, enoent, unsupported, Code, Error, Result};
use crate::features::features;
use crate::loader::Object;
use crate::maps::{path_cstring, Map};
use crate::program::Program;
use crate::symbols::resolve_binary;
use crate::sys::{self, LinkCreateAttr};

use args::{parse_args, Arch, ArgSpec, SpecLayout};

/// The maps `<bpf/usdt.bpf.h>` declares.
const SPECS_MAP: &str = "__bpf_usdt_specs";
const IP_MAP: &str = "__bpf_usdt_ip_to_spec_id";

#[derive(Default)]
pub struct UsdtOptions<'a> {
    pub binary: &'a str,
    pub provider: &'a str,
    pub name: &'a str,
    /// Only this process.
    pub pid: Option<i32>,
    /// What `bpf_usdt_cookie()` returns.
    pub cookie: u64,
    /// One perf uprobe per site even where uprobe_multi exists (comparisons, tests).
    pub force_fallback: bool,
    /// Fill `__bpf_usdt_ip_to_spec_id` as on kernels without BPF cookies, even where they
    /// exist (tests, with an object that looks its specs up by address).
    pub force_address_lookup: bool,
    /// Called as the per-site fallback attaches (done, total); `false` stops it.
    pub progress: Option<crate::attach::multi::Progress<'a>>,
}

/// Which spec ids of one `__bpf_usdt_specs` map are taken, shared by the object's links.
#[derive(Default)]
pub struct SpecSlots(Mutex<Vec<bool>>);

impl SpecSlots {
    fn take(&self, count: usize, capacity: usize) -> Result<Vec<u32>> {
        let mut used = self
            .0
            .lock()
            .map_err(|_| Error::new(Code::Internal, "spec slots poisoned"))?;
        let len = capacity.max(used.len());
        used.resize(len, false);
        let free: Vec<u32> = (0..capacity)
            .filter(|&i| !used[i])
            .take(count)
            .map(|i| i as u32)
            .collect();
        if free.len() < count {
            return Err(Error::new(
                Code::Busy,
                format!(
                    "{SPECS_MAP} has {capacity} slots and {} are free; this attach needs {count} \
                     (define BPF_USDT_MAX_SPEC_CNT larger before including usdt.bpf.h, or set \
                     the map's max_entries)",
                    capacity - used.iter().take(capacity).filter(|&&u| u).count()
                ),
            ));
        }
        for &i in &free {
            used[i as usize] = true;
        }
        Ok(free)
    }

    fn release(&self, ids: &[u32]) {
        if let Ok(mut used) = self.0.lock() {
            for &i in ids {
                if let Some(u) = used.get_mut(i as usize) {
                    *u = false;
                }
            }
        }
    }
}

/// What a USDT link holds besides its uprobes: its spec ids (free again once detached) and
/// the address-to-spec entries it added (removed on detach). Dropped after the uprobes.
struct SpecLease {
    slots: Arc<SpecSlots>,
    ids: Vec<u32>,
    /// A duplicate of `__bpf_usdt_ip_to_spec_id`'s fd, with the keys this link added.
    ip_entries: Option<(OwnedFd, Vec<u64>)>,
}

impl Drop for SpecLease {
    fn drop(&mut self) {
        if let Some((fd, keys)) = &self.ip_entries {
            for key in keys {
                let mut attr = sys::MapElemAttr {
                    map_fd: fd.as_raw_fd() as u32,
                    key: sys::ptr(key as *const u64),
                    ..Default::default()
                };
                // Nothing to do about a failure here: the entry is stale, not harmful.
                drop(sys::bpf(sys::BPF_MAP_DELETE_ELEM, &mut attr));
            }
        }
        self.slots.release(&self.ids);
    }
}

/// `SEC("usdt/<binary>:<provider>:<name>")`, as libbpf auto-attaches it.
pub fn attach_auto(obj: &Object, prog: &Program) -> Result<MultiLink> {
    let target = prog.spec.target.as_deref().unwrap_or("");
    let mut parts = target.rsplitn(3, ':');
    let (Some(name), Some(provider), Some(binary)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(einval(format!(
            "program '{}': SEC(\"{}\") does not name a probe (usdt/<binary>:<provider>:<name>); \
             use attachUsdt",
            prog.name, prog.section
        )));
    };
    attach_usdt(
        obj,
        prog,
        &UsdtOptions {
            binary,
            provider,
            name,
            ..Default::default()
        },
    )
}

pub fn attach_usdt(obj: &Object, prog: &Program, o: &UsdtOptions<'_>) -> Result<MultiLink> {
    let probe_name = format!("{}:{}", o.provider, o.name);
    let path = resolve_binary(o.binary, o.pid)?;
    let notes = note::read(&path)?;
    if Arch::host() != Some(notes.arch) {
        return Err(unsupported(format!(
            "{} is a {:?} binary; its probes cannot run on this machine",
            path.display(),
            notes.arch
        )));
    }
    let sites: Vec<&note::Probe> = notes
        .probes
        .iter()
        .filter(|p| p.provider == o.provider && p.name == o.name)
        .collect();
    if sites.is_empty() {
        return Err(no_such_probe(&path, &probe_name, &notes.probes));
    }

    // An object built without usdt.bpf.h (bcc's javagc reads no arguments) has no spec
    // map: its sites get the user's cookie as their BPF cookie.
    let (cookies, lease) = match specs_map(obj)? {
        Some((specs, layout)) => {
            let (ids, lease) = publish_specs(obj, (specs, layout), &path, &notes, &sites, o)?;
            (ids, Some(lease))
        }
        None => (vec![o.cookie; sites.len()], None),
    };
    let targets: Vec<Target> = sites
        .iter()
        .zip(cookies)
        .map(|(s, cookie)| Target {
            name: probe_name.clone(),
            address: s.offset,
            cookie,
        })
        .collect();
    let semaphores: HashMap<u64, u64> = sites.iter().map(|s| (s.offset, s.semaphore)).collect();

    let mut link = if features().uprobe_multi && !o.force_fallback {
        attach_multi(prog, &path, targets, &semaphores, o.pid)?
    } else {
        attach_per_site(prog, &path, targets, &semaphores, o)?
    };
    if let Some(lease) = lease {
        // What the program sees through bpf_usdt_cookie(), rather than the internal spec id.
        for t in &mut link.targets {
            t.cookie = o.cookie;
        }
        link.keep(Box::new(lease));
    }
    link.path = Some(path);
    Ok(link)
}

/// Writes one `__bpf_usdt_spec` per distinct argument list of the sites (they often share
/// one) into free slots of the spec map, and, without BPF cookies, each site's address
/// into `__bpf_usdt_ip_to_spec_id`. Returns each site's spec id, and the lease that frees
/// all this on detach.
fn publish_specs(
    obj: &Object,
    (specs, layout): (&Map, &SpecLayout),
    path: &Path,
    notes: &note::Notes,
    sites: &[&note::Probe],
    o: &UsdtOptions<'_>,
) -> Result<(Vec<u64>, SpecLease)> {
    let probe_name = format!("{}:{}", o.provider, o.name);
    let mut distinct: Vec<Vec<ArgSpec>> = Vec::new();
    let mut spec_of_site = Vec::new();
    for p in sites {
        let args = parse_args(notes.arch, &probe_name, &p.args)?;
        if !layout.can_read(&args) {
            return Err(unsupported(format!(
                "USDT probe {probe_name} has a base+index*scale argument ('{}'), which the \
                 object's <bpf/usdt.bpf.h> cannot read: it predates libbpf 1.7 (its \
                 {SPECS_MAP} values are {} bytes); build the object with libbpf 1.7's headers",
                p.args, layout.size
            )));
        }
        spec_of_site.push(match distinct.iter().position(|d| *d == args) {
            Some(i) => i,
            None => {
                distinct.push(args);
                distinct.len() - 1
            }
        });
    }
    let ip_keys = if features().bpf_cookie && !o.force_address_lookup {
        None
    } else {
        Some(absolute_addresses(path, notes, sites, o.pid)?)
    };

    let slots = specs.usdt_slots.clone();
    let ids = slots.take(distinct.len(), specs.max_entries as usize)?;
    let mut lease = SpecLease {
        slots,
        ids,
        ip_entries: None,
    };
    for (args, &id) in distinct.iter().zip(&lease.ids) {
        specs.update(&id.to_ne_bytes(), &layout.encode(args, o.cookie), 0)?;
    }
    let site_ids: Vec<u32> = spec_of_site.iter().map(|&i| lease.ids[i]).collect();
    if let Some(keys) = ip_keys {
        lease.ip_entries = Some(fill_ip_map(obj, &site_ids, keys)?);
    }
    Ok((site_ids.into_iter().map(u64::from).collect(), lease))
}

/// The object's `__bpf_usdt_specs`, and the layout of its values, by their size.
fn specs_map(obj: &Object) -> Result<Option<(&Map, &'static SpecLayout)>> {
    let Ok(specs) = obj.map(SPECS_MAP) else {
        return Ok(None);
    };
    match SpecLayout::of_value_size(specs.value_size) {
        Some(layout) if specs.key_size == 4 => Ok(Some((specs, layout))),
        _ => Err(bad_object(format!(
            "{SPECS_MAP} has {}-byte keys and {}-byte values; the versions of usdt.bpf.h \
             this library knows have 4-byte keys and {}- or {}-byte values",
            specs.key_size,
            specs.value_size,
            args::LAYOUT_CLASSIC.size,
            args::LAYOUT_SIB.size
        ))),
    }
}

fn no_such_probe(path: &Path, wanted: &str, probes: &[note::Probe]) -> Error {
    let mut names: Vec<String> = probes
        .iter()
        .map(|p| format!("{}:{}", p.provider, p.name))
        .collect();
    names.sort();
    names.dedup();
    let listing = if names.is_empty() {
        "it has no USDT probes (no .note.stapsdt)".to_string()
    } else {
        const SHOWN: usize = 20;
        let more = names.len().saturating_sub(SHOWN);
        let mut s = format!("its probes: {}", names[..names.len().min(SHOWN)].join(", "));
        if more > 0 {
            s += &format!(" and {more} more");
        }
        s
    };
    enoent(format!(
        "no USDT probe {wanted} in {}; {listing}",
        path.display()
    ))
}

/// Without BPF cookies the program looks its spec up by the probe's address in the
/// process: the note's address for a fixed-address executable, else the library's or
/// PIE's mapping in one process (so a pid is needed, as in libbpf).
fn absolute_addresses(
    path: &Path,
    notes: &note::Notes,
    sites: &[&note::Probe],
    pid: Option<i32>,
) -> Result<Vec<u64>> {
    if notes.fixed_address {
        return Ok(sites.iter().map(|s| s.address).collect());
    }
    let Some(pid) = pid else {
        return Err(unsupported(format!(
            "{} is position-independent and this kernel has no BPF cookies (features().bpfCookie \
             is false; Linux 5.15+): attach its USDT probes with a pid",
            path.display()
        )));
    };
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(path)
        .map_err(|e| Error::os(format!("reading {}", path.display()), e))?
        .ino();
    let maps_path = format!("/proc/{pid}/maps");
    let maps = std::fs::read_to_string(&maps_path)
        .map_err(|e| Error::os(format!("reading {maps_path}"), e))?;
    sites
        .iter()
        .map(|s| {
            mapped_address(&maps, inode, s.offset).ok_or_else(|| {
                enoent(format!(
                    "process {pid} has not mapped the code of {} at file offset {:#x}",
                    path.display(),
                    s.offset
                ))
            })
        })
        .collect()
}

/// The address file offset `offset` of the file with `inode` is mapped at, from the text
/// of `/proc/PID/maps` (`start-end perms offset dev inode path`).
fn mapped_address(maps: &str, inode: u64, offset: u64) -> Option<u64> {
    maps.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (range, _perms, off, _dev, ino) =
            (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        if ino.parse::<u64>().ok()? != inode {
            return None;
        }
        let (start, end) = range.split_once('-')?;
        let start = u64::from_str_radix(start, 16).ok()?;
        let end = u64::from_str_radix(end, 16).ok()?;
        let off = u64::from_str_radix(off, 16).ok()?;
        (offset >= off && offset - off < end - start).then(|| start + (offset - off))
    })
}

/// Adds (address, spec id) per site; the keys added, with a duplicate of the map's fd
/// for removing them on detach.
fn fill_ip_map(obj: &Object, site_ids: &[u32], keys: Vec<u64>) -> Result<(OwnedFd, Vec<u64>)> {
    let map = obj.map(IP_MAP).map_err(|_| {
        einval(format!(
            "this kernel has no BPF cookies and the object has no {IP_MAP} map to find USDT \
             specs by address"
        ))
    })?;
    let fd = map
        .fd()
        .try_clone_to_owned()
        .map_err(|e| Error::os(format!("duplicating the fd of {IP_MAP}"), e))?;
    let mut added = Vec::new();
    for (&id, key) in site_ids.iter().zip(keys) {
        // A site another attach already claimed would run with that attach's spec.
        if let Err(e) = map.update(&key.to_ne_bytes(), &id.to_ne_bytes(), sys::BPF_NOEXIST) {
            let mut e = if e.errno == Some(libc::EEXIST) {
                Error::new(
                    Code::Busy,
                    format!("USDT probe at {key:#x} is already attached through this object"),
                )
            } else {
                e
            };
            e.message += "; nothing was attached";
            for k in &added {
                drop(map.delete(&u64::to_ne_bytes(*k)));
            }
            return Err(e);
        }
        added.push(key);
    }
    Ok((fd, added))
}

fn attach_multi(
    prog: &Program,
    path: &Path,
    targets: Vec<Target>,
    semaphores: &HashMap<u64, u64>,
    pid: Option<i32>,
) -> Result<MultiLink> {
    let own = instance_for(prog, sys::BPF_TRACE_UPROBE_MULTI)?;
    let prog_fd = own
        .as_ref()
        .map_or_else(|| prog.fd(), |f| Ok(f.as_fd()))?
        .as_raw_fd();
    let cpath = path_cstring(path)?;
    let what = format!("attaching USDT probes (uprobe_multi) in {}", path.display());
    let mut skipped = Vec::new();
    let (targets, links) = attach_targets(targets, &mut skipped, true, &mut |t, idx| {
        let offsets: Vec<u64> = idx.iter().map(|&i| t[i].address).collect();
        let ref_ctrs: Vec<u64> = offsets.iter().map(|o| semaphores[o]).collect();
        let cookies: Vec<u64> = idx.iter().map(|&i| t[i].cookie).collect();
        let mut attr = LinkCreateAttr::new(prog_fd, 0, sys::BPF_TRACE_UPROBE_MULTI);
        attr.u[0] = sys::ptr(cpath.as_ptr());
        attr.u[1] = sys::ptr(offsets.as_ptr());
        attr.u[2] = sys::ptr(ref_ctrs.as_ptr());
        attr.u[3] = sys::ptr(cookies.as_ptr());
        attr.u[4] = offsets.len() as u64;
        attr.u[5] = pid.unwrap_or(0) as u32 as u64;
        link_create(&mut attr, &what)
    })?;
    Ok(MultiLink::new("uprobe_multi", targets, skipped)
        .with_links(links)
        .with_program(prog_fd, own))
}

fn attach_per_site(
    prog: &Program,
    path: &Path,
    targets: Vec<Target>,
    semaphores: &HashMap<u64, u64>,
    o: &UsdtOptions<'_>,
) -> Result<MultiLink> {
    let own = instance_for(prog, 0)?;
    // Kernels before 5.15 take no cookie: usdt.bpf.h finds the spec by address there.
    let cookies = features().bpf_cookie;
    let prog_fd = own.as_ref().map_or_else(|| prog.fd(), |f| Ok(f.as_fd()))?;
    let binary = path.to_string_lossy();
    let link = attach_each("uprobes", targets, Vec::new(), true, o.progress, &mut |t| {
        attach_uprobe(
            prog_fd,
            &UprobeOptions {
                binary: &binary,
                symbol: None,
                offset: t.address,
                pid: o.pid,
                retprobe: false,
                cookie: cookies.then_some(t.cookie),
                ref_ctr_offset: semaphores[&t.address],
            },
        )
    })?;
    Ok(link.with_program(prog_fd.as_raw_fd(), own))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_and_given_back() {
        let s = SpecSlots::default();
        assert_eq!(s.take(2, 4).expect("two"), [0, 1]);
        assert_eq!(s.take(1, 4).expect("one"), [2]);
        let e = s.take(2, 4).unwrap_err();
        assert_eq!(e.code, Code::Busy);
        s.release(&[0, 1]);
        assert_eq!(s.take(3, 4).expect("three"), [0, 1, 3]);
    }

    #[test]
    fn maps_lines() {
        let maps = "55d0c0000000-55d0c0001000 r--p 00000000 08:01 1234 /t\n\
                    55d0c0001000-55d0c0002000 r-xp 00001000 08:01 1234 /t\n\
                    7f0000000000-7f0000001000 r-xp 00000000 08:01 99 /other\n";
        assert_eq!(mapped_address(maps, 1234, 0x1130), Some(0x55d0c0001130));
        assert_eq!(mapped_address(maps, 1234, 0x2130), None);
        assert_eq!(mapped_address(maps, 99, 0x10), Some(0x7f0000000010));
    }
}
