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
    let shstrndx = file.elf_header().e_shstrndx(endian) as usize;
    let shstrtab = file
        .elf_section_table()
        .section(object::SectionIndex(shstrndx))
        .map_err(|e| bad_object(format!("section-name table: {e}")))?;
    let shstrtab_range = (
        shstrtab.sh_offset(endian) as usize,
        shstrtab.sh_size(endian) as usize,
    );

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

    let data_symbol_sizes = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Data)
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.size())))
        .collect();

    let mut bytes = data.to_vec();
    if !renames.is_empty() {
        let btf_strings = btf_strings_range(&file)?;
        let new_names: Vec<(usize, &str)> = renames
            .iter()
            .map(|(i, _, new)| (*i, new.as_str()))
            .collect();
        rename_sections(&mut bytes, &file, shstrndx, shstrtab_range, &new_names)?;
        for (_, old, new) in &renames {
            if new.len() > old.len() {
                return Err(bad_object(format!(
                    "section name '{old}' is too short for nodebpf to remap"
                )));
            }
            if let Some((start, end)) = btf_strings {
                let needle = [&[0u8][..], old.as_bytes(), &[0u8]].concat();
                let strings = bytes
                    .get(start..end)
                    .ok_or_else(|| bad_object(".BTF string table lies outside the file"))?;
                if let Some(pos) = strings
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

/// `struct Elf64_Shdr`: sh_name at 0, sh_offset at 24, sh_size at 32.
const SH_NAME: usize = 0;
const SH_OFFSET: usize = 24;
const SH_SIZE: usize = 32;

/// Gives sections new names without touching the old ones: the linker merges string tails
/// (section "usdt" may be the end of symbol "on_usdt"), so a name overwritten in place
/// would rename a symbol too. The section-name table is copied to the end of the file
/// with the new names appended, and its header and the renamed sections' point there.
fn rename_sections(
    bytes: &mut Vec<u8>,
    file: &ElfFile64<'_, LittleEndian>,
    shstrndx: usize,
    (table_offset, table_size): (usize, usize),
    renames: &[(usize, &str)],
) -> Result<()> {
    let endian = LittleEndian;
    let header = file.elf_header();
    let shoff = header.e_shoff(endian) as usize;
    let shentsize = header.e_shentsize(endian) as usize;
    let shdr = |index: usize, field: usize| {
        index
            .checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
            .and_then(|o| o.checked_add(field))
            .ok_or_else(|| bad_object(format!("section {index}: header offset overflows")))
    };
    let mut table = bytes
        .get(table_offset..table_offset.saturating_add(table_size))
        .ok_or_else(|| bad_object("the section-name table lies outside the file"))?
        .to_vec();
    let mut name_offsets = Vec::new();
    for (index, name) in renames {
        name_offsets.push((*index, table.len()));
        table.extend_from_slice(name.as_bytes());
        table.push(0);
    }
    let new_offset = bytes.len().next_multiple_of(8);
    bytes.resize(new_offset, 0);
    bytes.extend_from_slice(&table);
    put(
        bytes,
        shdr(shstrndx, SH_OFFSET)?,
        &(new_offset as u64).to_le_bytes(),
    )?;
    put(
        bytes,
        shdr(shstrndx, SH_SIZE)?,
        &(table.len() as u64).to_le_bytes(),
    )?;
    for (index, at) in name_offsets {
        let at = u32::try_from(at).map_err(|_| bad_object("section-name table too large"))?;
        put(bytes, shdr(index, SH_NAME)?, &at.to_le_bytes())?;
    }
    Ok(())
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) -> Result<()> {
    bytes
        .get_mut(at..at.saturating_add(value.len()))
        .ok_or_else(|| bad_object("a section header lies outside the file"))?
        .copy_from_slice(value);
    Ok(())
}

fn overwrite_cstr(bytes: &mut [u8], at: usize, old: &str, new: &str) -> Result<()> {
    let slot = at
        .checked_add(old.len())
        .and_then(|end| bytes.get_mut(at..end))
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
        data.get(o..o.saturating_add(4))
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| bad_object(".BTF header is truncated"))
    };
    let hdr_len = u32_at(4)?;
    let str_off = u32_at(16)?;
    let str_len = u32_at(20)?;
    let outside = || bad_object(".BTF string table lies outside the section");
    let in_section = hdr_len.checked_add(str_off).ok_or_else(outside)?;
    let in_section_end = in_section.checked_add(str_len).ok_or_else(outside)?;
    if in_section_end > data.len() {
        return Err(outside());
    }
    let start = usize::try_from(offset)
        .ok()
        .and_then(|o| o.checked_add(in_section))
        .ok_or_else(outside)?;
    Ok(Some((start, start + str_len)))
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
        let data = object_with_program("kprobe.multi/vfs_*");
        let (bytes, sections) = prepare(&data).expect("prepare");
        let (&index, original) = sections.names.iter().next().expect("one program section");
        assert_eq!(original, "kprobe.multi/vfs_*");
        let renamed = format!("tp/{index}");
        assert!(section_names(&bytes).contains(&renamed));
        let (start, end) = btf_strings_range(&ElfFile64::parse(bytes.as_slice()).expect("ELF"))
            .expect("BTF")
            .expect("has BTF");
        let needle = [b"\0".as_slice(), renamed.as_bytes(), b"\0"].concat();
        assert!(bytes[start..end]
            .windows(needle.len())
            .any(|w| w == needle.as_slice()));
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
