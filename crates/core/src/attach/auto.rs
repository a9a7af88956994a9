//! `attach()` from the SEC() name, like libbpf's `bpf_program__attach`.

use std::path::Path;

use super::kprobe_multi::{attach_kprobe_multi, KprobeMultiOptions};
use super::multi::MultiLink;
use super::perf_event::{
    attach_kprobe, attach_tracepoint, attach_uprobe, KprobeOptions, UprobeOptions,
};
use super::raw_tracepoint::attach_raw_tracepoint;
use super::tracing::attach_tracing;
use super::tracing_multi::{attach_tracing_multi, TracingMultiOptions};
use super::uprobe_multi::{attach_uprobe_multi, UprobeMultiOptions};
use super::Link;
use crate::error::{einval, Result};
use crate::loader::section::AttachKind;
use crate::program::Program;
use crate::symbols::pattern::Selection;

pub fn attach_auto(prog: &Program, btf_path: Option<&Path>) -> Result<Link> {
    let needs_target = || {
        einval(format!(
            "program '{}': SEC(\"{}\") names no attach target; use an explicit attach call",
            prog.name, prog.section
        ))
    };
    let target = prog.spec.target.as_deref();
    match prog.spec.kind {
        AttachKind::Tracepoint => {
            let t = target.ok_or_else(needs_target)?;
            let (cat, name) = t.split_once('/').ok_or_else(|| {
                einval(format!(
                    "SEC(\"{}\"): expected tp/<category>/<name>",
                    prog.section
                ))
            })?;
            attach_tracepoint(prog.fd()?, cat, name, None)
        }
        AttachKind::RawTracepoint => {
            attach_raw_tracepoint(prog.fd()?, target.ok_or_else(needs_target)?)
        }
        AttachKind::Kprobe { ret } => {
            let (symbol, offset) = split_offset(target.ok_or_else(needs_target)?)?;
            attach_kprobe(
                prog.fd()?,
                &KprobeOptions {
                    symbol,
                    offset,
                    retprobe: ret,
                    cookie: None,
                },
            )
        }
        AttachKind::Ksyscall { ret } => {
            let name = target.ok_or_else(needs_target)?;
            // The syscall's kernel function, as libbpf resolves it: the arch wrapper where
            // syscalls have them, else `sys_NAME`.
            let prefix = crate::symbols::kernel::syscall_wrapper_prefix().unwrap_or("sys_");
            let symbol = format!("{prefix}{name}");
            let mut link = attach_kprobe(
                prog.fd()?,
                &KprobeOptions {
                    symbol: &symbol,
                    offset: 0,
                    retprobe: ret,
                    cookie: None,
                },
            )?;
            link.kind = if ret { "kretsyscall" } else { "ksyscall" };
            Ok(link)
        }
        AttachKind::Uprobe { ret } => {
            let t = target.ok_or_else(needs_target)?;
            let (binary, func) = t.rsplit_once(':').ok_or_else(|| {
                einval(format!(
                    "SEC(\"{}\"): expected uprobe/<binary>:<function>[+offset]",
                    prog.section
                ))
            })?;
            let (symbol, offset) = split_offset(func)?;
            // A bare number is an offset into the file, as in libbpf.
            let (symbol, offset) = match parse_number(symbol) {
                Some(off) => (None, off + offset),
                None => (Some(symbol), offset),
            };
            attach_uprobe(
                prog.fd()?,
                &UprobeOptions {
                    binary,
                    symbol,
                    offset,
                    pid: None,
                    retprobe: ret,
                    cookie: None,
                    ref_ctr_offset: 0,
                },
            )
        }
        AttachKind::TpBtf
        | AttachKind::Fentry
        | AttachKind::Fexit
        | AttachKind::FmodRet
        | AttachKind::Fsession
        | AttachKind::Lsm => attach_tracing(prog, None, None, btf_path),
        AttachKind::KprobeMulti { .. }
        | AttachKind::KprobeSession
        | AttachKind::UprobeMulti { .. }
        | AttachKind::UprobeSession
        | AttachKind::FentryMulti
        | AttachKind::FexitMulti
        | AttachKind::FsessionMulti => Err(einval(format!(
            "program '{}': SEC(\"{}\") attaches many targets: use attach_multi_auto",
            prog.name, prog.section
        ))),
        AttachKind::Usdt => Err(einval(format!(
            "program '{}': SEC(\"{}\") attaches every site of a USDT probe: use usdt::attach_auto",
            prog.name, prog.section
        ))),
        AttachKind::Iter => super::iter::attach_iter(prog, None),
        AttachKind::Freplace => super::freplace::attach_freplace(prog, None, None),
        AttachKind::Other if prog.spec.prog_type == crate::sys::BPF_PROG_TYPE_PERF_EVENT => {
            Err(einval(format!(
                "program '{}': SEC(\"{}\") programs run on sampling perf events: attach with \
                 attachPerfEvent({{ event, frequency | period }})",
                prog.name, prog.section
            )))
        }
        AttachKind::Other | AttachKind::LsmCgroup => Err(einval(format!(
            "program '{}': SEC(\"{}\") programs are not attached to a trace point; \
             nodebpf loads them but cannot auto-attach them",
            prog.name, prog.section
        ))),
    }
}

