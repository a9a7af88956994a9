//! Maps, as bytes: the facade's codecs check and encode keys and values. A `NativeMap`
//! is a map of a loaded object (closed with it) or one made on its own by `createMap`
//! (libbpf's `bpf_map_create`), closed by its own `close()`.

use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nodebpf_core as core;

use crate::errors::{call, closed, to_js, Ctx, Outcome};
use crate::object::{MapDesc, NativeObject, Shared};
use crate::options::{int_of, Checked};

/// `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`: the update flags a map takes.
const MAX_UPDATE_FLAG: u32 = 2;

pub(crate) fn update_flags(flags: Option<u32>) -> Checked<u64> {
    let flags = flags.unwrap_or(0);
    if flags > MAX_UPDATE_FLAG {
        return Err(core::Error::range(
            "flags",
            flags,
            format!("0..={MAX_UPDATE_FLAG}"),
        ));
    }
    Ok(u64::from(flags))
}

enum Source {
    /// A map of a loaded object, by name: gone when the object is closed.
    Object(Arc<Shared>),
    /// A map of its own.
    Own(RwLock<Option<Arc<core::Map>>>),
}

/// What a call holds while it runs: the object or the map, kept alive until it returns.
enum Held {
    Object(Arc<core::Object>),
    Own(Arc<core::Map>),
}

impl Held {
    fn map(&self, name: &str) -> core::Result<&core::Map> {
        match self {
            Held::Object(o) => o.map(name),
            Held::Own(m) => Ok(m),
        }
    }
}

#[napi]
pub struct NativeMap {
    name: String,
    source: Source,
}

/// A map's definition, as `createMap` takes it (numbers are checked).
#[napi(object)]
pub struct MapDefinition {
    pub map_type: f64,
    pub key_size: f64,
    pub value_size: f64,
    pub max_entries: f64,
    pub flags: Option<f64>,
    /// A bloom filter's number of hash functions.
    pub map_extra: Option<f64>,
    pub numa_node: Option<f64>,
}

impl MapDefinition {
    pub fn to_core(&self, of: &str) -> Checked<core::map_create::MapDef> {
        let u32_of = |param: &str, v: f64| {
            int_of(&format!("{of}{param}"), v, 0, i64::from(u32::MAX)).map(|n| n as u32)
        };
        let opt = |param: &str, v: Option<f64>| v.map(|v| u32_of(param, v)).transpose();
        Ok(core::map_create::MapDef {
            map_type: u32_of("mapType", self.map_type)?,
            key_size: u32_of("keySize", self.key_size)?,
            value_size: u32_of("valueSize", self.value_size)?,
            max_entries: u32_of("maxEntries", self.max_entries)?,
            flags: opt("flags", self.flags)?.unwrap_or(0),
            map_extra: opt("mapExtra", self.map_extra)?.map_or(0, u64::from),
            numa_node: opt("numaNode", self.numa_node)?,
            ..Default::default()
        })
    }
}

pub fn describe(m: &core::Map) -> MapDesc {
    MapDesc {
        name: m.name.clone(),
        map_type: m.map_type,
        key_size: m.key_size,
        value_size: m.value_size,
        max_entries: m.max_entries,
        flags: m.flags,
        percpu: m.is_percpu(),
        pinned: m.pinned.as_ref().map(|p| p.display().to_string()),
        btf_key_type_id: m.btf_key_type_id,
        btf_value_type_id: m.btf_value_type_id,
    }
}

/// libbpf's `bpf_map_create`: a map outside any object; `inner` is a map of maps'
/// template for its values.
#[napi]
pub fn create_map(
    env: Env,
    name: String,
    definition: MapDefinition,
    inner: Option<&NativeMap>,
) -> Result<NativeMap> {
    let ctx = Ctx::op("createMap").map(&name);
    let held = inner
        .map(|i| i.held(&ctx))
        .transpose()
        .map_err(|e| to_js(&env, e))?;
    let map = call(&env, &ctx, || {
        let def = definition.to_core("")?;
        let inner = match (&held, inner) {
            (Some(h), Some(i)) => Some(h.map(&i.name)?),
            _ => None,
        };
        core::Map::create(&name, &def, inner)
    })?;
    Ok(NativeMap {
        name,
        source: Source::Own(RwLock::new(Some(Arc::new(map)))),
    })
}

/// libbpf users' `syscall(SYS_pidfd_open, pid, 0)`: a pidfd, the key of a task storage map
/// from user space. The caller closes it (`fs.closeSync`).
#[napi]
pub fn pidfd_open(env: Env, pid: f64) -> Result<i32> {
    use std::os::fd::IntoRawFd;
    call(&env, &Ctx::op("pidfdOpen"), || {
        let pid = int_of("pid", pid, 1, i32::MAX.into())? as i32;
        core::sys::pidfd_open(pid)
            .map(IntoRawFd::into_raw_fd)
            .map_err(|e| core::Error::os(format!("pidfd_open({pid})"), e))
    })
}

