//! Seeded, deterministic mutation test of the no-kernel parse stage (`nodebpf_core::parse`).
//!
//! Mutants of the fixture objects (test/fixtures/build/*.bpf.o, built by
//! `make -C test/fixtures`) — bit flips, byte overwrites, truncations, huge sizes, counts
//! and offsets written into section headers, symbols, relocations, the `.BTF`/`.BTF.ext`
//! headers and records, swapped section headers, zeroed sections — must never panic, and
//! every refusal must be `BAD_OBJECT`, `EINVAL` or `ENOENT` (or the code the unmutated
//! object already fails with).
//!
//! Knobs (environment):
//! - `NODEBPF_MUTANTS`: total mutants (default 10,240, spread over the objects);
//! - `NODEBPF_MUTATE_DIR`: a folder of more `*.o` seeds (e.g. compiled libbpf-tools);
//! - `NODEBPF_MUTATE_SAVE`: a folder to write every panicking mutant into (and the
//!   replayed one, with `NODEBPF_MUTATE_SEED`);
//! - `NODEBPF_MUTATE_SEED`: replay one `file:seed` (printed on failure);
//! - `NODEBPF_MUTATE_TRACE`: print each mutant before parsing it;
//! - `NODEBPF_MUTATE_SKIP`: `file:seed,…` mutants to leave out (ones that kill the
//!   process, when measuring a build without the checks);
//! - `NODEBPF_MUTATE_RESUME`: `file:seed` to go on after (the last one traced before the
//!   process died).

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nodebpf_core::{parse, Code, LoadOptions};

const DEFAULT_MUTANTS: usize = 10_240;

/// splitmix64: tiny, seedable, good enough to spread mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Values that break readers that trust them.
const HUGE: [u64; 10] = [
    u64::MAX,
    u32::MAX as u64,
    0x7fff_ffff,
    0x8000_0000,
    0x4000_0000_0000, // 64 TiB
    0xffff,
    0x1_0000,
    1,
    0,
    0xffff_fff0,
];

fn put(data: &mut [u8], at: usize, value: u64, width: usize) {
    let bytes = value.to_le_bytes();
    for (i, b) in bytes.iter().take(width).enumerate() {
        if let Some(d) = data.get_mut(at + i) {
            *d = *b;
        }
    }
}

fn get(data: &[u8], at: usize, width: usize) -> u64 {
    let mut v = [0u8; 8];
    for (i, slot) in v.iter_mut().take(width).enumerate() {
        *slot = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(v)
}

#[derive(Clone)]
struct Section {
    header: usize,
    name: String,
    kind: u32,
    offset: usize,
    size: usize,
}

/// Section headers of a well-formed fixture (the unmutated object), to aim at.
fn sections(data: &[u8]) -> Vec<Section> {
    let shoff = get(data, 40, 8) as usize;
    let shnum = get(data, 60, 2) as usize;
    let shstrndx = get(data, 62, 2) as usize;
    let header = |i: usize| shoff + i * 64;
    let strtab = get(data, header(shstrndx) + 24, 8) as usize;
    (0..shnum)
        .map(|i| {
            let h = header(i);
            let name_off = strtab + get(data, h, 4) as usize;
            let name = data
                .get(name_off..)
                .and_then(|t| t.split(|&b| b == 0).next())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default();
            Section {
                header: h,
                name,
                kind: get(data, h + 4, 4) as u32,
                offset: get(data, h + 24, 8) as usize,
                size: get(data, h + 32, 8) as usize,
            }
        })
        .collect()
}

fn pick<'a>(
    rng: &mut Rng,
    secs: &'a [Section],
    f: impl Fn(&Section) -> bool,
) -> Option<&'a Section> {
    let matching: Vec<&Section> = secs.iter().filter(|s| f(s)).collect();
    (!matching.is_empty()).then(|| matching[rng.below(matching.len())])
}

