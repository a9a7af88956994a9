//! The loader: ELF → aya-obj parse → globals → BTF fixup/load → CO-RE → maps →
//! map/call relocation → our own `BPF_PROG_LOAD` for every program.
//! See crates/core/README.md for why the program-load step is ours.

mod configure;
mod core_matches;
pub mod elf_names;
mod hidden;
mod kconfig;
pub(crate) mod kfuncs;
pub mod section;
mod static_init;
pub mod validate;

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aya_obj::btf::BtfFeatures;
use aya_obj::maps::PinningType;
use aya_obj::EbpfSectionKind;
use aya_obj::Features;

use crate::btf_index::{BtfIndex, TypeDesc};
use crate::error::{bad_object, einval, enoent, Code, Error, Result};
use crate::map_create::{self, MapDef, BPF_F_MMAPABLE};
use crate::maps::{path_cstring, Map};
pub use crate::mmap::MapValue;
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
    /// Per map, by name, what to change before it is created (libbpf's
    /// `bpf_map__set_max_entries`).
    pub maps: HashMap<String, MapConfig>,
    /// Per program, by name, what to change before loading (libbpf's
    /// `bpf_program__set_autoload`).
    pub programs: HashMap<String, ProgramConfig>,
}

/// A map's configuration before it is created.
#[derive(Default, Clone, Debug)]
pub struct MapConfig {
    pub max_entries: Option<u32>,
    /// libbpf's `bpf_map__set_value_size` (e.g. a stack map sized for the stack depth).
    pub value_size: Option<u32>,
    /// libbpf's `bpf_map__set_map_flags`.
    pub flags: Option<u32>,
    /// libbpf's `bpf_map__set_numa_node`.
    pub numa_node: Option<u32>,
    /// The template of a map of maps' values, in place of its `__array(values, ...)`.
    pub inner_map: Option<InnerMap>,
    /// libbpf's `bpf_map__reuse_fd`: this map (a duplicate of the fd given) instead of a
    /// new one, if it matches the definition.
    pub reuse_fd: Option<Arc<OwnedFd>>,
    /// libbpf's `bpf_map__set_pin_path`: reuse the map pinned there (if it matches), or
    /// create it and pin it there.
    pub pin_path: Option<PathBuf>,
}

/// Where a map of maps' inner template comes from.
#[derive(Clone, Debug)]
pub enum InnerMap {
    /// Another map of the object, as configured.
    Name(String),
    /// A definition (a standalone map's).
    Def(MapDef),
}

/// A program's configuration before it is loaded.
#[derive(Default, Clone, Debug)]
pub struct ProgramConfig {
    /// `false`: listed, not loaded (attaching it says so). Default: what the SEC() name
    /// says (`true`, `false` for `SEC("?…")`).
    pub autoload: Option<bool>,
    /// `bpf_program__set_attach_target`: the function, tracepoint, LSM hook or iterator a
    /// BTF-targeted program (fentry/fexit/fmod_ret/tp_btf/lsm/iter) is loaded for.
    pub attach_target: Option<String>,
    /// freplace: the program whose function (`attach_target`, else the SEC() name's) this
    /// one replaces (`bpf_program__set_attach_target`'s `attach_prog_fd`).
    pub attach_prog: Option<Arc<OwnedFd>>,
    /// `bpf_program__set_type`.
    pub prog_type: Option<u32>,
    /// `bpf_program__set_expected_attach_type`.
    pub expected_attach_type: Option<u32>,
}

/// Names in `configured` that are not in `present`: `ENOENT` naming the first and what
/// there is.
fn check_configured<'a>(
    what: &str,
    mut configured: impl Iterator<Item = &'a String>,
    present: &[String],
) -> Result<()> {
    match configured.find(|n| !present.contains(n)) {
        Some(name) => Err(enoent(format!(
            "no {what} named '{name}' to configure; {what}s: {}",
            present.join(", ")
        ))),
        None => Ok(()),
    }
}

pub struct Object {
    pub programs: Vec<Program>,
    pub maps: Vec<Map>,
    /// `.rodata`/`.data`/`.bss` variables, by name.
    pub globals: Vec<GlobalSpec>,
    /// The object's BTF after aya-obj's fixups (what [`Object::types`] lists).
    btf: Option<BtfIndex>,
    /// The data-section maps (`.data*`, `.rodata*`, `.bss*`), and whether each is frozen.
    data_sections: Vec<(String, bool)>,
    /// Each data section's value mapped, once asked for (see [`Object::global_data`]).
    mapped: Mutex<HashMap<String, Arc<MapValue>>>,
    /// Kept for programs loaded later (on attach) and their func/line info.
    _btf_fd: Option<Arc<OwnedFd>>,
    /// The map `.kconfig` externs are read from (programs loaded later need it too).
    _kconfig: Option<OwnedFd>,
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

