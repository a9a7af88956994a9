//! `.kconfig` externs (`extern u32 LINUX_KERNEL_VERSION __kconfig;`), resolved as libbpf
//! resolves them: `LINUX_KERNEL_VERSION`, `LINUX_HAS_BPF_COOKIE`,
//! `LINUX_HAS_SYSCALL_WRAPPER` and `CONFIG_*` from `/proc/config.gz` (or
//! `/boot/config-$(uname -r)`), laid out in one read-only array map that each reference
//! loads from. aya-obj knows no externs, so before it reads the object each `ld_imm64` of
//! an extern becomes a map-value load (`BPF_PSEUDO_MAP_VALUE`, the map's fd, the
//! extern's offset); aya-obj leaves relocations to undefined symbols alone.

use std::collections::HashMap;
use std::io::Read;

use object::read::elf::ElfFile64;
use object::{LittleEndian, Object as _, ObjectSection, ObjectSymbol};

use crate::btf_index::BtfIndex;
use crate::error::{bad_object, Code, Error, Result};

/// `BPF_LD | BPF_IMM | BPF_DW`: the two-slot 64-bit immediate load.
const OP_LD_IMM64: u8 = 0x18;
/// `src_reg` of an `ld_imm64` that loads a map value's address (fd in imm, offset in the
/// next slot's imm).
const PSEUDO_MAP_VALUE: u8 = 2;
/// Each extern starts at a multiple of its size, up to this alignment.
const MAX_ALIGN: u32 = 8;
/// Where a `CONFIG_*` value is looked for, in order.
const PROC_CONFIG: &str = "/proc/config.gz";

/// One extern: its name, where it lies in the map value, its size, and whether a kernel
/// that lacks it may give zeros (`__weak`).
#[derive(Debug, Clone)]
pub struct Extern {
    pub name: String,
    pub offset: u32,
    pub size: u32,
    pub weak: bool,
}

/// What an object needs: its externs and the file offsets of the `ld_imm64`s naming them.
#[derive(Debug, Clone)]
pub struct Plan {
    pub externs: Vec<Extern>,
    refs: Vec<(usize, usize)>,
    /// Bytes of the map's one value.
    pub size: u32,
}

/// The `.kconfig` externs of an ELF object, or `None` when it has none.
pub fn plan(bytes: &[u8]) -> Result<Option<Plan>> {
    let file = ElfFile64::<LittleEndian>::parse(bytes)
        .map_err(|e| bad_object(format!("not a 64-bit little-endian ELF object: {e}")))?;
    let Some(btf) = file.section_by_name(".BTF").and_then(|s| s.data().ok()) else {
        return Ok(None);
    };
    let declared = BtfIndex::parse(btf.to_vec())?.datasec_vars(".kconfig");
    if declared.is_empty() {
        return Ok(None);
    }
    let mut externs = Vec::new();
    let mut offset = 0u32;
    for (name, size) in declared {
        let align = size.clamp(1, MAX_ALIGN).next_power_of_two();
        offset = offset
            .checked_next_multiple_of(align)
            .and_then(|o| o.checked_add(size).map(|end| (o, end)))
            .map(|(o, end)| {
                externs.push(Extern {
                    name: name.clone(),
                    offset: o,
                    size,
                    weak: false,
                });
                end
            })
            .ok_or_else(|| bad_object(format!(".kconfig extern '{name}' of {size} bytes")))?;
    }
    for e in &mut externs {
        let sym = file
            .symbols()
            .find(|s| s.is_undefined() && s.name() == Ok(e.name.as_str()))
            .ok_or_else(|| {
                bad_object(format!(
                    ".kconfig declares '{}', which no undefined ELF symbol names",
                    e.name
                ))
            })?;
        e.weak = sym.is_weak();
    }
    let mut refs = Vec::new();
    super::kfuncs::for_each_undefined_ref(&file, &mut |r| {
        let ((sec_off, sec_size), offset) = (r.section, r.offset);
        let Some(index) = externs
            .iter()
            .position(|e| Ok(e.name.as_str()) == r.symbol.name())
        else {
            return Ok(());
        };
        // Both slots of the ld_imm64 lie inside the section.
        let at = offset
            .checked_add(16)
            .filter(|end| *end <= sec_size)
            .and_then(|_| sec_off.checked_add(offset))
            .and_then(|a| usize::try_from(a).ok())
            .filter(|a| bytes.get(*a) == Some(&OP_LD_IMM64))
            .ok_or_else(|| {
                bad_object(format!(
                    ".kconfig extern '{}' is used by an instruction that is not a 64-bit load \
                     at offset {offset:#x}",
                    externs[index].name
                ))
            })?;
        refs.push((at, index));
        Ok(())
    })?;
    Ok(Some(Plan {
        externs,
        refs,
        size: offset.max(1),
    }))
}

