//! Checks a BPF ELF object before anything else reads it.
//!
//! aya-obj 0.3 trusts the sizes, offsets, counts and indexes it reads: an out-of-range
//! one becomes a slice panic, an `unwrap()` on `None`, an arithmetic overflow, or an
//! allocation of whatever a size field says (an allocation failure aborts the process, so
//! `catch_unwind` cannot save it). Our own `elf_names`/`kfuncs` index the file too. So the
//! load path starts here: every number those readers will trust is checked against the
//! bytes it describes, and anything wrong is a `BAD_OBJECT` error naming the section and
//! the offset. See crates/core/README.md, "Decision: validation in front of aya-obj".
//!
//! Only little-endian ELF64 for EM_BPF is accepted (what `clang -target bpf` emits on the
//! hosts we support; `elf_names` refuses anything else too).

use std::ops::Range;

use crate::btf::kinds::{
    KIND_ARRAY, KIND_CONST, KIND_DATASEC, KIND_DECL_TAG, KIND_ENUM, KIND_ENUM64, KIND_FLOAT,
    KIND_FUNC, KIND_FUNC_PROTO, KIND_FWD, KIND_INT, KIND_PTR, KIND_RESTRICT, KIND_STRUCT,
    KIND_TYPEDEF, KIND_TYPE_TAG, KIND_UNION, KIND_VAR, KIND_VOLATILE,
};
use crate::error::{bad_object, Error, Result};

// ---- ELF -------------------------------------------------------------------------------

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const ET_REL: u16 = 1;
const EM_BPF: u16 = 247;
const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: u64 = 24;
const REL_SIZE: u64 = 16;
const RELA_SIZE: u64 = 24;

const SHT_NULL: u32 = 0;
const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHT_REL: u32 = 9;
const SHF_EXECINSTR: u64 = 0x4;

/// Section indexes from here up are special (`SHN_ABS`, `SHN_COMMON`, …), not sections.
const SHN_LORESERVE: u16 = 0xff00;
/// The real index is in an `SHT_SYMTAB_SHNDX` section; no BPF object needs one.
const SHN_XINDEX: u16 = 0xffff;

const STT_FUNC: u8 = 2;
const STT_SECTION: u8 = 3;
const STT_FILE: u8 = 4;

/// The two relocation types clang emits against BPF code: `ld_imm64` (map, global data,
/// function pointer) and `call` (sub-program).
const R_BPF_64_64: u32 = 1;
const R_BPF_64_32: u32 = 10;

/// A `.bss`-like section (`SHT_NOBITS`) has a size but no bytes in the file; aya-obj
/// allocates that size zeroed. The kernel refuses array values above KMALLOC_MAX_SIZE,
/// 4 MiB on x86-64 and at most 512 MiB on any architecture (arm64 with 64 KiB pages), so
/// nothing bigger can ever load; past this, the size is a corrupt field, not a program.
pub const MAX_NOBITS_SIZE: u64 = 512 << 20;

// ---- BPF instructions ------------------------------------------------------------------

const INSN_SIZE: u64 = 8;
/// `BPF_LD | BPF_IMM | BPF_DW`: the two-slot instruction that map and data relocations
/// patch (the second slot takes the offset into the data).
const OP_LD_IMM64: u8 = 0x18;
/// `BPF_JMP | BPF_CALL` (`BPF_K`).
const OP_CALL: u8 = 0x85;
/// `src_reg` of a call to a sub-program (pc-relative).
const PSEUDO_CALL: u8 = 1;

// ---- BTF -------------------------------------------------------------------------------

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_VERSION: u8 = 1;
/// `struct btf_header`: magic, version, flags, hdr_len, type_off/len, str_off/len.
const BTF_HEADER_SIZE: u64 = 24;
/// BTF types and `.BTF.ext` records are arrays of 32-bit words.
const BTF_ALIGN: u64 = 4;
/// `struct btf_type`: name_off, info, size/type.
const BTF_TYPE_SIZE: u64 = 12;

/// Kind-specific bytes after the common header: INT's encoding, VAR's linkage,
/// DECL_TAG's component index.
const BTF_U32_EXTRA: u64 = 4;
/// `struct btf_array`: element type, index type, nelems.
const BTF_ARRAY_SIZE: u64 = 12;
/// `struct btf_member`, `struct btf_var_secinfo`, `struct btf_enum64`.
const BTF_MEMBER_SIZE: u64 = 12;
/// `struct btf_enum`, `struct btf_param`.
const BTF_ENUM_SIZE: u64 = 8;

/// `BTF_VAR_GLOBAL_EXTERN`, the last VAR linkage (static, global, extern).
const MAX_VAR_LINKAGE: u32 = 2;

/// How many modifiers/typedefs/arrays a chain of type references may go through; aya-obj
/// gives up after as many (its `MAX_RESOLVE_DEPTH`).
const MAX_RESOLVE_DEPTH: usize = 32;

/// The largest struct or union member, in bytes, whose size in bits fits in a u32
/// (aya-obj's CO-RE field relocations multiply a member's size by 8 in 32 bits).
const MAX_MEMBER_SIZE: u64 = u32::MAX as u64 / 8;

/// The largest type, in bytes: aya-obj computes sizes (an array's elements times their
/// size) in 32 bits.
const MAX_TYPE_SIZE: u64 = u32::MAX as u64;

/// A BTF PTR's size on the 64-bit targets BPF has.
const POINTER_SIZE: u64 = 8;

// ---- BTF.ext ---------------------------------------------------------------------------

/// magic, version, flags, hdr_len, func_info_off/len, line_info_off/len.
const BTF_EXT_HEADER_MIN: u64 = 24;
/// `struct bpf_func_info`: insn_off, type_id.
const FUNC_INFO_MIN: u64 = 8;
/// `struct bpf_line_info`: insn_off, file_name_off, line_off, line_col.
const LINE_INFO_MIN: u64 = 16;
/// `struct bpf_core_relo`: insn_off, type_id, access_str_off, kind.
const CORE_RELO_MIN: u64 = 16;
/// A record bigger than this is a corrupt field (libbpf's own are 8 and 16 bytes; newer
/// compilers may append fields, never kilobytes).
const MAX_REC_SIZE: u64 = 1024;
/// `btf_ext_info_sec`: sec_name_off, num_info.
const SEC_INFO_HEADER: u64 = 8;
/// The last `enum bpf_core_relo_kind` aya-obj knows (`BPF_CORE_TYPE_MATCHES`).
const MAX_CORE_RELO_KIND: u32 = 12;
/// An accessor index in a CO-RE access string ("0:1:2"): a member index is below a
/// struct's vlen (16 bits) and an array index in a CO-RE access is a constant; beyond
/// this the offset arithmetic overflows (index × element size × 8 bits).
const MAX_ACCESS_INDEX: u64 = u16::MAX as u64;
/// aya-obj's `MAX_SPEC_LEN`.
const MAX_ACCESS_COMPONENTS: usize = 64;