    /// The object's BTF types (empty without BTF); see [`BtfIndex::types`].
    pub fn types(&self) -> Vec<TypeDesc> {
        self.btf.as_ref().map_or_else(Vec::new, BtfIndex::types)
    }

    /// A data section's value mapped into memory, the same mapping each time: `None` when
    /// its map is not mmapable (a kernel before 5.5, a map reused without the flag,
    /// flags configured without it). Read-only for a frozen section (`.rodata*`).
    pub fn global_data(&self, section: &str) -> Result<Option<Arc<MapValue>>> {
        let Some((_, frozen)) = self.data_sections.iter().find(|(n, _)| n == section) else {
            let names: Vec<&str> = self.data_sections.iter().map(|(n, _)| n.as_str()).collect();
            return Err(enoent(format!(
                "no data section named '{section}' in the object; data sections: {}",
                names.join(", ")
            )));
        };
        let map = self.map(section)?;
        if map.flags & BPF_F_MMAPABLE == 0 {
            return Ok(None);
        }
        let mut mapped = self
            .mapped
            .lock()
            .map_err(|_| Error::new(Code::Internal, "the data-section mappings are poisoned"))?;
        if let Some(value) = mapped.get(section) {
            return Ok(Some(value.clone()));
        }
        let value = Arc::new(
            MapValue::new(map, *frozen)
                .map_err(|e| Error::os(format!("mapping data section '{section}'"), e))?,
        );
        mapped.insert(section.to_string(), value.clone());
        Ok(Some(value))
    }
}

pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Object> {
    let data = std::fs::read(path)
        .map_err(|e| Error::os(format!("reading BPF object {}", path.display()), e))?;
    load(&data, opts)
}

/// An object before load: what `open()` lists and the configuration can change.
#[derive(Debug, Clone)]
pub struct Spec {
    pub programs: Vec<ProgramSpec>,
    pub maps: Vec<MapSpec>,
    /// `.rodata`/`.data`/`.bss` variables, by name.
    pub globals: Vec<GlobalSpec>,
    /// The object's BTF types after aya-obj's fixups (see [`BtfIndex::types`]).
    pub types: Vec<TypeDesc>,
}

#[derive(Debug, Clone)]
pub struct GlobalSpec {
    pub name: String,
    /// The ELF section (and so the map) it lies in.
    pub section: String,
    /// Where it lies in its section's map value.
    pub offset: u64,
    pub size: u64,
    /// Its VAR's type in the object's BTF (0 when unknown).
    pub type_id: u32,
    /// Its BTF type as C spells it (`const volatile __u32`, `char[16]`), when known.
    pub type_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProgramSpec {
    pub name: String,
    pub section: String,
    pub prog_type: u32,
    pub expected_attach_type: u32,
    /// What the SEC() name says to attach to (`tp/sched/sched_switch` → `sched/sched_switch`).
    pub attach_target: Option<String>,
    /// Whether it is loaded unless configured otherwise (`false` for `SEC("?…")`).
    pub autoload: bool,
}

#[derive(Debug, Clone)]
pub struct MapSpec {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub map_extra: u64,
    /// The BTF types of key and value, as C names them (`__u32`, `struct event`).
    pub btf_key_type: Option<String>,
    pub btf_value_type: Option<String>,
    /// Their ids in the object's BTF (0: none); a data section's value is its DATASEC.
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    /// `LIBBPF_PIN_BY_NAME`.
    pub pinned_by_name: bool,
    /// A map of maps' inner map, from its `__array(values, ...)`.
    pub inner: Option<Box<MapSpec>>,
}

/// What the no-kernel stage makes of an object: checked ([`validate`]), section names
/// remapped, kfunc calls linked, parsed by aya-obj, globals set, BTF fixed up and CO-RE
/// relocated. Nothing in it has touched the kernel (kernel BTF is read from a file).
pub struct Parsed {
    obj: aya_obj::Object,
    sections: elf_names::ProgramSections,
    /// The object's BTF as a kernel with every BTF feature takes it.
    btf: Option<Vec<u8>>,
    /// Program array and map of maps slots the object sets (`.values = { ... }`).
    slots: Vec<static_init::Slot>,
    /// Kernel modules' BTF that linked kfuncs and variables name.
    modules: Arc<kfuncs::ModuleBtfs>,
}

impl Parsed {
    /// Program names, sorted.
    pub fn program_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.obj.programs.keys().cloned().collect();
        names.sort();
        names
    }