impl Plan {
    /// Whether `name` is one of the externs (kfunc linking leaves those to this module).
    pub fn has(&self, name: &str) -> bool {
        self.externs.iter().any(|e| e.name == name)
    }

    /// Turns every reference into a load of the extern's address in the map `fd`.
    pub fn patch(&self, bytes: &mut [u8], fd: i32) -> Result<()> {
        for &(at, index) in &self.refs {
            let e = &self.externs[index];
            let insn = bytes.get_mut(at..at.saturating_add(16)).ok_or_else(|| {
                bad_object(format!("a use of '{}' lies outside the file", e.name))
            })?;
            insn[1] = (insn[1] & 0x0f) | (PSEUDO_MAP_VALUE << 4);
            insn[4..8].copy_from_slice(&fd.to_le_bytes());
            insn[12..16].copy_from_slice(&e.offset.to_le_bytes());
        }
        Ok(())
    }

    /// The map's value: each extern's value at its offset, from `lookup`
    /// (`None`: this kernel does not have it).
    pub fn value(&self, lookup: &dyn Fn(&str) -> Result<Option<Value>>) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.size as usize];
        for e in &self.externs {
            let bytes = match lookup(&e.name) {
                Ok(Some(v)) => v.encode(&e.name, e.size)?,
                // A weak extern is zero where the kernel does not say (no config to read).
                Ok(None) | Err(_) if e.weak => continue,
                Err(err) => return Err(err),
                Ok(None) => {
                    return Err(Error::new(
                        Code::Unsupported,
                        format!(
                            ".kconfig extern '{}' is not known on this kernel ({}) and is not \
                             __weak",
                            e.name,
                            crate::features::features().kernel
                        ),
                    ))
                }
            };
            let start = e.offset as usize;
            out[start..start + bytes.len()].copy_from_slice(&bytes);
        }
        Ok(out)
    }
}

/// A kconfig value as libbpf reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `y`, `m`, `n`: `enum libbpf_tristate` (1, 2, 0), or a `bool`.
    Tristate(u8),
    Int(i128),
    Str(String),
}

impl Value {
    fn parse(text: &str) -> Option<Value> {
        Some(match text {
            "y" => Value::Tristate(1),
            "m" => Value::Tristate(2),
            "n" => Value::Tristate(0),
            t if t.starts_with('"') => Value::Str(t.trim_matches('"').to_string()),
            t => Value::Int(match t.strip_prefix("0x") {
                Some(hex) => i128::from_str_radix(hex, 16).ok()?,
                None => t.parse().ok()?,
            }),
        })
    }

    /// The value at the extern's size: integers must fit, strings are cut to leave a NUL.
    fn encode(&self, name: &str, size: u32) -> Result<Vec<u8>> {
        let size = size as usize;
        let int = |v: i128| {
            let bits = (size * 8).min(127) as u32;
            let fits = size >= 16 || (v >= -(1i128 << (bits - 1)) && v < (1i128 << bits));
            if size == 0 || !fits {
                return Err(Error::range(
                    &format!(".kconfig extern '{name}'"),
                    v,
                    format!("a {size}-byte integer"),
                ));
            }
            Ok(v.to_le_bytes()[..size.min(16)].to_vec())
        };
        match self {
            Value::Tristate(t) => int(i128::from(*t)),
            Value::Int(v) => int(*v),
            Value::Str(s) => {
                let mut b = s.as_bytes().to_vec();
                b.truncate(size.saturating_sub(1));
                b.resize(size, 0);
                Ok(b)
            }
        }
    }
}

