//! libbpf's static initialization of program arrays and maps of maps: in an
//! `__array(values, ...)` declaration, `.values = { [1] = &prog }` or `{ [0] = &inner }`
//! puts a program or a map in a slot at load. The compiler leaves a relocation in
//! `.rel.maps` per slot; the slot is its offset in the map's `values` array.
//!
//! aya-obj 0.3 takes only pointers to inner-map structs as `values` (a program array's
//! `int (void *)` prototype makes it refuse the object), so a program array's `values`
//! member is renamed before aya-obj parses (it skips members it does not know) and the
//! map gets the 4-byte values libbpf gives it.

use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};

use crate::btf_index::BtfIndex;
use crate::error::{bad_object, Result};

/// A pointer in `values`.
const SLOT_SIZE: u64 = 8;

/// A program array's or map of maps' value: a program or map fd.
pub const FD_VALUE_SIZE: u32 = 4;

/// What the object initializes statically.
#[derive(Default)]
pub struct Plan {
    /// Program arrays whose `values` declaration aya-obj was kept from.
    pub prog_arrays: Vec<String>,
    pub slots: Vec<Slot>,
}

/// `map[index] = target` (a program's or a map's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub map: String,
    pub index: u32,
    pub target: String,
    pub program: bool,
}

/// Reads the slots the object sets and renames program arrays' `values` members in its
/// `.BTF` (to `alues`: the same string one byte on, so nothing moves).
pub fn prepare(bytes: &mut [u8]) -> Result<Plan> {
    let Some((start, end)) = super::kfuncs::btf_range(bytes)? else {
        return Ok(Plan::default());
    };
    let members = BtfIndex::parse(bytes[start..end].to_vec())?.map_values_members();
    if members.is_empty() {
        return Ok(Plan::default());
    }
    let slots = slots(bytes, &members)?;
    let mut prog_arrays = Vec::new();
    for m in members.iter().filter(|m| m.programs) {
        let at = start
            .checked_add(m.name_at)
            .filter(|at| at.saturating_add(4) <= end)
            .ok_or_else(|| bad_object(format!("map '{}': BTF member out of range", m.map)))?;
        let field = &mut bytes[at..at + 4];
        let name_off = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
        field.copy_from_slice(&(name_off + 1).to_le_bytes());
        prog_arrays.push(m.map.clone());
    }
    Ok(Plan { prog_arrays, slots })
}

/// The `.rel.maps` relocations as slots of the maps' `values` arrays.
fn slots(bytes: &[u8], members: &[crate::btf_index::ValuesMember]) -> Result<Vec<Slot>> {
    let file = object::File::parse(bytes).map_err(|e| bad_object(format!("ELF: {e}")))?;
    let Some(maps) = file.section_by_name(".maps") else {
        return Ok(Vec::new());
    };
    let vars: Vec<(String, u64, u64)> = file
        .symbols()
        .filter(|s| s.section_index() == Some(maps.index()))
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.address(), s.size())))
        .collect();
    let mut out = Vec::new();
    for (offset, reloc) in maps.relocations() {
        let RelocationTarget::Symbol(sym) = reloc.target() else {
            continue;
        };
        let target = file
            .symbol_by_index(sym)
            .ok()
            .and_then(|s| s.name().ok().map(str::to_string))
            .ok_or_else(|| bad_object(format!(".rel.maps: no symbol for offset {offset}")))?;
        let Some((var, base, _)) = vars
            .iter()
            .find(|(_, at, size)| offset >= *at && offset - at < *size)
        else {
            continue;
        };
        let member = members.iter().find(|m| &m.map == var).ok_or_else(|| {
            bad_object(format!(
                "map '{var}': .rel.maps sets '{target}' outside a values array"
            ))
        })?;
        let into = (offset - base)
            .checked_sub(u64::from(member.offset))
            .filter(|d| d % SLOT_SIZE == 0)
            .ok_or_else(|| {
                bad_object(format!(
                    "map '{var}': .rel.maps sets '{target}' at offset {offset}, not a values slot"
                ))
            })?;
        out.push(Slot {
            map: var.clone(),
            index: u32::try_from(into / SLOT_SIZE)
                .map_err(|_| bad_object(format!("map '{var}': slot beyond 2^32")))?,
            target,
            program: member.programs,
        });
    }
    Ok(out)
}