fn err(section: &str, at: u64, what: impl std::fmt::Display) -> Error {
    bad_object(format!("{section}: {what} (offset {at:#x})"))
}

fn u16_at(d: &[u8], off: u64) -> Option<u16> {
    let off = usize::try_from(off).ok()?;
    let b = d.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(d: &[u8], off: u64) -> Option<u32> {
    let off = usize::try_from(off).ok()?;
    let b = d.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(d: &[u8], off: u64) -> Option<u64> {
    let off = usize::try_from(off).ok()?;
    let b = d.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// `start..start+len` as a range inside `total`, or `None` when it overflows or does not fit.
fn range_in(start: u64, len: u64, total: usize) -> Option<Range<usize>> {
    let end = start.checked_add(len)?;
    if end > total as u64 {
        return None;
    }
    Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
}

/// The NUL-terminated string at `off` in `table`, if it is one.
fn cstr_at(table: &[u8], off: u64) -> Option<&[u8]> {
    let tail = table.get(usize::try_from(off).ok()?..)?;
    let len = tail.iter().position(|&b| b == 0)?;
    Some(&tail[..len])
}

#[derive(Clone, Debug)]
struct Shdr {
    name: u32,
    kind: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    entsize: u64,
}

impl Shdr {
    fn is_exec(&self) -> bool {
        self.flags & SHF_EXECINSTR != 0
    }

    /// The bytes of the section in the file (empty for NOBITS/NULL: checked in range).
    fn file_range(&self) -> Range<usize> {
        if matches!(self.kind, SHT_NOBITS | SHT_NULL) {
            return 0..0;
        }
        // In range for every section but the null one, which `check_header_and_sections`
        // does not require to be: callers take the bytes with `get`.
        let start = usize::try_from(self.offset).unwrap_or(usize::MAX);
        start..start.saturating_add(usize::try_from(self.size).unwrap_or(usize::MAX))
    }

    /// How many bytes aya-obj will have to slice symbols out of.
    fn data_len(&self) -> u64 {
        if matches!(self.kind, SHT_NOBITS | SHT_NULL) {
            0
        } else {
            self.size
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Sym {
    kind: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

impl Sym {
    /// The section the symbol is defined in, if a real one.
    fn section(&self) -> Option<usize> {
        (self.shndx != 0 && self.shndx < SHN_LORESERVE).then_some(self.shndx as usize)
    }
}

struct Elf<'a> {
    data: &'a [u8],
    sections: Vec<Shdr>,
    names: Vec<String>,
    symbols: Vec<Sym>,
}

impl Elf<'_> {
    fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or("?", String::as_str)
    }

    fn bytes(&self, index: usize) -> &[u8] {
        self.sections
            .get(index)
            .and_then(|s| self.data.get(s.file_range()))
            .unwrap_or(&[])
    }
}

/// Checks `data` is a BPF object every later reader can walk without trusting anything.
pub fn check(data: &[u8]) -> Result<()> {
    let mut elf = check_header_and_sections(data)?;
    check_symbols(&mut elf)?;
    check_relocations(&elf)?;
    check_calls(&elf)?;
    let btf = match find_unique(&elf, ".BTF")? {
        Some(i) => Some(check_btf(elf.bytes(i), elf.sections[i].offset)?),
        None => None,
    };
    if let (Some(btf), Some(i)) = (&btf, find_unique(&elf, ".BTF.ext")?) {
        check_btf_ext(elf.bytes(i), elf.sections[i].offset, btf)?;
    }
    Ok(())
}

fn check_header_and_sections(data: &[u8]) -> Result<Elf<'_>> {
    const ELF: &str = "ELF header";
    if data.len() < EHDR_SIZE || &data[..ELF_MAGIC.len()] != ELF_MAGIC {
        return Err(err(ELF, 0, "not an ELF file"));
    }
    if data[EI_CLASS] != ELFCLASS64 || data[EI_DATA] != ELFDATA2LSB {
        return Err(err(
            ELF,
            EI_CLASS as u64,
            "not a 64-bit little-endian ELF object",
        ));
    }
    let field16 = |o| u16_at(data, o).ok_or_else(|| err(ELF, o, "truncated"));
    let e_type = field16(16)?;
    let e_machine = field16(18)?;
    let e_shoff = u64_at(data, 40).ok_or_else(|| err(ELF, 40, "truncated"))?;
    let e_shentsize = field16(58)?;
    let e_shnum = field16(60)?;
    let e_shstrndx = field16(62)?;
    if e_machine != EM_BPF {
        return Err(err(
            ELF,
            18,
            format!("ELF machine {e_machine} is not BPF ({EM_BPF}); build with clang -target bpf"),
        ));
    }
    if e_type != ET_REL {
        return Err(err(
            ELF,
            16,
            format!("ELF type {e_type} is not a relocatable object (clang -c)"),
        ));
    }
    if e_shentsize as usize != SHDR_SIZE {
        return Err(err(
            ELF,
            58,
            format!("section header size {e_shentsize}, expected {SHDR_SIZE}"),
        ));
    }
    // 0 would mean "more than 0xff00 sections, count in section 0": no BPF object has that.
    if e_shnum == 0 || e_shnum >= SHN_LORESERVE {
        return Err(err(ELF, 60, format!("section count {e_shnum}")));
    }
    let table = range_in(e_shoff, u64::from(e_shnum) * SHDR_SIZE as u64, data.len())
        .ok_or_else(|| {
            err(
                ELF,
                40,
                format!("section header table ({e_shnum} × {SHDR_SIZE} at {e_shoff:#x}) lies outside the file"),
            )
        })?;
    let table = &data[table];
    let mut sections = Vec::with_capacity(e_shnum as usize);
    for i in 0..u64::from(e_shnum) {
        let at = i * SHDR_SIZE as u64;
        let f32 = |o: u64| u32_at(table, at + o).unwrap_or(0);
        let f64 = |o: u64| u64_at(table, at + o).unwrap_or(0);
        sections.push(Shdr {
            name: f32(0),
            kind: f32(4),
            flags: f64(8),
            addr: f64(16),
            offset: f64(24),
            size: f64(32),
            link: f32(40),
            info: f32(44),
            entsize: f64(56),
        });
    }
    let shnum = sections.len();
    if e_shstrndx == 0 || e_shstrndx as usize >= shnum {
        return Err(err(
            ELF,
            62,
            format!("section-name table index {e_shstrndx} of {shnum} sections"),
        ));
    }
    for (i, s) in sections.iter().enumerate() {
        let at = e_shoff + (i * SHDR_SIZE) as u64;
        let what = format!("section header {i}");
        if i == 0 {
            continue;
        }
        if s.kind != SHT_NOBITS && s.kind != SHT_NULL {
            range_in(s.offset, s.size, data.len()).ok_or_else(|| {
                err(
                    &what,
                    at,
                    format!(
                        "data ({} bytes at {:#x}) lies outside the file ({} bytes)",
                        s.size,
                        s.offset,
                        data.len()
                    ),
                )
            })?;
        } else if s.size > MAX_NOBITS_SIZE {
            return Err(err(
                &what,
                at,
                format!(
                    "uninitialized section of {} bytes (at most {MAX_NOBITS_SIZE})",
                    s.size
                ),
            ));
        }
        if s.link as usize >= shnum {
            return Err(err(
                &what,
                at,
                format!("sh_link {} of {shnum} sections", s.link),
            ));
        }
        if matches!(s.kind, SHT_REL | SHT_RELA) && (s.info == 0 || s.info as usize >= shnum) {
            return Err(err(
                &what,
                at,
                format!("sh_info {} of {shnum} sections", s.info),
            ));
        }
        // aya-obj takes symbol addresses minus section addresses as offsets.
        if s.addr != 0 {
            return Err(err(
                &what,
                at,
                format!("address {:#x} in a relocatable object", s.addr),
            ));
        }
        if s.is_exec() && s.kind != SHT_PROGBITS {
            return Err(err(&what, at, "executable section without file data"));
        }
        if s.is_exec() && !s.size.is_multiple_of(INSN_SIZE) {
            return Err(err(
                &what,
                at,
                format!("code size {} is not a whole number of instructions", s.size),
            ));
        }
    }
    let shstrtab = &sections[e_shstrndx as usize];
    if shstrtab.kind != SHT_STRTAB {
        return Err(err(ELF, 62, "the section-name table is not a string table"));
    }
    let strtab = data.get(shstrtab.file_range()).unwrap_or(&[]);
    let mut names = Vec::with_capacity(shnum);
    for (i, s) in sections.iter().enumerate() {
        let name = cstr_at(strtab, u64::from(s.name)).ok_or_else(|| {
            err(
                ".shstrtab",
                shstrtab.offset,
                format!("name offset {} of section {i} is outside the table", s.name),
            )
        })?;
        let name = std::str::from_utf8(name).map_err(|_| {
            err(
                ".shstrtab",
                shstrtab.offset + u64::from(s.name),
                format!("name of section {i} is not UTF-8"),
            )
        })?;
        names.push(name.to_string());
    }
    for (i, s) in sections.iter().enumerate() {
        // aya-obj slices these sections by symbol offsets (programs, legacy maps) and
        // reads them as structures (BTF): they need their bytes.
        let needs_bytes = matches!(names[i].as_str(), ".BTF" | ".BTF.ext")
            || names[i].starts_with("maps")
            || s.is_exec();
        if needs_bytes && s.kind == SHT_NOBITS {
            return Err(err(
                &names[i],
                e_shoff + (i * SHDR_SIZE) as u64,
                "section has no bytes in the file",
            ));
        }
    }
    Ok(Elf {
        data,
        sections,
        names,
        symbols: Vec::new(),
    })
}

fn find_unique(elf: &Elf<'_>, name: &str) -> Result<Option<usize>> {
    let mut found = elf.names.iter().enumerate().filter(|(_, n)| *n == name);
    let first = found.next().map(|(i, _)| i);
    if let Some((i, _)) = found.next() {
        return Err(err(
            name,
            elf.sections[i].offset,
            "the object has two such sections",
        ));
    }
    Ok(first)
}

fn check_symbols(elf: &mut Elf<'_>) -> Result<()> {
    let mut symtab = None;
    for (i, s) in elf.sections.iter().enumerate() {
        if s.kind != SHT_SYMTAB {
            continue;
        }
        let name = elf.name(i);
        if symtab.is_some() {
            return Err(err(name, s.offset, "a second symbol table"));
        }
        if s.entsize != SYM_SIZE || !s.size.is_multiple_of(SYM_SIZE) {
            return Err(err(
                name,
                s.offset,
                format!(
                    "symbol table of {} bytes with entries of {} (expected {SYM_SIZE})",
                    s.size, s.entsize
                ),
            ));
        }
        let strtab = elf.sections.get(s.link as usize);
        if strtab.is_none_or(|t| t.kind != SHT_STRTAB) {
            return Err(err(
                name,
                s.offset,
                format!("sh_link {} is not a string table", s.link),
            ));
        }
        symtab = Some(i);
    }
    let Some(symtab) = symtab else {
        return Ok(());
    };
    let s = &elf.sections[symtab];
    let table = elf.bytes(symtab);
    let strings = elf.bytes(s.link as usize);
    let name = elf.name(symtab).to_string();
    let shnum = elf.sections.len();
    let mut symbols = Vec::with_capacity((s.size / SYM_SIZE) as usize);
    for n in 0..s.size / SYM_SIZE {
        let at = n * SYM_SIZE;
        let here = s.offset + at;
        let st_name = u32_at(table, at).unwrap_or(0);
        let st_info = table.get(at as usize + 4).copied().unwrap_or(0);
        let sym = Sym {
            kind: st_info & 0xf,
            shndx: u16_at(table, at + 6).unwrap_or(0),
            value: u64_at(table, at + 8).unwrap_or(0),
            size: u64_at(table, at + 16).unwrap_or(0),
        };
        let sym_name = cstr_at(strings, u64::from(st_name))
            .filter(|n| std::str::from_utf8(n).is_ok())
            .ok_or_else(|| {
                err(
                    &name,
                    here,
                    format!(
                        "symbol {n}: name offset {st_name} is not a string in the string table"
                    ),
                )
            })?;
        let sym_name = String::from_utf8_lossy(sym_name);
        if sym.shndx == SHN_XINDEX {
            return Err(err(
                &name,
                here,
                format!("symbol {n} '{sym_name}': extended section index"),
            ));
        }
        if sym.shndx < SHN_LORESERVE && sym.shndx as usize >= shnum {
            return Err(err(
                &name,
                here,
                format!("symbol {n} '{sym_name}': section {} of {shnum}", sym.shndx),
            ));
        }
        if let Some(sec) = sym
            .section()
            .filter(|_| !matches!(sym.kind, STT_SECTION | STT_FILE))
        {
            // aya-obj slices the section's bytes by value..value+size (code, legacy maps);
            // data symbols in a NOBITS section are only offsets into its size.
            let section = &elf.sections[sec];
            let limit = if section.kind == SHT_NOBITS {
                section.size
            } else {
                section.data_len()
            };
            if sym
                .value
                .checked_add(sym.size)
                .is_none_or(|end| end > limit)
            {
                return Err(err(
                    &name,
                    here,
                    format!(
                        "symbol {n} '{sym_name}' ({} bytes at {:#x}) lies outside section {sec} '{}' ({limit} bytes)",
                        sym.size,
                        sym.value,
                        elf.name(sec)
                    ),
                ));
            }
        }
        symbols.push(sym);
    }
    elf.symbols = symbols;
    Ok(())
}

fn check_relocations(elf: &Elf<'_>) -> Result<()> {
    for (i, s) in elf.sections.iter().enumerate() {
        let entsize = match s.kind {
            SHT_REL => REL_SIZE,
            SHT_RELA => RELA_SIZE,
            _ => continue,
        };
        let name = elf.name(i);
        if s.entsize != entsize || !s.size.is_multiple_of(entsize) {
            return Err(err(
                name,
                s.offset,
                format!(
                    "relocation section of {} bytes with entries of {} (expected {entsize})",
                    s.size, s.entsize
                ),
            ));
        }
        if elf.sections.get(s.link as usize).map(|l| l.kind) != Some(SHT_SYMTAB) {
            return Err(err(
                name,
                s.offset,
                format!("sh_link {} is not the symbol table", s.link),
            ));
        }
        let target_index = s.info as usize;
        let target = &elf.sections[target_index];
        let code = target.is_exec();
        let table = elf.bytes(i);
        let insns = elf.bytes(target_index);
        for n in 0..s.size / entsize {
            let at = n * entsize;
            let here = s.offset + at;
            let r_offset = u64_at(table, at).unwrap_or(0);
            let r_info = u64_at(table, at + 8).unwrap_or(0);
            let sym_index = r_info >> 32;
            let r_type = (r_info & 0xffff_ffff) as u32;
            let sym = elf.symbols.get(sym_index as usize).ok_or_else(|| {
                err(
                    name,
                    here,
                    format!(
                        "relocation {n}: symbol {sym_index} of {}",
                        elf.symbols.len()
                    ),
                )
            })?;
            let width = if code { INSN_SIZE } else { 4 };
            if r_offset
                .checked_add(width)
                .is_none_or(|e| e > target.data_len())
            {
                return Err(err(
                    name,
                    here,
                    format!(
                        "relocation {n}: offset {r_offset:#x} outside section {target_index} '{}' ({} bytes)",
                        elf.name(target_index),
                        target.data_len()
                    ),
                ));
            }
            if code {
                let site = RelocSite {
                    section: name,
                    here,
                    n,
                    target: target_index,
                };
                check_code_relocation(elf, &site, r_offset, r_type, sym, insns)?;
            }
        }
    }
    Ok(())
}

/// Where a relocation is, for its error message, and the section it patches.
struct RelocSite<'a> {
    section: &'a str,
    here: u64,
    n: u64,
    target: usize,
}

/// A relocation against program code: what aya-obj's `relocate_maps` and
/// `relocate_calls` index and add without checking.
fn check_code_relocation(
    elf: &Elf<'_>,
    site: &RelocSite<'_>,
    r_offset: u64,
    r_type: u32,
    sym: &Sym,
    insns: &[u8],
) -> Result<()> {
    let bad = |what: String| {
        err(
            site.section,
            site.here,
            format!("relocation {}: {what}", site.n),
        )
    };
    if !r_offset.is_multiple_of(INSN_SIZE) {
        return Err(bad(format!(
            "offset {r_offset:#x} is inside an instruction"
        )));
    }
    if r_type != R_BPF_64_64 && r_type != R_BPF_64_32 {
        return Err(bad(format!(
            "type {r_type} in code (only R_BPF_64_64/R_BPF_64_32)"
        )));
    }
    let code = insns.get(r_offset as usize).copied().unwrap_or(0);
    let src_reg = insns.get(r_offset as usize + 1).map_or(0, |r| r >> 4);
    let imm = u32_at(insns, r_offset + 4).unwrap_or(0) as i32;
    let is_pseudo_call = code == OP_CALL && src_reg == PSEUDO_CALL;
    let Some(section) = sym.section() else {
        // Externs (kfuncs): `kfuncs::link` decides. A defined-looking FUNC without a
        // section is what aya-obj unwraps.
        if sym.kind == STT_FUNC && sym.shndx == 0 && is_pseudo_call {
            return Err(bad("call to an undefined function".into()));
        }
        return Ok(());
    };
    let target_is_code = elf.sections.get(section).is_some_and(Shdr::is_exec);
    if target_is_code {
        match sym.kind {
            STT_FUNC => Ok(()),
            // The callee is at the section symbol plus (imm + 1) instructions (call) or
            // plus imm bytes (ld_imm64 of a function pointer). aya-obj computes `imm + 1`
            // unchecked whatever the instruction (reloc386).
            STT_SECTION if r_type == R_BPF_64_32 && (-1..i32::MAX).contains(&imm) => Ok(()),
            STT_SECTION if r_type == R_BPF_64_64 && imm >= 0 => Ok(()),
            STT_SECTION => Err(bad(format!("code reference with offset {imm}"))),
            k => Err(bad(format!("code reference through a symbol of type {k}"))),
        }
    } else {
        if is_pseudo_call {
            return Ok(());
        }
        if code != OP_LD_IMM64 || r_offset + 2 * INSN_SIZE > insns.len() as u64 {
            return Err(bad(format!(
                "data reference on instruction {code:#04x}, not a whole ld_imm64"
            )));
        }
        // aya-obj patches the second half of the ld_imm64: it must be in the same function.
        let split = elf.symbols.iter().any(|s| {
            s.kind == STT_FUNC
                && s.section() == Some(site.target)
                && s.value.checked_add(s.size) == Some(r_offset + INSN_SIZE)
        });
        if split {
            return Err(bad("ld_imm64 split across two functions".into()));
        }
        if i32::try_from(sym.value)
            .ok()
            .and_then(|v| imm.checked_add(v))
            .is_none()
        {
            return Err(bad(format!(
                "data offset {imm} + symbol value {:#x} overflows",
                sym.value
            )));
        }
        Ok(())
    }
}

/// Sub-program calls without a relocation are pc-relative: aya-obj computes `imm + 1`.
fn check_calls(elf: &Elf<'_>) -> Result<()> {
    for (i, s) in elf.sections.iter().enumerate() {
        if !s.is_exec() {
            continue;
        }
        let insns = elf.bytes(i);
        for (n, insn) in insns.chunks_exact(INSN_SIZE as usize).enumerate() {
            let imm = i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
            if insn[0] == OP_CALL && insn[1] >> 4 == PSEUDO_CALL && imm == i32::MAX {
                return Err(err(
                    elf.name(i),
                    s.offset + n as u64 * INSN_SIZE,
                    format!("call at instruction {n} jumps past the end of the address space"),
                ));
            }
        }
    }
    Ok(())
}

/// What `.BTF.ext` needs to know of `.BTF`.
pub(crate) struct BtfSummary {
    strings: Vec<u8>,
    kinds: Vec<u32>,
}

#[derive(Clone, Copy)]
struct BtfType {
    kind: u32,
    vlen: u32,
    size_or_type: u32,
    /// Offset in the type section of the kind-specific data.
    extra: u64,
}

fn btf_type_extra(kind: u32, vlen: u64) -> Option<u64> {
    Some(match kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => BTF_U32_EXTRA,
        KIND_ARRAY => BTF_ARRAY_SIZE,
        KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => BTF_MEMBER_SIZE * vlen,
        KIND_ENUM | KIND_FUNC_PROTO => BTF_ENUM_SIZE * vlen,
        KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
        | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
        _ => return None,
    })
}

/// Kinds whose `size_or_type` is a type id.
fn refers_to_type(kind: u32) -> bool {
    matches!(
        kind,
        KIND_PTR
            | KIND_TYPEDEF
            | KIND_VOLATILE
            | KIND_CONST
            | KIND_RESTRICT
            | KIND_FUNC
            | KIND_FUNC_PROTO
            | KIND_VAR
            | KIND_DECL_TAG
            | KIND_TYPE_TAG
    )
}

/// Kinds whose `size_or_type` is a size in bytes.
fn has_size(kind: u32) -> bool {
    matches!(
        kind,
        KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT | KIND_DATASEC
    )
}

pub(crate) fn check_btf(btf: &[u8], file_offset: u64) -> Result<BtfSummary> {
    const S: &str = ".BTF";
    let hdr = |o: u64| u32_at(btf, o).ok_or_else(|| err(S, file_offset, "header is truncated"));
    if (btf.len() as u64) < BTF_HEADER_SIZE {
        return Err(err(
            S,
            file_offset,
            format!("{} bytes, shorter than its header", btf.len()),
        ));
    }
    if u16_at(btf, 0) != Some(BTF_MAGIC) {
        return Err(err(S, file_offset, "bad magic (not little-endian BTF)"));
    }
    if btf[2] != BTF_VERSION {
        return Err(err(S, file_offset + 2, format!("version {}", btf[2])));
    }
    let hdr_len = u64::from(hdr(4)?);
    let (type_off, type_len) = (u64::from(hdr(8)?), u64::from(hdr(12)?));
    let (str_off, str_len) = (u64::from(hdr(16)?), u64::from(hdr(20)?));
    if hdr_len < BTF_HEADER_SIZE || hdr_len > btf.len() as u64 {
        return Err(err(S, file_offset + 4, format!("header length {hdr_len}")));
    }
    let types = range_in(hdr_len + type_off, type_len, btf.len()).ok_or_else(|| {
        err(
            S,
            file_offset + 8,
            format!("type section ({type_len} bytes at {type_off:#x}) exceeds the section"),
        )
    })?;
    let strings = range_in(hdr_len + str_off, str_len, btf.len()).ok_or_else(|| {
        err(
            S,
            file_offset + 16,
            format!("string section ({str_len} bytes at {str_off:#x}) exceeds the section"),
        )
    })?;
    if types.start < strings.end && strings.start < types.end {
        return Err(err(S, file_offset + 8, "type and string sections overlap"));
    }
    if !type_off.is_multiple_of(BTF_ALIGN) || !type_len.is_multiple_of(BTF_ALIGN) {
        return Err(err(
            S,
            file_offset + 8,
            "type section is not 4-byte aligned",
        ));
    }
    let strings_bytes = &btf[strings.clone()];
    if strings_bytes.first() != Some(&0) || strings_bytes.last() != Some(&0) {
        return Err(err(
            S,
            file_offset + hdr_len + str_off,
            "string section does not start and end with NUL",
        ));
    }
    let types_bytes = &btf[types];
    let types_at = file_offset + hdr_len + type_off;
    let name_ok = |off: u32| u64::from(off) < str_len;

    // Pass 1: the records, their sizes and names.
    let mut all = vec![BtfType {
        kind: 0,
        vlen: 0,
        size_or_type: 0,
        extra: 0,
    }];
    let mut off = 0u64;
    while off < type_len {
        let at = types_at + off;
        let id = all.len();
        let (Some(name_off), Some(info), Some(size_or_type)) = (
            u32_at(types_bytes, off),
            u32_at(types_bytes, off + 4),
            u32_at(types_bytes, off + 8),
        ) else {
            return Err(err(S, at, format!("type [{id}] is truncated")));
        };
        let kind = (info >> 24) & 0x1f;
        let vlen = info & 0xffff;
        let extra = btf_type_extra(kind, u64::from(vlen))
            .ok_or_else(|| err(S, at, format!("type [{id}] has unknown kind {kind}")))?;
        let end = off + BTF_TYPE_SIZE + extra;
        if end > type_len {
            return Err(err(
                S,
                at,
                format!("type [{id}] (kind {kind}, vlen {vlen}) runs past the type section"),
            ));
        }
        if !name_ok(name_off) {
            return Err(err(
                S,
                at,
                format!("type [{id}] name offset {name_off} is outside the strings"),
            ));
        }
        all.push(BtfType {
            kind,
            vlen,
            size_or_type,
            extra: off + BTF_TYPE_SIZE,
        });
        off = end;
    }
    let count = all.len() as u64;
    let id_ok = |id: u32| u64::from(id) < count;

    // Pass 2: every reference points at a type, every member name at a string.
    for (id, t) in all.iter().enumerate().skip(1) {
        let at = types_at + t.extra - BTF_TYPE_SIZE;
        let bad = |what: String| err(S, at, format!("type [{id}]: {what}"));
        let word = |o: u64| u32_at(types_bytes, t.extra + o).unwrap_or(0);
        if refers_to_type(t.kind) && !id_ok(t.size_or_type) {
            return Err(bad(format!("refers to type {} of {count}", t.size_or_type)));
        }
        match t.kind {
            KIND_ARRAY => {
                for (o, what) in [(0, "element"), (4, "index")] {
                    if !id_ok(word(o)) {
                        return Err(bad(format!("{what} type {} of {count}", word(o))));
                    }
                }
            }
            KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_FUNC_PROTO | KIND_ENUM | KIND_ENUM64 => {
                let (rec, has_type, has_name) = match t.kind {
                    KIND_STRUCT | KIND_UNION => (BTF_MEMBER_SIZE, Some(4), true),
                    KIND_DATASEC => (BTF_MEMBER_SIZE, Some(0), false),
                    KIND_FUNC_PROTO => (BTF_ENUM_SIZE, Some(4), true),
                    KIND_ENUM64 => (BTF_MEMBER_SIZE, None, true),
                    _ => (BTF_ENUM_SIZE, None, true),
                };
                for m in 0..u64::from(t.vlen) {
                    let base = m * rec;
                    if has_name && !name_ok(word(base)) {
                        return Err(bad(format!(
                            "entry {m} name offset {} is outside the strings",
                            word(base)
                        )));
                    }
                    if let Some(o) = has_type {
                        let ty = word(base + o);
                        if !id_ok(ty) {
                            return Err(bad(format!("entry {m} refers to type {ty} of {count}")));
                        }
                        if t.kind == KIND_DATASEC
                            && !matches!(all[ty as usize].kind, KIND_VAR | KIND_FUNC)
                        {
                            return Err(bad(format!("entry {m} is not a variable")));
                        }
                    }
                    if t.kind == KIND_DATASEC {
                        let (offset, size) = (word(base + 4), word(base + 8));
                        if offset.checked_add(size).is_none() {
                            return Err(bad(format!(
                                "entry {m} ({size} bytes at {offset}) overflows"
                            )));
                        }
                    }
                }
            }
            KIND_VAR => {
                // aya-obj reads this word straight into a Rust enum: any other value is
                // undefined behaviour (seen as heap corruption), not an error.
                let linkage = word(0);
                if linkage > MAX_VAR_LINKAGE {
                    return Err(bad(format!("variable linkage {linkage}")));
                }
            }
            KIND_DECL_TAG => {
                let component = word(0) as i32;
                if component < -1 {
                    return Err(bad(format!("component index {component}")));
                }
            }
            _ => {}
        }
        if t.kind == KIND_FUNC && all[t.size_or_type as usize].kind != KIND_FUNC_PROTO {
            return Err(bad("FUNC without a FUNC_PROTO".into()));
        }
    }

    // Pass 3: chains of references end within aya-obj's resolve depth (no cycles through
    // typedefs), every type's size — arrays of arrays included — fits in 32 bits, and every
    // struct or union member's size fits in 32 bits counted in bits, as aya-obj computes
    // them (`size * 8` in u32 for a member during CO-RE). Types only pointed at may be
    // larger than a member can be: a BTF map definition's `__uint(max_entries, 1 << 27)` is
    // a pointer to an array of 2^27 ints (512 MiB).
    let mut sizes: Vec<Option<u64>> = vec![None; all.len()];
    for id in 1..all.len() {
        let at = types_at + all[id].extra - BTF_TYPE_SIZE;
        let size = type_size(&all, types_bytes, id, &mut sizes, 0).ok_or_else(|| {
            err(
                S,
                at,
                format!("type [{id}]: references go deeper than {MAX_RESOLVE_DEPTH} (a cycle?)"),
            )
        })?;
        if size > MAX_TYPE_SIZE {
            return Err(err(
                S,
                at,
                format!(
                    "type [{id}]: {size} bytes, more than {MAX_TYPE_SIZE} (sizes must fit in \
                     32 bits)"
                ),
            ));
        }
    }
    for (id, t) in all.iter().enumerate() {
        if !matches!(t.kind, KIND_STRUCT | KIND_UNION) {
            continue;
        }
        for m in 0..u64::from(t.vlen) {
            let member = u32_at(types_bytes, t.extra + m * BTF_MEMBER_SIZE + 4).unwrap_or(0);
            let size = sizes.get(member as usize).copied().flatten().unwrap_or(0);
            if size > MAX_MEMBER_SIZE {
                return Err(err(
                    S,
                    types_at + t.extra - BTF_TYPE_SIZE,
                    format!(
                        "type [{id}] member {m}: {size} bytes, more than {MAX_MEMBER_SIZE} (a \
                         member's size in bits must fit in 32 bits)"
                    ),
                ));
            }
        }
    }
    Ok(BtfSummary {
        strings: strings_bytes.to_vec(),
        kinds: all.iter().map(|t| t.kind).collect(),
    })
}

/// A type's size in bytes (0 for types without one), memoized in `sizes`; `None` when
/// its references go deeper than [`MAX_RESOLVE_DEPTH`]. Saturates rather than overflows:
/// anything near the limit is refused by the caller anyway.
fn type_size(
    all: &[BtfType],
    types: &[u8],
    id: usize,
    sizes: &mut [Option<u64>],
    depth: usize,
) -> Option<u64> {
    if let Some(known) = sizes.get(id).copied().flatten() {
        return Some(known);
    }
    if depth > MAX_RESOLVE_DEPTH {
        return None;
    }
    let t = all.get(id)?;
    let size = match t.kind {
        k if has_size(k) => u64::from(t.size_or_type),
        KIND_PTR => POINTER_SIZE,
        KIND_ARRAY => {
            let elem = u32_at(types, t.extra).unwrap_or(0) as usize;
            let nelems = u64::from(u32_at(types, t.extra + 8).unwrap_or(0));
            nelems.saturating_mul(type_size(all, types, elem, sizes, depth + 1)?)
        }
        k if refers_to_type(k) && k != KIND_FUNC_PROTO && k != KIND_DECL_TAG && k != KIND_FUNC => {
            type_size(all, types, t.size_or_type as usize, sizes, depth + 1)?
        }
        _ => 0,
    };
    if let Some(slot) = sizes.get_mut(id) {
        *slot = Some(size);
    }
    Some(size)
}

#[derive(Clone, Copy)]
enum ExtKind {
    Func,
    Line,
    CoreRelo,
}

impl ExtKind {
    fn name(self) -> &'static str {
        match self {
            ExtKind::Func => "func_info",
            ExtKind::Line => "line_info",
            ExtKind::CoreRelo => "core_relo",
        }
    }

    fn min_rec(self) -> u64 {
        match self {
            ExtKind::Func => FUNC_INFO_MIN,
            ExtKind::Line => LINE_INFO_MIN,
            ExtKind::CoreRelo => CORE_RELO_MIN,
        }
    }
}

