//! freplace (`BPF_PROG_TYPE_EXT`): a program that takes the place of a global function of
//! another loaded BPF program, as libbpf's `bpf_program__set_attach_target(prog,
//! target_prog_fd, "func")` and `bpf_program__attach_freplace(prog, target_fd, "func")`.
//!
//! The function is named by its BTF id in the target program's BTF, which only the kernel
//! has at hand: `BPF_OBJ_GET_INFO_BY_FD` on the target gives its `btf_id`,
//! `BPF_BTF_GET_FD_BY_ID` that BTF, read back whole. The program is loaded for one target
//! (`attach_prog_fd`, `attach_btf_id`); its link (`BPF_LINK_CREATE` with the target's fd
//! and BTF id) may name that one or another function of the same prototype.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use super::{link_create, Link};
use crate::btf::kinds::KIND_FUNC;
use crate::btf_index::BtfIndex;
use crate::error::{einval, enoent, Error, Result};
use crate::loader::section::AttachKind;
use crate::program::{BtfTarget, Program};
use crate::sys::{self, LinkCreateAttr};

/// `BTF_FUNC_GLOBAL`, a FUNC's linkage (its `vlen`): only global functions are verified on
/// their own, so only they can be replaced.
const BTF_FUNC_GLOBAL: u32 = 1;

/// The kernel's own limit on a BTF object (`BTF_MAX_SIZE`): a larger size is not a BTF.
const MAX_BTF_SIZE: u32 = 16 << 20;

/// What `/proc/self/fd/N` links to for a BPF program.
const PROG_FD_LINK: &str = "anon_inode:bpf-prog";

/// A duplicate of `raw`, checked to be a BPF program: `param` names it in errors.
pub fn dup_prog_fd(param: &str, raw: i64) -> Result<OwnedFd> {
    let raw = i32::try_from(raw)
        .ok()
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| Error::range(param, raw, "0..=2^31-1"))?;
    let link = std::fs::read_link(format!("/proc/self/fd/{raw}"))
        .map_err(|e| Error::os(format!("{param}: fd {raw}"), e))?;
    if link.as_os_str() != PROG_FD_LINK {
        return Err(einval(format!(
            "{param}: fd {raw} is not a BPF program (it is {})",
            link.display()
        )));
    }
    // SAFETY: fcntl only reads the fd number; one that is not open fails with EBADF.
    let dup = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(Error::os(
            format!("{param}: duplicating fd {raw}"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a fresh fd from fcntl, owned by nobody else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) })
}

/// The target program's name as the kernel has it (15 bytes at most), for messages.
fn prog_name(info: &sys::ProgInfo) -> String {
    let len = info
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.name.len());
    String::from_utf8_lossy(&info.name[..len]).into_owned()
}

/// The BTF the target program was loaded with, as the kernel gives it back.
fn target_btf(target: BorrowedFd<'_>, function: &str) -> Result<(String, BtfIndex)> {
    let info: sys::ProgInfo = sys::obj_info(target.as_raw_fd())
        .map_err(|e| Error::os("freplace: reading the target program's info", e))?;
    let name = prog_name(&info);
    if info.btf_id == 0 || info.nr_func_info == 0 {
        return Err(einval(format!(
            "freplace of '{function}': target program '{name}' was loaded without BTF and \
             func info (build it with clang -g), so its functions cannot be named"
        )));
    }
    let mut attr = sys::IdAttr {
        id: info.btf_id,
        ..Default::default()
    };
    let btf = sys::bpf_fd(sys::BPF_BTF_GET_FD_BY_ID, &mut attr)
        .map_err(|e| Error::os(format!("freplace: opening program '{name}''s BTF"), e))?;
    let read = |buf: &mut [u8]| -> Result<u32> {
        let mut info = sys::BtfInfo {
            btf: sys::ptr(buf.as_mut_ptr()),
            btf_size: buf.len() as u32,
            ..Default::default()
        };
        let mut get = sys::InfoByFdAttr {
            bpf_fd: btf.as_raw_fd() as u32,
            info_len: std::mem::size_of::<sys::BtfInfo>() as u32,
            info: sys::ptr(&mut info as *mut sys::BtfInfo),
        };
        sys::bpf(sys::BPF_OBJ_GET_INFO_BY_FD, &mut get)
            .map_err(|e| Error::os(format!("freplace: reading program '{name}''s BTF"), e))?;
        Ok(info.btf_size)
    };
    // The first call says the size, the second fills a buffer of that size.
    let size = read(&mut [])?;
    if size > MAX_BTF_SIZE {
        return Err(einval(format!(
            "freplace: program '{name}''s BTF is {size} bytes, more than a BTF can be"
        )));
    }
    let mut data = vec![0u8; size as usize];
    read(&mut data)?;
    Ok((name, BtfIndex::parse(data)?))
}

