//! Maps as raw bytes: the facade adds typed codecs. Per-CPU values are read and written
//! as one slot per possible CPU, each slot rounded up to 8 bytes as the kernel lays them out.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use crate::error::{einval, Error, Result};
use crate::map_create::{self, MapDef};
use crate::sys::{self, MapElemAttr};

pub mod batch;

pub struct Map {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// Where the map is pinned, when it was pinned or reused by name.
    pub pinned: Option<PathBuf>,
    /// Key and value types in the object's BTF (0: none; a map of its own has none).
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    /// A map of maps' inner template: what its values are (a fan-in makes its rings so).
    pub inner: Option<MapDef>,
    /// Who consumes the map as a ring buffer: one consumer at a time.
    pub(crate) ring_claim: std::sync::Arc<crate::events::Claim>,
    /// Which USDT spec ids are in use, when this is an object's `__bpf_usdt_specs`.
    pub(crate) usdt_slots: std::sync::Arc<crate::usdt::SpecSlots>,
    fd: OwnedFd,
}

pub fn possible_cpus() -> Result<usize> {
    aya::util::nr_cpus().map_err(|(path, e)| Error::os(format!("reading {path}"), e))
}

impl Map {
    pub(crate) fn new(name: String, def: &MapDef, fd: OwnedFd, pinned: Option<PathBuf>) -> Self {
        Map {
            name,
            map_type: def.map_type,
            key_size: def.key_size,
            value_size: def.value_size,
            max_entries: def.max_entries,
            flags: def.flags,
            pinned,
            inner: None,
            btf_key_type_id: def.btf_key_type_id,
            btf_value_type_id: def.btf_value_type_id,
            ring_claim: Default::default(),
            usdt_slots: Default::default(),
            fd,
        }
    }

    /// A map of its own, outside any object (libbpf's `bpf_map_create`); `inner` is the
    /// template of a map of maps' values.
    pub fn create(name: &str, def: &MapDef, inner: Option<&Map>) -> Result<Map> {
        let mut def = def.clone();
        def.normalize()?;
        if def.is_map_of_maps() != inner.is_some() {
            return Err(einval(format!(
                "map '{name}': an inner map is {} for map type {}",
                if inner.is_some() {
                    "only taken"
                } else {
                    "needed"
                },
                sys::names::describe_map_type(def.map_type)
            )));
        }
        let fd = map_create::create(name, &def, None, inner.map(Map::fd))?;
        let mut map = Map::new(name.to_string(), &def, fd, None);
        map.inner = inner.map(|i| MapDef {
            map_type: i.map_type,
            key_size: i.key_size,
            value_size: i.value_size,
            max_entries: i.max_entries,
            flags: i.flags,
            ..Default::default()
        });
        Ok(map)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn is_percpu(&self) -> bool {
        matches!(
            self.map_type,
            sys::BPF_MAP_TYPE_PERCPU_HASH
                | sys::BPF_MAP_TYPE_PERCPU_ARRAY
                | sys::BPF_MAP_TYPE_LRU_PERCPU_HASH
                | sys::BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
        )
    }

    /// Bytes of one value as the syscalls see it (all CPUs for per-CPU maps).
    pub fn value_buffer_size(&self) -> Result<usize> {
        if self.is_percpu() {
            Ok(self.value_size.next_multiple_of(8) as usize * possible_cpus()?)
        } else {
            Ok(self.value_size as usize)
        }
    }

    /// Queues, stacks and bloom filters have values and no keys.
    pub fn is_keyless(&self) -> bool {
        matches!(
            self.map_type,
            sys::BPF_MAP_TYPE_QUEUE | sys::BPF_MAP_TYPE_STACK | sys::BPF_MAP_TYPE_BLOOM_FILTER
        )
    }

    fn check_keyless(&self, op: &str) -> Result<()> {
        if !self.is_keyless() {
            return Err(einval(format!(
                "map '{}': {op} is for queue, stack and bloom filter maps (this one's type is {})",
                self.name, self.map_type
            )));
        }
        Ok(())
    }

    /// Pushes a value onto a queue or stack, or adds it to a bloom filter; `flags`
    /// `BPF_EXIST` (2) makes a full queue or stack drop its oldest value.
    pub fn push(&self, value: &[u8], flags: u64) -> Result<()> {
        self.check_keyless("push")?;
        self.check_value(value)?;
        let mut attr = self.elem_attr(&[], sys::ptr(value.as_ptr()), flags);
        attr.key = 0;
        sys::bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(drop)
            .map_err(|e| Error::os(format!("map '{}': push", self.name), e))
    }

    /// A queue's or stack's next value, taken out (`pop`) or left in (peek), or `None`
    /// when it is empty. For a bloom filter, peek with the value: `Some` when it may be in.
    pub fn pop(&self, take: bool, probe: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        self.check_keyless(if take { "pop" } else { "peek" })?;
        let mut value = match probe {
            Some(v) => {
                self.check_value(v)?;
                v.to_vec()
            }
            None => vec![0u8; self.value_size as usize],
        };
        let mut attr = self.elem_attr(&[], sys::ptr(value.as_mut_ptr()), 0);
        attr.key = 0;
        let cmd = if take {
            sys::BPF_MAP_LOOKUP_AND_DELETE_ELEM
        } else {
            sys::BPF_MAP_LOOKUP_ELEM
        };
        match sys::bpf(cmd, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(Error::os(
                format!("map '{}': {}", self.name, if take { "pop" } else { "peek" }),
                e,
            )),
        }
    }

    /// Stores a file descriptor as the value at `key`: a program in a program array, a
    /// map in a map of maps (the kernel keeps the object, not the fd).
    pub fn set_fd(&self, key: &[u8], fd: BorrowedFd<'_>) -> Result<()> {
        self.check_key(key)?;
        let value = fd.as_raw_fd() as u32;
        let mut attr = self.elem_attr(key, sys::ptr(&value), 0);
        sys::bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(drop)
            .map_err(|e| Error::os(format!("map '{}': update", self.name), e))
    }

    fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() != self.value_size as usize {
            return Err(einval(format!(
                "map '{}': value is {} bytes, the map's values are {} bytes",
                self.name,
                value.len(),
                self.value_size
            )));
        }
        Ok(())
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.len() != self.key_size as usize {
            return Err(einval(format!(
                "map '{}': key is {} bytes, the map's keys are {} bytes",
                self.name,
                key.len(),
                self.key_size
            )));
        }
        Ok(())
    }

