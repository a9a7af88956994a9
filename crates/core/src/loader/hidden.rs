//! Global functions of hidden visibility (`__hidden`, as in usdt.bpf.h's `__weak __hidden
//! bpf_usdt_arg`) are made static in the object's BTF, as libbpf does: the verifier then
//! checks each call in its caller's context (a stack pointer stays a stack pointer)
//! instead of checking the function alone against its prototype, which such helpers,
//! written for libbpf, do not pass (`*res = 0` on a `long *` it cannot prove non-null).

use std::collections::HashSet;

use object::elf::{STV_HIDDEN, STV_INTERNAL};
use object::read::elf::{ElfFile64, ElfSymbol64};
use object::{LittleEndian, Object as _, ObjectSymbol, SymbolKind};

use super::kfuncs::{btf_range, put_u32, type_extra, u32_at};
use crate::btf::kinds::KIND_FUNC;
use crate::error::{bad_object, Result};

/// BTF header: magic..flags, hdr_len, type_off, type_len, str_off, str_len.
const HDR_LEN: usize = 4;
const TYPE_OFF: usize = 8;
const TYPE_LEN: usize = 12;
const STR_OFF: usize = 16;
const STR_LEN: usize = 20;
/// `struct btf_type`: name_off, info, size/type.
const TYPE_SIZE: usize = 12;
/// A FUNC's linkage is its vlen: static, global, extern.
const VLEN_MASK: u32 = 0xffff;

pub fn make_static(bytes: &mut [u8]) -> Result<()> {
    let hidden = hidden_functions(bytes)?;
    if hidden.is_empty() {
        return Ok(());
    }
    let Some((start, end)) = btf_range(bytes)? else {
        return Ok(());
    };
    let btf = &mut bytes[start..end];
    let hdr_len = u32_at(btf, HDR_LEN)? as usize;
    let types = hdr_len.saturating_add(u32_at(btf, TYPE_OFF)? as usize);
    let types_end = types.saturating_add(u32_at(btf, TYPE_LEN)? as usize);
    let strings = hdr_len.saturating_add(u32_at(btf, STR_OFF)? as usize);
    let strings_end = strings.saturating_add(u32_at(btf, STR_LEN)? as usize);
    let mut off = types;
    while off < types_end {
        let info = u32_at(btf, off + 4)?;
        let kind = (info >> 24) & 0x1f;
        if kind == KIND_FUNC && info & VLEN_MASK != 0 {
            let name_off = strings.saturating_add(u32_at(btf, off)? as usize);
            let name = btf
                .get(name_off..strings_end)
                .and_then(|s| s.split(|&b| b == 0).next())
                .ok_or_else(|| bad_object(".BTF names a FUNC outside its strings"))?;
            if hidden.contains(name) {
                put_u32(btf, off + 4, info & !VLEN_MASK)?;
            }
        }
        off += TYPE_SIZE + type_extra(kind, (info & VLEN_MASK) as usize);
    }
    Ok(())
}

/// Names of the global or weak functions with hidden or internal visibility.
fn hidden_functions(bytes: &[u8]) -> Result<HashSet<Vec<u8>>> {
    let file = ElfFile64::<LittleEndian>::parse(bytes)
        .map_err(|e| bad_object(format!("not a 64-bit little-endian ELF object: {e}")))?;
    let hidden = |s: &ElfSymbol64<'_, '_, LittleEndian>| {
        let visibility = s.elf_symbol().st_other & 0x3;
        s.kind() == SymbolKind::Text
            && s.is_global()
            && (visibility == STV_HIDDEN || visibility == STV_INTERNAL)
    };
    Ok(file
        .symbols()
        .filter(hidden)
        .filter_map(|s| s.name_bytes().ok().map(<[u8]>::to_vec))
        .collect())
}
