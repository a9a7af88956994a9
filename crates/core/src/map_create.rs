//! Our own `BPF_MAP_CREATE` (libbpf's `bpf_map_create`): every field of the kernel's
//! attr, so a map of maps gets its inner map, a bloom filter its `map_extra`, a map its
//! NUMA node, and BTF-defined maps their key/value types. Also the check that a map to
//! reuse (pinned, or an fd given) matches the definition it stands for.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::error::{Code, Error, Result};
use crate::sys;

/// A perf event array's key (a CPU) and value (a perf event fd), in bytes.
const FD_SLOT_SIZE: u32 = 4;

/// A map's definition as it is created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapDef {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub map_extra: u64,
    /// With it, `BPF_F_NUMA_NODE` is added to the flags the kernel sees.
    pub numa_node: Option<u32>,
    /// Key and value types in the object's BTF (0: none, e.g. `__uint(key_size, 4)`).
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

impl MapDef {
    pub fn of(m: &aya_obj::Map) -> Self {
        let (btf_key_type_id, btf_value_type_id) = match m {
            aya_obj::Map::Btf(b) => (b.def.btf_key_type_id, b.def.btf_value_type_id),
            aya_obj::Map::Legacy(_) => (0, 0),
        };
        MapDef {
            map_type: m.map_type(),
            key_size: m.key_size(),
            value_size: m.value_size(),
            max_entries: m.max_entries(),
            flags: m.map_flags(),
            map_extra: m.map_extra(),
            numa_node: None,
            btf_key_type_id,
            btf_value_type_id,
        }
    }

    /// What the kernel is asked for where it differs from the declaration, as libbpf and
    /// cilium/ebpf do: a perf event array declared with 0 (or more than there are) entries
    /// gets one per possible CPU. The record type declared on a perf event array or a ring
    /// buffer (`__type(value, struct event)`, cilium/ebpf's examples and bpf2go name the
    /// events so) only documents the records: the kernel takes u32 fd slots for the one
    /// and no key or value for the other. A ring buffer's size is rounded up to what the
    /// kernel takes, as libbpf does (see [`ringbuf_size`]).
    pub fn normalize(&mut self) -> Result<()> {
        match self.map_type {
            sys::BPF_MAP_TYPE_PERF_EVENT_ARRAY => {
                let cpus = u32::try_from(crate::maps::possible_cpus()?).unwrap_or(u32::MAX);
                if self.max_entries == 0 || self.max_entries > cpus {
                    self.max_entries = cpus;
                }
                (self.key_size, self.value_size) = (FD_SLOT_SIZE, FD_SLOT_SIZE);
            }
            sys::BPF_MAP_TYPE_RINGBUF | sys::BPF_MAP_TYPE_USER_RINGBUF => {
                (self.key_size, self.value_size) = (0, 0);
                self.max_entries = ringbuf_size(self.max_entries, page_size());
            }
            _ => {}
        }
        Ok(())
    }

    pub fn is_map_of_maps(&self) -> bool {
        matches!(
            self.map_type,
            sys::BPF_MAP_TYPE_ARRAY_OF_MAPS | sys::BPF_MAP_TYPE_HASH_OF_MAPS
        )
    }

    /// The BTF key and value type ids to give the kernel: none for the map types it
    /// refuses BTF for (libbpf's list), no key for a bloom filter (it has no key).
    fn btf_ids(&self) -> (u32, u32) {
        match self.map_type {
            sys::BPF_MAP_TYPE_PERF_EVENT_ARRAY
            | sys::BPF_MAP_TYPE_CGROUP_ARRAY
            | sys::BPF_MAP_TYPE_STACK_TRACE
            | sys::BPF_MAP_TYPE_ARRAY_OF_MAPS
            | sys::BPF_MAP_TYPE_HASH_OF_MAPS
            | sys::BPF_MAP_TYPE_DEVMAP
            | sys::BPF_MAP_TYPE_DEVMAP_HASH
            | sys::BPF_MAP_TYPE_CPUMAP
            | sys::BPF_MAP_TYPE_XSKMAP
            | sys::BPF_MAP_TYPE_SOCKMAP
            | sys::BPF_MAP_TYPE_SOCKHASH
            | sys::BPF_MAP_TYPE_QUEUE
            | sys::BPF_MAP_TYPE_STACK
            | sys::BPF_MAP_TYPE_RINGBUF
            | sys::BPF_MAP_TYPE_ARENA => (0, 0),
            sys::BPF_MAP_TYPE_BLOOM_FILTER => (0, self.btf_value_type_id),
            _ => (self.btf_key_type_id, self.btf_value_type_id),
        }
    }
}

