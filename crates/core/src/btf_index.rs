//! A small reader of the kernel's BTF type section: the FUNCs by name and what their
//! prototypes look like. tracing_multi attaches thousands of functions by BTF id, and
//! only takes functions whose arguments and return value fit in registers. Module BTF
//! is split BTF: its type ids and string offsets continue those of vmlinux.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use crate::btf::kinds::{
    KIND_ARRAY, KIND_CONST, KIND_DATASEC, KIND_ENUM, KIND_ENUM64, KIND_FLOAT, KIND_FUNC,
    KIND_FUNC_PROTO, KIND_INT, KIND_PTR, KIND_RESTRICT, KIND_STRUCT, KIND_TYPEDEF, KIND_TYPE_TAG,
    KIND_UNION, KIND_VAR, KIND_VOLATILE,
};
use crate::error::{bad_object, Error, Result};

/// A struct member: name, type id, offset.
const MEMBER_SIZE: usize = 12;
/// Where an ARRAY's element count lies after its element and index types.
const ARRAY_NELEMS_AT: usize = 8;

/// How deep a type name is followed (arrays of pointers to arrays...).
const MAX_NAME_DEPTH: usize = 16;

/// A DATASEC entry: the VAR's type id, its offset and size.
const DATASEC_ENTRY_SIZE: usize = 12;

/// BTF_INT_SIGNED and BTF_INT_BOOL, bits of an INT's encoding.
const INT_SIGNED: u32 = 1;
const INT_BOOL: u32 = 4;

/// Arguments a BPF trampoline passes in registers on x86_64.
pub const MAX_ARGS: usize = 6;

#[derive(Clone, Copy)]
struct Type {
    kind: u32,
    vlen: u32,
    size_or_type: u32,
    /// Offset of the kind-specific data that follows the common header.
    extra: usize,
    /// `info`'s top bit: for enums, whether their values are signed.
    kind_flag: bool,
    name_off: u32,
}

pub struct BtfIndex {
    data: Vec<u8>,
    /// This BTF's own types; the first has id `first_id`.
    types: Vec<Type>,
    /// Where this BTF's own strings start in `data`.
    str_off: usize,
    first_id: u32,
    /// Length of the string section, base included: where a split BTF's strings start.
    str_end: u32,
    base: Option<Arc<BtfIndex>>,
    funcs: HashMap<String, Vec<u32>>,
}