    /// Map names (BTF `.maps`, legacy `maps`, `.data`/`.rodata`/`.bss`), sorted.
    pub fn map_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.obj.maps.keys().cloned().collect();
        names.sort();
        names
    }

    /// The object before load, as `open()` shows it: programs, maps and globals.
    pub fn describe(&self) -> Result<Spec> {
        let mut programs = Vec::new();
        for name in self.program_names() {
            let (section, spec, _) = program_parts(&self.obj, &self.sections, &name)?;
            programs.push(ProgramSpec {
                name,
                section,
                prog_type: spec.prog_type,
                expected_attach_type: spec.expected_attach_type,
                autoload: spec.autoload,
                attach_target: spec.target,
            });
        }
        let btf = match &self.btf {
            Some(b) => Some(BtfIndex::parse(b.clone())?),
            None => None,
        };
        let spec = |name: String, m: &aya_obj::Map| {
            let def = MapDef::of(m);
            let type_name = |id| btf.as_ref().filter(|_| id != 0)?.c_type_name(id);
            let (btf_key_type_id, btf_value_type_id) = btf_type_ids(btf.as_ref(), &name, m, &def);
            MapSpec {
                map_type: def.map_type,
                key_size: def.key_size,
                value_size: def.value_size,
                max_entries: def.max_entries,
                flags: def.flags,
                map_extra: def.map_extra,
                btf_key_type: type_name(def.btf_key_type_id),
                btf_value_type: type_name(def.btf_value_type_id),
                btf_key_type_id,
                btf_value_type_id,
                pinned_by_name: m.pinning() == PinningType::ByName,
                inner: None,
                name,
            }
        };
        let maps = self
            .map_names()
            .into_iter()
            .filter_map(|name| {
                let m = self.obj.maps.get(&name)?;
                let inner = m
                    .inner()
                    .map(|i| Box::new(spec(format!("{name}.inner"), &i)));
                Some(MapSpec {
                    inner,
                    ..spec(name, m)
                })
            })
            .collect();
        let btf = btf_section_of_parsed(&self.obj).and_then(|b| BtfIndex::parse(b).ok());
        Ok(Spec {
            programs,
            maps,
            globals: globals_of(&self.sections, btf.as_ref()),
            types: btf.as_ref().map_or_else(Vec::new, BtfIndex::types),
        })
    }

    /// Size of the object BTF the loader would give the kernel (0 without BTF).
    pub fn btf_size(&self) -> usize {
        self.btf.as_ref().map_or(0, Vec::len)
    }

    /// What `load` does with the kernel's answers, done with made-up map fds: map and
    /// call relocation, helper sanitizing, each program's section and code.
    fn dry_run(&self) -> Result<()> {
        /// Stands for a map fd: relocation only writes it into instructions.
        const DUMMY_MAP_FD: i32 = 1 << 20;
        let mut obj = self.obj.clone();
        let maps: Vec<(String, aya_obj::Map)> = obj.maps.drain().collect();
        let text_sections = text_sections(&obj);
        obj.relocate_maps(
            maps.iter()
                .map(|(name, map)| (name.as_str(), DUMMY_MAP_FD, map)),
            &text_sections,
        )
        .map_err(|e| bad_object(format!("map relocation: {e}")))?;
        obj.relocate_calls(&text_sections)
            .map_err(|e| bad_object(format!("call relocation: {e}")))?;
        obj.sanitize_functions(&all_helpers());
        for name in self.program_names() {
            program_parts(&obj, &self.sections, &name)?;
        }
        Ok(())
    }
}

/// The object's `.rodata`/`.data`/`.bss` variables (not the data of other sections:
/// `license`, `.maps`), sorted by name: where each lies (its symbol's value, what aya-obj's
/// fixup writes into the DATASEC too) and its VAR's type (from its section's DATASEC: a
/// static of the same name elsewhere has its own VAR).
fn globals_of(sections: &elf_names::ProgramSections, btf: Option<&BtfIndex>) -> Vec<GlobalSpec> {
    let mut globals: Vec<GlobalSpec> = sections
        .data_symbol_sizes
        .iter()
        .map(|(name, &size)| {
            let section = sections
                .data_symbol_sections
                .get(name)
                .cloned()
                .unwrap_or_default();
            let entry = btf.and_then(|b| {
                b.datasec_entries(&section)
                    .into_iter()
                    .find(|e| &e.name == name)
            });
            GlobalSpec {
                name: name.clone(),
                offset: sections.data_symbol_offsets.get(name).copied().unwrap_or(0),
                size,
                type_id: entry.map_or(0, |e| e.type_id),
                type_name: btf.and_then(|b| b.var_type_name(name)),
                section,
            }
        })
        .filter(|g| {
            DATA_SECTION_PREFIXES
                .iter()
                .any(|p| g.section.starts_with(p))
        })
        .collect();
    globals.sort_by(|a, b| a.name.cmp(&b.name));
    globals
}

