//! Type-based CO-RE relocations aya-obj 0.3 does not answer as libbpf does, resolved here
//! against the kernel's BTF, their instructions given the answer and their records taken out
//! of `.BTF.ext` before aya-obj reads it:
//! - `BPF_CORE_TYPE_MATCHES` (`bpf_core_type_matches()`, clang 15 and later), which aya-obj
//!   does not know, by libbpf's rules (`__bpf_core_types_match`);
//! - `BPF_CORE_TYPE_ID_TARGET` and `BPF_CORE_TYPE_SIZE` (`bpf_core_type_id_kernel()`,
//!   `bpf_core_type_size()`) of a type the kernel has none of (by kind and name): libbpf
//!   answers 0 (programs test `bpf_core_type_exists()` first), aya-obj refuses the object.
//!   Types the kernel has are left to aya-obj.

use std::collections::HashMap;
use std::sync::Arc;

use object::read::elf::ElfFile64;
use object::{LittleEndian, Object as _, ObjectSection};

use crate::btf::kinds::{
    KIND_ARRAY, KIND_ENUM, KIND_ENUM64, KIND_FLOAT, KIND_FUNC_PROTO, KIND_FWD, KIND_INT, KIND_PTR,
    KIND_STRUCT, KIND_UNION,
};
use crate::btf_index::{essential_name, u32_at, BtfIndex};
use crate::error::{bad_object, Result};

/// `enum bpf_core_relo_kind`'s kinds answered here.
const TYPE_ID_TARGET: u32 = 7;
const TYPE_SIZE: u32 = 9;
const TYPE_MATCHES: u32 = 12;
/// `.BTF.ext` header: hdr_len at 4; core_relo_off/len at 24/28 in headers this long.
const HDR_LEN_AT: usize = 4;
const CORE_RELO_AT: usize = 24;
const CORE_HDR_LEN: usize = 32;
/// `struct bpf_core_relo`: insn_off, type_id, access_str_off, kind.
const RELO_TYPE_AT: usize = 4;
const RELO_KIND_AT: usize = 12;
/// A section's records follow its sec_name_off and num_info.
const SEC_HEADER: usize = 8;
/// How deep type references are followed, as libbpf does.
const MAX_DEPTH: usize = 32;
/// An INT's encoding word: the signed flag (after shifting out 24 bits) and its width.
const INT_SIGNED: u32 = 1;
const INT_BITS: u32 = 0xff;
/// Instruction classes whose immediate carries a type relocation's value.
const CLASS_ALU: u8 = 0x04;
const CLASS_ALU64: u8 = 0x07;
/// Memory accesses, which carry it in their offset (`*(p + bpf_core_type_size(T))`).
const CLASS_LDX: u8 = 0x01;
const CLASS_ST: u8 = 0x02;
const CLASS_STX: u8 = 0x03;
const SOURCE_K: u8 = 0x00;
const OP_LD_IMM64: u8 = 0x18;

