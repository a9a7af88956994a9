//! Kernel functions that ftrace (and so kprobe_multi and trampolines) can attach to:
//! `available_filter_functions`, with addresses from `available_filter_functions_addrs`
//! (6.5+). Names that occur more than once (static functions of different files) cannot
//! be attached by name; with addresses they can.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::tracefs;

/// Why an exactly named kernel function was left out: ftrace cannot attach to it.
pub const NOT_TRACEABLE: &str =
    "not a traceable kernel function (not in available_filter_functions)";

#[derive(Debug, Clone)]
pub struct KernelFunction {
    pub name: String,
    pub module: Option<String>,
    /// The ftrace address, when the kernel publishes it.
    pub address: Option<u64>,
}

/// The lists as read, the /proc/modules they go with, and whether they have addresses.
type Cached = (String, bool, Arc<Vec<KernelFunction>>);

/// Traceable kernel functions, in the kernel's order; with `addresses`, their start
/// addresses too where the kernel publishes them (costs a read of /proc/kallsyms).
/// Kept per process until the set of loaded modules changes: reading these lists is
/// most of a batch attach's own time (a second under TCG).
pub fn traceable_functions(addresses: bool) -> Result<Arc<Vec<KernelFunction>>> {
    static CACHE: Mutex<Option<Cached>> = Mutex::new(None);
    // Module loads and unloads are what change the lists.
    let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    if let Ok(c) = CACHE.lock() {
        if let Some((m, a, list)) = c.as_ref() {
            if *m == modules && (*a || !addresses) {
                return Ok(list.clone());
            }
        }
    }
    let list = Arc::new(read_traceable(addresses)?);
    if let Ok(mut c) = CACHE.lock() {
        *c = Some((modules, addresses, list.clone()));
    }
    Ok(list)
}

fn read_traceable(addresses: bool) -> Result<Vec<KernelFunction>> {
    let root = tracefs::root()?;
    let with_addrs = if addresses {
        std::fs::read_to_string(root.join("available_filter_functions_addrs"))
    } else {
        Err(std::io::ErrorKind::NotFound.into())
    };
    let (text, has_addrs) = match with_addrs {
        Ok(t) => (t, true),
        Err(_) => (
            std::fs::read_to_string(root.join("available_filter_functions"))
                .map_err(|e| Error::os("reading available_filter_functions", e))?,
            false,
        ),
    };
    let starts = if has_addrs {
        function_starts()
    } else {
        Vec::new()
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let ftrace_addr = if has_addrs {
                Some(u64::from_str_radix(parts.next()?, 16).ok()?)
            } else {
                None
            };
            let name = parts.next()?.to_string();
            // ftrace lists its call site (after ENDBR on IBT kernels); the kernel matches
            // kprobe_multi cookies by function start: the last symbol at or before it.
            let address = ftrace_addr.map(|a| {
                let i = starts.partition_point(|&s| s <= a);
                match i.checked_sub(1).map(|i| starts[i]) {
                    Some(s) if a - s < 64 => s,
                    _ => a,
                }
            });
            let module = parts
                .next()
                .map(|m| m.trim_matches(|c| c == '[' || c == ']').to_string());
            // ftrace's placeholder for records it could not name.
            (!name.starts_with("__ftrace_invalid_address__")).then_some(KernelFunction {
                name,
                module,
                address,
            })
        })
        .collect())
}

/// Sorted start addresses of kernel text symbols, from /proc/kallsyms. Only addresses:
/// the containing function of an ftrace site is the last symbol before it.
fn function_starts() -> Vec<u64> {
    let Ok(text) = std::fs::read("/proc/kallsyms") else {
        return Vec::new();
    };
    let mut out: Vec<u64> = text
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            // "ffffffff81000000 T name [module]"
            let (addr, rest) = line.split_at(line.iter().position(|&b| b == b' ')?);
            if !matches!(rest.get(1), Some(b't' | b'T')) {
                return None;
            }
            let addr = std::str::from_utf8(addr).ok()?;
            u64::from_str_radix(addr, 16).ok()
        })
        .collect();
    out.sort_unstable();
    out
}

/// How many times each name occurs.
pub fn name_counts(functions: &[KernelFunction]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for f in functions {
        *counts.entry(f.name.as_str()).or_insert(0) += 1;
    }
    counts
}