/// A map's key and value type ids in the object's BTF: its definition's; a data section
/// declares none, and its value is its DATASEC (libbpf gives it so).
fn btf_type_ids(btf: Option<&BtfIndex>, name: &str, m: &aya_obj::Map, def: &MapDef) -> (u32, u32) {
    if is_data_section(m) {
        return (0, btf.and_then(|b| b.datasec_id(name)).unwrap_or(0));
    }
    (def.btf_key_type_id, def.btf_value_type_id)
}

/// The sections aya-obj makes data maps of (`EbpfSectionKind::from_name`).
const DATA_SECTION_PREFIXES: [&str; 3] = [".data", ".rodata", ".bss"];

/// A map aya-obj made of a `.data*`, `.rodata*` or `.bss*` section.
fn is_data_section(m: &aya_obj::Map) -> bool {
    matches!(
        m.section_kind(),
        EbpfSectionKind::Data | EbpfSectionKind::Rodata | EbpfSectionKind::Bss
    )
}

/// The object's BTF with every newer BTF kind sanitized away, for kernels that refuse the
/// full one (FUNC/DATASEC are older than any kernel we support).
fn sanitized_btf(obj: &aya_obj::Object) -> Result<Option<Vec<u8>>> {
    let mut obj = obj.clone();
    let features = BtfFeatures::new(true, true, true, false, false, false, false, false);
    Ok(obj
        .fixup_and_sanitize_btf(&features)
        .map_err(|e| bad_object(format!("object BTF: {e}")))?
        .map(|btf| btf.to_bytes()))
}

/// Every helper aya-obj may rewrite (bpf_probe_read_kernel, 5.5) exists on the kernels we
/// support.
fn all_helpers() -> Features {
    Features::new(true, true, true, true, true, true, true, None)
}

fn text_sections(obj: &aya_obj::Object) -> HashSet<usize> {
    obj.functions.keys().map(|(s, _)| *s).collect()
}

/// A program's original SEC() name, what it says, and its relocated code.
fn program_parts(
    obj: &aya_obj::Object,
    sections: &elf_names::ProgramSections,
    name: &str,
) -> Result<(String, section::SectionSpec, aya_obj::Function)> {
    let prog = obj
        .programs
        .get(name)
        .ok_or_else(|| bad_object(format!("program '{name}' is gone")))?;
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
    Ok((section, spec, function))
}

/// The no-kernel half of [`load`]: everything up to creating maps and loading programs,
/// then a dry run of map/call relocation. Safe on any bytes (no panic, no allocation
/// taken from an unchecked size field); what it refuses is `BAD_OBJECT`, `EINVAL` or
/// `ENOENT` (a global not in the object), or the error of reading kernel BTF.
pub fn parse(data: &[u8], opts: &LoadOptions) -> Result<Parsed> {
    let parsed = parse_stage(data, opts, Kernel::Running(&mut |_| Ok(PARSE_ONLY_FD)))?;
    sanitized_btf(&parsed.obj)?;
    parsed.dry_run()?;
    Ok(parsed)
}

/// What [`Parsed::describe`] reports of an object, the same on any machine: checked and
/// parsed as [`parse`] does, but against no kernel (no kernel BTF, kallsyms or kernel
/// config is read, nothing is CO-RE relocated), so an object this machine's kernel cannot
/// take (a kfunc it lacks, no BTF at all) is described too. For generating code from an
/// object, as `bpftool gen skeleton` does without asking the kernel.
pub fn inspect(data: &[u8]) -> Result<Spec> {
    parse_stage(data, &LoadOptions::default(), Kernel::Absent)?.describe()
}

/// Makes the map `.kconfig` externs are read from, with the value given, and says its fd.
type KconfigMap<'a> = &'a mut dyn FnMut(&[u8]) -> Result<i32>;

/// Stands for the `.kconfig` map's fd where no kernel object is made (`parse`, `inspect`).
const PARSE_ONLY_FD: i32 = 1 << 20;

/// The kernel [`parse_stage`] resolves an object against.
enum Kernel<'a> {
    /// This machine's, its BTF from `LoadOptions::btf_path`: type relocations, kfuncs and
    /// kernel symbols resolved by what it has, `.kconfig` values read into the map made.
    Running(KconfigMap<'a>),
    /// None ([`inspect`]): every type is missing and every symbol present (placeholder
    /// answers, in instructions and `.BTF.ext` records only), nothing is CO-RE relocated.
    /// The object's BTF loses its externs as on any kernel, so its types, DATASECs and
    /// what is described from them are the same.
    Absent,
}

/// BTF with no types: what [`Kernel::Absent`] has.
fn no_kernel_btf() -> Result<Arc<BtfIndex>> {
    // Magic, version 1, flags; hdr_len 24, no types, one string: "".
    let mut data = vec![0x9f, 0xeb, 1, 0];
    for word in [24u32, 0, 0, 0, 1] {
        data.extend(word.to_le_bytes());
    }
    data.push(0);
    Ok(Arc::new(BtfIndex::parse(data)?))
}

