//! fentry/fexit/fmod_ret/tp_btf/lsm: BTF-targeted tracing links. The target is fixed
//! when the program is loaded, so attaching elsewhere than the SEC() target loads a
//! fresh instance of the program that the link then owns.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::Link;
use crate::error::{einval, Error, Result};
use crate::loader::section::AttachKind;
use crate::program::Program;
use crate::sys::{self, LinkCreateAttr, RawTpOpenAttr};

/// A tracing link for a loaded BTF-targeted program. `BPF_LINK_CREATE` takes tracing
/// programs from 5.13 on; before that (Debian 11's 5.10) it says EINVAL and
/// `BPF_RAW_TRACEPOINT_OPEN` without a name makes the same tracing link, as libbpf falls
/// back. That path has no cookie, so a cookie (other than 0, the kernel's default) keeps
/// the first error.
pub(crate) fn tracing_link(
    prog: BorrowedFd<'_>,
    attach_type: u32,
    cookie: Option<u64>,
) -> std::io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr::new(prog.as_raw_fd(), 0, attach_type);
    // `tracing.cookie` follows the 4-byte target_btf_id and its padding.
    attr.u[1] = cookie.unwrap_or(0);
    let err = match sys::bpf_fd(sys::BPF_LINK_CREATE, &mut attr) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let raw_tp_attaches = matches!(
        attach_type,
        sys::BPF_TRACE_RAW_TP
            | sys::BPF_TRACE_FENTRY
            | sys::BPF_TRACE_FEXIT
            | sys::BPF_MODIFY_RETURN
            | sys::BPF_LSM_MAC
    );
    if err.raw_os_error() != Some(libc::EINVAL) || cookie.unwrap_or(0) != 0 || !raw_tp_attaches {
        return Err(err);
    }
    let mut raw = RawTpOpenAttr {
        prog_fd: prog.as_raw_fd() as u32,
        ..Default::default()
    };
    sys::bpf_fd(sys::BPF_RAW_TRACEPOINT_OPEN, &mut raw)
}

pub fn attach_tracing(
    prog: &Program,
    function: Option<&str>,
    cookie: Option<u64>,
    btf_path: Option<&Path>,
) -> Result<Link> {
    let kind = prog.spec.kind;
    let kind_name = match kind {
        AttachKind::Fentry => "fentry",
        AttachKind::Fexit => "fexit",
        AttachKind::FmodRet => "fmod_ret",
        AttachKind::Fsession => "fsession",
        AttachKind::TpBtf => "tp_btf",
        AttachKind::Lsm => "lsm",
        _ => {
            return Err(einval(format!(
                "program '{}' (SEC \"{}\") is not an fentry/fexit/fmod_ret/tp_btf/lsm program",
                prog.name, prog.section
            )))
        }
    };
    let sec_target = prog.spec.target.as_deref();
    let target = function.or(sec_target).ok_or_else(|| {
        einval(format!(
            "program '{}' (SEC \"{}\") names no function: pass one",
            prog.name, prog.section
        ))
    })?;
    let own_instance = if prog.is_loaded() && sec_target == Some(target) {
        None
    } else {
        let btf = crate::btf::kernel_btf(btf_path)?;
        let t = crate::btf::tracing_target(&btf, kind, target)?;
        Some(prog.load_instance(&t)?)
    };
    let prog_fd = match &own_instance {
        Some(fd) => fd.as_fd(),
        None => prog.fd()?,
    };
    let fd = tracing_link(prog_fd, prog.spec.expected_attach_type, cookie)
        .map_err(|e| Error::os(format!("attaching {kind_name} to {target}"), e))?;
    let mut link = Link::new(kind_name, target.to_string(), fd);
    link.cookie = cookie;
    link._program = own_instance;
    Ok(link)
}
