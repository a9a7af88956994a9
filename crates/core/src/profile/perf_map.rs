//! JIT code names from perf maps (`/tmp/perf-PID.map`, written by V8 with
//! `--perf-basic-prof` and other JITs): lines of `START SIZE name`, hex without `0x`. The
//! file grows while the process runs, so it is read on from where the last read stopped,
//! complete lines only. A JIT reuses freed code memory: the newest entry for an address
//! wins. Malformed lines are skipped, and counted.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

#[derive(Default)]
pub(crate) struct PerfMap {
    /// By start address: (end, name), the newest line for a start replacing older ones.
    entries: BTreeMap<u64, (u64, String)>,
    /// Bytes of the file taken in so far (complete lines).
    read_to: u64,
    pub skipped: usize,
}

impl PerfMap {
    /// Takes in what was appended to the perf map of `pid` since the last call. The map
    /// is found in the process's own mount namespace, named after its pid there.
    pub fn refresh(&mut self, pid: u32) {
        let Some(ns_pid) = ns_tgid(pid) else {
            return;
        };
        let path = format!("/proc/{pid}/root/tmp/perf-{ns_pid}.map");
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        let mut text = Vec::new();
        if f.seek(SeekFrom::Start(self.read_to)).is_err() || f.read_to_end(&mut text).is_err() {
            return;
        }
        // Only complete lines: the rest is read next time.
        let Some(end) = text.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        self.add(&String::from_utf8_lossy(&text[..=end]));
        self.read_to += end as u64 + 1;
    }

    fn add(&mut self, text: &str) {
        for line in text.lines() {
            match parse_line(line) {
                Some((start, size, name)) => {
                    self.entries
                        .insert(start, (start.saturating_add(size), name.to_string()));
                }
                None => self.skipped += 1,
            }
        }
    }

    /// The name of the code holding `addr`.
    pub fn find(&self, addr: u64) -> Option<&str> {
        let (_, (end, name)) = self.entries.range(..=addr).next_back()?;
        (addr < *end).then_some(name.as_str())
    }
}

fn parse_line(line: &str) -> Option<(u64, u64, &str)> {
    let mut parts = line.splitn(3, ' ');
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let start = hex(parts.next()?)?;
    let size = hex(parts.next()?)?;
    let name = parts.next()?.trim_end();
    (!name.is_empty()).then_some((start, size, name))
}

/// The pid of `pid` in its own pid namespace (the last `NStgid` of its status).
fn ns_tgid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NStgid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_by_address_newest_line_wins_bad_lines_counted() {
        let mut m = PerfMap::default();
        m.add("1000 100 JS:~hot /app/a.js:1:17\n2000 10 Builtin:ArrayMap\nnot a line\n0x3000 20 with 0x\n1000 80 JS:*hot /app/a.js:1:17\n");
        assert_eq!(m.find(0x1010), Some("JS:*hot /app/a.js:1:17"));
        assert_eq!(
            m.find(0x1090),
            None,
            "the newer entry at 0x1000 is 0x80 long"
        );
        assert_eq!(m.find(0x2009), Some("Builtin:ArrayMap"));
        assert_eq!(m.find(0x2010), None, "sizes are hex too");
        assert_eq!(m.find(0x3000), Some("with 0x"));
        assert_eq!(m.find(0xfff), None);
        assert_eq!(m.skipped, 1);
    }
}