/// Resolves the relocations this module answers (see the module's doc) in `bytes`;
/// `target` gives the kernel's BTF (read only when the object has such relocations).
pub fn resolve(bytes: &mut [u8], target: &dyn Fn() -> Result<Arc<BtfIndex>>) -> Result<()> {
    let (ext_range, btf, sections) = {
        let file = ElfFile64::<LittleEndian>::parse(&*bytes)
            .map_err(|e| bad_object(format!("not a 64-bit little-endian ELF object: {e}")))?;
        let (Some(ext), Some(btf)) = (
            file.section_by_name(".BTF.ext"),
            file.section_by_name(".BTF"),
        ) else {
            return Ok(());
        };
        let (at, len) = ext
            .file_range()
            .ok_or_else(|| bad_object(".BTF.ext has no file data"))?;
        let btf = btf.data().map_err(|e| bad_object(format!(".BTF: {e}")))?;
        // File ranges of the sections, by name: where the relocated instructions are.
        let sections: HashMap<String, (u64, u64)> = file
            .sections()
            .filter_map(|s| Some((s.name().ok()?.to_string(), s.file_range()?)))
            .collect();
        ((at as usize, len as usize), btf.to_vec(), sections)
    };
    let bad = || bad_object(".BTF.ext core_relo is truncated");
    let ext = bytes
        .get(ext_range.0..ext_range.0 + ext_range.1)
        .ok_or_else(bad)?
        .to_vec();
    let hdr_len = u32_at(&ext, HDR_LEN_AT).ok_or_else(bad)? as usize;
    if hdr_len < CORE_HDR_LEN {
        return Ok(());
    }
    let (off, len) = (
        u32_at(&ext, CORE_RELO_AT).ok_or_else(bad)? as usize,
        u32_at(&ext, CORE_RELO_AT + 4).ok_or_else(bad)? as usize,
    );
    if len == 0 {
        return Ok(());
    }
    let start = hdr_len.checked_add(off).ok_or_else(bad)?;
    let sub = ext
        .get(start..start.checked_add(len).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    let rec_size = u32_at(sub, 0).ok_or_else(bad)? as usize;

    // The sections' records: (sec_name_off, records).
    let mut by_section: Vec<(u32, Vec<&[u8]>)> = Vec::new();
    let mut pos = 4;
    while pos < sub.len() {
        let sec_name = u32_at(sub, pos).ok_or_else(bad)?;
        let count = u32_at(sub, pos + 4).ok_or_else(bad)? as usize;
        let records = pos + SEC_HEADER;
        let end = count
            .checked_mul(rec_size)
            .and_then(|n| n.checked_add(records))
            .filter(|&e| e <= sub.len())
            .ok_or_else(bad)?;
        by_section.push((sec_name, sub[records..end].chunks_exact(rec_size).collect()));
        pos = end;
    }
    let answered_kind = |rec: &[u8]| {
        matches!(
            u32_at(rec, RELO_KIND_AT),
            Some(TYPE_ID_TARGET | TYPE_SIZE | TYPE_MATCHES)
        )
    };
    if !by_section
        .iter()
        .flat_map(|(_, r)| r)
        .any(|r| answered_kind(r))
    {
        return Ok(());
    }

    let local = BtfIndex::parse(btf)?;
    let target = target()?;
    // Whether the kernel has a type of the local one's kind and name, by local type.
    let mut in_kernel: HashMap<u32, bool> = HashMap::new();
    // Keep the records aya-obj answers, answer the others.
    let mut kept = sub[..4].to_vec();
    let mut answers: Vec<(u32, u32, u32)> = Vec::new(); // (sec_name_off, insn_off, value)
    for (sec_name, records) in by_section {
        let mut others = Vec::new();
        for rec in records {
            let kind = u32_at(rec, RELO_KIND_AT).ok_or_else(bad)?;
            let type_id = u32_at(rec, RELO_TYPE_AT).ok_or_else(bad)?;
            let answer = match kind {
                TYPE_MATCHES => Some(u32::from(matches_any(&local, type_id, &target))),
                TYPE_ID_TARGET | TYPE_SIZE => {
                    let has = *in_kernel
                        .entry(type_id)
                        .or_insert_with(|| kernel_has(&local, type_id, &target));
                    (!has).then_some(0)
                }
                _ => None,
            };
            match answer {
                Some(value) => answers.push((sec_name, u32_at(rec, 0).ok_or_else(bad)?, value)),
                None => others.push(rec),
            }
        }
        if !others.is_empty() {
            kept.extend_from_slice(&sec_name.to_le_bytes());
            kept.extend_from_slice(&(others.len() as u32).to_le_bytes());
            others.iter().for_each(|r| kept.extend_from_slice(r));
        }
    }
    for (sec_name, insn_off, value) in answers {
        let section = local
            .string(sec_name)
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or_else(|| bad_object(".BTF.ext names a section outside the BTF strings"))?
            .to_string();
        let range = sections.get(&section).copied().ok_or_else(|| {
            bad_object(format!(
                ".BTF.ext names section '{section}', which the ELF lacks"
            ))
        })?;
        patch(bytes, &section, range, insn_off as usize, value)?;
    }
    // The records that are left, in place of the old subsection (never longer).
    let at = ext_range.0 + start;
    bytes[at..at + kept.len()].copy_from_slice(&kept);
    bytes[at + kept.len()..at + len].fill(0);
    let len_at = ext_range.0 + CORE_RELO_AT + 4;
    bytes[len_at..len_at + 4].copy_from_slice(&(kept.len() as u32).to_le_bytes());
    Ok(())
}

/// Writes `value` into the immediate of the instruction at `insn_off` of `section`,
/// which lies at `(file offset, size)` in `bytes`.
fn patch(
    bytes: &mut [u8],
    section: &str,
    (sec_at, sec_len): (u64, u64),
    insn_off: usize,
    value: u32,
) -> Result<()> {
    let at = (insn_off as u64)
        .checked_add(16)
        .filter(|&e| e <= sec_len)
        .map(|_| (sec_at as usize) + insn_off)
        .ok_or_else(|| bad_object(format!("CO-RE type relocation outside section '{section}'")))?;
    let code = bytes[at];
    let class = code & 0x07;
    // libbpf's bpf_core_patch_insn: a memory access takes the value as its s16 offset.
    if matches!(class, CLASS_LDX | CLASS_ST | CLASS_STX) {
        let off = i16::try_from(value).map_err(|_| {
            bad_object(format!(
                "CO-RE type relocation at {section}+{insn_off:#x}: {value} does not fit an \
                 instruction offset"
            ))
        })?;
        bytes[at + 2..at + 4].copy_from_slice(&off.to_le_bytes());
        return Ok(());
    }
    let imm_k = (class == CLASS_ALU || class == CLASS_ALU64) && code & 0x08 == SOURCE_K;
    if !imm_k && code != OP_LD_IMM64 {
        return Err(bad_object(format!(
            "CO-RE type relocation at {section}+{insn_off:#x} on instruction {code:#04x}, \
             which takes no immediate"
        )));
    }
    bytes[at + 4..at + 8].copy_from_slice(&value.to_le_bytes());
    if code == OP_LD_IMM64 {
        bytes[at + 12..at + 16].fill(0);
    }
    Ok(())
}

/// Kinds a kernel type may have to stand for a local type of `kind`: its own, and an enum
/// may meet its 64-bit form and the other way round.
fn candidate_kinds(kind: u32) -> Vec<u32> {
    match kind {
        KIND_ENUM | KIND_ENUM64 => vec![KIND_ENUM, KIND_ENUM64],
        k => vec![k],
    }
}

/// Whether the kernel has a type of the local type's kind and (essential) name: the
/// candidates libbpf and aya-obj look at. An anonymous or unknown local type counts as
/// present, so that aya-obj says what it makes of it.
fn kernel_has(local: &BtfIndex, id: u32, target: &BtfIndex) -> bool {
    let Some(t) = local.view(id) else {
        return true;
    };
    t.name.is_empty()
        || candidate_kinds(t.kind)
            .into_iter()
            .any(|k| !target.ids_by_essential_name(k, t.name).is_empty())
}

/// Whether some type of the kernel with the local type's kind and (essential) name
/// matches it.
fn matches_any(local: &BtfIndex, id: u32, target: &BtfIndex) -> bool {
    let Some(t) = local.view(id) else {
        return false;
    };
    candidate_kinds(t.kind)
        .into_iter()
        .flat_map(|k| target.ids_by_essential_name(k, t.name))
        .any(|cand| types_match(local, id, target, cand, false, MAX_DEPTH))
}

fn names_match(a: &[u8], b: &[u8]) -> bool {
    essential_name(a) == essential_name(b)
}

/// libbpf's `__bpf_core_types_match`: the kernel's type has everything the local one says,
/// with the same layout-relevant properties; behind a pointer a struct may meet a FWD.
/// Names are compared too, base integers' included (clang says `unsigned long` where
/// gcc-built kernels' BTF says `long unsigned int`, so libbpf does not match those).
fn types_match(
    l: &BtfIndex,
    lid: u32,
    t: &BtfIndex,
    tid: u32,
    behind_ptr: bool,
    depth: usize,
) -> bool {
    if depth == 0 {
        return false;
    }
    let (Some(lid), Some(tid)) = (l.skip_mods(lid), t.skip_mods(tid)) else {
        return false;
    };
    let (Some(lt), Some(tt)) = (l.view(lid), t.view(tid)) else {
        return false;
    };
    if !names_match(lt.name, tt.name) {
        return false;
    }
    let same = lt.kind == tt.kind;
    let next = depth - 1;
    match lt.kind {
        0 => same,
        KIND_FLOAT => same && lt.size_or_type == tt.size_or_type,
        KIND_FWD if behind_ptr => {
            if same {
                lt.kind_flag == tt.kind_flag
            } else {
                // A FWD's kind flag says union (1) or struct (0).
                (tt.kind == KIND_STRUCT && !lt.kind_flag) || (tt.kind == KIND_UNION && lt.kind_flag)
            }
        }
        KIND_FWD => same && lt.kind_flag == tt.kind_flag,
        KIND_ENUM | KIND_ENUM64 => {
            let words = if lt.kind == KIND_ENUM { 2 } else { 3 };
            let target_words = if tt.kind == KIND_ENUM { 2 } else { 3 };
            matches!(tt.kind, KIND_ENUM | KIND_ENUM64)
                && lt.size_or_type == tt.size_or_type
                && (0..lt.vlen as usize).all(|i| {
                    let Some(name) = lt.word(i * words).and_then(|o| lt.name_at(o)) else {
                        return false;
                    };
                    (0..tt.vlen as usize).any(|j| {
                        tt.word(j * target_words)
                            .and_then(|o| tt.name_at(o))
                            .is_some_and(|n| names_match(name, n))
                    })
                })
        }
        KIND_STRUCT | KIND_UNION if behind_ptr => {
            same || (tt.kind == KIND_FWD && (lt.kind == KIND_UNION) == tt.kind_flag)
        }
        KIND_STRUCT | KIND_UNION => {
            same && lt.vlen <= tt.vlen
                && (0..lt.vlen as usize).all(|i| {
                    let (Some(name), Some(ty)) =
                        (lt.word(i * 3).and_then(|o| lt.name_at(o)), lt.word(i * 3 + 1))
                    else {
                        return false;
                    };
                    (0..tt.vlen as usize).any(|j| {
                        let target_name = tt.word(j * 3).and_then(|o| tt.name_at(o));
                        target_name.is_some_and(|n| names_match(name, n))
                            && tt
                                .word(j * 3 + 1)
                                .is_some_and(|tty| types_match(l, ty, t, tty, behind_ptr, next))
                    })
                })
        }
        KIND_INT => {
            // The encoding word: signedness in bits 24-27, width in bits in 0-7.
            let enc = |v: &crate::btf_index::TypeView<'_>| {
                v.word(0).map(|e| ((e >> 24) & INT_SIGNED, e & INT_BITS))
            };
            same && enc(&lt).is_some() && enc(&lt) == enc(&tt)
        }
        KIND_PTR => same && types_match(l, lt.size_or_type, t, tt.size_or_type, true, next),
        KIND_ARRAY => {
            // elem type, index type, nelems
            same && lt.word(2) == tt.word(2)
                && matches!((lt.word(0), tt.word(0)), (Some(a), Some(b)) if types_match(l, a, t, b, behind_ptr, next))
        }
        KIND_FUNC_PROTO => {
            same && lt.vlen == tt.vlen
                && types_match(l, lt.size_or_type, t, tt.size_or_type, behind_ptr, next)
                && (0..lt.vlen as usize).all(|i| {
                    matches!((lt.word(i * 2 + 1), tt.word(i * 2 + 1)), (Some(a), Some(b)) if types_match(l, a, t, b, behind_ptr, next))
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_access_takes_the_answer_as_its_offset() {
        // ldxw r0, [r1 + 16]; exit: a section of 16 bytes at file offset 0.
        let mut bytes = vec![0x61, 0x10, 16, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
        patch(&mut bytes, "tp", (0, 16), 0, 0).expect("patched");
        assert_eq!(&bytes[..8], &[0x61, 0x10, 0, 0, 0, 0, 0, 0]);
        assert!(patch(&mut bytes, "tp", (0, 16), 0, 1 << 15).is_err());
    }

    #[test]
    fn an_alu_immediate_takes_the_answer() {
        // r0 = 8 (mov64 imm), then exit.
        let mut bytes = vec![0xb7, 0, 0, 0, 8, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
        patch(&mut bytes, "tp", (0, 16), 0, 0).expect("patched");
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
        // A register source (mov64 r0, r1) takes no immediate.
        bytes[0] = 0xbf;
        assert!(patch(&mut bytes, "tp", (0, 16), 0, 0).is_err());
    }
}
