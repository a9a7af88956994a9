//! fentry/fexit/fmod_ret/tp_btf/lsm: BTF-targeted tracing links. The target is fixed
//! when the program is loaded, so attaching elsewhere than the SEC() target loads a
//! fresh instance of the program that the link then owns.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use super::{link_create, Link};
use crate::error::{einval, Result};
use crate::loader::section::AttachKind;
use crate::program::Program;
use crate::sys::LinkCreateAttr;

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
    let mut attr = LinkCreateAttr::new(prog_fd.as_raw_fd(), 0, prog.spec.expected_attach_type);
    // `tracing.cookie` follows the 4-byte target_btf_id and its padding.
    attr.u[1] = cookie.unwrap_or(0);
    let fd = link_create(&mut attr, &format!("attaching {kind_name} to {target}"))?;
    let mut link = Link::new(kind_name, target.to_string(), fd);
    link.cookie = cookie;
    link._program = own_instance;
    Ok(link)
}
