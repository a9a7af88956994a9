//! A small reader of the kernel's BTF type section: the FUNCs by name and what their
//! prototypes look like. tracing_multi attaches thousands of functions by BTF id, and
//! only takes functions whose arguments and return value fit in registers. Module BTF
//! is split BTF: its type ids and string offsets continue those of vmlinux.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use crate::btf::kinds::{
    KIND_ARRAY, KIND_CONST, KIND_DATASEC, KIND_DECL_TAG, KIND_ENUM, KIND_ENUM64, KIND_FLOAT,
    KIND_FUNC, KIND_FUNC_PROTO, KIND_FWD, KIND_INT, KIND_PTR, KIND_RESTRICT, KIND_STRUCT,
    KIND_TYPEDEF, KIND_TYPE_TAG, KIND_UNION, KIND_VAR, KIND_VOLATILE,
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

/// BTF_INT_SIGNED, BTF_INT_CHAR and BTF_INT_BOOL, bits of an INT's encoding.
const INT_SIGNED: u32 = 1;
const INT_CHAR: u32 = 2;
const INT_BOOL: u32 = 4;
/// An INT's word: encoding in bits 24..28, bit offset in 16..24, bit width in 0..8.
const INT_ENCODING_SHIFT: u32 = 24;
const INT_OFFSET_SHIFT: u32 = 16;
const INT_BYTE_MASK: u32 = 0xff;
/// A member's offset word in a struct with kind_flag set: the bitfield's size in the top
/// 8 bits, its bit offset in the rest.
const BITFIELD_SIZE_SHIFT: u32 = 24;
const BITFIELD_OFFSET_MASK: u32 = 0x00ff_ffff;
/// An ENUM value (name, 32-bit value) and an ENUM64 value (name, low and high halves).
const ENUM_VALUE_SIZE: usize = 8;
const ENUM64_VALUE_SIZE: usize = 12;

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
    /// Where its type section ends in `data`: no type's part lies beyond.
    type_end: usize,
    first_id: u32,
    /// Length of the string section, base included: where a split BTF's strings start.
    str_end: u32,
    base: Option<Arc<BtfIndex>>,
    funcs: HashMap<String, Vec<u32>>,
}

