//! `iter/…` programs (BPF iterators, libbpf's `bpf_program__attach_iter` and
//! `bpf_iter_create`): a `BPF_TRACE_ITER` link, from which each `BPF_ITER_CREATE` makes a
//! fresh file whose reads run the program over the kernel objects (tasks, map elements…)
//! and return what it printed with `bpf_seq_printf`.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{link_create, Link};
use crate::error::{einval, Error, Result};
use crate::loader::section::AttachKind;
use crate::program::Program;
use crate::sys::{self, IterCreateAttr, LinkCreateAttr};

/// The iterators that walk a map given at attach time (`bpf_iter_link_info.map`).
const MAP_ITERATORS: &[&str] = &["bpf_map_elem", "bpf_sk_storage_map", "sockmap"];

/// Attaches an iterator program; `map` is the map a `iter/bpf_map_elem` (or
/// `iter/bpf_sk_storage_map`…) program walks.
pub fn attach_iter(prog: &Program, map: Option<BorrowedFd<'_>>) -> Result<Link> {
    if prog.spec.kind != AttachKind::Iter {
        return Err(einval(format!(
            "program '{}' (SEC \"{}\") is not an iter/… program",
            prog.name, prog.section
        )));
    }
    let target = prog.spec.target.clone().unwrap_or_default();
    if MAP_ITERATORS.contains(&target.as_str()) != map.is_some() {
        return Err(einval(if map.is_some() {
            format!(
                "iterator {target} (program '{}') walks no map: give none",
                prog.name
            )
        } else {
            format!(
                "iterator {target} (program '{}') walks a map: give one",
                prog.name
            )
        }));
    }
    // `union bpf_iter_link_info`: its first member is `struct { __u32 map_fd; } map`.
    let map_fd: u32 = map.map_or(0, |m| m.as_raw_fd() as u32);
    let mut attr = LinkCreateAttr::new(prog.fd()?.as_raw_fd(), 0, sys::BPF_TRACE_ITER);
    if map.is_some() {
        attr.u[0] = sys::ptr(&map_fd);
        attr.u[1] = size_of_val(&map_fd) as u64;
    }
    let fd = link_create(&mut attr, &format!("attaching iterator {target}"))?;
    Ok(Link::new("iter", target, fd))
}

/// A new iteration over `link` (an iter link): read it to its end.
pub fn create_iter(link: &Link) -> Result<OwnedFd> {
    if link.kind != "iter" {
        return Err(einval(format!(
            "{} {} is not an iterator link",
            link.kind, link.target
        )));
    }
    let mut attr = IterCreateAttr {
        link_fd: link.fd().as_raw_fd() as u32,
        flags: 0,
    };
    sys::bpf_fd(sys::BPF_ITER_CREATE, &mut attr)
        .map_err(|e| Error::os(format!("creating an iteration of {}", link.target), e))
}

/// Reads the next bytes of an iteration into `buf`; 0 at its end.
pub fn read_iter(iter: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    loop {
        // SAFETY: `buf` is writable for its length; `iter` is a live fd.
        let n = unsafe { libc::read(iter.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::os("reading an iterator", err));
        }
    }
}