fn parse_stage(data: &[u8], opts: &LoadOptions, mut kernel: Kernel<'_>) -> Result<Parsed> {
    // First, before anything indexes or allocates by what the object says.
    validate::check(data)?;
    let (mut bytes, sections) = elf_names::prepare(data)?;
    hidden::make_static(&mut bytes)?;
    let running = kfuncs::RunningKernel::new(opts.btf_path.as_deref());
    let running_btf = || BtfIndex::kernel(opts.btf_path.as_deref());
    type KernelBtf<'f> = &'f dyn Fn() -> Result<Arc<BtfIndex>>;
    let (kernel_btf, symbols): (KernelBtf<'_>, &dyn kfuncs::KernelSymbols) = match kernel {
        Kernel::Running(_) => (&running_btf, &running),
        Kernel::Absent => (&no_kernel_btf, &kfuncs::AnyKernel),
    };
    core_matches::resolve(&mut bytes, kernel_btf)?;
    let kconfig = kconfig::plan(&bytes)?;
    let modules = kfuncs::link(
        &mut bytes,
        &|name| kconfig.as_ref().is_some_and(|k| k.has(name)),
        symbols,
    )?;
    if let Some(plan) = &kconfig {
        let fd = match &mut kernel {
            Kernel::Running(make) => make(&plan.value(&kconfig::kernel_value)?)?,
            // Nothing is loaded to read the values.
            Kernel::Absent => PARSE_ONLY_FD,
        };
        plan.patch(&mut bytes, fd)?;
        if let Some((start, end)) = kfuncs::btf_range(&bytes)? {
            kfuncs::drop_extern_btf(&mut bytes[start..end])?;
        }
    }
    let globals = crate::globals::encode(
        &opts.globals,
        &sections.data_symbol_sizes,
        btf_section(&bytes).as_deref(),
    )?;
    let statics = static_init::prepare(&mut bytes)?;
    let mut obj = aya_obj::Object::parse(&bytes)
        .map_err(|e| bad_object(format!("parsing the ELF object: {e}")))?;
    for name in &statics.prog_arrays {
        if let Some(m) = obj.maps.get_mut(name).filter(|m| m.value_size() == 0) {
            m.set_value_size(static_init::FD_VALUE_SIZE);
        }
    }
    patch_globals(&mut obj, &globals)?;
    let features = BtfFeatures::new(true, true, true, true, true, true, true, true);
    let btf = obj
        .fixup_and_sanitize_btf(&features)
        .map_err(|e| bad_object(format!("object BTF: {e}")))?
        .map(|btf| btf.to_bytes());
    if obj.has_btf_relocations() && matches!(kernel, Kernel::Running(_)) {
        let target = crate::btf::kernel_btf(opts.btf_path.as_deref())?;
        // aya-obj 0.3 checks an index into a local flexible array member against the
        // struct's member count instead of allowing any (`args[1]` of a 3-member struct is
        // refused): CO-RE runs on a copy of the object's BTF whose flexible arrays have a
        // length, and the object keeps its own BTF. The kernel's side is matched right.
        let local = obj.btf.clone();
        if let Some(sized) = local.as_ref().map(sized_flexible_arrays).transpose()? {
            obj.btf = Some(sized);
        }
        let relocated = obj.relocate_btf(&target);
        obj.btf = local;
        relocated
            .map_err(|e| bad_object(format!("CO-RE relocation failed: {}", error_chain(&e))))?;
    }
    Ok(Parsed {
        obj,
        sections,
        btf,
        slots: statics.slots,
        modules: Arc::new(modules),
    })
}

