//! aya-obj refuses program sections it does not know (`kprobe.multi/…`, `fentry.multi/…`,
//! `ksyscall/…`, sessions, `usdt/…`, `tc`). We parse SEC() names ourselves, so before
//! handing the object to aya-obj we rename such sections to a name it accepts
//! (`tp/<index>`), in both places the name lives: the ELF section-name table and the BTF
//! string table (`.BTF.ext` finds func/line info and CO-RE relocations by section name).
//! The new names are appended (a longer copy of each table goes at the end of the file
//! and the section headers point at it), so any name can be renamed and strings other
//! uses share are left alone: the linker merges string tails (section "usdt" may be the
//! end of symbol "on_usdt"), so a name overwritten in place would rename a symbol too.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::{LittleEndian, Object as _, ObjectSection, ObjectSymbol, SymbolKind};

use crate::btf_index::u32_at;
use crate::error::{bad_object, Result};

/// Program sections by ELF section index, with their original names, and the sizes of
/// the object's data symbols (so integer globals can be encoded at the right width).
pub struct ProgramSections {
    pub names: BTreeMap<usize, String>,
    pub data_symbol_sizes: HashMap<String, u64>,
    /// The section each data symbol lies in (`.rodata`, `.data.counters`, ...).
    pub data_symbol_sections: HashMap<String, String>,
    /// Where each data symbol lies in its section (its value, in a relocatable object).
    pub data_symbol_offsets: HashMap<String, u64>,
}

/// Checks the object is a BPF ELF, collects its program sections and returns the bytes
/// to give aya-obj (a renamed copy when some section names are unknown to it).
pub fn prepare(data: &[u8]) -> Result<(Vec<u8>, ProgramSections)> {
    let file = ElfFile64::<LittleEndian>::parse(data)
        .map_err(|e| bad_object(format!("not a 64-bit little-endian ELF object: {e}")))?;
    let endian = LittleEndian;
    let machine = file.elf_header().e_machine(endian);
    if machine != elf::EM_BPF {
        return Err(bad_object(format!(
            "ELF machine {machine} is not BPF ({}); build with clang -target bpf",
            elf::EM_BPF
        )));
    }
    let mut names = BTreeMap::new();
    let mut renames = Vec::new();
    for section in file.sections() {
        let header = section.elf_section_header();
        let flags = header.sh_flags(endian);
        if header.sh_type(endian) != elf::SHT_PROGBITS || flags & u64::from(elf::SHF_EXECINSTR) == 0
        {
            continue;
        }
        let name = section
            .name()
            .map_err(|e| bad_object(format!("section {}: {e}", section.index().0)))?;
        if name.starts_with(".text") || section.size() == 0 {
            continue;
        }
        if super::section::parse(name).is_none() {
            return Err(bad_object(format!(
                "unknown program section '{name}': not a libbpf SEC() name \
                 (e.g. tp/…, kprobe/…, uprobe/…, fentry/…, kprobe.multi/…)"
            )));
        }
        let index = section.index().0;
        if aya_obj::ProgramSection::from_str(name).is_err() {
            renames.push((index, name.to_string(), format!("tp/{index}")));
        }
        names.insert(index, name.to_string());
    }

    let data_symbols: Vec<_> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Data)
        .filter_map(|s| Some((s.name().ok()?.to_string(), s)))
        .collect();
    let data_symbol_sizes = data_symbols
        .iter()
        .map(|(n, s)| (n.clone(), s.size()))
        .collect();
    let data_symbol_offsets = data_symbols
        .iter()
        .map(|(n, s)| (n.clone(), s.address()))
        .collect();
    let data_symbol_sections = data_symbols
        .iter()
        .filter_map(|(n, s)| {
            let section = file.section_by_index(s.section_index()?).ok()?;
            Some((n.clone(), section.name().ok()?.to_string()))
        })
        .collect();

    let mut bytes = data.to_vec();
    if !renames.is_empty() {
        rename(&mut bytes, &file, &renames)?;
    }
    Ok((
        bytes,
        ProgramSections {
            names,
            data_symbol_sizes,
            data_symbol_sections,
            data_symbol_offsets,
        },
    ))
}

