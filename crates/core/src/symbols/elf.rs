//! Function symbols of ELF binaries, as the file offsets uprobes take.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};

use crate::error::{bad_object, enoent, Error, Result};

/// The file offset of function `name` in the ELF file at `path`, searching `.symtab`
/// then `.dynsym`. The kernel wants file offsets, so the symbol's virtual address is
/// translated through the loadable segment that contains it.
pub fn symbol_file_offset(path: &Path, name: &str) -> Result<u64> {
    let data =
        std::fs::read(path).map_err(|e| Error::os(format!("reading {}", path.display()), e))?;
    let file = object::File::parse(&*data)
        .map_err(|e| bad_object(format!("{} is not an ELF file: {e}", path.display())))?;
    let sym = file
        .symbols()
        .chain(file.dynamic_symbols())
        .find(|s| s.kind() == SymbolKind::Text && s.is_definition() && s.name() == Ok(name))
        .ok_or_else(|| enoent(format!("function '{name}' not found in {}", path.display())))?;
    vaddr_to_file_offset(&file, sym.address()).ok_or_else(|| {
        bad_object(format!(
            "symbol '{name}' at {:#x} lies in no loadable segment of {}",
            sym.address(),
            path.display()
        ))
    })
}

/// A function of an ELF file, with the file offset uprobes take.
#[derive(Debug, Clone)]
pub struct ElfFunction {
    pub name: String,
    pub offset: u64,
}

/// Every defined function of the file (`.symtab` and `.dynsym`), one entry per name.
/// Parsed once per file version (device, inode, size, mtime): attaching again to the same
/// binary costs no ELF parse, and a replaced binary is parsed anew.
pub fn functions(path: &Path) -> Result<Arc<Vec<ElfFunction>>> {
    use std::os::unix::fs::MetadataExt;
    type Key = (u64, u64, u64, i64, i64);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Vec<ElfFunction>>>>> = OnceLock::new();
    let meta =
        std::fs::metadata(path).map_err(|e| Error::os(format!("reading {}", path.display()), e))?;
    let key = (
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
    );
    let cache = CACHE.get_or_init(Default::default);
    if let Some(f) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(f);
    }
    let parsed = Arc::new(parse_functions(path)?);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, parsed.clone());
    }
    Ok(parsed)
}

fn parse_functions(path: &Path) -> Result<Vec<ElfFunction>> {
    let data =
        std::fs::read(path).map_err(|e| Error::os(format!("reading {}", path.display()), e))?;
    let file = object::File::parse(&*data)
        .map_err(|e| bad_object(format!("{} is not an ELF file: {e}", path.display())))?;
    // Names borrow from `data`: a binary has tens of thousands of them.
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut out = Vec::new();
    for sym in file.symbols().chain(file.dynamic_symbols()) {
        if sym.kind() != SymbolKind::Text || !sym.is_definition() || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        if name.is_empty() || !seen.insert(name) {
            continue;
        }
        if let Some(offset) = vaddr_to_file_offset(&file, sym.address()) {
            out.push(ElfFunction {
                name: name.to_string(),
                offset,
            });
        }
    }
    Ok(out)
}

pub(crate) fn vaddr_to_file_offset(file: &object::File<'_>, vaddr: u64) -> Option<u64> {
    file.segments().find_map(|seg| {
        let (file_off, file_size) = seg.file_range();
        let start = seg.address();
        (vaddr >= start && vaddr < start + file_size).then(|| vaddr - start + file_off)
    })
}