pub fn load(data: &[u8], opts: &LoadOptions) -> Result<Object> {
    crate::memlock::lift_where_charged();
    // A last net under the checks: a panic the validator does not foresee becomes an
    // error instead of killing Node (the binding cannot unwind across N-API). It cannot
    // catch an aborting allocation or undefined behaviour: those are `validate`'s job, and
    // `parse`, which the fuzzer and the mutation test drive, has no net, so they see them.
    let mut kconfig: Option<OwnedFd> = None;
    let mut make_kconfig = |value: &[u8]| {
        let fd = kconfig_map(value)?;
        let raw = fd.as_raw_fd();
        kconfig = Some(fd);
        Ok(raw)
    };
    let staged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parse_stage(data, opts, Kernel::Running(&mut make_kconfig))
    }))
    .map_err(|_| {
        bad_object(
            "the object parser panicked on this object: a malformed object nodebpf's checks \
             missed (please report it with the object)",
        )
    })?;
    let Parsed {
        mut obj,
        sections,
        btf,
        slots,
        modules,
    } = staged?;
    // The table JS reads the object's types from: the BTF as fixed up, whatever the
    // kernel takes of it.
    let index = btf.as_ref().and_then(|b| BtfIndex::parse(b.clone()).ok());
    let (btf_fd, btf_refused) = match btf {
        None => (None, None),
        Some(full) => match object_btf(&full, &obj)? {
            Ok(fd) => (Some(Arc::new(fd)), None),
            Err(refused) => (None, Some(refused)),
        },
    };
    // What fails later may be for want of the BTF the kernel refused: say so on the
    // message's first line (a verifier log follows it).
    let noting_btf = |mut e: Error| {
        if let Some(refused) = &btf_refused {
            let at = e.message.find('\n').unwrap_or(e.message.len());
            let note = format!(
                " (the object was loaded without its BTF, which the kernel refused: {})",
                refused.message
            );
            e.message.insert_str(at, &note);
        }
        e
    };

    let map_names: Vec<String> = obj.maps.keys().cloned().collect();
    check_configured("map", opts.maps.keys(), &map_names)?;
    let program_names: Vec<String> = obj.programs.keys().cloned().collect();
    check_configured("program", opts.programs.keys(), &program_names)?;

    let mut defs = HashMap::new();
    for (name, map_obj) in &obj.maps {
        let config = opts.maps.get(name).cloned().unwrap_or_default();
        defs.insert(name.clone(), configured_def(name, map_obj, &config)?);
    }
    let mut data_sections: Vec<(String, bool)> = obj
        .maps
        .iter()
        .filter(|(_, m)| is_data_section(m))
        .map(|(n, m)| (n.clone(), m.section_kind() == EbpfSectionKind::Rodata))
        .collect();
    data_sections.sort();
    let mut maps = Vec::new();
    let mut map_objs = Vec::new();
    for (name, map_obj) in obj.maps.drain() {
        let config = opts.maps.get(&name).cloned().unwrap_or_default();
        let mut inner = match &config.inner_map {
            Some(InnerMap::Name(n)) => Some(defs.get(n).cloned().ok_or_else(|| {
                enoent(format!(
                    "map '{name}' innerMap: no map named '{n}' in the object"
                ))
            })?),
            Some(InnerMap::Def(d)) => Some(d.clone()),
            None => map_obj.inner().map(|i| MapDef::of(&i)),
        };
        // The template is created as the inner maps are (`__array(values, ...)` of perf
        // event arrays declares no size, of ring buffers any size), as libbpf does.
        if let Some(def) = inner.as_mut() {
            def.normalize().map_err(|e| e.for_map(&name))?;
        }
        let def = defs
            .get(&name)
            .cloned()
            .unwrap_or_else(|| MapDef::of(&map_obj));
        let type_ids = btf_type_ids(index.as_ref(), &name, &map_obj, &def);
        let mut map = create_map(
            &name,
            &map_obj,
            def,
            inner,
            &config,
            btf_fd.as_deref(),
            opts,
        )
        .map_err(|e| noting_btf(e.for_map(&name)))?;
        (map.btf_key_type_id, map.btf_value_type_id) = type_ids;
        map_objs.push((name, map_obj));
        maps.push(map);
    }
    for slot in slots.iter().filter(|s| !s.program) {
        fill_slot(&maps, slot, find_map(&maps, &slot.target)?.fd())?;
    }
    let text_sections = text_sections(&obj);
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
    obj.sanitize_functions(&all_helpers());

    let mut programs = Vec::new();
    let mut names: Vec<_> = obj.programs.keys().cloned().collect();
    names.sort();
    for name in names {
        let (section, spec, function) = program_parts(&obj, &sections, &name)?;
        let Some(prog) = obj.programs.remove(&name) else {
            continue;
        };
        let mut program = Program::new(ProgramParts {
            name,
            section,
            spec,
            function,
            license: prog.license.clone(),
            kern_version: prog.kernel_version.unwrap_or(0),
            btf_fd: btf_fd.clone(),
            modules: modules.clone(),
        });
        if let Some(config) = opts.programs.get(&program.name) {
            config.apply(&mut program)?;
        }
        let autoload = opts.programs.get(&program.name).and_then(|c| c.autoload);
        if !autoload.unwrap_or(program.spec.autoload) {
            program.autoload = false;
        } else {
            load_eagerly(&mut program, opts)
                .map_err(|e| noting_btf(e.for_program(&program.name)))?;
        }
        programs.push(program);
    }
    for slot in slots.iter().filter(|s| s.program) {
        let Some(program) = programs.iter().find(|p| p.name == slot.target) else {
            return Err(bad_object(format!(
                "map '{}' slot {} is set to '{}', which is no program of the object",
                slot.map, slot.index, slot.target
            )));
        };
        // A program configured not to load leaves its slot empty (libbpf does the same).
        if program.autoload {
            fill_slot(&maps, slot, program.fd()?)?;
        }
    }
    Ok(Object {
        programs,
        maps,
        globals: globals_of(&sections, index.as_ref()),
        btf: index,
        data_sections,
        mapped: Mutex::default(),
        _btf_fd: btf_fd,
        _kconfig: kconfig,
    })
}

