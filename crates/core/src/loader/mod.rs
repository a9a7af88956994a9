//! The loader: ELF → aya-obj parse → globals → BTF fixup/load → CO-RE → maps →
//! map/call relocation → our own `BPF_PROG_LOAD` for every program.
//! See crates/core/README.md for why the program-load step is ours.

pub mod elf_names;
mod kfuncs;
pub mod section;

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aya::maps::MapData;
use aya_obj::btf::BtfFeatures;
use aya_obj::maps::PinningType;
use aya_obj::EbpfSectionKind;
use aya_obj::Features;

use crate::error::{bad_object, enoent, Code, Error, Result};
use crate::maps::{path_cstring, Map};
use crate::program::{BtfTarget, Program, ProgramParts};
use crate::sys::{self, BtfLoadAttr};

#[derive(Debug, Clone)]
pub enum GlobalValue {
    /// Raw bytes, exactly the variable's size.
    Bytes(Vec<u8>),
    /// An integer, stored little-endian at the variable's width (two's complement).
    Int(i128),
}

#[derive(Default, Clone)]
pub struct LoadOptions {
    /// `.rodata`/`.data`/`.bss` globals by symbol name.
    pub globals: Vec<(String, GlobalValue)>,
    /// Kernel BTF for CO-RE and tracing targets (default `/sys/kernel/btf/vmlinux`).
    pub btf_path: Option<PathBuf>,
    /// bpffs folder for maps declared with `pinning = LIBBPF_PIN_BY_NAME`
    /// (default `/sys/fs/bpf`, like libbpf).
    pub pin_path: Option<PathBuf>,
}

pub struct Object {
    pub programs: Vec<Program>,
    pub maps: Vec<Map>,
    /// Kept for programs loaded later (on attach) and their func/line info.
    _btf_fd: Option<Arc<OwnedFd>>,
}

impl Object {
    pub fn program(&self, name: &str) -> Result<&Program> {
        self.programs
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.programs.iter().map(|p| p.name.as_str()).collect();
                enoent(format!(
                    "no program named '{name}' in the object; programs: {}",
                    names.join(", ")
                ))
            })
    }

    pub fn map(&self, name: &str) -> Result<&Map> {
        self.maps.iter().find(|m| m.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.maps.iter().map(|m| m.name.as_str()).collect();
            enoent(format!(
                "no map named '{name}' in the object; maps: {}",
                names.join(", ")
            ))
        })
    }
}

pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Object> {
    let data = std::fs::read(path)
        .map_err(|e| Error::os(format!("reading BPF object {}", path.display()), e))?;
    load(&data, opts)
}