pub(crate) fn check_btf_ext(ext: &[u8], file_offset: u64, btf: &BtfSummary) -> Result<()> {
    const S: &str = ".BTF.ext";
    if (ext.len() as u64) < BTF_EXT_HEADER_MIN {
        return Err(err(
            S,
            file_offset,
            format!("{} bytes, shorter than its header", ext.len()),
        ));
    }
    if u16_at(ext, 0) != Some(BTF_MAGIC) {
        return Err(err(S, file_offset, "bad magic (not little-endian BTF.ext)"));
    }
    if ext[2] != BTF_VERSION {
        return Err(err(S, file_offset + 2, format!("version {}", ext[2])));
    }
    let hdr = |o: u64| u64::from(u32_at(ext, o).unwrap_or(0));
    let hdr_len = hdr(4);
    if hdr_len < BTF_EXT_HEADER_MIN || hdr_len > ext.len() as u64 {
        return Err(err(S, file_offset + 4, format!("header length {hdr_len}")));
    }
    // core_relo_off/len follow func/line info in headers long enough to hold them.
    let core_fields_end = BTF_EXT_HEADER_MIN + 8;
    let mut subs = vec![(ExtKind::Func, 8), (ExtKind::Line, 16)];
    if hdr_len >= core_fields_end {
        subs.push((ExtKind::CoreRelo, 24));
    }
    for (kind, field) in subs {
        let (off, len) = (hdr(field), hdr(field + 4));
        if len == 0 {
            continue;
        }
        let what = kind.name();
        let range = range_in(hdr_len + off, len, ext.len()).ok_or_else(|| {
            err(
                S,
                file_offset + field,
                format!(
                    "{what} ({len} bytes at {off:#x}) exceeds the section ({} bytes)",
                    ext.len()
                ),
            )
        })?;
        let sub_at = file_offset + range.start as u64;
        check_ext_sub(&ext[range], sub_at, kind, btf)?;
    }
    Ok(())
}