/// The load target of an freplace program replacing `function` of `target`.
pub(crate) fn btf_target(target: &Arc<OwnedFd>, function: &str) -> Result<BtfTarget> {
    let (name, btf) = target_btf(target.as_fd(), function)?;
    let global = |id: u32| btf.view(id).is_some_and(|t| t.vlen == BTF_FUNC_GLOBAL);
    let btf_id = match btf.func_ids(function) {
        [id] if global(*id) => *id,
        [_] => {
            return Err(einval(format!(
                "freplace: '{function}' in program '{name}' is static: only global functions \
                 (not static, __noinline) can be replaced"
            )))
        }
        _ => {
            let globals: Vec<String> = (1..)
                .map_while(|id| btf.view(id).map(|t| (id, t.kind, t.name.to_vec())))
                .filter(|&(id, kind, _)| kind == KIND_FUNC && global(id))
                .map(|(_, _, n)| String::from_utf8_lossy(&n).into_owned())
                .collect();
            return Err(enoent(format!(
                "freplace: no function '{function}' in program '{name}''s BTF; its global \
                 functions: {}",
                globals.join(", ")
            )));
        }
    };
    Ok(BtfTarget {
        btf_id,
        target_prog: Some(target.clone()),
        ..Default::default()
    })
}

/// What an freplace program is loaded for with its object: its configured target program
/// and function, or `None` (loaded when attached) when either is missing.
pub(crate) fn load_target(prog: &Program) -> Result<Option<BtfTarget>> {
    match (&prog.attach_prog, prog.spec.target.as_deref()) {
        (Some(target), Some(function)) => btf_target(target, function).map(Some),
        _ => Ok(None),
    }
}

/// Attaches an freplace program in place of `function` of `target`, each defaulting to
/// what was configured (the function also to the SEC() name's). A program not loaded yet
/// is loaded for this target, and the link owns that instance.
pub fn attach_freplace(
    prog: &Program,
    target: Option<Arc<OwnedFd>>,
    function: Option<&str>,
) -> Result<Link> {
    if prog.spec.kind != AttachKind::Freplace {
        return Err(einval(format!(
            "program '{}' (SEC \"{}\") is not an freplace program",
            prog.name, prog.section
        )));
    }
    let target = target.or_else(|| prog.attach_prog.clone()).ok_or_else(|| {
        einval(format!(
            "freplace program '{}' has no target program: configure attachTarget {{ program }} \
             or pass one to attachFreplace",
            prog.name
        ))
    })?;
    let function = function.or(prog.spec.target.as_deref()).ok_or_else(|| {
        einval(format!(
            "freplace program '{}' (SEC \"{}\") names no function to replace: pass one",
            prog.name, prog.section
        ))
    })?;
    let t = btf_target(&target, function)?;
    // A loaded program may be linked to another function of the same prototype (the
    // kernel checks it again); one loaded for no target yet is loaded for this one.
    let own_instance = if prog.is_loaded() {
        None
    } else {
        Some(prog.load_instance(&t)?)
    };
    let prog_fd = match &own_instance {
        Some(fd) => fd.as_fd(),
        None => prog.fd()?,
    };
    let mut attr = LinkCreateAttr::new(
        prog_fd.as_raw_fd(),
        target.as_raw_fd(),
        prog.spec.expected_attach_type,
    );
    // `link_create.target_btf_id`: the first 4 bytes of the union (little-endian).
    attr.u[0] = u64::from(t.btf_id);
    let fd = link_create(
        &mut attr,
        &format!("attaching freplace in place of {function}"),
    )?;
    let mut link = Link::new("freplace", function.to_string(), fd);
    link._program = own_instance;
    Ok(link)
}