/// Programs are loaded with the object, like libbpf, except BTF-targeted tracing programs
/// whose SEC() names no target (they wait for `attach_fentry` to say where), freplace
/// programs with no target program configured (they wait for `attach_freplace`), and
/// fentry/fexit/fsession.multi programs on kernels without tracing_multi (their fallback
/// loads one instance per function).
fn load_eagerly(program: &mut Program, opts: &LoadOptions) -> Result<()> {
    use section::AttachKind::{FentryMulti, FexitMulti, FsessionMulti};
    if matches!(program.spec.kind, FentryMulti | FexitMulti | FsessionMulti)
        && !crate::features::features().tracing_multi
    {
        return Ok(());
    }
    let target = if program.spec.kind == section::AttachKind::Freplace {
        match crate::attach::freplace::load_target(program)? {
            None => return Ok(()),
            Some(t) => t,
        }
    } else if program.spec.kind.needs_btf_target() {
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

/// The object's BTF in the kernel: as it is, else sanitized (for a kernel without its
/// newest kinds), else none. Like libbpf, an object whose BTF the kernel refuses both ways
/// (a forward-declared enum, a type chain deeper than it follows) loads without it: its
/// maps then carry no key/value types and its programs no func/line info, and what cannot
/// do without (a spin lock in a map value, a global function) is refused by the kernel
/// naming that map or program.
/// The inner result is the BTF's fd, or the kernel's reason for refusing it as it is.
fn object_btf(full: &[u8], obj: &aya_obj::Object) -> Result<std::result::Result<OwnedFd, Error>> {
    let refused = match load_btf(full) {
        Ok(fd) => return Ok(Ok(fd)),
        Err(e) => e,
    };
    Ok(match sanitized_btf(obj)? {
        Some(sanitized) => load_btf(&sanitized).map_err(|_| refused),
        None => Err(refused),
    })
}

/// The read-only array (one value) the `.kconfig` externs are read from, frozen like
/// libbpf's, so the verifier takes its contents as constants.
fn kconfig_map(value: &[u8]) -> Result<OwnedFd> {
    let def = MapDef {
        map_type: sys::BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: value.len() as u32,
        max_entries: 1,
        flags: sys::BPF_F_RDONLY_PROG,
        ..Default::default()
    };
    let fd = map_create::create(".kconfig", &def, None, None)?;
    let key = 0u32;
    let mut elem = sys::MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: sys::ptr(&key),
        value_or_next_key: sys::ptr(value.as_ptr()),
        ..Default::default()
    };
    sys::bpf(sys::BPF_MAP_UPDATE_ELEM, &mut elem)
        .map_err(|e| Error::os("writing the .kconfig map", e))?;
    sys::map_freeze(fd.as_raw_fd()).map_err(|e| Error::os("freezing the .kconfig map", e))?;
    Ok(fd)
}

/// Elements a local flexible array member is given for CO-RE: more than any index a
/// program writes, small enough that sizes stay far from overflowing.
const FLEXIBLE_ARRAY_LEN: u32 = 1 << 16;

/// The object's BTF with every flexible array member given [`FLEXIBLE_ARRAY_LEN`] elements.
fn sized_flexible_arrays(btf: &aya_obj::btf::Btf) -> Result<aya_obj::btf::Btf> {
    let mut bytes = btf.to_bytes();
    for at in crate::btf_index::BtfIndex::parse(bytes.clone())?.flexible_array_lengths() {
        if let Some(n) = bytes.get_mut(at..at + 4) {
            n.copy_from_slice(&FLEXIBLE_ARRAY_LEN.to_le_bytes());
        }
    }
    aya_obj::btf::Btf::parse(&bytes, object::Endianness::Little)
        .map_err(|e| bad_object(format!("object BTF: {e}")))
}

/// The object's BTF as aya-obj parsed it.
fn btf_section_of_parsed(obj: &aya_obj::Object) -> Option<Vec<u8>> {
    obj.btf.as_ref().map(|b| b.to_bytes())
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

/// The map as the configuration changes its declaration.
fn configured_def(name: &str, map_obj: &aya_obj::Map, config: &MapConfig) -> Result<MapDef> {
    for (param, value) in [
        ("maxEntries", config.max_entries),
        ("valueSize", config.value_size),
    ] {
        if value == Some(0) {
            let param = format!("map '{name}' {param}");
            return Err(Error::range(&param, 0, "1..=2^32-1"));
        }
    }
    let mut def = MapDef::of(map_obj);
    def.max_entries = config.max_entries.unwrap_or(def.max_entries);
    def.value_size = config.value_size.unwrap_or(def.value_size);
    def.flags = config.flags.unwrap_or(def.flags);
    if auto_mmapable(map_obj, config) && map_create::mmapable_arrays() {
        def.flags |= BPF_F_MMAPABLE;
    }
    def.numa_node = config.numa_node;
    def.normalize()?;
    Ok(def)
}

/// Whether the map is a data section whose flags are the loader's to choose: made
/// mmapable (as libbpf does) where the kernel can, so JS reads and writes its variables in
/// place. Flags configured are taken as they are.
fn auto_mmapable(map_obj: &aya_obj::Map, config: &MapConfig) -> bool {
    is_data_section(map_obj) && config.flags.is_none()
}

/// A data section's definition with `BPF_F_MMAPABLE` as the map to reuse has it: either
/// way the map does (only mapping it depends on the flag, which the loader chose).
fn as_reused(
    def: MapDef,
    auto: bool,
    fd: std::os::fd::BorrowedFd<'_>,
    what: &str,
) -> Result<MapDef> {
    if !auto {
        return Ok(def);
    }
    let has = map_create::info(fd, what)?.map_flags & BPF_F_MMAPABLE;
    Ok(MapDef {
        flags: (def.flags & !BPF_F_MMAPABLE) | has,
        ..def
    })
}

/// Creates the map, or reuses the one given (`reuseFd`) or pinned at its pin path, once
/// checked to match; a map of maps gets a template of its inner map for the kernel to
/// check values against, closed once the outer map exists (as libbpf does).
fn create_map(
    name: &str,
    map_obj: &aya_obj::Map,
    def: MapDef,
    inner: Option<MapDef>,
    config: &MapConfig,
    btf_fd: Option<&OwnedFd>,
    opts: &LoadOptions,
) -> Result<Map> {
    use std::os::fd::AsFd;
    let auto = auto_mmapable(map_obj, config);
    if let Some(fd) = &config.reuse_fd {
        let def = as_reused(def, auto, fd.as_fd(), "the map fd given")?;
        map_create::check_compatible(name, &def, fd.as_fd(), "the map fd given")?;
        let own = fd
            .try_clone()
            .map_err(|e| Error::os(format!("map '{name}': duplicating the fd given"), e))?;
        let mut map = Map::new(name.to_string(), &def, own, None);
        map.inner = inner;
        return Ok(map);
    }
    let pin = match (&config.pin_path, map_obj.pinning()) {
        (Some(path), _) => Some(path.clone()),
        (None, PinningType::ByName) => Some(
            opts.pin_path
                .as_deref()
                .unwrap_or(Path::new("/sys/fs/bpf"))
                .join(name),
        ),
        (None, PinningType::None) => None,
    };
    if let Some(path) = pin.as_ref().filter(|p| p.exists()) {
        let fd = sys::obj_get(&path_cstring(path)?)
            .map_err(|e| Error::os(format!("opening pinned map {}", path.display()), e))?;
        let what = format!("the map pinned at {}", path.display());
        let def = as_reused(def, auto, fd.as_fd(), &what)?;
        map_create::check_compatible(name, &def, fd.as_fd(), &what)?;
        let mut map = Map::new(name.to_string(), &def, fd, pin);
        map.inner = inner;
        return Ok(map);
    }
    let btf = btf_fd.map(|f| f.as_fd());
    let template = match (def.is_map_of_maps(), &inner) {
        (true, Some(inner)) => Some(map_create::create(
            &format!("{name}.inner"),
            inner,
            btf,
            None,
        )?),
        (true, None) => {
            return Err(einval(format!(
                "map '{name}' is a map of maps without an inner map: declare it with \
                 __array(values, struct inner) or configure innerMap"
            )))
        }
        (false, _) => None,
    };
    let fd = map_create::create(name, &def, btf, template.as_ref().map(|f| f.as_fd()))?;
    drop(template);
    let mut map = Map::new(name.to_string(), &def, fd, pin.clone());
    map.inner = inner;
    initialize(&map, map_obj)?;
    if let Some(path) = &pin {
        map.pin(path)?;
    }
    Ok(map)
}

fn find_map<'a>(maps: &'a [Map], name: &str) -> Result<&'a Map> {
    maps.iter()
        .find(|m| m.name == name)
        .ok_or_else(|| enoent(format!("no map named '{name}' in the object")))
}

/// Sets a slot of a program array or map of maps the object initializes statically.
fn fill_slot(
    maps: &[Map],
    slot: &static_init::Slot,
    fd: std::os::fd::BorrowedFd<'_>,
) -> Result<()> {
    find_map(maps, &slot.map)?.set_fd(&slot.index.to_ne_bytes(), fd)
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