/// The little-endian u32 at `off`, if `d` holds it (BTF and ELF readers share this).
pub(crate) fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    d.get(off..off.checked_add(4)?)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl BtfIndex {
    pub fn parse(data: Vec<u8>) -> Result<Self> {
        Self::parse_split(data, None)
    }

    /// Parses `data`; with a base, as split BTF on top of it (module BTF on vmlinux).
    pub fn parse_split(data: Vec<u8>, base: Option<Arc<BtfIndex>>) -> Result<Self> {
        let bad = || bad_object("kernel BTF is malformed");
        if data.get(0..2) != Some(&[0x9f, 0xeb]) {
            return Err(bad_object("kernel BTF has a bad magic number"));
        }
        // u32 fields widened to usize: sums of two or three cannot overflow on 64 bits.
        let hdr_len = u32_at(&data, 4).ok_or_else(bad)? as usize;
        let type_off = hdr_len + u32_at(&data, 8).ok_or_else(bad)? as usize;
        let type_len = u32_at(&data, 12).ok_or_else(bad)? as usize;
        let str_off = hdr_len + u32_at(&data, 16).ok_or_else(bad)? as usize;
        let str_len = u32_at(&data, 20).ok_or_else(bad)?;
        let (first_id, str_base) = match &base {
            Some(b) => (
                u32::try_from(b.types.len())
                    .ok()
                    .and_then(|n| b.first_id.checked_add(n))
                    .ok_or_else(bad)?,
                b.str_end,
            ),
            None => (0, 0),
        };
        let mut types = Vec::new();
        let mut name_offs = Vec::new();
        if base.is_none() {
            // id 0: void
            types.push(Type {
                kind: 0,
                vlen: 0,
                size_or_type: 0,
                extra: 0,
                kind_flag: false,
                name_off: 0,
            });
            name_offs.push(0);
        }
        let mut off = type_off;
        let end = type_off + type_len;
        while off < end {
            let name_off = u32_at(&data, off).ok_or_else(bad)?;
            let info = u32_at(&data, off + 4).ok_or_else(bad)?;
            let size_or_type = u32_at(&data, off + 8).ok_or_else(bad)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = info & 0xffff;
            let extra = off + 12;
            let extra_len = match kind {
                KIND_INT | KIND_VAR | 17 /* DECL_TAG */ => 4,
                3 /* ARRAY */ => 12,
                KIND_STRUCT | KIND_UNION | 15 /* DATASEC */ | KIND_ENUM64 => 12 * vlen as usize,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen as usize,
                _ => 0,
            };
            types.push(Type {
                kind,
                vlen,
                size_or_type,
                extra,
                kind_flag: info >> 31 != 0,
                name_off,
            });
            name_offs.push(name_off);
            off = extra + extra_len;
        }
        let mut funcs: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, (t, name_off)) in types.iter().zip(&name_offs).enumerate() {
            if t.kind != KIND_FUNC {
                continue;
            }
            // A split BTF's strings follow the base's, and it names things with either (a
            // module's function can share its name with one of vmlinux's).
            let name = match name_off.checked_sub(str_base) {
                Some(own) => {
                    let tail = data.get(str_off + own as usize..).ok_or_else(bad)?;
                    &tail[..tail.iter().position(|&b| b == 0).ok_or_else(bad)?]
                }
                None => base
                    .as_deref()
                    .and_then(|b| b.name(*name_off))
                    .ok_or_else(bad)?,
            };
            let name = String::from_utf8_lossy(name).into_owned();
            funcs
                .entry(name)
                .or_default()
                .push(first_id.saturating_add(i as u32));
        }
        Ok(BtfIndex {
            data,
            types,
            str_off,
            first_id,
            str_end: str_base.checked_add(str_len).ok_or_else(bad)?,
            base,
            funcs,
        })
    }

    /// A module's BTF (`/sys/kernel/btf/<module>`), on top of the kernel's. Not cached:
    /// modules come and go, and their BTF is small.
    pub fn module(name: &str) -> Result<BtfIndex> {
        let path = Path::new("/sys/kernel/btf").join(name);
        let data = std::fs::read(&path).map_err(|e| {
            let mut err = Error::os(format!("reading {}", path.display()), e);
            if err.code == crate::error::Code::Enoent {
                err.message = format!(
                    "kernel module '{name}' is not loaded or has no BTF ({} is missing)",
                    path.display()
                );
            }
            err
        })?;
        BtfIndex::parse_split(data, Some(BtfIndex::kernel(None)?))
    }

    /// The type of `id` and the index whose data holds its kind-specific part.
    fn ty(&self, id: u32) -> Option<(&BtfIndex, Type)> {
        match id.checked_sub(self.first_id) {
            Some(i) => self.types.get(i as usize).map(|t| (self, *t)),
            None => self.base.as_deref()?.ty(id),
        }
    }

    /// `id` after typedefs and qualifiers.
    pub(crate) fn skip_mods(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let (_, t) = self.ty(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// A type as a reader outside this module sees it (the CO-RE type matcher).
    pub(crate) fn view(&self, id: u32) -> Option<TypeView<'_>> {
        let (owner, t) = self.ty(id)?;
        Some(TypeView {
            kind: t.kind,
            vlen: t.vlen,
            size_or_type: t.size_or_type,
            kind_flag: t.kind_flag,
            name: if t.name_off == 0 {
                b""
            } else {
                owner.name(t.name_off)?
            },
            owner,
            extra: t.extra,
        })
    }

    /// Ids of this BTF's own types of a kind whose names are `name` once the libbpf
    /// "flavor" suffix (`___…`) is cut from both.
    pub(crate) fn ids_by_essential_name(&self, kind: u32, name: &[u8]) -> Vec<u32> {
        let name = essential_name(name);
        (0..self.types.len())
            .filter_map(|i| {
                let t = self.types[i];
                let n = self.name(t.name_off)?;
                (t.kind == kind && essential_name(n) == name)
                    .then(|| self.first_id.checked_add(u32::try_from(i).ok()?))
                    .flatten()
            })
            .collect()
    }

    /// A string of this BTF's own string section.
    pub(crate) fn string(&self, off: u32) -> Option<&[u8]> {
        self.name(off)
    }

    /// The type of the VAR `name` as C spells it (`const volatile __u32`, `char[16]`,
    /// `struct event *`), when this BTF has the VAR.
    pub fn var_type_name(&self, name: &str) -> Option<String> {
        let var = self.var_id(name)?;
        let (_, t) = self.ty(var)?;
        self.type_name(t.size_or_type, MAX_NAME_DEPTH)
    }

    fn type_name(&self, id: u32, depth: usize) -> Option<String> {
        let depth = depth.checked_sub(1)?;
        let (owner, t) = self.ty(id)?;
        let name = || String::from_utf8_lossy(owner.name(t.name_off).unwrap_or(b"")).into_owned();
        let inner = || self.type_name(t.size_or_type, depth);
        Some(match t.kind {
            0 => "void".into(),
            KIND_INT | KIND_FLOAT | KIND_TYPEDEF => name(),
            KIND_STRUCT => format!("struct {}", name()),
            KIND_UNION => format!("union {}", name()),
            KIND_ENUM | KIND_ENUM64 => format!("enum {}", name()),
            KIND_CONST => format!("const {}", inner()?),
            KIND_VOLATILE => format!("volatile {}", inner()?),
            KIND_PTR => format!("{} *", inner()?),
            KIND_ARRAY => {
                let elem = u32_at(&owner.data, t.extra)?;
                let n = u32_at(&owner.data, t.extra.checked_add(ARRAY_NELEMS_AT)?)?;
                format!("{}[{n}]", self.type_name(elem, depth)?)
            }
            _ => inner()?,
        })
    }

    /// The kernel's BTF, parsed once per path.
    pub fn kernel(path: Option<&Path>) -> Result<Arc<BtfIndex>> {
        static CACHE: OnceLock<Mutex<HashMap<std::path::PathBuf, Arc<BtfIndex>>>> = OnceLock::new();
        let path = path.unwrap_or(Path::new(crate::btf::VMLINUX)).to_path_buf();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(i) = cache.lock().ok().and_then(|c| c.get(&path).cloned()) {
            return Ok(i);
        }
        let data = std::fs::read(&path)
            .map_err(|e| Error::os(format!("reading {}", path.display()), e))?;
        let index = Arc::new(BtfIndex::parse(data)?);
        if let Ok(mut c) = cache.lock() {
            c.insert(path, index.clone());
        }
        Ok(index)
    }

    /// FUNC ids of that name (more than one for static functions of different files).
    pub fn func_ids(&self, name: &str) -> &[u32] {
        self.funcs.get(name).map_or(&[], Vec::as_slice)
    }

    fn strip(&self, id: u32) -> Option<Type> {
        self.ty(self.skip_mods(id)?).map(|(_, t)| t)
    }

    /// Whether a trampoline can carry this value, by the kernel's rules
    /// (`btf_distill_func_proto`): integers, enums and pointers; structs and unions of up
    /// to 16 bytes as arguments (two registers) but never as the return value.
    fn register_sized(&self, id: u32, what: &str, ret: bool) -> std::result::Result<(), String> {
        let t = self
            .strip(id)
            .ok_or_else(|| format!("{what} has an unknown type"))?;
        match t.kind {
            0 | KIND_INT | KIND_PTR | KIND_ENUM | KIND_ENUM64 => Ok(()),
            KIND_STRUCT | KIND_UNION if ret => Err(format!(
                "{what} is a {}-byte struct returned by value",
                t.size_or_type
            )),
            KIND_STRUCT | KIND_UNION if t.size_or_type <= 16 => Ok(()),
            KIND_STRUCT | KIND_UNION => Err(format!(
                "{what} is a {}-byte struct passed by value",
                t.size_or_type
            )),
            KIND_FLOAT => Err(format!("{what} is a floating-point value")),
            k => Err(format!("{what} has BTF kind {k}")),
        }
    }

    /// `Ok` when a tracing_multi/fentry trampoline can take the function; else why not.
    pub fn check_prototype(&self, func_id: u32) -> std::result::Result<(), String> {
        let (_, func) = self.ty(func_id).ok_or("no such BTF id")?;
        let (owner, proto) = self
            .ty(func.size_or_type)
            .filter(|(_, p)| p.kind == KIND_FUNC_PROTO)
            .ok_or("its BTF has no prototype")?;
        let nargs = proto.vlen as usize;
        if nargs > MAX_ARGS {
            return Err(format!("it takes {nargs} arguments (at most {MAX_ARGS})"));
        }
        for i in 0..nargs {
            let ty = u32_at(&owner.data, proto.extra + 8 * i + 4).ok_or("truncated prototype")?;
            if ty == 0 {
                return Err("it is variadic".into());
            }
            self.register_sized(ty, &format!("argument {}", i + 1), false)?;
        }
        self.register_sized(proto.size_or_type, "the return value", true)
    }

    /// A type's name as C spells it (`__u32`, `struct event`, `char[16]`).
    pub fn c_type_name(&self, id: u32) -> Option<String> {
        self.type_name(id, MAX_NAME_DEPTH)
    }

    /// A name in this BTF's own string section.
    fn name(&self, name_off: u32) -> Option<&[u8]> {
        let base = self.str_end.saturating_sub(self.own_str_len());
        let Some(own) = name_off.checked_sub(base) else {
            return self.base.as_deref()?.name(name_off);
        };
        let start = self.str_off.checked_add(own as usize)?;
        let tail = self.data.get(start..)?;
        tail.get(..tail.iter().position(|&b| b == 0)?)
    }

    fn own_str_len(&self) -> u32 {
        self.str_end
            .saturating_sub(self.base.as_ref().map_or(0, |b| b.str_end))
    }

    /// Byte offsets in this BTF's data of the `nelems` of zero-length arrays that end a
    /// struct: its flexible array members (`unsigned long args[]`).
    pub fn flexible_array_lengths(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .types
            .iter()
            .filter(|t| t.kind == KIND_STRUCT && t.vlen > 0)
            .filter_map(|t| {
                let last = t
                    .extra
                    .checked_add((t.vlen as usize - 1).checked_mul(MEMBER_SIZE)?)?;
                let (owner, a) = self.ty(u32_at(&self.data, last.checked_add(4)?)?)?;
                let nelems = a.extra.checked_add(ARRAY_NELEMS_AT)?;
                (std::ptr::eq(owner, self)
                    && a.kind == KIND_ARRAY
                    && u32_at(&self.data, nelems) == Some(0))
                .then_some(nelems)
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The variables a DATASEC (e.g. `.kconfig`) lists: name and size, in order.
    pub fn datasec_vars(&self, section: &str) -> Vec<(String, u32)> {
        self.datasec_entries(section)
            .into_iter()
            .map(|e| (e.name, e.size))
            .collect()
    }

    /// What a DATASEC (e.g. `.ksyms`) lists, in order: its VARs and FUNCs.
    pub fn datasec_entries(&self, section: &str) -> Vec<DatasecEntry> {
        let Some(sec) = self
            .types
            .iter()
            .find(|t| t.kind == KIND_DATASEC && self.name(t.name_off) == Some(section.as_bytes()))
        else {
            return Vec::new();
        };
        (0..sec.vlen as usize)
            .filter_map(|i| {
                let at = sec.extra.checked_add(i.checked_mul(DATASEC_ENTRY_SIZE)?)?;
                let var = u32_at(&self.data, at)?;
                let size = u32_at(&self.data, at.checked_add(8)?)?;
                let (owner, t) = self.ty(var)?;
                let name = owner.name(t.name_off)?;
                Some(DatasecEntry {
                    name: String::from_utf8_lossy(name).into_owned(),
                    size,
                    kind: t.kind,
                    void: t.kind == KIND_VAR && self.strip(t.size_or_type)?.kind == 0,
                })
            })
            .collect()
    }

    /// The `values` members of the BTF-defined maps (the VARs of `.maps`): libbpf's
    /// `__array(values, ...)`, whose elements are pointers to a program prototype (a program
    /// array) or to an inner map's struct.
    pub fn map_values_members(&self) -> Vec<ValuesMember> {
        self.datasec_entries(".maps")
            .into_iter()
            .filter_map(|entry| {
                let (_, var) = self.ty(self.var_id(&entry.name)?)?;
                let s = self
                    .strip(var.size_or_type)
                    .filter(|t| t.kind == KIND_STRUCT)?;
                (0..s.vlen as usize).find_map(|i| {
                    let at = s.extra.checked_add(i.checked_mul(MEMBER_SIZE)?)?;
                    let name_off = u32_at(&self.data, at)?;
                    if self.name(name_off) != Some(b"values".as_slice()) {
                        return None;
                    }
                    let bits = u32_at(&self.data, at.checked_add(8)?)?;
                    let array = self.strip(u32_at(&self.data, at.checked_add(4)?)?)?;
                    let ptr = self.strip(u32_at(&self.data, array.extra)?)?;
                    let pointee = (array.kind == KIND_ARRAY && ptr.kind == KIND_PTR)
                        .then(|| self.strip(ptr.size_or_type))??;
                    Some(ValuesMember {
                        map: entry.name.clone(),
                        offset: bits / 8,
                        programs: pointee.kind == KIND_FUNC_PROTO,
                        name_at: at,
                    })
                })
            })
            .collect()
    }

    /// The id of the VAR of that name (the kernel's BTF lists its per-CPU variables).
    pub fn var_id(&self, name: &str) -> Option<u32> {
        let i = self
            .types
            .iter()
            .position(|t| t.kind == KIND_VAR && self.name(t.name_off) == Some(name.as_bytes()))?;
        self.first_id.checked_add(u32::try_from(i).ok()?)
    }

    /// What integers a global variable (a BTF VAR) can hold: its type through typedefs
    /// and qualifiers, as an integer kind, or `None` when it is not one.
    pub fn var_int(&self, name: &str) -> Option<IntKind> {
        let var = self
            .types
            .iter()
            .find(|t| t.kind == KIND_VAR && self.name(t.name_off) == Some(name.as_bytes()))?;
        let t = self.strip(var.size_or_type)?;
        match t.kind {
            KIND_INT => {
                let encoding = u32_at(&self.data, t.extra)? >> 24;
                Some(if encoding & INT_BOOL != 0 {
                    IntKind::Bool
                } else if encoding & INT_SIGNED != 0 {
                    IntKind::Signed
                } else {
                    IntKind::Unsigned
                })
            }
            KIND_ENUM | KIND_ENUM64 if t.kind_flag => Some(IntKind::Signed),
            KIND_ENUM | KIND_ENUM64 | KIND_PTR => Some(IntKind::Unsigned),
            _ => None,
        }
    }
}

/// A map's `values` member (see [`BtfIndex::map_values_members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesMember {
    pub map: String,
    /// Byte offset of the array in the map's struct.
    pub offset: u32,
    /// Pointers to programs (a program array), else to inner maps.
    pub programs: bool,
    /// Where the member's `name_off` lies in the BTF data.
    pub name_at: usize,
}

/// A name without libbpf's "flavor" suffix: `task_struct___v2` is `task_struct`.
pub(crate) fn essential_name(name: &[u8]) -> &[u8] {
    name.windows(3)
        .position(|w| w == b"___")
        .map_or(name, |at| &name[..at])
}

/// A BTF type's header and its kind-specific words.
pub(crate) struct TypeView<'a> {
    pub kind: u32,
    pub vlen: u32,
    pub size_or_type: u32,
    pub kind_flag: bool,
    pub name: &'a [u8],
    owner: &'a BtfIndex,
    extra: usize,
}

impl<'a> TypeView<'a> {
    /// The `i`th 32-bit word after the header (members are 3 words, params 2, ...).
    pub fn word(&self, i: usize) -> Option<u32> {
        u32_at(&self.owner.data, self.extra.checked_add(i.checked_mul(4)?)?)
    }

    /// A name the kind-specific part refers to (a member's, an enumerator's).
    pub fn name_at(&self, off: u32) -> Option<&'a [u8]> {
        if off == 0 {
            return Some(b"");
        }
        self.owner.name(off)
    }
}