/// One mutant of `orig`, fully determined by `seed`.
fn mutate(orig: &[u8], secs: &[Section], seed: u64) -> (Vec<u8>, &'static str) {
    let mut rng = Rng(seed);
    let mut d = orig.to_vec();
    let len = d.len();
    let huge = |rng: &mut Rng| HUGE[rng.below(HUGE.len())];
    let kind = rng.below(12);
    let what = match kind {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(len);
                d[at] ^= 1 << rng.below(8);
            }
            "bit flips"
        }
        1 => {
            for _ in 0..1 + rng.below(16) {
                let at = rng.below(len);
                d[at] = match rng.below(3) {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
            }
            "byte overwrites"
        }
        2 => {
            d.truncate(rng.below(len));
            "truncation"
        }
        3 => {
            // A huge value into one field of one section header.
            if let Some(s) = pick(&mut rng, secs, |_| true) {
                let (field, width) = [
                    (0, 4),
                    (4, 4),
                    (8, 8),
                    (16, 8),
                    (24, 8),
                    (32, 8),
                    (40, 4),
                    (44, 4),
                    (56, 8),
                ][rng.below(9)];
                let v = huge(&mut rng);
                put(&mut d, s.header + field, v, width);
            }
            "section header field"
        }
        4 | 5 => {
            // .BTF (4) or .BTF.ext (5) header fields.
            let name = if kind == 4 { ".BTF" } else { ".BTF.ext" };
            if let Some(s) = pick(&mut rng, secs, |s| s.name == name) {
                let fields = if kind == 4 { 6 } else { 7 };
                let field = 4 + 4 * rng.below(fields);
                let v = huge(&mut rng);
                put(&mut d, s.offset + field, v, 4);
            }
            "BTF/BTF.ext header"
        }
        6 | 7 => {
            // A word inside .BTF (6: types and strings) or .BTF.ext (7: records).
            let name = if kind == 6 { ".BTF" } else { ".BTF.ext" };
            if let Some(s) = pick(&mut rng, secs, |s| s.name == name && s.size >= 4) {
                let at = s.offset + 4 * rng.below(s.size / 4);
                let v = if rng.below(2) == 0 {
                    huge(&mut rng)
                } else {
                    rng.next() & 0xffff
                };
                put(&mut d, at, v, 4);
            }
            "BTF/BTF.ext record"
        }
        8 => {
            // Swap two section headers.
            if secs.len() > 2 {
                let (a, b) = (
                    secs[1 + rng.below(secs.len() - 1)].header,
                    secs[1 + rng.below(secs.len() - 1)].header,
                );
                let ha = d[a..a + 64].to_vec();
                let hb = d[b..b + 64].to_vec();
                d[a..a + 64].copy_from_slice(&hb);
                d[b..b + 64].copy_from_slice(&ha);
            }
            "swapped section headers"
        }
        9 => {
            if let Some(s) = pick(&mut rng, secs, |s| s.kind != 8 && s.size > 0) {
                let end = (s.offset + s.size).min(len);
                d[s.offset.min(end)..end].fill(0);
            }
            "zeroed section"
        }
        10 => {
            // Symbols (SHT_SYMTAB 2) and relocations (SHT_REL 9): one field of one entry.
            if let Some(s) = pick(&mut rng, secs, |s| {
                (s.kind == 2 || s.kind == 9) && s.size >= 16
            }) {
                let entsize = if s.kind == 2 { 24 } else { 16 };
                let entry = s.offset + entsize * rng.below(s.size / entsize);
                let (field, width) = if s.kind == 2 {
                    [(0, 4), (4, 1), (6, 2), (8, 8), (16, 8)][rng.below(5)]
                } else {
                    [(0, 8), (8, 4), (12, 4)][rng.below(3)]
                };
                let v = huge(&mut rng);
                put(&mut d, entry + field, v, width);
            }
            "symbol/relocation entry"
        }
        _ => {
            // Program code: an instruction's opcode, registers or immediate.
            if let Some(s) = pick(&mut rng, secs, |s| {
                s.kind == 1 && s.size >= 8 && !s.name.starts_with('.')
            }) {
                let insn = s.offset + 8 * rng.below(s.size / 8);
                match rng.below(3) {
                    0 => d[insn] = [0x85, 0x18, 0x95, rng.next() as u8][rng.below(4)],
                    1 => d[insn + 1] = rng.next() as u8,
                    _ => {
                        let v = huge(&mut rng);
                        put(&mut d, insn + 4, v, 4);
                    }
                }
            }
            "instruction"
        }
    };
    (d, what)
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures/build")
}

fn objects_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "o"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

type PanicLog = Arc<Mutex<Option<String>>>;

/// Silences the default panic output and keeps the last panic's location and message.
fn capture_panics() -> PanicLog {
    let log: PanicLog = Arc::new(Mutex::new(None));
    let sink = log.clone();
    panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut s) = sink.lock() {
            *s = Some(format!("{loc}: {msg}"));
        }
    }));
    log
}

