//! Kernel functions that ftrace (and so kprobe_multi and trampolines) can attach to:
//! `available_filter_functions`, with addresses from `available_filter_functions_addrs`
//! (6.5+). Names that occur more than once (static functions of different files) cannot
//! be attached by name; with addresses they can.

use std::collections::HashMap;

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

/// Traceable kernel functions, in the kernel's order; with `addresses`, their start
/// addresses too where the kernel publishes them (costs a read of /proc/kallsyms).
pub fn traceable_functions(addresses: bool) -> Result<Vec<KernelFunction>> {
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
        HashMap::new()
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
            // kprobe_multi cookies by function start, so use that.
            let address = ftrace_addr.map(|a| {
                starts
                    .get(name.as_str())
                    .and_then(|v| v.iter().copied().filter(|&s| s <= a && a - s < 64).max())
                    .unwrap_or(a)
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

/// Start addresses of kernel text symbols by name, from /proc/kallsyms.
fn function_starts() -> HashMap<String, Vec<u64>> {
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else {
        return out;
    };
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !matches!(kind, "t" | "T") {
            continue;
        }
        if let Ok(a) = u64::from_str_radix(addr, 16) {
            out.entry(name.to_string()).or_default().push(a);
        }
    }
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
