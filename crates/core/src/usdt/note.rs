//! USDT probes from an ELF file's `.note.stapsdt` (SystemTap's `<sys/sdt.h>` format):
//! each note holds the probe's address, the `.stapsdt.base` address at link time, the
//! semaphore's address (0 when none), then provider, name and argument specs as strings.

use std::path::Path;

use object::{Architecture, Object, ObjectKind, ObjectSection};

use super::args::Arch;
use crate::error::{bad_object, unsupported, Error, Result};
use crate::symbols::elf::vaddr_to_file_offset;

/// `NT_STAPSDT`, owner "stapsdt".
const NT_STAPSDT: u32 = 3;
const NOTE_OWNER: &[u8] = b"stapsdt";

#[derive(Debug, Clone)]
pub struct Probe {
    pub provider: String,
    pub name: String,
    /// Virtual address of the probe, adjusted for prelinking.
    pub address: u64,
    /// File offset of the probe: what uprobes take.
    pub offset: u64,
    /// File offset of the semaphore (the uprobe's `ref_ctr_offset`); 0 when none.
    pub semaphore: u64,
    pub args: String,
}

pub struct Notes {
    pub probes: Vec<Probe>,
    pub arch: Arch,
    /// `ET_EXEC`: probe addresses are the addresses in every process (no load bias).
    pub fixed_address: bool,
}

pub fn read(path: &Path) -> Result<Notes> {
    let data =
        std::fs::read(path).map_err(|e| Error::os(format!("reading {}", path.display()), e))?;
    let file = object::File::parse(&*data)
        .map_err(|e| bad_object(format!("{} is not an ELF file: {e}", path.display())))?;
    let arch = match file.architecture() {
        Architecture::X86_64 => Arch::X86_64,
        Architecture::Aarch64 => Arch::Aarch64,
        other => {
            return Err(unsupported(format!(
                "{}: USDT probes of {other:?} binaries are not supported (x86-64 and arm64 are)",
                path.display()
            )))
        }
    };
    let mut probes = Vec::new();
    if let Some(section) = file.section_by_name(".note.stapsdt") {
        let bytes = section.data().map_err(|e| {
            bad_object(format!("{}: unreadable .note.stapsdt: {e}", path.display()))
        })?;
        // Prelinking moves the code after the notes were written: the distance
        // `.stapsdt.base` moved is the distance every probe moved.
        let base = file.section_by_name(".stapsdt.base").map(|s| s.address());
        let le = file.is_little_endian();
        let word = if file.is_64() { 8 } else { 4 };
        for desc in notes(bytes, le) {
            let raw = parse_desc(desc, le, word).ok_or_else(|| {
                bad_object(format!("{}: malformed .note.stapsdt entry", path.display()))
            })?;
            let address = prelinked(raw.pc, raw.base, base);
            let what = |x: &str, addr: u64| {
                bad_object(format!(
                    "{}: the {x} of USDT probe {}:{} ({addr:#x}) lies in no loadable segment",
                    path.display(),
                    raw.provider,
                    raw.name
                ))
            };
            let offset =
                vaddr_to_file_offset(&file, address).ok_or_else(|| what("address", address))?;
            let semaphore = match raw.semaphore {
                0 => 0,
                s => vaddr_to_file_offset(&file, s).ok_or_else(|| what("semaphore", s))?,
            };
            probes.push(Probe {
                provider: raw.provider,
                name: raw.name,
                address,
                offset,
                semaphore,
                args: raw.args,
            });
        }
    }
    Ok(Notes {
        probes,
        arch,
        fixed_address: file.kind() == ObjectKind::Executable,
    })
}

/// A probe's address once the file was prelinked: moved as far as `.stapsdt.base` moved
/// from where the note says it was (no `.stapsdt.base`: as the note says).
fn prelinked(pc: u64, note_base: u64, section_base: Option<u64>) -> u64 {
    match section_base {
        Some(b) => pc.wrapping_add(b).wrapping_sub(note_base),
        None => pc,
    }
}

/// The descriptors of the section's `stapsdt` notes; malformed trailing bytes end it.
fn notes(mut bytes: &[u8], le: bool) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let align4 = |n: usize| n.next_multiple_of(4);
    while bytes.len() >= 12 {
        let namesz = read_u32(&bytes[0..4], le) as usize;
        let descsz = read_u32(&bytes[4..8], le) as usize;
        let kind = read_u32(&bytes[8..12], le);
        let name_end = 12 + align4(namesz);
        let desc_end = name_end.saturating_add(align4(descsz));
        if desc_end > bytes.len() || name_end + descsz > bytes.len() {
            break;
        }
        let name = &bytes[12..12 + namesz];
        if kind == NT_STAPSDT && name.strip_suffix(&[0]).unwrap_or(name) == NOTE_OWNER {
            out.push(&bytes[name_end..name_end + descsz]);
        }
        bytes = &bytes[desc_end..];
    }
    out
}

