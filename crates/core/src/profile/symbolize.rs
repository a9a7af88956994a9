//! Stacks to names. ELF files and the kernel go through blazesym (libbpf's symbolizer):
//! it reads `.symtab` and `.dynsym`, MiniDebugInfo (`.gnu_debugdata`, xz), separate debug
//! files found by debug link and build id under `/usr/lib/debug`, DWARF, and kallsyms, and
//! demangles C++ and Rust names; months of work nodebpf would otherwise redo. The process
//! model around it is ours (`proc_maps`, `perf_map`): blazesym's own per-process source
//! cannot at once keep the mappings of a process that exited, reach files in other mount
//! namespaces, and read a perf map that grows, has stale entries, or a malformed line
//! (it drops the whole map then). So blazesym gets files by an fd we keep open, and file
//! offsets; JIT frames come from the jitdump or the perf map.

use std::collections::HashMap;
use std::fs::File;

use blazesym::symbolize::source::{Elf, Kernel, Source};
use blazesym::symbolize::{Input, Symbolized};
use blazesym::MaybeDefault;

use super::jitdump::JitDump;
use super::perf_map::PerfMap;
use super::proc_maps::{self, FileId, Vma};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Kernel,
    /// In a mapped file (executable, shared library).
    User,
    /// JIT code named by the process's perf map.
    Jit,
    /// Nothing names it: the name says `[unknown]` and where.
    Unknown,
}

impl FrameKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FrameKind::Kernel => "kernel",
            FrameKind::User => "user",
            FrameKind::Jit => "jit",
            FrameKind::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub name: String,
    /// The file's base name, `[kernel]` or a kernel module's `[name]`, `[jit]`, `[vdso]`,
    /// or `[anon]`.
    pub module: String,
    pub kind: FrameKind,
    /// The address in the stack.
    pub addr: u64,
}

#[derive(Default)]
struct Process {
    vmas: Vec<Vma>,
    perf_map: PerfMap,
    jit_dump: JitDump,
    /// Names by address found in the process's files (its code there is mapped once).
    names: HashMap<u64, Frame>,
}