impl NativeMap {
    pub(crate) fn of_object(shared: Arc<Shared>, name: String) -> Self {
        NativeMap {
            name,
            source: Source::Object(shared),
        }
    }

    fn held(&self, ctx: &Ctx) -> Outcome<Held> {
        match &self.source {
            Source::Object(shared) => shared.get(ctx).map(Held::Object),
            Source::Own(lock) => lock
                .read()
                .ok()
                .and_then(|m| m.clone())
                .map(Held::Own)
                .ok_or_else(|| closed(ctx, &format!("map '{}'", self.name))),
        }
    }

    pub(crate) fn with<T>(
        &self,
        env: &Env,
        op: &'static str,
        f: impl FnOnce(&core::Map) -> core::Result<T>,
    ) -> Result<T> {
        let ctx = Ctx::op(op).map(&self.name);
        let held = self.held(&ctx).map_err(|e| to_js(env, e))?;
        call(env, &ctx, || f(held.map(&self.name)?))
    }
}

#[napi]
impl NativeMap {
    #[napi]
    pub fn desc(&self, env: Env) -> Result<MapDesc> {
        self.with(&env, "describe", |m| Ok(describe(m)))
    }

    #[napi]
    pub fn lookup(&self, env: Env, key: Uint8Array) -> Result<Option<Buffer>> {
        self.with(&env, "lookup", |m| m.lookup(&key))
            .map(|v| v.map(Buffer::from))
    }

    #[napi]
    pub fn update(
        &self,
        env: Env,
        key: Uint8Array,
        value: Uint8Array,
        flags: Option<u32>,
    ) -> Result<()> {
        self.with(&env, "update", |m| {
            m.update(&key, &value, update_flags(flags)?)
        })
    }

    #[napi]
    pub fn delete(&self, env: Env, key: Uint8Array) -> Result<bool> {
        self.with(&env, "delete", |m| m.delete(&key))
    }

    #[napi]
    pub fn keys(&self, env: Env) -> Result<Vec<Buffer>> {
        self.with(&env, "keys", |m| m.keys())
            .map(|keys| keys.into_iter().map(Buffer::from).collect())
    }

    /// Queue/stack push, bloom filter add; flags 2 (`BPF_EXIST`): a full queue drops its oldest.
    #[napi]
    pub fn push(&self, env: Env, value: Uint8Array, flags: Option<u32>) -> Result<()> {
        self.with(&env, "push", |m| m.push(&value, update_flags(flags)?))
    }

    /// A queue's or stack's next value, taken out (`take`) or not; `null` when empty.
    /// Bloom filter: `probe` is the value asked about, returned when it may be in.
    #[napi]
    pub fn pop(&self, env: Env, take: bool, probe: Option<Uint8Array>) -> Result<Option<Buffer>> {
        self.with(&env, if take { "pop" } else { "peek" }, |m| {
            m.pop(take, probe.as_deref())
        })
        .map(|v| v.map(Buffer::from))
    }

    /// A program array's slot: the program of that name in `object`.
    #[napi]
    pub fn set_program(
        &self,
        env: Env,
        key: Uint8Array,
        object: &NativeObject,
        program: String,
    ) -> Result<()> {
        let ctx = Ctx::op("setProgram").map(&self.name).program(&program);
        let owner = object.shared.get(&ctx).map_err(|e| to_js(&env, e))?;
        self.with(&env, "setProgram", |m| {
            m.set_fd(&key, owner.program(&program)?.fd()?)
        })
    }

    /// A map of maps' slot: `inner`.
    #[napi]
    pub fn set_map(&self, env: Env, key: Uint8Array, inner: &NativeMap) -> Result<()> {
        let ctx = Ctx::op("setMap").map(&inner.name);
        let held = inner.held(&ctx).map_err(|e| to_js(&env, e))?;
        self.with(&env, "setMap", |m| {
            m.set_fd(&key, held.map(&inner.name)?.fd())
        })
    }

    /// The map's fd (for `reuseFd`), valid while the map is open.
    #[napi]
    pub fn fd(&self, env: Env) -> Result<i32> {
        use std::os::fd::AsRawFd;
        self.with(&env, "fd", |m| Ok(m.fd().as_raw_fd()))
    }

    /// Closes a map made by `createMap` (an object's maps close with the object). Idempotent.
    #[napi]
    pub fn close(&self) {
        if let Source::Own(lock) = &self.source {
            if let Ok(mut m) = lock.write() {
                m.take();
            }
        }
    }
}

#[napi]
impl NativeObject {
    /// The object's map of that name.
    #[napi]
    pub fn map(&self, env: Env, name: String) -> Result<NativeMap> {
        self.with(&env, &Ctx::op("map").map(&name), |o| o.map(&name).map(drop))?;
        Ok(NativeMap::of_object(self.shared.clone(), name))
    }
}
