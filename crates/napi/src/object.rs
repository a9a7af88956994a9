//! Loading an object, and the object: its programs and maps, and `close()`, which other
//! threads (an attach in progress) see at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{call, closed, to_js, CoreTask, Ctx, Outcome};
use crate::options::LoadOptions;

/// libbpf's names of program, attach and map types, with their numbers.
#[napi(object)]
pub struct TypeNames {
    pub prog_types: Vec<BpfTypeName>,
    pub attach_types: Vec<BpfTypeName>,
    pub map_types: Vec<BpfTypeName>,
}

#[napi(object)]
pub struct BpfTypeName {
    pub name: String,
    pub value: u32,
}

#[napi]
pub fn type_names() -> TypeNames {
    let rows = |v: Vec<(String, u32)>| {
        v.into_iter()
            .map(|(name, value)| BpfTypeName { name, value })
            .collect()
    };
    TypeNames {
        prog_types: rows(core::sys::names::prog_types()),
        attach_types: rows(core::sys::names::attach_types()),
        map_types: rows(core::sys::names::map_types()),
    }
}

/// Loads off the JS thread.
#[napi(ts_return_type = "Promise<NativeObject>")]
pub fn load_object(
    data: Uint8Array,
    options: Option<LoadOptions>,
) -> AsyncTask<CoreTask<NativeObject>> {
    // Copied and converted here, on the JS thread: JS values never reach the worker.
    let (data, opts) = (data.to_vec(), LoadOptions::to_core(options));
    AsyncTask::new(CoreTask::new(Ctx::op("load"), move || {
        let opts = opts?;
        let obj = core::load(&data, &opts)?;
        Ok(NativeObject::new(obj, opts.btf_path))
    }))
}

#[napi]
pub fn load_object_sync(
    env: Env,
    data: Uint8Array,
    options: Option<LoadOptions>,
) -> Result<NativeObject> {
    let ctx = Ctx::op("loadSync");
    let opts = call(&env, &ctx, || LoadOptions::to_core(options))?;
    let obj = call(&env, &ctx, || core::load(&data, &opts))?;
    Ok(NativeObject::new(obj, opts.btf_path))
}

/// An object before load: what `open()` lists.
#[napi(object)]
pub struct ObjectSpec {
    pub programs: Vec<ProgramSpec>,
    pub maps: Vec<MapSpec>,
    pub globals: Vec<GlobalSpec>,
    /// The object's BTF types (after the loader's fixups), by id; empty without BTF.
    pub types: Vec<BtfType>,
}

#[napi(object)]
pub struct ProgramSpec {
    pub name: String,
    pub section: String,
    pub prog_type: u32,
    pub expected_attach_type: u32,
    /// What the SEC() name says to attach to.
    pub attach_target: Option<String>,
    /// Whether it is loaded unless configured otherwise (`false` for libbpf's `SEC("?…")`).
    pub autoload: bool,
}

#[napi(object)]
pub struct MapSpec {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// A bloom filter's number of hash functions.
    pub map_extra: f64,
    /// The key's and value's BTF types as C names them (`__u32`, `struct event`).
    pub btf_key_type: Option<String>,
    pub btf_value_type: Option<String>,
    /// The key's and value's ids in the object's `types` (0: none; a data section's
    /// value is its DATASEC).
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    /// `'byName'` for `LIBBPF_PIN_BY_NAME`, else `'none'`.
    pub pinning: String,
    /// A map of maps' inner map, from its `__array(values, ...)` declaration.
    pub inner: Option<InnerMapSpec>,
}