fn page_size() -> u32 {
    // SAFETY: sysconf reads a constant of the running system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(page).unwrap_or(u32::MAX)
}

/// A ring buffer's size as the kernel takes it: a power-of-2 multiple of the page size.
/// Objects declare sizes such as `256 * 1024` or `1000`; like libbpf (`adjust_ringbuf_sz`)
/// the smallest such size above one that is not a valid size is used. 0 is left for the
/// kernel to refuse, and so is a size no valid one lies above.
fn ringbuf_size(size: u32, page: u32) -> u32 {
    if size == 0 || page == 0 || (size.is_multiple_of(page) && (size / page).is_power_of_two()) {
        return size;
    }
    (0..u32::BITS)
        .map_while(|shift| page.checked_shl(shift).filter(|&s| s >> shift == page))
        .find(|&s| s > size)
        .unwrap_or(size)
}

/// The kernel takes `[A-Za-z0-9_.]` in 15 bytes (and a NUL).
fn kernel_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out[..15].iter_mut().zip(name.bytes()) {
        *o = if b.is_ascii_alphanumeric() || b == b'.' {
            b
        } else {
            b'_'
        };
    }
    out
}

/// Creates the map. `btf` is the object's BTF the key/value type ids refer to; when the
/// kernel refuses the map with them, it is tried once more without (libbpf does the same:
/// some kernels refuse BTF for a map type they otherwise have), and the first error is
/// reported if that fails too.
pub fn create(
    name: &str,
    def: &MapDef,
    btf: Option<BorrowedFd<'_>>,
    inner: Option<BorrowedFd<'_>>,
) -> Result<OwnedFd> {
    crate::memlock::lift_where_charged();
    let mut attr = sys::MapCreateAttr {
        map_type: def.map_type,
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries: def.max_entries,
        map_flags: def.flags,
        inner_map_fd: inner.map_or(0, |f| f.as_raw_fd() as u32),
        map_name: kernel_name(name),
        map_extra: def.map_extra,
        ..Default::default()
    };
    if let Some(node) = def.numa_node {
        attr.numa_node = node;
        attr.map_flags |= sys::BPF_F_NUMA_NODE;
    }
    let (key_id, value_id) = def.btf_ids();
    let with_btf = match btf {
        Some(fd) if key_id != 0 || value_id != 0 => {
            attr.btf_fd = fd.as_raw_fd() as u32;
            attr.btf_key_type_id = key_id;
            attr.btf_value_type_id = value_id;
            true
        }
        _ => false,
    };
    let first = match sys::bpf_fd(sys::BPF_MAP_CREATE, &mut attr) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let error = |e| {
        let mut err = Error::os(format!("creating map '{name}'"), e);
        err.subject.map = Some(name.to_string());
        err
    };
    if !with_btf {
        return Err(error(first));
    }
    attr.btf_fd = 0;
    attr.btf_key_type_id = 0;
    attr.btf_value_type_id = 0;
    sys::bpf_fd(sys::BPF_MAP_CREATE, &mut attr).map_err(|_| error(first))
}

/// `BPF_F_MMAPABLE` (5.5): an array map whose values user space can mmap.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Whether the kernel makes mmapable arrays: asked once (a one-entry array made with the
/// flag) and remembered, as libbpf's `FEAT_ARRAY_MMAP`.
pub fn mmapable_arrays() -> bool {
    static PROBE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROBE.get_or_init(|| {
        let def = MapDef {
            map_type: sys::BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
            flags: BPF_F_MMAPABLE,
            ..Default::default()
        };
        create("mmap_probe", &def, None, None).is_ok()
    })
}

/// The kernel's view of a map fd: `EINVAL` when it is no BPF map.
pub fn info(fd: BorrowedFd<'_>, what: &str) -> Result<sys::MapInfo> {
    sys::obj_info::<sys::MapInfo>(fd.as_raw_fd()).map_err(|e| {
        Error::os(
            format!("{what}: reading the map's info (is it a BPF map?)"),
            e,
        )
    })
}