/// Bytes of a type's kind-specific part, after its 12-byte header.
fn extra_len(kind: u32, vlen: u32) -> usize {
    match kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
        KIND_ARRAY => 12,
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen as usize,
        KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen as usize,
        _ => 0,
    }
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
            let extra_len = extra_len(kind, vlen);
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
            type_end: end,
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
                let offset = u32_at(&self.data, at.checked_add(4)?)?;
                let size = u32_at(&self.data, at.checked_add(8)?)?;
                let (owner, t) = self.ty(var)?;
                let name = owner.name(t.name_off)?;
                Some(DatasecEntry {
                    name: String::from_utf8_lossy(name).into_owned(),
                    offset,
                    size,
                    type_id: t.size_or_type,
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

    /// The id of the DATASEC of that name (`.data`, `.rodata.str1.1`).
    pub fn datasec_id(&self, section: &str) -> Option<u32> {
        let i = self.types.iter().position(|t| {
            t.kind == KIND_DATASEC && self.name(t.name_off) == Some(section.as_bytes())
        })?;
        self.first_id.checked_add(u32::try_from(i).ok()?)
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

/// The table of an object's types (what JS compiles codecs from).
impl BtfIndex {
    /// This BTF's own types, in id order: id 0 (`void`) first when it is a base BTF. A type
    /// that cannot be read whole (a name or member beyond the data, an unknown kind) is
    /// left out, never guessed at; ids it refers to are given as they are (the reader
    /// checks they exist).
    pub fn types(&self) -> Vec<TypeDesc> {
        self.types
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                self.describe(self.first_id.checked_add(u32::try_from(i).ok()?)?, t)
            })
            .collect()
    }

    fn describe(&self, id: u32, t: &Type) -> Option<TypeDesc> {
        let word = |i: usize| u32_at(&self.data, t.extra.checked_add(i.checked_mul(4)?)?);
        // Kind 0 is `void` at id 0 only: anywhere else it is no kind at all.
        let kind = kind_name(t.kind).filter(|_| t.kind != 0 || id == 0)?;
        // A part running past the type section would be read from the strings.
        if t.extra.checked_add(extra_len(t.kind, t.vlen))? > self.type_end {
            return None;
        }
        let mut d = TypeDesc {
            id,
            kind,
            name: self.own_or_empty(t.name_off)?,
            ..Default::default()
        };
        match t.kind {
            KIND_INT => {
                let int = word(0)?;
                let encoding = int >> INT_ENCODING_SHIFT;
                d.size = t.size_or_type;
                d.bits = int & INT_BYTE_MASK;
                d.signed = encoding & INT_SIGNED != 0;
                d.char = encoding & INT_CHAR != 0;
                d.bool = encoding & INT_BOOL != 0;
            }
            KIND_FLOAT | KIND_DATASEC => d.size = t.size_or_type,
            KIND_STRUCT | KIND_UNION => {
                d.size = t.size_or_type;
                d.members = Some(self.members(t)?);
            }
            KIND_ENUM | KIND_ENUM64 => {
                d.size = t.size_or_type;
                d.signed = t.kind_flag;
                d.values = Some(self.enum_values(t)?);
            }
            KIND_ARRAY => {
                d.type_id = word(0)?;
                d.len = word(ARRAY_NELEMS_AT / 4)?;
            }
            KIND_PTR | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_FUNC
            | KIND_FUNC_PROTO | KIND_VAR | KIND_DECL_TAG | KIND_TYPE_TAG => {
                d.type_id = t.size_or_type
            }
            _ => {}
        }
        Some(d)
    }

    /// A name, `""` for offset 0 (anonymous); `None` when the offset is beyond the strings.
    fn own_or_empty(&self, name_off: u32) -> Option<String> {
        if name_off == 0 {
            return Some(String::new());
        }
        self.name(name_off)
            .map(|n| String::from_utf8_lossy(n).into_owned())
    }

    /// A struct's or union's members with their bit offsets and bitfield sizes: in the
    /// offset word's top 8 bits when the struct's kind_flag is set (what clang emits),
    /// else, in BTF's older encoding, in the member's INT type (its bit offset and width).
    fn members(&self, t: &Type) -> Option<Vec<MemberDesc>> {
        (0..t.vlen as usize)
            .map(|i| {
                let at = t.extra.checked_add(i.checked_mul(MEMBER_SIZE)?)?;
                let type_id = u32_at(&self.data, at.checked_add(4)?)?;
                let offset = u32_at(&self.data, at.checked_add(8)?)?;
                let (bit_offset, bit_size) = if t.kind_flag {
                    (offset & BITFIELD_OFFSET_MASK, offset >> BITFIELD_SIZE_SHIFT)
                } else {
                    self.int_bitfield(type_id)
                        .map_or((offset, 0), |(shift, bits)| {
                            (offset.saturating_add(shift), bits)
                        })
                };
                Some(MemberDesc {
                    name: self.own_or_empty(u32_at(&self.data, at)?)?,
                    type_id,
                    bit_offset,
                    bit_size,
                })
            })
            .collect()
    }

    /// An INT member type that is a bitfield in BTF's older encoding: its bit offset and
    /// width, when they are not the whole of its bytes.
    fn int_bitfield(&self, type_id: u32) -> Option<(u32, u32)> {
        let (owner, t) = self.ty(self.skip_mods(type_id)?)?;
        if t.kind != KIND_INT {
            return None;
        }
        let int = u32_at(&owner.data, t.extra)?;
        let (shift, bits) = (
            (int >> INT_OFFSET_SHIFT) & INT_BYTE_MASK,
            int & INT_BYTE_MASK,
        );
        (shift != 0 || u64::from(bits) != u64::from(t.size_or_type) * 8).then_some((shift, bits))
    }

    /// An enum's values as exact decimal strings, signed when its kind_flag says so.
    fn enum_values(&self, t: &Type) -> Option<Vec<EnumValueDesc>> {
        let wide = t.kind == KIND_ENUM64;
        let size = if wide {
            ENUM64_VALUE_SIZE
        } else {
            ENUM_VALUE_SIZE
        };
        (0..t.vlen as usize)
            .map(|i| {
                let at = t.extra.checked_add(i.checked_mul(size)?)?;
                let lo = u32_at(&self.data, at.checked_add(4)?)?;
                let value = match (wide, t.kind_flag) {
                    (false, false) => lo.to_string(),
                    (false, true) => (lo as i32).to_string(),
                    (true, signed) => {
                        let hi = u32_at(&self.data, at.checked_add(8)?)?;
                        let v = u64::from(hi) << 32 | u64::from(lo);
                        if signed {
                            (v as i64).to_string()
                        } else {
                            v.to_string()
                        }
                    }
                };
                Some(EnumValueDesc {
                    name: self.own_or_empty(u32_at(&self.data, at)?)?,
                    value,
                })
            })
            .collect()
    }
}

/// libbpf's name of a BTF kind (`btf_kind_str`, lower case), `None` for kinds BTF has not.
pub fn kind_name(kind: u32) -> Option<&'static str> {
    Some(match kind {
        0 => "void",
        KIND_INT => "int",
        KIND_PTR => "ptr",
        KIND_ARRAY => "array",
        KIND_STRUCT => "struct",
        KIND_UNION => "union",
        KIND_ENUM => "enum",
        KIND_FWD => "fwd",
        KIND_TYPEDEF => "typedef",
        KIND_VOLATILE => "volatile",
        KIND_CONST => "const",
        KIND_RESTRICT => "restrict",
        KIND_FUNC => "func",
        KIND_FUNC_PROTO => "func_proto",
        KIND_VAR => "var",
        KIND_DATASEC => "datasec",
        KIND_FLOAT => "float",
        KIND_DECL_TAG => "decl_tag",
        KIND_TYPE_TAG => "type_tag",
        KIND_ENUM64 => "enum64",
        _ => return None,
    })
}