/// ELF64 section header fields: where the name, file offset and size lie in a header.
const SH_NAME: usize = 0;
const SH_OFFSET: usize = 24;
const SH_SIZE: usize = 32;
/// Where appended tables start: 8-byte aligned, as BTF's readers expect.
const APPEND_ALIGN: usize = 8;
/// `struct btf_header`: hdr_len at 4, then type_off, type_len, str_off, str_len.
const BTF_HDR_LEN_AT: usize = 4;
const BTF_TYPE_OFF_AT: usize = 8;
/// `.BTF.ext` header fields holding (offset, length) of func_info, line_info, core_relo.
const BTF_EXT_SUBSECTIONS: [usize; 3] = [8, 16, 24];
/// `.BTF.ext` headers this long have the core_relo fields.
const BTF_EXT_CORE_HDR_LEN: usize = 32;

/// A section to rename: its index, old and new name.
type Rename = (usize, String, String);

/// Appends the new names to copies of the section-name table and of `.BTF` at the end of
/// `bytes`, points the section headers at the copies and each renamed section's name at
/// its new one, and makes `.BTF.ext` name the sections by their new names.
fn rename(
    bytes: &mut Vec<u8>,
    file: &ElfFile64<'_, LittleEndian>,
    renames: &[Rename],
) -> Result<()> {
    let endian = LittleEndian;
    let header = file.elf_header();
    let shoff = header.e_shoff(endian) as usize;
    let shentsize = header.e_shentsize(endian) as usize;
    let header_at = |index: usize| {
        index
            .checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
            .ok_or_else(|| bad_object(format!("section header {index} lies outside the file")))
    };
    let section_data = |index: usize| {
        file.section_by_index(object::SectionIndex(index))
            .and_then(|s| s.data())
            .map_err(|e| bad_object(format!("section {index}: {e}")))
    };

    let shstrndx = header.e_shstrndx(endian) as usize;
    let mut names = section_data(shstrndx)?.to_vec();
    let mut new_offsets = Vec::new();
    for (_, _, new) in renames {
        new_offsets.push(names.len());
        names.extend_from_slice(new.as_bytes());
        names.push(0);
    }
    relocate_section(bytes, header_at(shstrndx)?, &names)?;
    for ((index, _, _), offset) in renames.iter().zip(new_offsets) {
        put(
            bytes,
            header_at(*index)? + SH_NAME,
            &(offset as u32).to_le_bytes(),
        )?;
    }

    let Some(btf) = file.section_by_name(".BTF") else {
        return Ok(());
    };
    let old = btf.data().map_err(|e| bad_object(format!(".BTF: {e}")))?;
    let field = |at: usize| u32_at(old, at).ok_or_else(|| bad_object(".BTF header is truncated"));
    let hdr_len = field(BTF_HDR_LEN_AT)? as usize;
    let [type_off, type_len, str_off, str_len] =
        [0, 4, 8, 12].map(|o| field(BTF_TYPE_OFF_AT + o).map(|v| v as usize));
    let (type_off, type_len, str_off, str_len) = (type_off?, type_len?, str_off?, str_len?);
    let slice = |off: usize, len: usize| {
        hdr_len
            .checked_add(off)
            .and_then(|s| old.get(s..s.checked_add(len)?))
            .ok_or_else(|| bad_object(".BTF sections lie outside it"))
    };
    // header, types, strings, new names: the strings right after the types.
    let mut new = old
        .get(..hdr_len)
        .ok_or_else(|| bad_object(".BTF header is truncated"))?
        .to_vec();
    new.extend_from_slice(slice(type_off, type_len)?);
    new.extend_from_slice(slice(str_off, str_len)?);
    let mut btf_offsets = HashMap::new();
    for (_, old_name, new_name) in renames {
        btf_offsets.insert(old_name.as_str(), (new.len() - hdr_len - type_len) as u32);
        new.extend_from_slice(new_name.as_bytes());
        new.push(0);
    }
    let sizes = [0, type_len, type_len, new.len() - hdr_len - type_len];
    for (i, v) in sizes.into_iter().enumerate() {
        new[BTF_TYPE_OFF_AT + 4 * i..][..4].copy_from_slice(&(v as u32).to_le_bytes());
    }
    relocate_section(bytes, header_at(btf.index().0)?, &new)?;

    // `.BTF.ext` names sections by BTF string offset: point those at the new names.
    let Some(ext) = file.section_by_name(".BTF.ext") else {
        return Ok(());
    };
    let (ext_at, _) = ext
        .file_range()
        .ok_or_else(|| bad_object(".BTF.ext has no file data"))?;
    let ext_data = ext
        .data()
        .map_err(|e| bad_object(format!(".BTF.ext: {e}")))?;
    let strings = slice(str_off, str_len)?;
    let name_at = |off: u32| {
        let tail = strings.get(off as usize..)?;
        std::str::from_utf8(&tail[..tail.iter().position(|&b| b == 0)?]).ok()
    };
    for at in sec_name_fields(ext_data)? {
        let Some(&offset) = u32_at(ext_data, at)
            .and_then(name_at)
            .and_then(|n| btf_offsets.get(n))
        else {
            continue;
        };
        put(bytes, ext_at as usize + at, &offset.to_le_bytes())?;
    }
    Ok(())
}