fn check_ext_sub(data: &[u8], at: u64, kind: ExtKind, btf: &BtfSummary) -> Result<()> {
    const S: &str = ".BTF.ext";
    let what = kind.name();
    let len = data.len() as u64;
    let rec_size = u64::from(
        u32_at(data, 0)
            .ok_or_else(|| err(S, at, format!("{what} is shorter than its record size")))?,
    );
    if rec_size < kind.min_rec() || rec_size > MAX_REC_SIZE || !rec_size.is_multiple_of(BTF_ALIGN) {
        return Err(err(
            S,
            at,
            format!(
                "{what} record size {rec_size} (at least {}, at most {MAX_REC_SIZE})",
                kind.min_rec()
            ),
        ));
    }
    let str_len = btf.strings.len() as u64;
    let type_count = btf.kinds.len() as u64;
    let mut pos = 4u64;
    while pos < len {
        let here = at + pos;
        let (Some(sec_name), Some(num_info)) = (u32_at(data, pos), u32_at(data, pos + 4)) else {
            return Err(err(S, here, format!("{what} section header is truncated")));
        };
        if cstr_at(&btf.strings, u64::from(sec_name)).is_none() {
            return Err(err(
                S,
                here,
                format!("{what} section name offset {sec_name} is outside the BTF strings ({str_len} bytes)"),
            ));
        }
        pos += SEC_INFO_HEADER;
        let bytes = u64::from(num_info) * rec_size;
        if bytes > len - pos.min(len) {
            return Err(err(
                S,
                here,
                format!("{what} record count {num_info} × {rec_size} exceeds the section"),
            ));
        }
        let mut prev_insn = 0u32;
        for r in 0..u64::from(num_info) {
            let rec = pos + r * rec_size;
            let rec_at = at + rec;
            let field = |o: u64| u32_at(data, rec + o).unwrap_or(0);
            let insn_off = field(0);
            if !u64::from(insn_off).is_multiple_of(INSN_SIZE) {
                return Err(err(
                    S,
                    rec_at,
                    format!("{what} record {r}: instruction offset {insn_off}"),
                ));
            }
            match kind {
                ExtKind::Func => {
                    let ty = field(4);
                    if u64::from(ty) >= type_count || btf.kinds[ty as usize] != KIND_FUNC {
                        return Err(err(
                            S,
                            rec_at,
                            format!("func_info record {r}: type {ty} is not a FUNC"),
                        ));
                    }
                }
                ExtKind::Line => {
                    // aya-obj rebases line info on the first record of each function.
                    if insn_off < prev_insn {
                        return Err(err(
                            S,
                            rec_at,
                            format!("line_info record {r}: not sorted by instruction"),
                        ));
                    }
                    prev_insn = insn_off;
                    for (o, name) in [(4, "file name"), (8, "line")] {
                        if u64::from(field(o)) >= str_len {
                            return Err(err(
                                S,
                                rec_at,
                                format!("line_info record {r}: {name} offset {} is outside the BTF strings", field(o)),
                            ));
                        }
                    }
                }
                ExtKind::CoreRelo => {
                    let (ty, access, relo_kind) = (field(4), field(8), field(12));
                    if u64::from(ty) >= type_count {
                        return Err(err(
                            S,
                            rec_at,
                            format!("core_relo record {r}: type {ty} of {type_count}"),
                        ));
                    }
                    if relo_kind > MAX_CORE_RELO_KIND {
                        return Err(err(
                            S,
                            rec_at,
                            format!("core_relo record {r}: kind {relo_kind}"),
                        ));
                    }
                    check_access_string(&btf.strings, access).map_err(|why| {
                        err(
                            S,
                            rec_at,
                            format!("core_relo record {r}: access string {why}"),
                        )
                    })?;
                }
            }
        }
        pos += bytes;
    }
    Ok(())
}

