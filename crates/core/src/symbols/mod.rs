//! Symbol resolution for probes: which file a binary name means, and where a function
//! lives inside it.

pub mod elf;
pub mod kernel;
pub mod pattern;

use std::path::{Path, PathBuf};

use crate::error::{enoent, Result};

const LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
];

/// Resolves `binary` like libbpf: a path is taken as is; a name containing `.so` is
/// looked up in `LD_LIBRARY_PATH` and the usual library folders (and, with a pid, among
/// that process's mapped files); any other name is looked up in `PATH`.
pub fn resolve_binary(binary: &str, pid: Option<i32>) -> Result<PathBuf> {
    if binary.is_empty() {
        return Err(enoent("no binary given"));
    }
    if binary.contains('/') {
        let p = PathBuf::from(binary);
        return if p.is_file() {
            Ok(p.canonicalize().unwrap_or(p))
        } else {
            Err(enoent(format!("binary '{binary}' does not exist")))
        };
    }
    let is_library = binary.contains(".so");
    if is_library {
        if let Some(p) = pid.and_then(|pid| mapped_library(pid, binary)) {
            return Ok(p);
        }
    }
    let env_dirs = std::env::var(if is_library {
        "LD_LIBRARY_PATH"
    } else {
        "PATH"
    })
    .unwrap_or_default();
    let static_dirs: &[&str] = if is_library { LIBRARY_DIRS } else { &[] };
    env_dirs
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(static_dirs.iter().copied())
        .map(|d| Path::new(d).join(binary))
        .find(|p| p.is_file())
        .map(|p| p.canonicalize().unwrap_or(p))
        .ok_or_else(|| {
            enoent(format!(
                "binary '{binary}' not found in {}",
                if is_library {
                    "LD_LIBRARY_PATH or the library folders"
                } else {
                    "PATH"
                }
            ))
        })
}

fn mapped_library(pid: i32, name: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f == name || f.starts_with(&format!("{name}.")))
        })
        .map(PathBuf::from)
}