/// The running kernel's value of an extern libbpf knows, or of a `CONFIG_*` option.
pub fn kernel_value(name: &str) -> Result<Option<Value>> {
    Ok(match name {
        "LINUX_KERNEL_VERSION" => Some(Value::Int(i128::from(kernel_version()))),
        "LINUX_HAS_BPF_COOKIE" => Some(Value::Tristate(
            crate::features::features().bpf_cookie.into(),
        )),
        "LINUX_HAS_SYSCALL_WRAPPER" => Some(Value::Tristate(
            crate::symbols::kernel::syscall_wrapper_prefix()
                .is_some()
                .into(),
        )),
        n if n.starts_with("CONFIG_") => config()?.get(n).cloned(),
        _ => None,
    })
}

/// `KERNEL_VERSION(a, b, c)` of `uname -r`, the patch level capped at 255 as libbpf does.
fn kernel_version() -> u32 {
    let release = crate::features::features().kernel.clone();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    (a << 16) + (b << 8) + c.min(255)
}

/// The kernel's build configuration, `CONFIG_*` → value, read once per process.
fn config() -> Result<&'static HashMap<String, Value>> {
    static CONFIG: std::sync::OnceLock<Option<HashMap<String, Value>>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| read_config().ok())
        .as_ref()
        .ok_or_else(|| {
            Error::new(
                Code::Unsupported,
                format!(
                    "the object reads CONFIG_* .kconfig externs, but neither {PROC_CONFIG} nor \
                     /boot/config-{} is readable",
                    crate::features::features().kernel
                ),
            )
        })
}

fn read_config() -> std::io::Result<HashMap<String, Value>> {
    let text = match std::fs::read(PROC_CONFIG) {
        Ok(gz) => {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut s)?;
            s
        }
        Err(_) => std::fs::read_to_string(format!(
            "/boot/config-{}",
            crate::features::features().kernel
        ))?,
    };
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), Value::parse(v)?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_and_encoded_as_libbpf_does() {
        assert_eq!(Value::parse("y"), Some(Value::Tristate(1)));
        assert_eq!(Value::parse("m"), Some(Value::Tristate(2)));
        assert_eq!(Value::parse("250"), Some(Value::Int(250)));
        assert_eq!(Value::parse("0x10"), Some(Value::Int(16)));
        assert_eq!(
            Value::parse("\"(none)\""),
            Some(Value::Str("(none)".into()))
        );
        assert_eq!(
            Value::Int(250).encode("x", 4).ok(),
            Some(vec![250, 0, 0, 0])
        );
        assert_eq!(
            Value::Int(300).encode("x", 1).map_err(|e| e.code).err(),
            Some(Code::Range)
        );
        assert_eq!(
            Value::Str("abcdef".into()).encode("x", 4).ok(),
            Some(b"abc\0".to_vec())
        );
        assert_eq!(Value::Tristate(1).encode("x", 1).ok(), Some(vec![1]));
    }

    #[test]
    fn missing_strong_externs_fail_and_weak_ones_are_zero() {
        let plan = Plan {
            externs: vec![
                Extern {
                    name: "A".into(),
                    offset: 0,
                    size: 4,
                    weak: true,
                },
                Extern {
                    name: "B".into(),
                    offset: 4,
                    size: 4,
                    weak: false,
                },
            ],
            refs: Vec::new(),
            size: 8,
        };
        let found = plan.value(&|n| Ok((n == "B").then_some(Value::Int(7))));
        assert_eq!(found.ok(), Some(vec![0, 0, 0, 0, 7, 0, 0, 0]));
        let missing = plan.value(&|_| Ok(None));
        assert_eq!(missing.map_err(|e| e.code).err(), Some(Code::Unsupported));
    }
}