/// The definition of a map of maps' inner map.
#[napi(object)]
pub struct InnerMapSpec {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

impl From<core::MapSpec> for MapSpec {
    fn from(m: core::MapSpec) -> Self {
        MapSpec {
            name: m.name,
            map_type: m.map_type,
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
            flags: m.flags,
            map_extra: m.map_extra as f64,
            btf_key_type: m.btf_key_type,
            btf_value_type: m.btf_value_type,
            btf_key_type_id: m.btf_key_type_id,
            btf_value_type_id: m.btf_value_type_id,
            pinning: if m.pinned_by_name { "byName" } else { "none" }.to_string(),
            inner: m.inner.map(|i| InnerMapSpec {
                map_type: i.map_type,
                key_size: i.key_size,
                value_size: i.value_size,
                max_entries: i.max_entries,
                flags: i.flags,
            }),
        }
    }
}

/// A `.rodata`/`.data`/`.bss` variable.
#[napi(object)]
pub struct GlobalSpec {
    pub name: String,
    /// The section, and so the map, it lies in (`.rodata`, `.data.counters`...).
    pub section: String,
    /// Where it lies in its section's map value, in bytes.
    pub offset: u32,
    pub size: u32,
    /// Its BTF type as C spells it (`const volatile __u32`, `char[16]`), when known.
    pub type_name: Option<String>,
    /// Its BTF type's id in the object's `types` (0 when unknown).
    pub type_id: u32,
}

impl From<core::loader::GlobalSpec> for GlobalSpec {
    fn from(g: core::loader::GlobalSpec) -> Self {
        GlobalSpec {
            name: g.name,
            section: g.section,
            offset: u32::try_from(g.offset).unwrap_or(u32::MAX),
            size: u32::try_from(g.size).unwrap_or(u32::MAX),
            type_name: g.type_name,
            type_id: g.type_id,
        }
    }
}

/// A type of the object's BTF. Fields a kind does not have are 0 or false.
#[napi(object)]
pub struct BtfType {
    pub id: u32,
    /// 'void' | 'int' | 'ptr' | 'array' | 'struct' | 'union' | 'enum' | 'enum64' | 'fwd'
    /// | 'typedef' | 'volatile' | 'const' | 'restrict' | 'func' | 'func_proto' | 'var'
    /// | 'datasec' | 'float' | 'decl_tag' | 'type_tag'
    pub kind: String,
    /// '' when anonymous.
    pub name: String,
    /// Bytes: int, float, struct, union, enum, enum64, datasec.
    pub size: u32,
    /// The type referred to: ptr, typedef, qualifiers, var, func, func_proto (its return
    /// type), decl_tag, type_tag; an array's element type.
    pub type_id: u32,
    /// An array's element count.
    pub len: u32,
    /// An int's width in bits.
    pub bits: u32,
    /// An int's BTF_INT_SIGNED; an enum's kind_flag (signed values).
    pub signed: bool,
    /// An int's BTF_INT_CHAR.
    pub char: bool,
    /// An int's BTF_INT_BOOL.
    pub bool: bool,
    /// Struct and union.
    pub members: Option<Vec<BtfMember>>,
    /// Enum and enum64.
    pub values: Option<Vec<BtfEnumValue>>,
}

#[napi(object)]
pub struct BtfMember {
    /// '' when anonymous.
    pub name: String,
    pub type_id: u32,
    pub bit_offset: u32,
    /// 0 unless a bitfield.
    pub bit_size: u32,
}

#[napi(object)]
pub struct BtfEnumValue {
    pub name: String,
    /// Decimal and exact (an enum64's can be beyond 2^53).
    pub value: String,
}

impl From<core::btf_index::TypeDesc> for BtfType {
    fn from(t: core::btf_index::TypeDesc) -> Self {
        BtfType {
            id: t.id,
            kind: t.kind.to_string(),
            name: t.name,
            size: t.size,
            type_id: t.type_id,
            len: t.len,
            bits: t.bits,
            signed: t.signed,
            char: t.char,
            bool: t.bool,
            members: t.members.map(|ms| {
                ms.into_iter()
                    .map(|m| BtfMember {
                        name: m.name,
                        type_id: m.type_id,
                        bit_offset: m.bit_offset,
                        bit_size: m.bit_size,
                    })
                    .collect()
            }),
            values: t.values.map(|vs| {
                vs.into_iter()
                    .map(|v| BtfEnumValue {
                        name: v.name,
                        value: v.value,
                    })
                    .collect()
            }),
        }
    }
}

impl From<core::Spec> for ObjectSpec {
    fn from(s: core::Spec) -> Self {
        ObjectSpec {
            programs: s
                .programs
                .into_iter()
                .map(|p| ProgramSpec {
                    name: p.name,
                    section: p.section,
                    prog_type: p.prog_type,
                    expected_attach_type: p.expected_attach_type,
                    attach_target: p.attach_target,
                    autoload: p.autoload,
                })
                .collect(),
            maps: s.maps.into_iter().map(MapSpec::from).collect(),
            globals: s.globals.into_iter().map(GlobalSpec::from).collect(),
            types: s.types.into_iter().map(BtfType::from).collect(),
        }
    }
}

/// Parses and checks an object without loading it (no kernel objects are made): its
/// programs, maps and globals, off the JS thread.
#[napi(ts_return_type = "Promise<ObjectSpec>")]
pub fn open_object(
    data: Uint8Array,
    options: Option<LoadOptions>,
) -> AsyncTask<CoreTask<ObjectSpec>> {
    let (data, opts) = (data.to_vec(), LoadOptions::to_core(options));
    AsyncTask::new(CoreTask::new(Ctx::op("open"), move || {
        let opts = opts?;
        core::parse(&data, &opts)?.describe().map(ObjectSpec::from)
    }))
}

/// An object's programs, maps, globals and types as `openObject` gives them, read from
/// the object alone: what this machine's kernel has (kfuncs, BTF, config) is not asked,
/// so code can be generated on any machine. Off the JS thread.
#[napi(ts_return_type = "Promise<ObjectSpec>")]
pub fn inspect_object(data: Uint8Array) -> AsyncTask<CoreTask<ObjectSpec>> {
    let data = data.to_vec();
    AsyncTask::new(CoreTask::new(Ctx::op("inspect"), move || {
        core::inspect(&data).map(ObjectSpec::from)
    }))
}

#[napi(object)]
pub struct ProgramDesc {
    pub name: String,
    pub section: String,
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub loaded: bool,
    /// Where it attaches: its SEC() target, or the configured `attachTarget`.
    pub attach_target: Option<String>,
    /// False when configured not to load (autoload off).
    pub autoload: bool,
    pub insn_count: u32,
}

#[napi(object)]
pub struct MapDesc {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub percpu: bool,
    pub pinned: Option<String>,
    /// The key's and value's ids in the object's `types()` (0: none, as for a map made by
    /// `createMap`; a data section's value is its DATASEC).
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

/// The object as the binding shares it: the JS thread and attach tasks running off it
/// hold it only as long as a call needs it, never across an attach, so `close()` and map
/// calls answer at once while a 50k-target attach runs.
pub struct Shared {
    object: RwLock<Option<Arc<core::Object>>>,
    /// Set by `close()`: an attach in progress stops and detaches what it attached.
    pub closed: AtomicBool,
    pub btf_path: Option<PathBuf>,
}

impl Shared {
    pub fn get(&self, ctx: &Ctx) -> Outcome<Arc<core::Object>> {
        self.object
            .read()
            .ok()
            .and_then(|o| o.clone())
            .ok_or_else(|| closed(ctx, "the BPF object"))
    }
}

#[napi(custom_finalize)]
pub struct NativeObject {
    pub(crate) shared: Arc<Shared>,
    /// The `globalData()` buffers handed out, detached by `close()`.
    pub(crate) handouts: crate::global_data::Handouts,
}

impl ObjectFinalize for NativeObject {
    fn finalize(self, env: Env) -> Result<()> {
        self.handouts.forget(&env);
        Ok(())
    }
}

impl NativeObject {
    fn new(obj: core::Object, btf_path: Option<PathBuf>) -> Self {
        NativeObject {
            shared: Arc::new(Shared {
                object: RwLock::new(Some(Arc::new(obj))),
                closed: AtomicBool::new(false),
                btf_path,
            }),
            handouts: Default::default(),
        }
    }

