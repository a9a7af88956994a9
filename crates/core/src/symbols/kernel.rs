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
    let kallsyms = if has_addrs {
        std::fs::read("/proc/kallsyms").unwrap_or_default()
    } else {
        Vec::new()
    };
    let starts = function_starts(&kallsyms);
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
            // kprobe_multi cookies by function start: the symbol of that name just before.
            let address = ftrace_addr.map(|a| {
                let i = starts.partition_point(|&(s, _)| s <= a);
                starts[..i]
                    .iter()
                    .rev()
                    .take_while(|&&(s, _)| a - s < 64)
                    .find(|&&(_, n)| n == name.as_bytes())
                    .map_or(a, |&(s, _)| s)
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

/// A kernel text symbol: its address, name, and module (`None`: vmlinux), borrowed from
/// the bytes of /proc/kallsyms (there are hundreds of thousands).
type TextSymbol<'a> = (u64, &'a [u8], Option<&'a [u8]>);

/// Kernel text symbols from /proc/kallsyms, sorted by address.
fn text_symbols(kallsyms: &[u8]) -> Vec<TextSymbol<'_>> {
    let mut out: Vec<TextSymbol<'_>> = kallsyms
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            // "ffffffff81000000 T name\t[module]"
            let mut parts = line.split(|&b| b == b' ' || b == b'\t');
            let (addr, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            if kind != b"t" && kind != b"T" {
                return None;
            }
            let addr = u64::from_str_radix(std::str::from_utf8(addr).ok()?, 16).ok()?;
            let module = parts
                .next()
                .and_then(|m| m.strip_prefix(b"[")?.strip_suffix(b"]"));
            Some((addr, name, module))
        })
        .collect();
    out.sort_unstable_by_key(|&(a, _, _)| a);
    out
}

/// Kernel text symbols as (address, name), sorted by address.
fn function_starts(kallsyms: &[u8]) -> Vec<(u64, &[u8])> {
    text_symbols(kallsyms)
        .into_iter()
        .map(|(a, name, _)| (a, name))
        .collect()
}

/// How many times each name occurs.
pub fn name_counts(functions: &[KernelFunction]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for f in functions {
        *counts.entry(f.name.as_str()).or_insert(0) += 1;
    }
    counts
}

/// /proc/kallsyms as read once, for looking up several names in it.
pub struct Kallsyms(Vec<u8>);

impl Kallsyms {
    pub fn read() -> Result<Self> {
        std::fs::read("/proc/kallsyms")
            .map(Kallsyms)
            .map_err(|e| Error::os("reading /proc/kallsyms", e))
    }

    /// The address listed for `name` (0 where kptr_restrict hides addresses).
    fn entry(&self, name: &str) -> Option<u64> {
        self.0.split(|&b| b == b'\n').find_map(|line| {
            // "ffffffff81000000 T name\t[module]"
            let mut parts = line.split(|&b| b == b' ' || b == b'\t');
            let (addr, _kind, sym) = (parts.next()?, parts.next()?, parts.next()?);
            (sym == name.as_bytes())
                .then(|| u64::from_str_radix(std::str::from_utf8(addr).ok()?, 16).ok())
                .flatten()
        })
    }

    /// A kernel symbol's address (`typeless __ksym` externs), `None` when it is not
    /// listed, or listed as 0 where kallsyms hides every address (kptr_restrict). Per-CPU
    /// symbols really are at 0 and up (x86-64's `__per_cpu_start`), as libbpf takes them.
    /// Data symbols are listed only on kernels built with CONFIG_KALLSYMS_ALL.
    pub fn address(&self, name: &str) -> Option<u64> {
        self.entry(name)
            .filter(|&a| a != 0 || self.shows_addresses())
    }

    /// Where each text symbol starts and which module it is in (`None`: vmlinux), by
    /// address: a kernel address belongs to the symbol before it.
    pub fn text_owners(&self) -> Vec<(u64, Option<String>)> {
        text_symbols(&self.0)
            .into_iter()
            .map(|(a, _, module)| (a, module.map(|m| String::from_utf8_lossy(m).into_owned())))
            .collect()
    }

    /// Whether any address is shown (not all zeros).
    fn shows_addresses(&self) -> bool {
        self.0.split(|&b| b == b'\n').any(|line| {
            let addr = line.split(|&b| b == b' ').next().unwrap_or_default();
            !addr.is_empty() && addr.iter().any(|&b| b != b'0')
        })
    }
}

/// The prefix of syscall entry functions where syscalls go through `__<arch>_sys_*`
/// wrappers (taking the user's `pt_regs` in a register: `LINUX_HAS_SYSCALL_WRAPPER`), as
/// libbpf finds out: the wrapper of `bpf()` is a kernel symbol. `None`: plain `sys_*`.
/// Read from /proc/kallsyms once per process.
pub fn syscall_wrapper_prefix() -> Option<&'static str> {
    static PREFIX: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *PREFIX.get_or_init(|| {
        let prefix = if cfg!(target_arch = "aarch64") {
            "__arm64_sys_"
        } else {
            "__x64_sys_"
        };
        Kallsyms::read()
            .ok()?
            .entry(&format!("{prefix}bpf"))
            .map(|_| prefix)
    })
}
