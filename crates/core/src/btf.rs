//! Kernel BTF: the target of CO-RE relocations and where tracing programs find the
//! BTF ids of the functions they attach to. Parsed once per path per process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use aya_obj::btf::{Btf, BtfKind};
use object::Endianness;

use crate::error::{enoent, Code, Error, Result};
use crate::loader::section::AttachKind;
use crate::program::BtfTarget;

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

pub fn kernel_btf(path: Option<&Path>) -> Result<Arc<Btf>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<Btf>>>> = OnceLock::new();
    let path = path.unwrap_or(Path::new(VMLINUX)).to_path_buf();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(btf) = cache.lock().ok().and_then(|c| c.get(&path).cloned()) {
        return Ok(btf);
    }
    let btf = Btf::parse_file(&path, Endianness::default()).map_err(|e| {
        let code = if path.exists() {
            Code::BadObject
        } else {
            Code::Unsupported
        };
        Error::new(
            code,
            format!(
                "kernel BTF at {}: {e} (CO-RE and fentry need a kernel built with \
                 CONFIG_DEBUG_INFO_BTF, or pass btfPath)",
                path.display()
            ),
        )
    })?;
    let btf = Arc::new(btf);
    if let Ok(mut c) = cache.lock() {
        c.insert(path, btf.clone());
    }
    Ok(btf)
}

/// The BTF id that a tracing program of `kind` attaching to `name` needs, following
/// libbpf: `tp_btf/X` → typedef `btf_trace_X`, `lsm/X` → `bpf_lsm_X`, `iter/X` →
/// `bpf_iter_X`, fentry/fexit/fmod_ret → the function itself.
pub fn tracing_target(btf: &Btf, kind: AttachKind, name: &str) -> Result<BtfTarget> {
    let (type_name, btf_kind) = match kind {
        AttachKind::TpBtf => (format!("btf_trace_{name}"), BtfKind::Typedef),
        AttachKind::Lsm => (format!("bpf_lsm_{name}"), BtfKind::Func),
        AttachKind::Iter => (format!("bpf_iter_{name}"), BtfKind::Func),
        _ => (name.to_string(), BtfKind::Func),
    };
    let btf_id = btf
        .id_by_type_name_kind(&type_name, btf_kind)
        .map_err(|_| {
            enoent(format!(
                "kernel function '{name}' is not in the kernel's BTF (looked for {btf_kind:?} \
             '{type_name}' in vmlinux; module functions are not resolved yet)"
            ))
        })?;
    Ok(BtfTarget {
        btf_id,
        btf_obj_fd: None,
    })
}
