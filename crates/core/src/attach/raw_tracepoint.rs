use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::Link;
use crate::error::{einval, Code, Error, Result};
use crate::sys::{self, RawTpOpenAttr};

pub fn attach_raw_tracepoint(prog: BorrowedFd<'_>, name: &str) -> Result<Link> {
    let cname = CString::new(name).map_err(|_| einval("tracepoint name contains a NUL byte"))?;
    let mut attr = RawTpOpenAttr {
        name: sys::ptr(cname.as_ptr()),
        prog_fd: prog.as_raw_fd() as u32,
        ..Default::default()
    };
    let fd = sys::bpf_fd(sys::BPF_RAW_TRACEPOINT_OPEN, &mut attr).map_err(|e| {
        let mut err = Error::os(format!("attaching raw tracepoint {name}"), e);
        if err.code == Code::Enoent {
            err.message = format!("raw tracepoint '{name}' does not exist");
        }
        err
    })?;
    Ok(Link::new("raw_tracepoint", name.to_string(), fd))
}