struct RawProbe {
    pc: u64,
    base: u64,
    semaphore: u64,
    provider: String,
    name: String,
    args: String,
}

fn parse_desc(desc: &[u8], le: bool, word: usize) -> Option<RawProbe> {
    let addr = |i: usize| -> Option<u64> {
        let b = desc.get(i * word..(i + 1) * word)?;
        Some(if word == 8 {
            let a: [u8; 8] = b.try_into().ok()?;
            if le {
                u64::from_le_bytes(a)
            } else {
                u64::from_be_bytes(a)
            }
        } else {
            u64::from(read_u32(b, le))
        })
    };
    let (pc, base, semaphore) = (addr(0)?, addr(1)?, addr(2)?);
    let mut strings = desc.get(3 * word..)?.split(|&b| b == 0);
    let mut next = || {
        strings
            .next()
            .map(|s| String::from_utf8_lossy(s).into_owned())
    };
    let provider = next()?;
    let name = next()?;
    let args = next().unwrap_or_default();
    Some(RawProbe {
        pc,
        base,
        semaphore,
        provider,
        name,
        args,
    })
}

fn read_u32(b: &[u8], le: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(8u32.to_le_bytes());
        v.extend((desc.len() as u32).to_le_bytes());
        v.extend(NT_STAPSDT.to_le_bytes());
        v.extend(b"stapsdt\0");
        v.extend(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn parses_notes_and_skips_others() {
        let mut desc = Vec::new();
        for a in [0x1130u64, 0x2000, 0x4010] {
            desc.extend(a.to_le_bytes());
        }
        desc.extend(b"prov\0probe\0-4@%eax 8@%rdx\0");
        let mut bytes = note(&desc);
        // A GNU note in between, and a truncated one at the end.
        bytes.extend(4u32.to_le_bytes());
        bytes.extend(4u32.to_le_bytes());
        bytes.extend(1u32.to_le_bytes());
        bytes.extend(b"GNU\0abcd");
        bytes.extend(note(&desc));
        bytes.extend([1, 0, 0, 0, 0xff, 0, 0, 0]);
        let found = notes(&bytes, true);
        assert_eq!(found.len(), 2);
        let p = parse_desc(found[0], true, 8).expect("probe");
        assert_eq!((p.pc, p.base, p.semaphore), (0x1130, 0x2000, 0x4010));
        assert_eq!((p.provider.as_str(), p.name.as_str()), ("prov", "probe"));
        assert_eq!(p.args, "-4@%eax 8@%rdx");
        assert!(parse_desc(&desc[..20], true, 8).is_none());
    }

    #[test]
    fn prelinking_moves_probes_with_stapsdt_base() {
        assert_eq!(prelinked(0x1130, 0x2000, Some(0x2000)), 0x1130);
        assert_eq!(prelinked(0x1130, 0x2000, Some(0x12000)), 0x11130);
        assert_eq!(prelinked(0x11130, 0x12000, Some(0x2000)), 0x1130);
        assert_eq!(prelinked(0x1130, 0x2000, None), 0x1130);
    }

    /// Debian's libstdc++ carries USDT notes (libstdcxx:throw/rethrow/catch).
    #[test]
    fn reads_a_real_library() {
        let path = Path::new("/usr/lib/x86_64-linux-gnu/libstdc++.so.6");
        if !cfg!(target_arch = "x86_64") || !path.exists() {
            return;
        }
        let notes = read(path).expect("notes");
        assert!(!notes.fixed_address, "a shared library");
        let throw = notes
            .probes
            .iter()
            .find(|p| p.provider == "libstdcxx" && p.name == "throw")
            .expect("libstdcxx:throw");
        assert_eq!(throw.args, "8@%rdi 8@%rsi");
        assert_eq!(throw.semaphore, 0);
        let args = super::super::args::parse_args(notes.arch, "libstdcxx:throw", &throw.args)
            .expect("specs");
        assert_eq!(
            args.iter().map(|a| a.reg_off).collect::<Vec<_>>(),
            [112, 104]
        );
    }
}
