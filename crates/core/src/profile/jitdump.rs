//! JIT code names from jitdump files (perf's format, written by V8 with `--perf-prof`, by
//! the JVM's agents, by LLVM's JIT): a header, then records, of which code loads and
//! moves name code ranges. The JIT maps the file into its own process (executable, as a
//! marker for perf), which is how it is found: the `jit-<pid>.dump` in `/proc/PID/maps`.
//! The file is read on from where the last read stopped, whole records only; a load of an
//! address range names it from then on (the newest wins, as in a perf map).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use super::proc_maps::Vma;

/// "JiTD" in the writer's byte order.
const MAGIC: u32 = 0x4A69_5444;
const FILE_HEADER: usize = 40;
const RECORD_HEADER: usize = 16;
const JIT_CODE_LOAD: u32 = 0;
const JIT_CODE_MOVE: u32 = 1;
/// A record larger than this is not one (the file is damaged or not a jitdump).
const MAX_RECORD: usize = 1 << 24;

#[derive(Default)]
pub(crate) struct JitDump {
    /// The file, once found: kept open, since the JIT buffers its writes and the rest
    /// often comes only as the process exits, when its `/proc/PID/root` is gone.
    file: Option<std::fs::File>,
    /// Bytes read so far (whole records), and whether the writer's byte order is swapped.
    read_to: u64,
    swapped: bool,
    /// By start address: (end, name).
    entries: BTreeMap<u64, (u64, String)>,
    /// By code index: the name a move carries on.
    names: BTreeMap<u64, String>,
    pub skipped: usize,
}

