//! `inspect` (the object alone, no kernel asked) against `parse(..).describe()` (resolved
//! against this machine's kernel) on the fixture objects (test/fixtures/build/*.bpf.o,
//! built by `make -C test/fixtures`): the same description wherever the kernel takes the
//! object, and a description too where it does not.

use std::path::Path;

use nodebpf_core::{inspect, parse, Code, LoadOptions};

#[test]
fn inspect_describes_as_parse_does_and_needs_no_kernel() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures/build");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "o"))
                .collect()
        })
        .unwrap_or_default();
    if files.is_empty() {
        eprintln!(
            "SKIPPED: no fixture objects in {} (run `make -C test/fixtures`)",
            dir.display()
        );
        return;
    }
    files.sort();
    let mut compared = 0;
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().map(|f| f.to_string_lossy().into_owned());
        let data = std::fs::read(path).expect("readable");
        let described = parse(&data, &LoadOptions::default()).and_then(|p| p.describe());
        match (described, inspect(&data)) {
            (Ok(a), Ok(b)) => {
                compared += 1;
                if format!("{a:?}") != format!("{b:?}") {
                    failures.push(format!("{name:?}: inspect describes it otherwise"));
                }
            }
            // What the object itself is refused for, inspect refuses too.
            (Err(a), Err(b)) if a.code == b.code => {}
            (Err(a), Err(b)) => failures.push(format!("{name:?}: parse: {a}; inspect: {b}")),
            (Err(a), Ok(_)) if a.code == Code::Unsupported => {}
            (Err(a), Ok(_)) => failures.push(format!("{name:?}: inspect takes it; parse: {a}")),
            (Ok(_), Err(b)) => failures.push(format!("{name:?}: inspect refuses it: {b}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared > 0);

    // A kfunc no kernel has: this kernel refuses the object, inspect lists its program.
    let data = std::fs::read(dir.join("kfunc_missing.bpf.o")).expect("fixture built");
    let refused = parse(&data, &LoadOptions::default()).err();
    assert_eq!(refused.map(|e| e.code), Some(Code::Unsupported));
    let spec = inspect(&data).expect("described");
    let programs: Vec<_> = spec.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(programs, ["calls_missing"]);
}
