//! Kernel BTF: the target of CO-RE relocations and where tracing programs find the
//! BTF ids of the functions they attach to. Parsed once per path per process.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use aya_obj::btf::{Btf, BtfKind};
use object::Endianness;

use crate::btf_index::BtfIndex;
use crate::error::{enoent, Code, Error, Result};
use crate::loader::section::AttachKind;
use crate::program::BtfTarget;
use crate::sys;

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
        AttachKind::Lsm | AttachKind::LsmCgroup => (format!("bpf_lsm_{name}"), BtfKind::Func),
        AttachKind::Iter => (format!("bpf_iter_{name}"), BtfKind::Func),
        _ => (name.to_string(), BtfKind::Func),
    };
    // libbpf's `module:function` names a module's function.
    if let Some((module, func)) = name.split_once(':') {
        return module_function(module, func);
    }
    if let Ok(btf_id) = btf.id_by_type_name_kind(&type_name, btf_kind) {
        return Ok(BtfTarget {
            btf_id,
            ..Default::default()
        });
    }
    // Like libbpf, look through the loaded modules after vmlinux.
    if btf_kind == BtfKind::Func {
        for module in loaded_modules() {
            if let Ok(t) = module_function(&module, &type_name) {
                return Ok(t);
            }
        }
    }
    Err(enoent(format!(
        "kernel function '{name}' is not in the kernel's BTF (looked for {btf_kind:?} \
         '{type_name}' in vmlinux and the loaded modules' BTF)"
    )))
}

/// Modules that publish BTF, by name.
fn loaded_modules() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/kernel/btf") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "vmlinux")
        .collect()
}

/// A module function as a tracing target: its id in the module's split BTF and the
/// module's BTF object.
fn module_function(module: &str, func: &str) -> Result<BtfTarget> {
    let index = BtfIndex::module(module)?;
    let &[btf_id] = index.func_ids(func) else {
        return Err(enoent(format!(
            "kernel function '{func}' is not in module '{module}''s BTF (or is there more than once)"
        )));
    };
    Ok(BtfTarget {
        btf_id,
        module_btf: Some(Arc::new(module_btf_fd(module)?)),
        ..Default::default()
    })
}

/// The fd of a kernel module's BTF object, for `attach_btf_obj_fd`: walks the kernel's
/// BTF objects for the one with that name.
pub fn module_btf_fd(module: &str) -> Result<OwnedFd> {
    let mut id = 0;
    let walk = |e| Error::os("listing the kernel's BTF objects", e);
    while let Some(next) = sys::next_id(sys::BPF_BTF_GET_NEXT_ID, id).map_err(walk)? {
        id = next;
        let mut attr = sys::IdAttr {
            id,
            ..Default::default()
        };
        // Objects can go away between the two calls.
        let Ok(fd) = sys::bpf_fd(sys::BPF_BTF_GET_FD_BY_ID, &mut attr) else {
            continue;
        };
        let mut name = [0u8; 64];
        let mut info = sys::BtfInfo {
            name: sys::ptr(name.as_mut_ptr()),
            name_len: name.len() as u32,
            ..Default::default()
        };
        let mut get = sys::InfoByFdAttr {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: std::mem::size_of::<sys::BtfInfo>() as u32,
            info: sys::ptr(&mut info as *mut sys::BtfInfo),
        };
        if sys::bpf(sys::BPF_OBJ_GET_INFO_BY_FD, &mut get).is_err() || info.kernel_btf == 0 {
            continue;
        }
        let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        if &name[..len] == module.as_bytes() {
            return Ok(fd);
        }
    }
    Err(enoent(format!(
        "kernel module '{module}' is not loaded or has no BTF object"
    )))
}

/// BTF kinds (the kernel's `BTF_KIND_*`): the one list every BTF reader here uses.
pub(crate) mod kinds {
    pub const KIND_INT: u32 = 1;
    pub const KIND_PTR: u32 = 2;
    pub const KIND_ARRAY: u32 = 3;
    pub const KIND_STRUCT: u32 = 4;
    pub const KIND_UNION: u32 = 5;
    pub const KIND_ENUM: u32 = 6;
    pub const KIND_FWD: u32 = 7;
    pub const KIND_TYPEDEF: u32 = 8;
    pub const KIND_VOLATILE: u32 = 9;
    pub const KIND_CONST: u32 = 10;
    pub const KIND_RESTRICT: u32 = 11;
    pub const KIND_FUNC: u32 = 12;
    pub const KIND_FUNC_PROTO: u32 = 13;
    pub const KIND_VAR: u32 = 14;
    pub const KIND_DATASEC: u32 = 15;
    pub const KIND_FLOAT: u32 = 16;
    pub const KIND_DECL_TAG: u32 = 17;
    pub const KIND_TYPE_TAG: u32 = 18;
    pub const KIND_ENUM64: u32 = 19;
}