impl JitDump {
    /// Finds the jitdump `pid` has mapped among its executable mappings (once), and takes
    /// in what was appended to it.
    pub fn refresh(&mut self, pid: u32, vmas: &[Vma]) {
        if self.file.is_none() {
            self.file = vmas
                .iter()
                .find(|v| {
                    v.path
                        .rsplit('/')
                        .next()
                        .is_some_and(|f| f.starts_with("jit-") && f.ends_with(".dump"))
                })
                .and_then(|v| {
                    let by_range = format!("/proc/{pid}/map_files/{:x}-{:x}", v.start, v.end);
                    std::fs::File::open(by_range)
                        .or_else(|_| std::fs::File::open(format!("/proc/{pid}/root{}", v.path)))
                        .ok()
                });
        }
        let Some(f) = self.file.as_mut() else {
            return;
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.read_to)).is_err() || f.read_to_end(&mut buf).is_err() {
            return;
        }
        let used = self.add(&buf, self.read_to == 0);
        self.read_to += used as u64;
    }

    /// Takes in the records of `buf` (the file from the start when `first`); returns the
    /// bytes used (whole records).
    fn add(&mut self, buf: &[u8], first: bool) -> usize {
        let mut at = 0;
        if first {
            let Some(magic) = buf.get(..4) else {
                return 0;
            };
            let magic = u32::from_ne_bytes([magic[0], magic[1], magic[2], magic[3]]);
            if magic == MAGIC.swap_bytes() {
                self.swapped = true;
            } else if magic != MAGIC {
                // Not a jitdump: never read again.
                self.read_to = u64::MAX / 2;
                return 0;
            }
            let Some(size) = self.u32(buf, 8) else {
                return 0;
            };
            at = (size as usize).max(FILE_HEADER);
            if at > buf.len() {
                return 0;
            }
        }
        while let (Some(id), Some(size)) = (self.u32(buf, at), self.u32(buf, at + 4)) {
            let size = size as usize;
            if !(RECORD_HEADER..=MAX_RECORD).contains(&size) {
                self.skipped += 1;
                // The rest cannot be framed: stop here for good.
                self.read_to = u64::MAX / 2;
                return at;
            }
            let Some(body) = buf.get(at + RECORD_HEADER..at + size) else {
                break;
            };
            match id {
                JIT_CODE_LOAD => self.load(body),
                JIT_CODE_MOVE => self.moved(body),
                _ => {}
            }
            at += size;
        }
        at
    }

    /// `{ u32 pid, tid; u64 vma, code_addr, code_size, code_index; char name[]; code }`
    fn load(&mut self, body: &[u8]) {
        let (Some(addr), Some(size), Some(index)) =
            (self.u64(body, 16), self.u64(body, 24), self.u64(body, 32))
        else {
            self.skipped += 1;
            return;
        };
        let name = body.get(40..).unwrap_or_default();
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        let name = String::from_utf8_lossy(name).into_owned();
        self.entries
            .insert(addr, (addr.saturating_add(size), name.clone()));
        self.names.insert(index, name);
    }

    /// `{ u32 pid, tid; u64 vma, old_code_addr, new_code_addr, code_size, code_index }`
    fn moved(&mut self, body: &[u8]) {
        let (Some(old), Some(new), Some(size), Some(index)) = (
            self.u64(body, 16),
            self.u64(body, 24),
            self.u64(body, 32),
            self.u64(body, 40),
        ) else {
            self.skipped += 1;
            return;
        };
        self.entries.remove(&old);
        if let Some(name) = self.names.get(&index) {
            self.entries
                .insert(new, (new.saturating_add(size), name.clone()));
        }
    }

    /// The name of the code holding `addr`.
    pub fn find(&self, addr: u64) -> Option<&str> {
        let (_, (end, name)) = self.entries.range(..=addr).next_back()?;
        (addr < *end).then_some(name.as_str())
    }

    fn u32(&self, b: &[u8], at: usize) -> Option<u32> {
        let v = u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?);
        Some(if self.swapped { v.swap_bytes() } else { v })
    }

    fn u64(&self, b: &[u8], at: usize) -> Option<u64> {
        let v = u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?);
        Some(if self.swapped { v.swap_bytes() } else { v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut h = Vec::new();
        h.extend(MAGIC.to_ne_bytes());
        h.extend(1u32.to_ne_bytes()); // version
        h.extend((FILE_HEADER as u32).to_ne_bytes());
        h.resize(FILE_HEADER, 0);
        h
    }

    fn record(id: u32, fields: &[u64], name: &str) -> Vec<u8> {
        let mut body = vec![0u8; 8]; // pid, tid
        for f in fields {
            body.extend(f.to_ne_bytes());
        }
        if id == JIT_CODE_LOAD {
            body.extend(name.as_bytes());
            body.push(0);
        }
        let mut r = id.to_ne_bytes().to_vec();
        r.extend(((RECORD_HEADER + body.len()) as u32).to_ne_bytes());
        r.extend(0u64.to_ne_bytes()); // timestamp
        r.extend(body);
        r
    }

    #[test]
    fn loads_and_moves_name_code_partial_records_wait() {
        let mut d = JitDump::default();
        let mut file = header();
        file.extend(record(
            JIT_CODE_LOAD,
            &[0, 0x1000, 0x100, 7],
            "JS:*hot /app/a.js:1:1",
        ));
        let moved = record(JIT_CODE_MOVE, &[0, 0x1000, 0x5000, 0x100, 7], "");
        file.extend(&moved[..10]);
        let used = d.add(&file, true);
        assert_eq!(used, file.len() - 10, "a partial record waits for the rest");
        assert_eq!(d.find(0x1010), Some("JS:*hot /app/a.js:1:1"));
        assert_eq!(d.find(0x1100), None);
        d.add(&moved, false);
        assert_eq!(d.find(0x1010), None);
        assert_eq!(d.find(0x50ff), Some("JS:*hot /app/a.js:1:1"));
    }

    #[test]
    fn not_a_jitdump_is_left_alone() {
        let mut d = JitDump::default();
        assert_eq!(d.add(b"this is not one, no", true), 0);
        assert_eq!(d.find(0), None);
    }
}