/// Offsets in `.BTF.ext` of every `sec_name_off` (one per section in each subsection).
fn sec_name_fields(ext: &[u8]) -> Result<Vec<usize>> {
    let bad = || bad_object(".BTF.ext is truncated");
    let hdr_len = u32_at(ext, BTF_HDR_LEN_AT).ok_or_else(bad)? as usize;
    let mut out = Vec::new();
    for field in BTF_EXT_SUBSECTIONS {
        if field + 8 > hdr_len.min(BTF_EXT_CORE_HDR_LEN) {
            continue;
        }
        let (off, len) = (
            u32_at(ext, field).ok_or_else(bad)?,
            u32_at(ext, field + 4).ok_or_else(bad)?,
        );
        if len == 0 {
            continue;
        }
        let start = hdr_len.checked_add(off as usize).ok_or_else(bad)?;
        let end = start.checked_add(len as usize).ok_or_else(bad)?;
        let rec_size = u32_at(ext, start).ok_or_else(bad)? as usize;
        let mut pos = start + 4;
        while pos < end {
            let count = u32_at(ext, pos + 4).ok_or_else(bad)? as usize;
            out.push(pos);
            pos = count
                .checked_mul(rec_size)
                .and_then(|n| n.checked_add(pos + 8))
                .ok_or_else(bad)?;
        }
    }
    Ok(out)
}