/// Symbolizes stacks of many processes and the kernel. Not `Send` (blazesym's caches are
/// not): the binding keeps it on a thread of its own.
pub struct Symbolizer {
    blaze: blazesym::symbolize::Symbolizer,
    procs: HashMap<u32, Process>,
    files: HashMap<FileId, File>,
    kernel: HashMap<u64, Frame>,
    /// Which module each kernel text symbol is in (read at the first kernel stack).
    kernel_owners: Option<Vec<(u64, Option<String>)>>,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbolizer {
    pub fn new() -> Self {
        Symbolizer {
            blaze: blazesym::symbolize::Symbolizer::builder()
                .enable_code_info(false)
                .enable_inlined_fns(false)
                .build(),
            procs: HashMap::new(),
            files: HashMap::new(),
            kernel: HashMap::new(),
            kernel_owners: None,
        }
    }

    /// Takes in `pid`'s mappings and perf map as they are now (kept once it exits: call
    /// this while it lives, and again as it maps more).
    pub fn snapshot(&mut self, pid: u32) {
        let proc = self.procs.entry(pid).or_default();
        if let Some(vmas) = proc_maps::snapshot(pid, &proc.vmas, &mut self.files) {
            if vmas != proc.vmas {
                proc.vmas = vmas;
                proc.names.clear();
            }
        }
        proc.perf_map.refresh(pid);
        proc.jit_dump.refresh(pid, &proc.vmas);
    }

    /// A user stack of `pid`, leaf first. Frames but the leaf are return addresses: they
    /// are looked up one byte back, in the call (a call that never returns is often the
    /// last instruction of its function).
    pub fn user(&mut self, pid: u32, stack: &[u64]) -> Vec<Frame> {
        if !self.procs.contains_key(&pid) {
            self.snapshot(pid);
        }
        let looked_up: Vec<u64> = stack
            .iter()
            .enumerate()
            .map(|(i, &a)| if i == 0 { a } else { a.saturating_sub(1) })
            .collect();
        let missing: Vec<u64> = {
            let proc = &self.procs[&pid];
            let mut m: Vec<u64> = looked_up
                .iter()
                .copied()
                .filter(|a| !proc.names.contains_key(a))
                .collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        let found = self.resolve_user(pid, &missing);
        let fresh: HashMap<u64, Frame> = missing.iter().copied().zip(found).collect();
        let proc = self.procs.entry(pid).or_default();
        // Names from files stay; JIT and unknown ones are looked up again next time (a
        // JIT's names come in later: its perf map grows, its jitdump is flushed at exit).
        for (a, f) in &fresh {
            if f.kind == FrameKind::User {
                proc.names.insert(*a, f.clone());
            }
        }
        looked_up
            .iter()
            .zip(stack)
            .map(|(a, &addr)| Frame {
                addr,
                ..fresh
                    .get(a)
                    .or_else(|| proc.names.get(a))
                    .cloned()
                    .unwrap_or_else(|| unknown(addr, "[unmapped]", addr))
            })
            .collect()
    }

    fn resolve_user(&self, pid: u32, addrs: &[u64]) -> Vec<Frame> {
        let proc = &self.procs[&pid];
        // Addresses by file, to ask blazesym once per file.
        let mut out: Vec<Option<Frame>> = vec![None; addrs.len()];
        let mut by_file: HashMap<FileId, Vec<(usize, u64)>> = HashMap::new();
        for (i, &addr) in addrs.iter().enumerate() {
            let vma = proc_maps::find(&proc.vmas, addr);
            match vma {
                Some(v)
                    if v.file.is_some() && self.files.contains_key(&v.file.unwrap_or_default()) =>
                {
                    by_file
                        .entry(v.file.unwrap_or_default())
                        .or_default()
                        .push((i, v.file_offset(addr)));
                }
                _ => {
                    out[i] = Some(self.unmapped(proc, vma, addr));
                }
            }
        }
        for (id, wanted) in by_file {
            let file = &self.files[&id];
            let module = proc
                .vmas
                .iter()
                .find(|v| v.file == Some(id))
                .map_or_else(String::new, |v| base_name(&v.path));
            let src = Source::Elf(Elf::new(proc_maps::fd_path(file)));
            let offsets: Vec<u64> = wanted.iter().map(|&(_, o)| o).collect();
            let syms = self
                .blaze
                .symbolize(&src, Input::FileOffset(&offsets))
                .unwrap_or_default();
            for (k, &(i, offset)) in wanted.iter().enumerate() {
                out[i] = Some(match syms.get(k) {
                    Some(Symbolized::Sym(s)) => Frame {
                        name: s.name.to_string(),
                        module: module.clone(),
                        kind: FrameKind::User,
                        addr: addrs[i],
                    },
                    _ => unknown(offset, &module, addrs[i]),
                });
            }
        }
        out.into_iter()
            .zip(addrs)
            .map(|(f, &a)| f.unwrap_or_else(|| unknown(a, "[unmapped]", a)))
            .collect()
    }

    /// A frame outside the files mapped: JIT code the perf map names, the vDSO, or unknown.
    fn unmapped(&self, proc: &Process, vma: Option<&Vma>, addr: u64) -> Frame {
        if let Some(name) = proc
            .jit_dump
            .find(addr)
            .or_else(|| proc.perf_map.find(addr))
        {
            return Frame {
                name: name.to_string(),
                module: "[jit]".into(),
                kind: FrameKind::Jit,
                addr,
            };
        }
        match vma {
            Some(v) if v.path == "[vdso]" => unknown(v.file_offset(addr), "[vdso]", addr),
            Some(v) if v.path.is_empty() || v.path.starts_with("[anon") => {
                unknown(addr, "[anon]", addr)
            }
            Some(v) => unknown(v.file_offset(addr), &base_name(&v.path), addr),
            None => unknown(addr, "[unmapped]", addr),
        }
    }

    /// A kernel stack, leaf first (return addresses looked up one byte back, as in `user`).
    pub fn kernel(&mut self, stack: &[u64]) -> Vec<Frame> {
        let looked_up: Vec<u64> = stack
            .iter()
            .enumerate()
            .map(|(i, &a)| if i == 0 { a } else { a.saturating_sub(1) })
            .collect();
        let missing: Vec<u64> = looked_up
            .iter()
            .copied()
            .filter(|a| !self.kernel.contains_key(a))
            .collect();
        if !missing.is_empty() {
            let src = Source::Kernel(Kernel {
                // kallsyms: the running kernel's own, with modules; a vmlinux found on
                // disk might not be this kernel's.
                vmlinux: MaybeDefault::None,
                debug_syms: false,
                ..Kernel::default()
            });
            let syms = self
                .blaze
                .symbolize(&src, Input::AbsAddr(&missing))
                .unwrap_or_default();
            // blazesym names module functions but not their module: kallsyms does.
            let owners = self.kernel_owners.get_or_insert_with(|| {
                crate::symbols::kernel::Kallsyms::read()
                    .map(|k| k.text_owners())
                    .unwrap_or_default()
            });
            for (k, &a) in missing.iter().enumerate() {
                let i = owners.partition_point(|&(start, _)| start <= a);
                let module = match i.checked_sub(1).and_then(|i| owners[i].1.as_deref()) {
                    Some(m) => format!("[{m}]"),
                    None => "[kernel]".to_string(),
                };
                let frame = match syms.get(k) {
                    Some(Symbolized::Sym(s)) => Frame {
                        name: s.name.to_string(),
                        module,
                        kind: FrameKind::Kernel,
                        addr: a,
                    },
                    _ => unknown(a, &module, a),
                };
                self.kernel.insert(a, frame);
            }
        }
        looked_up
            .iter()
            .zip(stack)
            .map(|(a, &addr)| Frame {
                addr,
                ..self.kernel[a].clone()
            })
            .collect()
    }

    /// Forgets processes not in `keep` (their files close once no process maps them).
    pub fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        self.procs.retain(|&pid, _| keep(pid));
        let used: std::collections::HashSet<FileId> = self
            .procs
            .values()
            .flat_map(|p| p.vmas.iter().filter_map(|v| v.file))
            .collect();
        self.files.retain(|id, _| used.contains(id));
    }
}

fn unknown(at: u64, module: &str, addr: u64) -> Frame {
    Frame {
        name: format!("[unknown] {at:#x}"),
        module: module.to_string(),
        kind: FrameKind::Unknown,
        addr,
    }
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test's own functions, found through its executable mapping.
    #[inline(never)]
    fn marker() -> u64 {
        marker as *const () as usize as u64
    }

    #[test]
    fn own_function_and_libc_by_address() {
        let mut s = Symbolizer::new();
        let pid = std::process::id();
        s.snapshot(pid);
        let frames = s.user(pid, &[marker(), libc::getpid as *const () as usize as u64]);
        assert!(frames[0].name.contains("marker"), "{:?}", frames[0]);
        assert_eq!(frames[0].kind, FrameKind::User);
        // The second is looked up one byte back: the function before getpid, or getpid's
        // own symbol when one precedes it closely; either way a libc name.
        assert!(frames[1].module.starts_with("libc"), "{:?}", frames[1]);
        let unmapped = s.user(pid, &[0x10]);
        assert_eq!(unmapped[0].kind, FrameKind::Unknown);
        assert_eq!(unmapped[0].name, "[unknown] 0x10");
    }

    /// A kernel function by its kallsyms address, and a module's with its module's name
    /// (where a module with functions is loaded and addresses are shown).
    #[test]
    fn kernel_functions_and_their_modules() {
        let Ok(k) = crate::symbols::kernel::Kallsyms::read() else {
            return;
        };
        let Some(addr) = k
            .address("do_sys_open")
            .or_else(|| k.address("do_syscall_64"))
        else {
            return;
        };
        let mut s = Symbolizer::new();
        let f = &s.kernel(&[addr])[0];
        assert!(
            matches!(f.name.as_str(), "do_sys_open" | "do_syscall_64"),
            "{f:?}"
        );
        assert_eq!((f.module.as_str(), f.kind), ("[kernel]", FrameKind::Kernel));
        let owners = k.text_owners();
        if let Some((addr, Some(module))) = owners.iter().find(|(a, m)| *a != 0 && m.is_some()) {
            let f = &s.kernel(&[*addr])[0];
            assert_eq!(f.module, format!("[{module}]"), "{f:?}");
        }
    }
}