/// `INCOMPATIBLE` naming the first field where the existing map (`what`: "the map pinned
/// at ...", "the fd given") differs from the definition `name` asks for, like libbpf's
/// `map_is_reuse_compat`.
pub fn check_compatible(
    name: &str,
    def: &MapDef,
    fd: BorrowedFd<'_>,
    what: &str,
) -> Result<sys::MapInfo> {
    let got = info(fd, what)?;
    let mut flags = def.flags;
    if def.numa_node.is_some() {
        flags |= sys::BPF_F_NUMA_NODE;
    }
    let fields = [
        ("type", got.type_, def.map_type),
        ("key size", got.key_size, def.key_size),
        ("value size", got.value_size, def.value_size),
        ("max_entries", got.max_entries, def.max_entries),
        ("flags", got.map_flags, flags),
    ];
    if let Some(&(field, has, wants)) = fields.iter().find(|(_, has, wants)| has != wants) {
        // Types by name (`hash (BPF_MAP_TYPE_HASH)`), the other fields as numbers.
        let show = |v: u32| match field {
            "type" => sys::names::describe_map_type(v),
            _ => v.to_string(),
        };
        let (has, wants) = (show(has), show(wants));
        let mut err = Error::new(
            Code::Incompatible,
            format!(
                "map '{name}': cannot reuse {what}: its {field} is {has}, the object's map has {wants}"
            ),
        );
        err.subject.map = Some(name.to_string());
        return Err(err);
    }
    Ok(got)
}

/// A duplicate (close-on-exec) of a map fd given as a number, checked to be a BPF map:
/// the caller keeps its own fd, the duplicate is the loader's to close.
pub fn dup_map_fd(param: &str, raw: i64) -> Result<OwnedFd> {
    let raw = i32::try_from(raw)
        .ok()
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| Error::range(param, raw, "0..=2^31-1"))?;
    // SAFETY: fcntl only reads the fd number; one that is not open fails with EBADF.
    let dup = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(Error::os(
            format!("{param}: duplicating fd {raw}"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: a fresh fd from fcntl, owned by nobody else.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) };
    info(std::os::fd::AsFd::as_fd(&fd), param)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_sanitized_and_truncated() {
        assert_eq!(
            &kernel_name("outer_array.inner")[..16],
            b"outer_array.inn\0"
        );
        assert_eq!(&kernel_name("a-b c")[..6], b"a_b_c\0");
    }

    #[test]
    fn btf_ids_are_left_out_where_the_kernel_refuses_them() {
        let def = |map_type| MapDef {
            map_type,
            btf_key_type_id: 3,
            btf_value_type_id: 5,
            ..Default::default()
        };
        assert_eq!(def(sys::BPF_MAP_TYPE_HASH).btf_ids(), (3, 5));
        assert_eq!(def(sys::BPF_MAP_TYPE_TASK_STORAGE).btf_ids(), (3, 5));
        assert_eq!(def(sys::BPF_MAP_TYPE_BLOOM_FILTER).btf_ids(), (0, 5));
        for t in [
            sys::BPF_MAP_TYPE_STACK_TRACE,
            sys::BPF_MAP_TYPE_PERF_EVENT_ARRAY,
            sys::BPF_MAP_TYPE_ARRAY_OF_MAPS,
            sys::BPF_MAP_TYPE_QUEUE,
        ] {
            assert_eq!(def(t).btf_ids(), (0, 0));
        }
    }

    #[test]
    fn perf_event_arrays_get_one_entry_per_possible_cpu() {
        let cpus = crate::maps::possible_cpus().unwrap() as u32;
        for declared in [0, cpus + 1] {
            let mut d = MapDef {
                map_type: sys::BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                max_entries: declared,
                ..Default::default()
            };
            d.normalize().unwrap();
            assert_eq!(d.max_entries, cpus);
        }
    }

    #[test]
    fn ring_buffers_are_sized_to_a_power_of_2_multiple_of_the_page() {
        let page = 4096;
        for (declared, created) in [
            (0, 0),
            (1, page),
            (1000, page),
            (page, page),
            (page + 1, 2 * page),
            (3 * page, 4 * page),
            (256 * 1024, 256 * 1024),
            (u32::MAX, u32::MAX),
        ] {
            assert_eq!(ringbuf_size(declared, page), created, "declared {declared}");
        }
    }

    #[test]
    fn record_types_declared_on_event_maps_are_documentation() {
        for (map_type, sizes) in [
            (sys::BPF_MAP_TYPE_PERF_EVENT_ARRAY, (4, 4)),
            (sys::BPF_MAP_TYPE_RINGBUF, (0, 0)),
        ] {
            let mut d = MapDef {
                map_type,
                key_size: 4,
                value_size: 24,
                max_entries: 1,
                ..Default::default()
            };
            d.normalize().unwrap();
            assert_eq!((d.key_size, d.value_size), sizes);
        }
    }
}