/// A BTF type as the table lists it. Fields a kind does not have are 0 or false.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeDesc {
    pub id: u32,
    /// libbpf's lower-case kind name ([`kind_name`]).
    pub kind: &'static str,
    /// `""` when anonymous.
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
    pub char: bool,
    pub bool: bool,
    /// Struct and union.
    pub members: Option<Vec<MemberDesc>>,
    /// Enum and enum64.
    pub values: Option<Vec<EnumValueDesc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDesc {
    pub name: String,
    pub type_id: u32,
    pub bit_offset: u32,
    /// 0 unless a bitfield.
    pub bit_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumValueDesc {
    pub name: String,
    /// Decimal and exact (an enum64's can be beyond 2^53).
    pub value: String,
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
    /// Where it lies in the section (as the object says, or aya-obj's fixup filled in).
    pub offset: u32,
    pub size: u32,
    /// A VAR's type; a FUNC's prototype.
    pub type_id: u32,
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

    /// A string section of `names` ("" first) and each name's offset in it.
    fn strings(names: &[&str]) -> (Vec<u8>, HashMap<String, u32>) {
        let mut bytes = vec![0u8];
        let mut at = HashMap::new();
        for n in names {
            at.insert(n.to_string(), bytes.len() as u32);
            bytes.extend(n.as_bytes());
            bytes.push(0);
        }
        (bytes, at)
    }

    /// A type's `info` word: kind, vlen, kind_flag.
    fn info(kind: u32, vlen: u32, flag: bool) -> u32 {
        (u32::from(flag) << 31) | (kind << 24) | vlen
    }

    fn member(name: &str, type_id: u32, bit_offset: u32, bit_size: u32) -> MemberDesc {
        MemberDesc {
            name: name.into(),
            type_id,
            bit_offset,
            bit_size,
        }
    }

    fn values(v: &[(&str, &str)]) -> Option<Vec<EnumValueDesc>> {
        Some(
            v.iter()
                .map(|(name, value)| EnumValueDesc {
                    name: name.to_string(),
                    value: value.to_string(),
                })
                .collect(),
        )
    }

    #[test]
    fn the_type_table_lists_every_kind_as_it_is() {
        let (strs, n) = strings(&[
            "int", "char", "_Bool", "s", "a", "b", "c", "o", "x", "y", "e", "X", "Y", "u", "Z",
            "big", "B1", "B2", "sbig", "S", "t", "un", "v", ".data", "double", "f", "fw", "tag",
            "user",
        ]);
        let big = (1u64 << 53) + 1;
        #[rustfmt::skip]
        let words = [
            // [1] int: signed, 32 bits; [2] char; [3] _Bool
            n["int"], info(KIND_INT, 0, false), 4, (INT_SIGNED << 24) | 32,
            n["char"], info(KIND_INT, 0, false), 1, (INT_CHAR << 24) | 8,
            n["_Bool"], info(KIND_INT, 0, false), 1, (INT_BOOL << 24) | 8,
            // [4] struct s (kind_flag): int a; int b:3; char c;
            n["s"], info(KIND_STRUCT, 3, true), 8,
            n["a"], 1, 0,
            n["b"], 1, (3 << 24) | 32,
            n["c"], 2, 40,
            // [5] struct o (older bitfields): x is [6], an int of 5 bits at bit 2; y an int.
            n["o"], info(KIND_STRUCT, 2, false), 4,
            n["x"], 6, 0,
            n["y"], 1, 0,
            // [6]
            n["int"], info(KIND_INT, 0, false), 4, (2 << 16) | 5,
            // [7] signed enum e { X = -1, Y = 7 }; [8] unsigned enum u { Z = 2^32-1 }
            n["e"], info(KIND_ENUM, 2, true), 4, n["X"], u32::MAX, n["Y"], 7,
            n["u"], info(KIND_ENUM, 1, false), 4, n["Z"], u32::MAX,
            // [9] enum64 big { B1 = 2^53+1, B2 = 2^64-1 }; [10] signed enum64 { S = -2^63 }
            n["big"], info(KIND_ENUM64, 2, false), 8,
            n["B1"], big as u32, (big >> 32) as u32,
            n["B2"], u32::MAX, u32::MAX,
            n["sbig"], info(KIND_ENUM64, 1, true), 8, n["S"], 0, 1 << 31,
            // [11] char[16] (index type int); [12] struct s *; [13] typedef struct s t
            0, info(KIND_ARRAY, 0, false), 0, 2, 1, 16,
            0, info(KIND_PTR, 0, false), 4,
            n["t"], info(KIND_TYPEDEF, 0, false), 4,
            // [14] union un { int a; char c; }
            n["un"], info(KIND_UNION, 2, false), 4, n["a"], 1, 0, n["c"], 2, 0,
            // [15] var v (global) of int; [16] datasec .data { v at 0, 4 bytes }
            n["v"], info(KIND_VAR, 0, false), 1, 1,
            n[".data"], info(KIND_DATASEC, 1, false), 4, 15, 0, 4,
            // [17] double; [18] int (int); [19] func f; [20] union fw (forward)
            n["double"], info(KIND_FLOAT, 0, false), 8,
            0, info(KIND_FUNC_PROTO, 1, false), 1, 0, 1,
            n["f"], info(KIND_FUNC, 1, false), 18,
            n["fw"], info(KIND_FWD, 0, true), 0,
            // [21] decl_tag "tag" on struct s; [22] type_tag "user" on int
            n["tag"], info(KIND_DECL_TAG, 0, false), 4, u32::MAX,
            n["user"], info(KIND_TYPE_TAG, 0, false), 1,
            // [23] const int; [24] volatile const int; [25] restrict ptr
            0, info(KIND_CONST, 0, false), 1,
            0, info(KIND_VOLATILE, 0, false), 23,
            0, info(KIND_RESTRICT, 0, false), 12,
        ];
        let data = btf(&words, &strs);
        // Any byte changed, the table is still made (or the BTF refused), never a panic.
        for at in 0..data.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[at] ^= flip;
                if let Ok(index) = BtfIndex::parse(bad) {
                    index.types();
                }
            }
        }
        let index = BtfIndex::parse(data).expect("parse");
        let types = index.types();
        let ids: Vec<u32> = types.iter().map(|t| t.id).collect();
        assert_eq!(ids, (0..=25).collect::<Vec<_>>());
        let t = |id: usize| types[id].clone();
        let ty = |kind, name: &str| TypeDesc {
            kind,
            name: name.into(),
            ..Default::default()
        };
        assert_eq!(t(0), ty("void", ""));
        let int = |id, name: &str, size, bits| TypeDesc {
            id,
            size,
            bits,
            ..ty("int", name)
        };
        assert_eq!(
            t(1),
            TypeDesc {
                signed: true,
                ..int(1, "int", 4, 32)
            }
        );
        assert_eq!(
            t(2),
            TypeDesc {
                char: true,
                ..int(2, "char", 1, 8)
            }
        );
        assert_eq!(
            t(3),
            TypeDesc {
                bool: true,
                ..int(3, "_Bool", 1, 8)
            }
        );
        assert_eq!(
            t(4),
            TypeDesc {
                id: 4,
                size: 8,
                members: Some(vec![
                    member("a", 1, 0, 0),
                    member("b", 1, 32, 3),
                    member("c", 2, 40, 0)
                ]),
                ..ty("struct", "s")
            }
        );
        assert_eq!(
            t(5).members,
            Some(vec![member("x", 6, 2, 5), member("y", 1, 0, 0)])
        );
        assert_eq!(t(6).bits, 5);
        assert_eq!((t(7).signed, t(7).size), (true, 4));
        assert_eq!(t(7).values, values(&[("X", "-1"), ("Y", "7")]));
        assert_eq!(t(8).values, values(&[("Z", "4294967295")]));
        assert_eq!((t(9).kind, t(9).signed, t(9).size), ("enum64", false, 8));
        assert_eq!(
            t(9).values,
            values(&[("B1", "9007199254740993"), ("B2", "18446744073709551615")])
        );
        assert_eq!(t(10).values, values(&[("S", "-9223372036854775808")]));
        assert_eq!(
            t(11),
            TypeDesc {
                id: 11,
                type_id: 2,
                len: 16,
                ..ty("array", "")
            }
        );
        assert_eq!(
            t(12),
            TypeDesc {
                id: 12,
                type_id: 4,
                ..ty("ptr", "")
            }
        );
        assert_eq!(
            t(13),
            TypeDesc {
                id: 13,
                type_id: 4,
                ..ty("typedef", "t")
            }
        );
        assert_eq!(
            t(14).members,
            Some(vec![member("a", 1, 0, 0), member("c", 2, 0, 0)])
        );
        assert_eq!((t(14).kind, t(14).size), ("union", 4));
        assert_eq!(
            t(15),
            TypeDesc {
                id: 15,
                type_id: 1,
                ..ty("var", "v")
            }
        );
        assert_eq!(
            t(16),
            TypeDesc {
                id: 16,
                size: 4,
                ..ty("datasec", ".data")
            }
        );
        assert_eq!(
            t(17),
            TypeDesc {
                id: 17,
                size: 8,
                ..ty("float", "double")
            }
        );
        assert_eq!(
            t(18),
            TypeDesc {
                id: 18,
                type_id: 1,
                ..ty("func_proto", "")
            }
        );
        assert_eq!(
            t(19),
            TypeDesc {
                id: 19,
                type_id: 18,
                ..ty("func", "f")
            }
        );
        assert_eq!(
            t(20),
            TypeDesc {
                id: 20,
                ..ty("fwd", "fw")
            }
        );
        assert_eq!(
            t(21),
            TypeDesc {
                id: 21,
                type_id: 4,
                ..ty("decl_tag", "tag")
            }
        );
        assert_eq!(
            t(22),
            TypeDesc {
                id: 22,
                type_id: 1,
                ..ty("type_tag", "user")
            }
        );
        let kinds: Vec<&str> = types[23..].iter().map(|t| t.kind).collect();
        assert_eq!(kinds, ["const", "volatile", "restrict"]);
        assert_eq!(
            index.datasec_entries(".data"),
            vec![DatasecEntry {
                name: "v".into(),
                offset: 0,
                size: 4,
                type_id: 1,
                kind: KIND_VAR,
                void: false,
            }]
        );
    }

    #[test]
    fn types_that_cannot_be_read_whole_are_left_out() {
        let (strs, n) = strings(&["int", "s", "a"]);
        let past_strings = strs.len() as u32 + 10;
        #[rustfmt::skip]
        let words = [
            // [1] int; [2] a struct whose member is named past the strings;
            n["int"], info(KIND_INT, 0, false), 4, 32,
            n["s"], info(KIND_STRUCT, 1, false), 4, past_strings, 1, 0,
            // [3] a typedef named past the strings; [4] kind 25, which BTF has not;
            past_strings, info(KIND_TYPEDEF, 0, false), 1,
            0, info(25, 0, false), 0,
            // [5] kind 0 (only id 0 is void); [6] a struct of 3 members with 1 written.
            0, info(0, 0, false), 0,
            n["s"], info(KIND_STRUCT, 3, false), 4, n["a"], 1, 0,
        ];
        let index = BtfIndex::parse(btf(&words, &strs)).expect("parse");
        let ids: Vec<u32> = index.types().iter().map(|t| t.id).collect();
        assert_eq!(ids, [0, 1]);
    }

    #[test]
    fn a_split_btf_lists_its_own_types_from_its_first_id() {
        let base = btf(&[1, info(KIND_INT, 0, false), 4, 32], b"\0i\0");
        let base = Arc::new(BtfIndex::parse(base).expect("base"));
        // [2] a pointer to the base's int, [3] typedef "j" (its own string, at 3 + 1).
        let split = btf(
            &[
                0,
                info(KIND_PTR, 0, false),
                1,
                4,
                info(KIND_TYPEDEF, 0, false),
                2,
            ],
            b"\0j\0",
        );
        let split = BtfIndex::parse_split(split, Some(base)).expect("split");
        let got: Vec<(u32, &str, String, u32)> = split
            .types()
            .into_iter()
            .map(|t| (t.id, t.kind, t.name, t.type_id))
            .collect();
        assert_eq!(
            got,
            [(2, "ptr", String::new(), 1), (3, "typedef", "j".into(), 2)]
        );
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