/// An entry of a DATASEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasecEntry {
    pub name: String,
    pub size: u32,
    /// `KIND_VAR` or `KIND_FUNC`.
    pub kind: u32,
    /// A VAR whose type, through typedefs and qualifiers, is `void`: a typeless `__ksym`.
    pub void: bool,
}

/// The integers a variable holds, by its BTF type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntKind {
    Signed,
    Unsigned,
    Bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btf(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let types: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut b = vec![0x9f, 0xeb, 1, 0];
        for w in [
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend(w.to_le_bytes());
        }
        b.extend(types);
        b.extend(strings);
        b
    }

    #[test]
    fn split_btf_names_things_with_its_base_strings_too() {
        // Base: [1] FUNC_PROTO, [2] FUNC "f"; strings "\0f\0".
        let base = btf(&[0, 13 << 24, 0, 1, 12 << 24, 1], b"\0f\0");
        let base = Arc::new(BtfIndex::parse(base).expect("base"));
        // Split: [3] FUNC "f" (the base's string), [4] FUNC "g" (its own, at 3 + 1),
        // [5] VAR "f" (the base's string).
        let split = btf(
            &[1, 12 << 24, 1, 4, 12 << 24, 1, 1, 14 << 24, 1, 1],
            b"\0g\0",
        );
        let split = BtfIndex::parse_split(split, Some(base)).expect("split");
        assert_eq!(split.func_ids("f"), &[3]);
        assert_eq!(split.func_ids("g"), &[4]);
        assert_eq!(split.var_id("f"), Some(5));
    }
}