pub fn load(data: &[u8], opts: &LoadOptions) -> Result<Object> {
    let (mut bytes, sections) = elf_names::prepare(data)?;
    kfuncs::link(&mut bytes, &|name| {
        let btf = crate::btf::kernel_btf(opts.btf_path.as_deref())?;
        Ok(btf
            .id_by_type_name_kind(name, aya_obj::btf::BtfKind::Func)
            .ok())
    })?;
    let globals = crate::globals::encode(
        &opts.globals,
        &sections.data_symbol_sizes,
        btf_section(&bytes).as_deref(),
    )?;
    let (mut obj, btf_fd) = parse_with_btf(&bytes, &globals)?;

    if obj.has_btf_relocations() {
        let target = crate::btf::kernel_btf(opts.btf_path.as_deref())?;
        obj.relocate_btf(&target)
            .map_err(|e| bad_object(format!("CO-RE relocation failed: {}", error_chain(&e))))?;
    }

    let mut maps = Vec::new();
    let mut map_objs = Vec::new();
    for (name, map_obj) in obj.maps.drain() {
        let map = create_map(&name, &map_obj, btf_fd.as_deref(), opts)?;
        map_objs.push((name, map_obj));
        maps.push(map);
    }
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    obj.relocate_maps(
        map_objs
            .iter()
            .zip(&maps)
            .map(|((name, map_obj), map)| (name.as_str(), map.fd().as_raw_fd(), map_obj)),
        &text_sections,
    )
    .map_err(|e| bad_object(format!("map relocation: {e}")))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| bad_object(format!("call relocation: {e}")))?;
    // Every helper aya-obj may rewrite (bpf_probe_read_kernel, 5.5) exists on the
    // kernels we support.
    obj.sanitize_functions(&Features::new(
        true, true, true, true, true, true, true, None,
    ));

    let mut programs = Vec::new();
    let mut names: Vec<_> = obj.programs.keys().cloned().collect();
    names.sort();
    for name in names {
        let Some(prog) = obj.programs.remove(&name) else {
            continue;
        };
        let section = sections
            .names
            .get(&prog.section_index)
            .cloned()
            .ok_or_else(|| bad_object(format!("program '{name}' has no section")))?;
        let spec = section::parse(&section)
            .ok_or_else(|| bad_object(format!("unknown program section '{section}'")))?;
        let function = obj
            .functions
            .get(&prog.function_key())
            .cloned()
            .ok_or_else(|| bad_object(format!("program '{name}' has no code")))?;
        let mut program = Program::new(ProgramParts {
            name,
            section,
            spec,
            function,
            license: prog.license.clone(),
            kern_version: prog.kernel_version.unwrap_or(0),
            btf_fd: btf_fd.clone(),
        });
        load_eagerly(&mut program, opts)?;
        programs.push(program);
    }
    Ok(Object {
        programs,
        maps,
        _btf_fd: btf_fd,
    })
}

/// Programs are loaded with the object, like libbpf, except BTF-targeted tracing programs
/// whose SEC() names no target (they wait for `attach_fentry` to say where), and
/// fentry/fexit/fsession.multi programs on kernels without tracing_multi (their fallback
/// loads one instance per function).
fn load_eagerly(program: &mut Program, opts: &LoadOptions) -> Result<()> {
    use section::AttachKind::{FentryMulti, FexitMulti, FsessionMulti};
    if matches!(program.spec.kind, FentryMulti | FexitMulti | FsessionMulti)
        && !crate::features::features().tracing_multi
    {
        return Ok(());
    }
    let target = if program.spec.kind.needs_btf_target() {
        match program.spec.target.clone() {
            None => return Ok(()),
            Some(t) => {
                let btf = crate::btf::kernel_btf(opts.btf_path.as_deref())?;
                crate::btf::tracing_target(&btf, program.spec.kind, &t)?
            }
        }
    } else {
        BtfTarget::default()
    };
    let fd = program.load_instance(&target)?;
    program.set_fd(fd);
    Ok(())
}

/// Parses the object, patches globals and loads its BTF into the kernel. BTF is first
/// loaded as is; a kernel that refuses it gets it again with every newer BTF kind
/// sanitized away (FUNC/DATASEC are older than any kernel we support).
fn parse_with_btf(
    bytes: &[u8],
    globals: &[(String, Vec<u8>)],
) -> Result<(aya_obj::Object, Option<Arc<OwnedFd>>)> {
    let mut last_err = None;
    for all_features in [true, false] {
        let mut obj = aya_obj::Object::parse(bytes)
            .map_err(|e| bad_object(format!("parsing the ELF object: {e}")))?;
        patch_globals(&mut obj, globals)?;
        let f = all_features;
        let btf_bytes = obj
            .fixup_and_sanitize_btf(&BtfFeatures::new(true, true, true, f, f, f, f, f))
            .map_err(|e| bad_object(format!("object BTF: {e}")))?
            .map(|btf| btf.to_bytes());
        let Some(btf_bytes) = btf_bytes else {
            return Ok((obj, None));
        };
        match load_btf(&btf_bytes) {
            Ok(fd) => return Ok((obj, Some(Arc::new(fd)))),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| bad_object("object BTF could not be loaded")))
}