/// `attach()` for the batch kinds: `kprobe.multi/PATTERN`, `kretprobe.multi/PATTERN`,
/// `kprobe.session/PATTERN`, `uprobe.multi/BINARY:PATTERN` (and `uretprobe.`, `.session`),
/// `fentry.multi/PATTERN`, `fexit.multi/PATTERN`, `fsession.multi/PATTERN`.
pub fn attach_multi_auto(prog: &Program, btf_path: Option<&Path>) -> Result<MultiLink> {
    let target = prog.spec.target.as_deref().ok_or_else(|| {
        einval(format!(
            "program '{}': SEC(\"{}\") names no attach target; use an explicit attach call",
            prog.name, prog.section
        ))
    })?;
    let glob = || Some(Selection::Glob(target.to_string()));
    match prog.spec.kind {
        AttachKind::KprobeMulti { .. } | AttachKind::KprobeSession => {
            let session = prog.spec.kind == AttachKind::KprobeSession;
            let ret = prog.spec.kind == AttachKind::KprobeMulti { ret: true };
            attach_kprobe_multi(
                prog,
                &KprobeMultiOptions {
                    selection: glob(),
                    addresses: None,
                    cookies: None,
                    retprobe: ret,
                    session,
                    module: None,
                    strict: false,
                    fallback: true,
                    force_fallback: false,
                    progress: None,
                },
            )
        }
        AttachKind::UprobeMulti { .. } | AttachKind::UprobeSession => {
            let ret = prog.spec.kind == AttachKind::UprobeMulti { ret: true };
            let (binary, pattern) = target.rsplit_once(':').ok_or_else(|| {
                einval(format!(
                    "SEC(\"{}\"): expected uprobe.multi/<binary>:<pattern>",
                    prog.section
                ))
            })?;
            let session = prog.spec.kind == AttachKind::UprobeSession;
            attach_uprobe_multi(
                prog,
                &UprobeMultiOptions {
                    binary,
                    selection: Some(Selection::Glob(pattern.to_string())),
                    offsets: None,
                    pid: None,
                    cookies: None,
                    retprobe: ret,
                    session,
                    include_clones: false,
                    fallback: true,
                    force_fallback: false,
                    progress: None,
                },
            )
        }
        AttachKind::FentryMulti | AttachKind::FexitMulti | AttachKind::FsessionMulti => {
            attach_tracing_multi(
                prog,
                &TracingMultiOptions {
                    selection: glob(),
                    btf_ids: None,
                    module: None,
                    cookies: None,
                    fallback: true,
                    force_fallback: false,
                    btf_path,
                    progress: None,
                },
            )
        }
        _ => Err(einval(format!(
            "program '{}': SEC(\"{}\") is not a batch attach kind",
            prog.name, prog.section
        ))),
    }
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s
            .parse()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit())),
    }
}

/// "name+0x10" → ("name", 16).
fn split_offset(s: &str) -> Result<(&str, u64)> {
    match s.rsplit_once('+') {
        Some((name, off)) => {
            let off = parse_number(off).ok_or_else(|| einval(format!("bad offset in '{s}'")))?;
            Ok((name, off))
        }
        None => Ok((s, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(split_offset("vfs_read").unwrap(), ("vfs_read", 0));
        assert_eq!(split_offset("vfs_read+0x10").unwrap(), ("vfs_read", 16));
        assert_eq!(split_offset("f+12").unwrap(), ("f", 12));
        assert!(split_offset("f+zz").is_err());
        assert_eq!(parse_number("0x1f"), Some(31));
        assert_eq!(parse_number("main"), None);
    }
}