/// Puts `data` at the (aligned) end of `bytes` and points the section header at
/// `header_at` to it.
fn relocate_section(bytes: &mut Vec<u8>, header_at: usize, data: &[u8]) -> Result<()> {
    bytes.resize(bytes.len().next_multiple_of(APPEND_ALIGN), 0);
    let offset = bytes.len() as u64;
    bytes.extend_from_slice(data);
    put(bytes, header_at + SH_OFFSET, &offset.to_le_bytes())?;
    put(
        bytes,
        header_at + SH_SIZE,
        &(data.len() as u64).to_le_bytes(),
    )
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) -> Result<()> {
    bytes
        .get_mut(at..at.saturating_add(value.len()))
        .ok_or_else(|| bad_object(format!("offset {at:#x} lies outside the file")))?
        .copy_from_slice(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::write::{Object as WObject, Symbol, SymbolSection};
    use object::{Architecture, BinaryFormat, Endianness, SectionKind, SymbolFlags, SymbolScope};

    /// A BPF object with one program in `section` and a `.BTF` whose string table
    /// holds the section name, as clang emits it.
    fn object_with_program(section: &str) -> Vec<u8> {
        let mut obj = WObject::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
        let text = obj.add_section(Vec::new(), section.as_bytes().to_vec(), SectionKind::Text);
        // mov r0, 0; exit
        let code = [0xb7u8, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
        obj.append_section_data(text, &code, 8);
        obj.add_symbol(Symbol {
            name: b"prog".to_vec(),
            value: 0,
            size: 16,
            kind: object::SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::None,
        });
        let strings = [b"\0".as_slice(), section.as_bytes(), b"\0"].concat();
        let mut btf = Vec::new();
        for v in [
            0xEB9F_u16.to_le_bytes().to_vec(),
            vec![1, 0],
            24u32.to_le_bytes().to_vec(),
        ] {
            btf.extend(v);
        }
        for v in [0u32, 0, 0, strings.len() as u32] {
            btf.extend(v.to_le_bytes());
        }
        btf.extend(&strings);
        let btf_sec = obj.add_section(Vec::new(), b".BTF".to_vec(), SectionKind::Data);
        obj.append_section_data(btf_sec, &btf, 4);
        obj.write().expect("writing the test object")
    }

    fn section_names(data: &[u8]) -> Vec<String> {
        let file = ElfFile64::<LittleEndian>::parse(data).expect("ELF");
        file.sections()
            .filter_map(|s| s.name().ok().map(str::to_string))
            .collect()
    }

    #[test]
    fn renames_sections_aya_obj_rejects_in_elf_and_btf() {
        // Longer and shorter than the new name.
        for section in ["kprobe.multi/vfs_*", "tc"] {
            let data = object_with_program(section);
            let (bytes, sections) = prepare(&data).expect("prepare");
            let (&index, original) = sections.names.iter().next().expect("one program section");
            assert_eq!(original, section);
            let renamed = format!("tp/{index}");
            assert!(section_names(&bytes).contains(&renamed));
            let file = ElfFile64::<LittleEndian>::parse(bytes.as_slice()).expect("ELF");
            let btf = file
                .section_by_name(".BTF")
                .expect("BTF")
                .data()
                .expect("data");
            let needle = [b"\0".as_slice(), renamed.as_bytes(), b"\0"].concat();
            assert!(btf.windows(needle.len()).any(|w| w == needle.as_slice()));
            // The old name is still there for whatever else used it.
            let old = [b"\0".as_slice(), section.as_bytes(), b"\0"].concat();
            assert!(btf.windows(old.len()).any(|w| w == old.as_slice()));
            let btf = crate::btf_index::BtfIndex::parse(btf.to_vec());
            assert!(btf.is_ok(), "the grown .BTF still parses");
        }
    }

    #[test]
    fn keeps_names_aya_obj_knows() {
        let data = object_with_program("tp/syscalls/sys_enter_getppid");
        let (bytes, sections) = prepare(&data).expect("prepare");
        assert_eq!(bytes, data);
        assert_eq!(
            sections.names.values().collect::<Vec<_>>(),
            ["tp/syscalls/sys_enter_getppid"]
        );
    }

    #[test]
    fn refuses_unknown_sections_and_non_bpf_files() {
        let err = prepare(&object_with_program("bogus/x"))
            .err()
            .expect("refused");
        assert_eq!(err.code, crate::Code::BadObject);
        assert!(err.message.contains("bogus/x"));
        assert_eq!(
            prepare(b"\x7fELF garbage").err().map(|e| e.code),
            Some(crate::Code::BadObject)
        );
        assert_eq!(
            prepare(&[]).err().map(|e| e.code),
            Some(crate::Code::BadObject)
        );
        let x86 = WObject::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little)
            .write()
            .expect("write");
        let err = prepare(&x86).err().expect("refused");
        assert!(err.message.contains("not BPF"));
    }
}
