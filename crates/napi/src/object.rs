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
    pub size: u32,
    /// Its BTF type as C spells it (`const volatile __u32`, `char[16]`), when known.
    pub type_name: Option<String>,
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
            globals: s
                .globals
                .into_iter()
                .map(|g| GlobalSpec {
                    name: g.name,
                    section: g.section,
                    size: u32::try_from(g.size).unwrap_or(u32::MAX),
                    type_name: g.type_name,
                })
                .collect(),
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

#[napi]
pub struct NativeObject {
    pub(crate) shared: Arc<Shared>,
}

impl NativeObject {
    fn new(obj: core::Object, btf_path: Option<PathBuf>) -> Self {
        NativeObject {
            shared: Arc::new(Shared {
                object: RwLock::new(Some(Arc::new(obj))),
                closed: AtomicBool::new(false),
                btf_path,
            }),
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

    /// Closes every program and map fd of the object (once no attach still uses them);
    /// an attach in progress rejects with CLOSED and detaches what it attached. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Ok(mut o) = self.shared.object.write() {
            o.take();
        }
    }
}