    /// Runs `f` on the object, on the JS thread.
    pub(crate) fn with<T>(
        &self,
        env: &Env,
        ctx: &Ctx,
        f: impl FnOnce(&core::Object) -> core::Result<T>,
    ) -> Result<T> {
        let obj = self.shared.get(ctx).map_err(|e| to_js(env, e))?;
        call(env, ctx, || f(&obj))
    }
}

#[napi]
impl NativeObject {
    #[napi]
    pub fn programs(&self, env: Env) -> Result<Vec<ProgramDesc>> {
        self.with(&env, &Ctx::op("programs"), |o| {
            Ok(o.programs
                .iter()
                .map(|p| ProgramDesc {
                    name: p.name.clone(),
                    section: p.section.clone(),
                    prog_type: p.spec.prog_type,
                    expected_attach_type: p.spec.expected_attach_type,
                    loaded: p.is_loaded(),
                    attach_target: p.spec.target.clone(),
                    autoload: p.autoload,
                    insn_count: p.insn_count() as u32,
                })
                .collect())
        })
    }

    #[napi]
    pub fn maps(&self, env: Env) -> Result<Vec<MapDesc>> {
        self.with(&env, &Ctx::op("maps"), |o| {
            Ok(o.maps.iter().map(crate::map::describe).collect())
        })
    }

    /// The object's BTF types (after the loader's fixups), by id; empty without BTF.
    #[napi]
    pub fn types(&self, env: Env) -> Result<Vec<BtfType>> {
        self.with(&env, &Ctx::op("types"), |o| {
            Ok(o.types().into_iter().map(BtfType::from).collect())
        })
    }

    /// The object's `.rodata`/`.data`/`.bss` variables, by name.
    #[napi]
    pub fn globals(&self, env: Env) -> Result<Vec<GlobalSpec>> {
        self.with(&env, &Ctx::op("globals"), |o| {
            Ok(o.globals.iter().cloned().map(GlobalSpec::from).collect())
        })
    }

    /// Closes every program and map fd of the object (once no attach still uses them);
    /// an attach in progress rejects with CLOSED and detaches what it attached. The
    /// `globalData()` buffers are detached and their mappings go. Idempotent.
    #[napi]
    pub fn close(&self, env: Env) {
        self.shared.closed.store(true, Ordering::Release);
        if let Ok(mut o) = self.shared.object.write() {
            o.take();
        }
        self.handouts.detach_all(&env);
    }
}