#[test]
fn mutants_never_panic_and_fail_as_bad_objects() {
    let mut objects = objects_in(&fixture_dir());
    if objects.is_empty() {
        eprintln!(
            "SKIPPED: no fixture objects in {} (run `make -C test/fixtures` or `npm run build`)",
            fixture_dir().display()
        );
        return;
    }
    if let Ok(extra) = std::env::var("NODEBPF_MUTATE_DIR") {
        let more = objects_in(Path::new(&extra));
        eprintln!("+ {} objects from {extra}", more.len());
        objects.extend(more);
    }
    let total: usize = std::env::var("NODEBPF_MUTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MUTANTS);
    let per_object = total.div_ceil(objects.len());
    let replay = std::env::var("NODEBPF_MUTATE_SEED").ok();
    let mut resume = std::env::var("NODEBPF_MUTATE_RESUME")
        .ok()
        .filter(|r| !r.is_empty());
    let skip: Vec<String> = std::env::var("NODEBPF_MUTATE_SKIP")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let save = std::env::var("NODEBPF_MUTATE_SAVE").ok().map(PathBuf::from);
    // Prints each mutant before parsing it: finds the one that kills the process
    // (a stack overflow or an aborting allocation cannot be caught).
    let trace = std::env::var_os("NODEBPF_MUTATE_TRACE").is_some();
    let opts = LoadOptions::default();
    let log = capture_panics();

    let start = Instant::now();
    let mut mutants = 0usize;
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut panics: Vec<String> = Vec::new();
    let mut panic_sites: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong: Vec<String> = Vec::new();
    for path in &objects {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(orig) = std::fs::read(path) else {
            continue;
        };
        // The unmutated object may fail for a reason of its own (an unknown section, a
        // kfunc this kernel lacks): its mutants may then fail the same way.
        let baseline = panic::catch_unwind(AssertUnwindSafe(|| parse(&orig, &opts)))
            .ok()
            .and_then(|r| r.err());
        eprintln!(
            "{file}: unmutated {}",
            baseline
                .as_ref()
                .map_or("parses".to_string(), |e| format!("fails: {e}"))
        );
        let baseline = baseline.map(|e| e.code);
        let secs = sections(&orig);
        for n in 0..per_object as u64 {
            let seed = (n << 16) ^ (file.len() as u64) ^ fnv(&file);
            if skip.contains(&format!("{file}:{seed}")) {
                continue;
            }
            if let Some(r) = &resume {
                if *r == format!("{file}:{seed}") {
                    resume = None;
                }
                continue;
            }
            if let Some(r) = &replay {
                if *r != format!("{file}:{seed}") {
                    continue;
                }
            }
            let (mutant, what) = mutate(&orig, &secs, seed);
            mutants += 1;
            if replay.is_some() {
                if let Some(dir) = &save {
                    let _ = std::fs::create_dir_all(dir);
                    let _ = std::fs::write(dir.join(format!("{file}-{seed}.o")), &mutant);
                }
            }
            if trace {
                eprintln!("{file}:{seed} ({what})");
            }
            match panic::catch_unwind(AssertUnwindSafe(|| parse(&mutant, &opts))) {
                Ok(Ok(_)) => *codes.entry("ok".into()).or_default() += 1,
                Ok(Err(e)) => {
                    *codes.entry(e.code.as_str().into()).or_default() += 1;
                    // A flipped bit in a kfunc's name names a kfunc the kernel lacks, which
                    // is UNSUPPORTED by design.
                    let missing_kfunc =
                        e.code == Code::Unsupported && e.message.contains("calls kernel function");
                    let allowed = matches!(e.code, Code::BadObject | Code::Einval | Code::Enoent)
                        || Some(e.code) == baseline
                        || missing_kfunc;
                    if !allowed {
                        wrong.push(format!("{file}:{seed} ({what}): {e}"));
                    }
                }
                Err(_) => {
                    let site = log
                        .lock()
                        .ok()
                        .and_then(|mut s| s.take())
                        .unwrap_or_default();
                    *panic_sites
                        .entry(site.split(": ").next().unwrap_or("").to_string())
                        .or_default() += 1;
                    if trace {
                        eprintln!("PANIC {file}:{seed} ({what}): {site}");
                    }
                    panics.push(format!("{file}:{seed} ({what}): {site}"));
                    if let Some(dir) = &save {
                        let _ = std::fs::create_dir_all(dir);
                        let _ = std::fs::write(dir.join(format!("{file}-{seed}.o")), &mutant);
                    }
                }
            }
        }
    }
    let _ = panic::take_hook();
    if !trace {
        for p in &panics {
            eprintln!("PANIC {p}");
        }
    }
    eprintln!(
        "{mutants} mutants of {} objects in {:.1} s: {codes:?}; {} panics at {panic_sites:?}",
        objects.len(),
        start.elapsed().as_secs_f64(),
        panics.len()
    );
    assert!(
        panics.is_empty(),
        "{} mutants panicked (replay one with NODEBPF_MUTATE_SEED=file:seed):\n{}",
        panics.len(),
        panics
            .iter()
            .take(50)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        wrong.is_empty(),
        "{} mutants failed with an unexpected code:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(50)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// FNV-1a of the file name, so every object gets its own seeds.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
