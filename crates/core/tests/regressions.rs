//! Every object in test/regressions/ once crashed the loader (a panic, heap corruption or
//! an aborting allocation inside aya-obj); each file is named by what it broke. Each must
//! now be refused with `BAD_OBJECT`, by the parse stage, `inspect` and `load` alike, never
//! panic.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use nodebpf_core::{inspect, load, parse, Code, LoadOptions};

#[test]
fn every_regression_object_is_a_bad_object() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("test/regressions exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no regression objects in {}",
        dir.display()
    );
    let opts = LoadOptions::default();
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let data = std::fs::read(path).expect("readable");
        let parsed = panic::catch_unwind(AssertUnwindSafe(|| parse(&data, &opts).err()));
        let inspected = panic::catch_unwind(AssertUnwindSafe(|| inspect(&data).err()));
        let loaded = panic::catch_unwind(AssertUnwindSafe(|| load(&data, &opts).err()));
        for (stage, result) in [("parse", parsed), ("inspect", inspected), ("load", loaded)] {
            match result {
                Ok(Some(e)) if e.code == Code::BadObject => eprintln!("{name}: {stage}: {e}"),
                Ok(Some(e)) => failures.push(format!("{name}: {stage}: {e}")),
                Ok(None) => failures.push(format!("{name}: {stage}: accepted")),
                Err(_) => failures.push(format!("{name}: {stage}: panicked")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
