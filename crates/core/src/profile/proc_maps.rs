//! A process's executable mappings as `/proc/PID/maps` lists them, with the files behind
//! them kept open: a process may exit before its samples are symbolized, a file may be
//! deleted or live in another mount namespace, and the open file is still the one that
//! was mapped.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

/// A file's identity: (device, inode).
pub(crate) type FileId = (u64, u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vma {
    pub start: u64,
    pub end: u64,
    /// The file offset mapped at `start`.
    pub offset: u64,
    /// The path column: a file, `[vdso]`, `[anon:…]`, or empty for anonymous memory.
    pub path: String,
    pub file: Option<FileId>,
}

impl Vma {
    /// Where `addr` is in the mapped file.
    pub fn file_offset(&self, addr: u64) -> u64 {
        addr - self.start + self.offset
    }
}

/// The executable mappings of `text` (a `/proc/PID/maps`), in address order; `file` left
/// to the caller.
pub(crate) fn parse(text: &str) -> Vec<Vma> {
    let mut vmas: Vec<Vma> = text.lines().filter_map(parse_line).collect();
    vmas.sort_by_key(|v| v.start);
    vmas
}

/// `start-end perms offset dev inode path`; None for lines that are not executable.
fn parse_line(line: &str) -> Option<Vma> {
    let mut fields = line.splitn(6, ' ');
    let (range, perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
    let (_dev, _inode) = (fields.next()?, fields.next()?);
    let path = fields.next().unwrap_or("").trim_start().to_string();
    if perms.as_bytes().get(2) != Some(&b'x') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    Some(Vma {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        offset: u64::from_str_radix(offset, 16).ok()?,
        path,
        file: None,
    })
}

/// Reads `pid`'s executable mappings and opens the files behind them into `files`
/// (through `/proc/PID/map_files`, which reaches files of other mount namespaces and
/// deleted ones, else `/proc/PID/root` + the path); mappings already in `known` keep
/// their file without opening it again. None once the process is gone.
pub(crate) fn snapshot(
    pid: u32,
    known: &[Vma],
    files: &mut HashMap<FileId, File>,
) -> Option<Vec<Vma>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mut vmas = parse(&text);
    if vmas.is_empty() {
        // A zombie's maps are empty: its memory is gone already.
        return None;
    }
    for vma in vmas.iter_mut().filter(|v| v.path.starts_with('/')) {
        let same = |k: &&Vma| {
            k.start == vma.start && k.end == vma.end && k.offset == vma.offset && k.path == vma.path
        };
        if let Some(id) = known.iter().find(same).and_then(|k| k.file) {
            if files.contains_key(&id) {
                vma.file = Some(id);
                continue;
            }
        }
        let by_range = format!("/proc/{pid}/map_files/{:x}-{:x}", vma.start, vma.end);
        let by_root = format!("/proc/{pid}/root{}", vma.path);
        let Some(file) = File::open(&by_range).or_else(|_| File::open(&by_root)).ok() else {
            continue;
        };
        let Ok(meta) = file.metadata() else {
            continue;
        };
        let id = (meta.dev(), meta.ino());
        files.entry(id).or_insert(file);
        vma.file = Some(id);
    }
    Some(vmas)
}

/// A path that opens `file` as long as this process holds it.
pub(crate) fn fd_path(file: &File) -> String {
    format!("/proc/self/fd/{}", file.as_raw_fd())
}

/// The mapping holding `addr`.
pub(crate) fn find(vmas: &[Vma], addr: u64) -> Option<&Vma> {
    let i = vmas.partition_point(|v| v.start <= addr);
    vmas[..i].last().filter(|v| addr < v.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d4c0a00000-55d4c0a01000 r--p 00000000 fd:01 1234 /usr/bin/node
55d4c0a01000-55d4c2000000 r-xp 00001000 fd:01 1234 /usr/bin/node
7f0000000000-7f0000100000 rwxp 00000000 00:00 0 
7f1000000000-7f1000020000 r-xp 00028000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd1e5f6000-7ffd1e5f8000 r-xp 00000000 00:00 0                          [vdso]
7f2000000000-7f2000001000 r-xp 00000000 fd:01 77 /tmp/a file (deleted)
";

    #[test]
    fn executable_mappings_in_order_with_their_offsets_and_paths() {
        let v = parse(MAPS);
        assert_eq!(v.len(), 5, "the r--p mapping is not executable");
        assert_eq!(v[0].path, "/usr/bin/node");
        assert_eq!(v[0].file_offset(0x55d4c0a01010), 0x1010);
        assert_eq!(v[1].path, "", "anonymous JIT memory");
        assert_eq!(v[2].file_offset(0x7f1000000100), 0x28100);
        assert_eq!(v[3].path, "/tmp/a file (deleted)", "spaces in paths stay");
        assert_eq!(v[4].path, "[vdso]");
        assert_eq!(
            find(&v, 0x7f0000000080).map(|v| v.start),
            Some(0x7f0000000000)
        );
        assert_eq!(find(&v, 0x7f0000100000), None, "end is exclusive");
        assert_eq!(find(&v, 0x1000), None);
    }
}
