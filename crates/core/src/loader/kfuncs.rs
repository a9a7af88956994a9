//! Calls to kernel functions (kfuncs: `extern … __ksym`, e.g. `bpf_session_cookie`),
//! linked the way libbpf links them, before aya-obj (which knows no externs) reads the
//! object: each call instruction gets the kfunc's vmlinux BTF id, and the object's BTF
//! loses what the kernel refuses in it (extern linkage, FUNCs in the `.ksyms` DATASEC).

use object::read::elf::{ElfFile64, ElfSymbol64};
use object::{LittleEndian, Object as _, ObjectSection, ObjectSymbol, RelocationTarget};

use crate::btf::kinds::{KIND_DATASEC, KIND_FUNC, KIND_PTR, KIND_VAR};
use crate::error::{bad_object, Error, Result};

/// `BPF_JMP | BPF_CALL`
const OP_CALL: u8 = 0x85;
/// `src_reg` of a call to a kernel function by BTF id.
const PSEUDO_KFUNC_CALL: u8 = 2;
const LINKAGE_EXTERN: u32 = 2;
/// `BTF_VAR_GLOBAL_ALLOCATED`: what an extern VAR becomes once nodebpf allocated it.
const LINKAGE_GLOBAL: u32 = 1;

/// Links every kfunc call in `bytes`; `kernel_func_id` gives a kernel function's BTF id.
/// Objects without externs are left as they are (and the kernel's BTF is not read).
/// Externs `others` claims (`.kconfig` variables) are left to it.
pub fn link(
    bytes: &mut [u8],
    others: &dyn Fn(&str) -> bool,
    kernel_func_id: &dyn Fn(&str) -> Result<Option<u32>>,
) -> Result<()> {
    let (calls, btf) = find_calls(bytes, others)?;
    if calls.is_empty() {
        return Ok(());
    }
    for (at, name) in &calls {
        let id = kernel_func_id(name)?.ok_or_else(|| {
            Error::new(
                crate::Code::Unsupported,
                format!(
                    "the program calls kernel function '{name}', which this kernel ({}) does \
                     not have (not in /sys/kernel/btf/vmlinux)",
                    crate::features::features().kernel
                ),
            )
        })?;
        let insn = bytes
            .get_mut(*at..at.saturating_add(8))
            .ok_or_else(|| bad_object(format!("call to '{name}' lies outside the file")))?;
        insn[1] = (insn[1] & 0x0f) | (PSEUDO_KFUNC_CALL << 4);
        insn[2..4].fill(0); // off 0: vmlinux, no fd_array
        insn[4..8].copy_from_slice(&id.to_le_bytes());
    }
    if let Some((start, end)) = btf {
        drop_extern_btf(&mut bytes[start..end])?;
    }
    Ok(())
}

/// File offsets of the call instructions that name an undefined symbol, with its name,
/// and the file range of `.BTF`.
type Calls = (Vec<(usize, String)>, Option<(usize, usize)>);

fn find_calls(bytes: &[u8], others: &dyn Fn(&str) -> bool) -> Result<Calls> {
    let file = ElfFile64::<LittleEndian>::parse(bytes)
        .map_err(|e| bad_object(format!("not a 64-bit little-endian ELF object: {e}")))?;
    let mut calls = Vec::new();
    for_each_undefined_ref(&file, &mut |r| {
        let ((sec_off, sec_size), offset) = (r.section, r.offset);
        let name = r.symbol.name().unwrap_or("?").to_string();
        if others(&name) {
            return Ok(());
        }
        let at = sec_off
            .checked_add(offset)
            .and_then(|a| usize::try_from(a).ok())
            .unwrap_or(usize::MAX);
        let inside = offset.checked_add(8).is_some_and(|e| e <= sec_size);
        let insn = bytes.get(at..at.saturating_add(8)).filter(|_| inside);
        if insn.is_none_or(|i| i[0] != OP_CALL) {
            return Err(bad_object(format!(
                "'{name}' is an extern nodebpf cannot link: kfunc calls and `.kconfig` \
                 variables are supported, `__ksym` variables and `&kfunc` are not"
            )));
        }
        calls.push((at, name));
        Ok(())
    })?;
    Ok((calls, section_range(&file, bytes)?))
}