/// The object's `.BTF` section, if it has one.
fn btf_section(elf: &[u8]) -> Option<Vec<u8>> {
    use object::{Object as _, ObjectSection as _};
    let file = object::File::parse(elf).ok()?;
    let data = file.section_by_name(".BTF")?.data().ok()?;
    Some(data.to_vec())
}

fn patch_globals(obj: &mut aya_obj::Object, globals: &[(String, Vec<u8>)]) -> Result<()> {
    if globals.is_empty() {
        return Ok(());
    }
    let globals: HashMap<&str, (&[u8], bool)> = globals
        .iter()
        .map(|(name, value)| (name.as_str(), (value.as_slice(), true)))
        .collect();
    obj.patch_map_data(globals).map_err(|e| match e {
        aya_obj::ParseError::SymbolNotFound { name } => {
            enoent(format!("global variable '{name}' is not in the object"))
        }
        other => Error::new(Code::Einval, format!("setting globals: {other}")),
    })
}

pub(crate) fn load_btf(bytes: &[u8]) -> Result<OwnedFd> {
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = BtfLoadAttr {
        btf: sys::ptr(bytes.as_ptr()),
        btf_size: bytes.len() as u32,
        ..Default::default()
    };
    if let Ok(fd) = sys::bpf_fd(sys::BPF_BTF_LOAD, &mut attr) {
        return Ok(fd);
    }
    attr.btf_log_buf = sys::ptr(log.as_mut_ptr());
    attr.btf_log_size = log.len() as u32;
    attr.btf_log_level = 1;
    sys::bpf_fd(sys::BPF_BTF_LOAD, &mut attr).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(0);
        let text = String::from_utf8_lossy(&log[..end]);
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        let mut err = Error::os("loading the object's BTF into the kernel", e);
        if !tail.is_empty() {
            err.message.push_str(&format!(
                "; BTF log: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        err
    })
}

fn create_map(
    name: &str,
    map_obj: &aya_obj::Map,
    btf_fd: Option<&OwnedFd>,
    opts: &LoadOptions,
) -> Result<Map> {
    use std::os::fd::AsFd;
    let create = || {
        MapData::create(map_obj.clone(), name, btf_fd.map(|f| f.as_fd()))
            .map_err(|e| map_error(name, e))
    };
    let (data, pinned) = match map_obj.pinning() {
        PinningType::ByName => {
            let dir = opts.pin_path.as_deref().unwrap_or(Path::new("/sys/fs/bpf"));
            let path = dir.join(name);
            if path.exists() {
                let fd = sys::obj_get(&path_cstring(&path)?)
                    .map_err(|e| Error::os(format!("opening pinned map {}", path.display()), e))?;
                let data = MapData::from_fd(fd).map_err(|e| map_error(name, e))?;
                return Ok(Map::new(name.to_string(), map_obj, data, Some(path)));
            }
            (create()?, Some(path))
        }
        PinningType::None => (create()?, None),
    };
    let map = Map::new(name.to_string(), map_obj, data, pinned.clone());
    initialize(&map, map_obj)?;
    if let Some(path) = &pinned {
        map.pin(path)?;
    }
    Ok(map)
}

/// Writes the initial contents of `.data`/`.rodata` and freezes `.rodata`.
fn initialize(map: &Map, map_obj: &aya_obj::Map) -> Result<()> {
    if !map_obj.data().is_empty() {
        map.update(&0u32.to_ne_bytes(), map_obj.data(), 0)?;
    }
    if map_obj.section_kind() == EbpfSectionKind::Rodata {
        sys::map_freeze(map.fd().as_raw_fd())
            .map_err(|e| Error::os(format!("freezing map '{}'", map.name), e))?;
    }
    Ok(())
}

fn map_error(name: &str, e: aya::maps::MapError) -> Error {
    match e {
        aya::maps::MapError::CreateError { io_error, .. } => {
            Error::os(format!("creating map '{name}'"), io_error)
        }
        other => Error::new(Code::Einval, format!("map '{name}': {other}")),
    }
}

/// "outer: inner: innermost" — aya-obj's errors keep the useful part in their sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
