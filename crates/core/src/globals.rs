//! Values for `.rodata`/`.data`/`.bss` variables set before load: bytes of exactly the
//! variable's size, or integers checked against the variable's size and its BTF
//! signedness, so a value that does not fit is a `RANGE` error naming the variable,
//! never a truncation (a pid of 2^33 stored as 0 would mean "trace everything").

use std::collections::HashMap;

use crate::btf_index::{BtfIndex, IntKind};
use crate::error::{enoent, Code, Error, Result};
use crate::loader::GlobalValue;

/// The widest integer a number can be written into.
const MAX_INT_BYTES: u64 = 16;

/// Encodes every value at its variable's width. `sizes` are the variables' sizes from the
/// symbol table, `btf` the object's `.BTF` section (for signedness; without it, integers
/// are taken as unsigned).
pub(crate) fn encode(
    globals: &[(String, GlobalValue)],
    sizes: &HashMap<String, u64>,
    btf: Option<&[u8]>,
) -> Result<Vec<(String, Vec<u8>)>> {
    let index = match btf {
        Some(b)
            if globals
                .iter()
                .any(|(_, v)| matches!(v, GlobalValue::Int(_))) =>
        {
            BtfIndex::parse(b.to_vec()).ok()
        }
        _ => None,
    };
    globals
        .iter()
        .map(|(name, value)| {
            let size = *sizes
                .get(name)
                .ok_or_else(|| enoent(format!("global variable '{name}' is not in the object")))?;
            let bytes = match value {
                GlobalValue::Bytes(b) => b.clone(),
                GlobalValue::Int(v) => {
                    let kind = index.as_ref().and_then(|i| i.var_int(name));
                    int_bytes(name, *v, size, kind.unwrap_or(IntKind::Unsigned))?
                }
            };
            if bytes.len() as u64 != size {
                return Err(Error::new(
                    Code::Einval,
                    format!("global '{name}' is {size} bytes, got {}", bytes.len()),
                ));
            }
            Ok((name.clone(), bytes))
        })
        .collect()
}

fn int_bytes(name: &str, v: i128, size: u64, kind: IntKind) -> Result<Vec<u8>> {
    if size == 0 || size > MAX_INT_BYTES {
        return Err(Error::new(
            Code::Einval,
            format!("global '{name}' is {size} bytes: pass bytes, not a number"),
        ));
    }
    let bits = size as u32 * 8;
    let param = format!("global '{name}'");
    // The top bit of a 16-byte unsigned value arrives as a negative i128 bit pattern.
    let fits = match kind {
        IntKind::Bool => (0..=1).contains(&v),
        IntKind::Signed if bits == 128 => true,
        IntKind::Signed => {
            let half = 1i128 << (bits - 1);
            (-half..half).contains(&v)
        }
        IntKind::Unsigned if bits == 128 => true,
        IntKind::Unsigned => v >= 0 && v < 1i128 << bits,
    };
    if !fits {
        let range = match kind {
            IntKind::Bool => "0..=1 (a bool)".to_string(),
            IntKind::Signed => format!(
                "-2^{}..=2^{}-1 (a signed {size}-byte integer)",
                bits - 1,
                bits - 1
            ),
            IntKind::Unsigned => format!("0..=2^{bits}-1 (an unsigned {size}-byte integer)"),
        };
        return Err(Error::range(&param, v, range));
    }
    Ok(v.to_le_bytes()[..size as usize].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_take_the_width_and_refuse_what_does_not_fit() {
        let ok = |v, size, kind| int_bytes("x", v, size, kind).ok();
        assert_eq!(ok(0x01020304, 4, IntKind::Unsigned), Some(vec![4, 3, 2, 1]));
        assert_eq!(
            ok(-2, 8, IntKind::Signed),
            Some((-2i64).to_le_bytes().to_vec())
        );
        assert_eq!(ok(-1, 4, IntKind::Unsigned), None);
        assert_eq!(ok(1 << 32, 4, IntKind::Unsigned), None);
        assert_eq!(ok((1 << 33) + 7, 4, IntKind::Signed), None);
        assert_eq!(
            ok(i32::MIN as i128, 4, IntKind::Signed),
            Some(i32::MIN.to_le_bytes().to_vec())
        );
        assert_eq!(ok(1 << 31, 4, IntKind::Signed), None);
        assert_eq!(ok(2, 1, IntKind::Bool), None);
        assert_eq!(ok(1, 1, IntKind::Bool), Some(vec![1]));
        let e = int_bytes("target_pid", 1 << 33, 4, IntKind::Signed).err();
        assert_eq!(e.as_ref().map(|e| e.code), Some(Code::Range));
        assert!(
            e.is_some_and(|e| e.message.contains("global 'x'") || e.message.contains("target_pid"))
        );
    }

    #[test]
    fn names_and_sizes_are_checked() {
        let sizes: HashMap<String, u64> = [("a".to_string(), 4), ("c".to_string(), 1)].into();
        let out = encode(
            &[
                ("a".into(), GlobalValue::Int(7)),
                ("c".into(), GlobalValue::Bytes(vec![9])),
            ],
            &sizes,
            None,
        )
        .expect("encoded");
        assert_eq!(out[0].1, vec![7, 0, 0, 0]);
        assert_eq!(out[1].1, vec![9]);
        let missing = encode(&[("z".into(), GlobalValue::Int(1))], &sizes, None);
        assert_eq!(missing.err().map(|e| e.code), Some(Code::Enoent));
        let wrong = encode(&[("a".into(), GlobalValue::Bytes(vec![1]))], &sizes, None);
        assert_eq!(wrong.err().map(|e| e.code), Some(Code::Einval));
    }
}