/// `.BTF`'s file range in `bytes`, if the object has one.
fn section_range(
    file: &ElfFile64<'_, LittleEndian>,
    bytes: &[u8],
) -> Result<Option<(usize, usize)>> {
    match file.section_by_name(".BTF").and_then(|s| s.file_range()) {
        Some((o, s)) if o.checked_add(s).is_some_and(|e| e <= bytes.len() as u64) => {
            Ok(Some((o as usize, (o + s) as usize)))
        }
        Some(_) => Err(bad_object(".BTF lies outside the file")),
        None => Ok(None),
    }
}

fn u32_at(d: &[u8], off: usize) -> Result<u32> {
    d.get(off..off.saturating_add(4))
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| bad_object(".BTF is truncated"))
}

fn put_u32(d: &mut [u8], off: usize, v: u32) -> Result<()> {
    d.get_mut(off..off.saturating_add(4))
        .ok_or_else(|| bad_object(".BTF is truncated"))?
        .copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// A relocation in program code against an undefined symbol (an extern).
pub(super) struct ExternRef<'data, 'file> {
    /// The section's offset in the file and its size.
    pub section: (u64, u64),
    /// Where the referring instruction is, in the section.
    pub offset: u64,
    pub symbol: ElfSymbol64<'data, 'file, LittleEndian>,
}

/// Calls `f` for every reference to an extern in program code (debug sections may name
/// the externs too).
pub(super) fn for_each_undefined_ref<'data>(
    file: &ElfFile64<'data, LittleEndian>,
    f: &mut dyn FnMut(ExternRef<'data, '_>) -> Result<()>,
) -> Result<()> {
    for section in file
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text)
    {
        let Some((sec_off, sec_size)) = section.file_range() else {
            continue;
        };
        for (offset, rel) in section.relocations() {
            let RelocationTarget::Symbol(idx) = rel.target() else {
                continue;
            };
            match file.symbol_by_index(idx) {
                Ok(symbol) if symbol.is_undefined() => f(ExternRef {
                    section: (sec_off, sec_size),
                    offset,
                    symbol,
                })?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// `.BTF`'s file range in `bytes`, if the object has one.
pub fn btf_range(bytes: &[u8]) -> Result<Option<(usize, usize)>> {
    let file = ElfFile64::<LittleEndian>::parse(bytes)
        .map_err(|e| bad_object(format!("not a 64-bit little-endian ELF object: {e}")))?;
    section_range(&file, bytes)
}

/// Makes extern FUNCs static and extern VARs global, and turns the `.ksyms` and
/// `.kconfig` DATASECs into an unnamed `void *` nothing refers to (the kernel refuses
/// extern linkage, nodebpf lays out `.kconfig` in a map of its own, kernels before 5.12
/// refuse an empty DATASEC, and aya-obj would size a DATASEC by its ELF section, which
/// externs do not have). A DATASEC's entries are cut out and the bytes after them moved
/// up; the string section grows by as many NUL bytes, so `.BTF` keeps its size in the
/// file.
pub fn drop_extern_btf(btf: &mut [u8]) -> Result<()> {
    let hdr_len = u32_at(btf, 4)? as usize;
    let type_off = u32_at(btf, 8)? as usize;
    let type_len = u32_at(btf, 12)? as usize;
    let str_off = u32_at(btf, 16)? as usize;
    let str_len = u32_at(btf, 20)? as usize;
    if Some(str_off) != type_off.checked_add(type_len)
        || hdr_len
            .checked_add(str_off)
            .and_then(|e| e.checked_add(str_len))
            .is_none_or(|e| e > btf.len())
    {
        return Err(bad_object(
            ".BTF does not have its strings right after its types",
        ));
    }
    let types = hdr_len + type_off;
    let strings = hdr_len + str_off;
    let is_extern_sec = |btf: &[u8], name_off: u32| {
        btf.get(strings + name_off as usize..strings + str_len)
            .is_some_and(|s| s.starts_with(b".ksyms\0") || s.starts_with(b".kconfig\0"))
    };
    let mut off = types;
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    while off < types + type_len {
        let info = u32_at(btf, off + 4)?;
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let extra = match kind {
            1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
            3 => 12,                      // ARRAY
            4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
            6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
            _ => 0,
        };
        if off + 12 + extra > types + type_len {
            return Err(bad_object(".BTF type section is truncated"));
        }
        if kind == KIND_FUNC && vlen as u32 == LINKAGE_EXTERN {
            put_u32(btf, off + 4, info & !0xffff)?;
        }
        if kind == KIND_VAR && u32_at(btf, off + 12)? == LINKAGE_EXTERN {
            put_u32(btf, off + 12, LINKAGE_GLOBAL)?;
        }
        if kind == KIND_DATASEC && vlen > 0 && is_extern_sec(btf, u32_at(btf, off)?) {
            put_u32(btf, off, 0)?;
            put_u32(btf, off + 4, KIND_PTR << 24)?;
            put_u32(btf, off + 8, 0)?; // to void
            cuts.push((off + 12, extra));
        }
        off += 12 + extra;
    }
    // Last first, so the earlier cuts' offsets stay right.
    let (mut type_len, mut str_off, mut str_len) = (type_len, str_off, str_len);
    for (at, len) in cuts.into_iter().rev() {
        let end = hdr_len + str_off + str_len;
        btf.copy_within(at + len..end, at);
        btf[end - len..end].fill(0);
        type_len -= len;
        str_off -= len;
        str_len += len;
    }
    put_u32(btf, 12, type_len as u32)?;
    put_u32(btf, 16, str_off as u32)?;
    put_u32(btf, 20, str_len as u32)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// [1] FUNC_PROTO void(void), [2] FUNC "kf" extern, [3] DATASEC ".ksyms" { [2] }.
    fn btf_with_kfunc() -> Vec<u8> {
        let strings = b"\0kf\0.ksyms\0".to_vec();
        let types = [
            words(&[0, 13 << 24, 0]),
            words(&[1, (12 << 24) | LINKAGE_EXTERN, 1]),
            words(&[4, (15 << 24) | 1, 0, 2, 0, 0]),
        ]
        .concat();
        let mut btf = vec![0x9f, 0xeb, 1, 0];
        btf.extend(words(&[
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ]));
        btf.extend(types);
        btf.extend(strings);
        btf
    }

    #[test]
    fn extern_btf_becomes_what_the_kernel_takes() {
        let mut btf = btf_with_kfunc();
        let len = btf.len();
        drop_extern_btf(&mut btf).expect("fixed");
        assert_eq!(btf.len(), len);
        let u = |o: usize| u32_at(&btf, o).expect("in range");
        // 12 bytes of DATASEC entry moved from the types to the strings' tail.
        assert_eq!((u(12), u(16), u(20)), (36, 36, 23));
        assert_eq!(u(24 + 12 + 4), 12 << 24, "FUNC linkage is static");
        assert_eq!(
            (u(24 + 24), u(24 + 24 + 4), u(24 + 24 + 8)),
            (0, KIND_PTR << 24, 0),
            "the DATASEC is an unnamed void *"
        );
        assert_eq!(&btf[24 + 36..24 + 36 + 11], b"\0kf\0.ksyms\0");
    }

    #[test]
    fn truncated_btf_is_an_error_not_a_panic() {
        let mut btf = btf_with_kfunc();
        // Claim one more DATASEC entry than the section holds.
        let info = u32_at(&btf, 24 + 24 + 4).expect("in range");
        put_u32(&mut btf, 24 + 24 + 4, info + 1).expect("in range");
        assert!(drop_extern_btf(&mut btf).is_err());
    }
}
