//! aya-obj refuses program sections it does not know (`kprobe.multi/…`, `fentry.multi/…`,
//! `ksyscall/…`, sessions, `usdt/…`). We parse SEC() names ourselves, so before handing
//! the object to aya-obj we rename such sections to a name it accepts (`tp/<index>`),
//! in both places the name lives: the ELF section-name table and the BTF string table
//! (`.BTF.ext` finds func/line info and CO-RE relocations by section name).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::{LittleEndian, Object as _, ObjectSection, ObjectSymbol, SymbolKind};

use crate::error::{bad_object, Result};

/// Program sections by ELF section index, with their original names, and the sizes of
/// the object's data symbols (so integer globals can be encoded at the right width).
pub struct ProgramSections {
    pub names: BTreeMap<usize, String>,
    pub data_symbol_sizes: HashMap<String, u64>,
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
    let shstrtab_offset = {
        let idx = file.elf_header().e_shstrndx(endian) as usize;
        let header = file
            .elf_section_table()
            .section(object::SectionIndex(idx))
            .map_err(|e| bad_object(format!("section-name table: {e}")))?;
        header.sh_offset(endian) as usize
    };

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
            renames.push((
                shstrtab_offset + header.sh_name(endian) as usize,
                name.to_string(),
                format!("tp/{index}"),
            ));
        }
        names.insert(index, name.to_string());
    }

    let data_symbol_sizes = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Data)
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.size())))
        .collect();

    let mut bytes = data.to_vec();
    if !renames.is_empty() {
        let btf_strings = btf_strings_range(&file)?;
        for (name_offset, old, new) in &renames {
            if new.len() > old.len() {
                return Err(bad_object(format!(
                    "section name '{old}' is too short for nodebpf to remap"
                )));
            }
            overwrite_cstr(&mut bytes, *name_offset, old, new)?;
            if let Some((start, end)) = btf_strings {
                let needle = [&[0u8][..], old.as_bytes(), &[0u8]].concat();
                if let Some(pos) = bytes[start..end]
                    .windows(needle.len())
                    .position(|w| w == needle.as_slice())
                {
                    overwrite_cstr(&mut bytes, start + pos + 1, old, new)?;
                }
            }
        }
    }
    Ok((
        bytes,
        ProgramSections {
            names,
            data_symbol_sizes,
        },
    ))
}

fn overwrite_cstr(bytes: &mut [u8], at: usize, old: &str, new: &str) -> Result<()> {
    let slot = bytes
        .get_mut(at..at + old.len())
        .filter(|s| *s == old.as_bytes())
        .ok_or_else(|| bad_object(format!("section name '{old}' not found where the ELF says")))?;
    slot[..new.len()].copy_from_slice(new.as_bytes());
    slot[new.len()..].fill(0);
    Ok(())
}

/// File range of the string table inside `.BTF`, if the object has BTF.
fn btf_strings_range(file: &ElfFile64<'_, LittleEndian>) -> Result<Option<(usize, usize)>> {
    let Some(section) = file.section_by_name(".BTF") else {
        return Ok(None);
    };
    let (offset, _) = section
        .file_range()
        .ok_or_else(|| bad_object(".BTF has no file data"))?;
    let data = section
        .data()
        .map_err(|e| bad_object(format!(".BTF: {e}")))?;
    let u32_at = |o: usize| -> Result<usize> {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| bad_object(".BTF header is truncated"))
    };
    let hdr_len = u32_at(4)?;
    let str_off = u32_at(16)?;
    let str_len = u32_at(20)?;
    let start = offset as usize + hdr_len + str_off;
    let end = start + str_len;
    if hdr_len + str_off + str_len > data.len() {
        return Err(bad_object(".BTF string table lies outside the section"));
    }
    Ok(Some((start, end)))
}
