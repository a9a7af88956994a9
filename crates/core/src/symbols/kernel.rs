//! Kernel functions that ftrace (and so kprobe_multi and trampolines) can attach to:
//! `available_filter_functions`, with addresses from `available_filter_functions_addrs`
//! (6.5+). Names that occur more than once (static functions of different files) cannot
//! be attached by name; with addresses they can.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::tracefs;

#[derive(Debug, Clone)]
pub struct KernelFunction {
    pub name: String,
    pub module: Option<String>,
    /// The ftrace address, when the kernel publishes it.
    pub address: Option<u64>,
}

/// Traceable kernel functions, in the kernel's order.
pub fn traceable_functions() -> Result<Vec<KernelFunction>> {
    let root = tracefs::root()?;
    let with_addrs = std::fs::read_to_string(root.join("available_filter_functions_addrs"));
    let (text, has_addrs) = match with_addrs {
        Ok(t) => (t, true),
        Err(_) => (
            std::fs::read_to_string(root.join("available_filter_functions"))
                .map_err(|e| Error::os("reading available_filter_functions", e))?,
            false,
        ),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let address = if has_addrs {
                Some(u64::from_str_radix(parts.next()?, 16).ok()?)
            } else {
                None
            };
            let name = parts.next()?.to_string();
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

/// How many times each name occurs.
pub fn name_counts(functions: &[KernelFunction]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for f in functions {
        *counts.entry(f.name.as_str()).or_insert(0) += 1;
    }
    counts
}