    fn elem_attr(&self, key: &[u8], value: u64, flags: u64) -> MapElemAttr {
        MapElemAttr {
            map_fd: self.fd().as_raw_fd() as u32,
            key: sys::ptr(key.as_ptr()),
            value_or_next_key: value,
            flags,
            ..Default::default()
        }
    }

    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        let mut value = vec![0u8; self.value_buffer_size()?];
        let mut attr = self.elem_attr(key, sys::ptr(value.as_mut_ptr()), 0);
        match sys::bpf(sys::BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(Error::os(format!("map '{}': lookup", self.name), e)),
        }
    }

    /// `flags`: 0 any, 1 BPF_NOEXIST, 2 BPF_EXIST.
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        self.check_key(key)?;
        let expected = self.value_buffer_size()?;
        if value.len() != expected {
            return Err(einval(format!(
                "map '{}': value is {} bytes, expected {expected}{}",
                self.name,
                value.len(),
                if self.is_percpu() {
                    " (one 8-byte-aligned slot per possible CPU)"
                } else {
                    ""
                }
            )));
        }
        let mut attr = self.elem_attr(key, sys::ptr(value.as_ptr()), flags);
        sys::bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(drop)
            .map_err(|e| Error::os(format!("map '{}': update", self.name), e))
    }

    /// Returns whether the key was there.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check_key(key)?;
        let mut attr = self.elem_attr(key, 0, 0);
        match sys::bpf(sys::BPF_MAP_DELETE_ELEM, &mut attr) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(Error::os(format!("map '{}': delete", self.name), e)),
        }
    }

    /// The key after `key` (the first key for `None`), or `None` at the end.
    pub fn next_key(&self, key: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        if let Some(k) = key {
            self.check_key(k)?;
        }
        let mut next = vec![0u8; self.key_size as usize];
        let mut attr = self.elem_attr(key.unwrap_or(&[]), sys::ptr(next.as_mut_ptr()), 0);
        if key.is_none() {
            attr.key = 0;
        }
        match sys::bpf(sys::BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(_) => Ok(Some(next)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(Error::os(format!("map '{}': next key", self.name), e)),
        }
    }

    /// Every key, in the kernel's order, each once even when keys are deleted meanwhile
    /// (see [`Map::walk`]).
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        self.walk(|k| {
            keys.push(k.to_vec());
            Ok(true)
        })?;
        Ok(keys)
    }

    pub fn pin(&self, path: &std::path::Path) -> Result<()> {
        let c = path_cstring(path)?;
        sys::obj_pin(self.fd().as_raw_fd(), &c).map_err(|e| {
            Error::os(
                format!("pinning map '{}' at {}", self.name, path.display()),
                e,
            )
        })
    }
}

pub(crate) fn path_cstring(path: &std::path::Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| einval(format!("path {} contains a NUL byte", path.display())))
}