/// "0:1:2": decimal accessor indexes separated by colons, each small enough that the
/// offset arithmetic of CO-RE cannot overflow.
fn check_access_string(strings: &[u8], off: u32) -> std::result::Result<(), String> {
    let s = cstr_at(strings, u64::from(off))
        .ok_or_else(|| format!("offset {off} is outside the BTF strings"))?;
    let s = std::str::from_utf8(s).map_err(|_| "is not UTF-8".to_string())?;
    let parts: Vec<&str> = s.split(':').collect();
    if s.is_empty() || parts.len() > MAX_ACCESS_COMPONENTS {
        return Err(format!(
            "'{s}' has {} accessors",
            if s.is_empty() { 0 } else { parts.len() }
        ));
    }
    for p in parts {
        let ok = !p.is_empty()
            && p.len() <= 6
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u64>().is_ok_and(|v| v <= MAX_ACCESS_INDEX);
        if !ok {
            return Err(format!("'{s}' has accessor '{p}'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn btf(types: &[u8], strings: &[u8]) -> Vec<u8> {
        let mut b = vec![0x9f, 0xeb, 1, 0];
        b.extend(words(&[
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ]));
        b.extend(types);
        b.extend(strings);
        b
    }

    #[test]
    fn accepts_good_btf_and_names_what_is_wrong() {
        // [1] INT "int" 4 bytes, [2] ARRAY of 4 [1].
        let types = [
            words(&[1, KIND_INT << 24, 4, 32]),
            words(&[0, KIND_ARRAY << 24, 0, 1, 1, 4]),
        ]
        .concat();
        let ok = btf(&types, b"\0int\0");
        let summary = check_btf(&ok, 0x100).expect("valid");
        assert_eq!(summary.kinds, vec![0, KIND_INT, KIND_ARRAY]);

        let mut bad_ref = ok.clone();
        bad_ref[24 + 16 + 12] = 9; // array element type 9
        let e = check_btf(&bad_ref, 0x100).err().expect("refused");
        assert!(e.message.contains("element type 9"), "{}", e.message);

        let huge = [
            words(&[1, KIND_INT << 24, 4, 32]),
            words(&[0, KIND_ARRAY << 24, 0, 1, 1, u32::MAX]),
        ]
        .concat();
        let e = check_btf(&btf(&huge, b"\0int\0"), 0)
            .err()
            .expect("refused");
        assert!(
            e.message.contains("sizes must fit in 32 bits"),
            "{}",
            e.message
        );

        // A map definition's `__uint(max_entries, 1 << 27)`: a pointer to 512 MiB of ints,
        // taken; the same array as a member is not.
        let pointed = [
            words(&[1, KIND_INT << 24, 4, 32]),
            words(&[0, KIND_ARRAY << 24, 0, 1, 1, 1 << 27]),
            words(&[0, KIND_PTR << 24, 2]),
            words(&[0, (KIND_STRUCT << 24) | 1, 8, 1, 3, 0]),
        ]
        .concat();
        assert!(check_btf(&btf(&pointed, b"\0int\0"), 0).is_ok());
        let member = [
            words(&[1, KIND_INT << 24, 4, 32]),
            words(&[0, KIND_ARRAY << 24, 0, 1, 1, 1 << 27]),
            words(&[0, (KIND_STRUCT << 24) | 1, 1 << 29, 1, 2, 0]),
        ]
        .concat();
        let e = check_btf(&btf(&member, b"\0int\0"), 0)
            .err()
            .expect("refused");
        assert!(
            e.message.contains("type [3] member 0") && e.message.contains("size in bits"),
            "{}",
            e.message
        );

        // Arrays of arrays: each fits, the whole does not.
        let nested = [
            words(&[1, KIND_INT << 24, 4, 32]),
            words(&[0, KIND_ARRAY << 24, 0, 1, 1, 1 << 20]),
            words(&[0, KIND_ARRAY << 24, 0, 2, 1, 1 << 10]),
        ]
        .concat();
        let e = check_btf(&btf(&nested, b"\0int\0"), 0)
            .err()
            .expect("refused");
        assert!(e.message.contains("type [3]"), "{}", e.message);

        let cycle = [
            words(&[0, KIND_TYPEDEF << 24, 2]),
            words(&[0, KIND_CONST << 24, 1]),
        ]
        .concat();
        assert!(check_btf(&btf(&cycle, b"\0"), 0).is_err());
    }

    #[test]
    fn btf_ext_record_counts_must_fit() {
        let summary = BtfSummary {
            strings: b"\0sec\0".to_vec(),
            kinds: vec![0, KIND_FUNC_PROTO, KIND_FUNC],
        };
        let mut ext = vec![0x9f, 0xeb, 1, 0];
        // hdr_len 32; func_info empty; line_info 4 + 8 bytes at 0; core_relo none.
        ext.extend(words(&[32, 0, 0, 0, 12, 0, 0]));
        ext.extend(words(&[16, 1, u32::MAX]));
        let e = check_btf_ext(&ext, 0x40, &summary).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "BAD_OBJECT: .BTF.ext: line_info record count 4294967295 × 16 exceeds the section (offset 0x64)"
        );
    }

    #[test]
    fn access_strings() {
        let s = b"\x000:1:2\0x\0:\x00099999999999\0";
        assert!(check_access_string(s, 1).is_ok());
        assert!(check_access_string(s, 7).is_err());
        assert!(check_access_string(s, 9).is_err());
        assert!(check_access_string(s, 11).is_err());
        assert!(check_access_string(s, 100).is_err());
    }
}
