//! A relocated program and its `BPF_PROG_LOAD`. We own this step (rather than aya's
//! program types) so any `expected_attach_type` can be chosen: kprobe_multi, sessions,
//! uprobe_multi and tracing_multi all need one aya cannot set.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use aya_obj::generated::{bpf_func_info, bpf_insn, bpf_line_info};

use crate::error::{Code, Error, Result};
use crate::loader::kfuncs::ModuleBtfs;
use crate::loader::section::SectionSpec;
use crate::sys::{self, ProgLoadAttr};

/// Lines of the verifier log quoted in the error message; the whole log is attached.
const LOG_TAIL_LINES: usize = 20;
const LOG_BUF_SIZE: usize = 16 << 20;

pub struct Program {
    pub name: String,
    pub section: String,
    pub spec: SectionSpec,
    insns: Vec<bpf_insn>,
    func_info: Vec<bpf_func_info>,
    func_info_rec_size: u32,
    line_info: Vec<bpf_line_info>,
    line_info_rec_size: u32,
    license: CString,
    kern_version: u32,
    btf_fd: Option<Arc<OwnedFd>>,
    /// Module BTF objects its kfunc calls and variables name (`fd_array`).
    modules: Arc<ModuleBtfs>,
    /// The instance loaded with the object; `None` for tracing programs whose SEC()
    /// names no target: those are loaded when attached.
    fd: Option<OwnedFd>,
    /// `false` when configured not to load (libbpf's autoload): never loaded or attached.
    pub autoload: bool,
    /// freplace: the program whose function this one replaces, when configured.
    pub attach_prog: Option<Arc<OwnedFd>>,
}

/// Where a tracing program attaches, resolved to BTF before loading.
#[derive(Clone, Default)]
pub struct BtfTarget {
    pub btf_id: u32,
    /// The module's BTF object when the target is a module's; `None` for vmlinux.
    pub module_btf: Option<Arc<OwnedFd>>,
    /// freplace: the program whose function `btf_id` (in its BTF) is replaced.
    pub target_prog: Option<Arc<OwnedFd>>,
}

pub(crate) struct ProgramParts {
    pub name: String,
    pub section: String,
    pub spec: SectionSpec,
    pub function: aya_obj::Function,
    pub license: CString,
    pub kern_version: u32,
    pub btf_fd: Option<Arc<OwnedFd>>,
    pub modules: Arc<ModuleBtfs>,
}

impl Program {
    pub(crate) fn new(parts: ProgramParts) -> Self {
        let f = parts.function;
        Program {
            name: parts.name,
            section: parts.section,
            spec: parts.spec,
            insns: f.instructions,
            func_info: f.func_info.func_info,
            func_info_rec_size: f.func_info_rec_size as u32,
            line_info: f.line_info.line_info,
            line_info_rec_size: f.line_info_rec_size as u32,
            license: parts.license,
            kern_version: parts.kern_version,
            btf_fd: parts.btf_fd,
            modules: parts.modules,
            fd: None,
            autoload: true,
            attach_prog: None,
        }
    }

    /// The fd of the instance loaded with the object.
    pub fn fd(&self) -> Result<BorrowedFd<'_>> {
        self.check_autoload()?;
        self.fd.as_ref().map(|fd| fd.as_fd()).ok_or_else(|| {
            Error::new(
                Code::Einval,
                format!(
                    "program '{}' (SEC \"{}\") is loaded when it is attached (its section names \
                     no target, or this kernel needs a per-target fallback for it)",
                    self.name, self.section
                ),
            )
        })
    }

    /// A program configured with autoload off is not loaded, and not loaded later either.
    pub fn check_autoload(&self) -> Result<()> {
        if self.autoload {
            return Ok(());
        }
        Err(Error::new(
            Code::Einval,
            format!(
                "program '{}' (SEC \"{}\") was not loaded: autoload is off for it",
                self.name, self.section
            ),
        ))
    }

    pub fn is_loaded(&self) -> bool {
        self.fd.is_some()
    }

    pub(crate) fn set_fd(&mut self, fd: OwnedFd) {
        self.fd = Some(fd);
    }

    pub fn insn_count(&self) -> usize {
        self.insns.len()
    }

    /// Loads one instance of the program. Tracing programs pass their BTF target.
    pub fn load_instance(&self, target: &BtfTarget) -> Result<OwnedFd> {
        self.load_with_attach_type(self.spec.expected_attach_type, target)
    }

    pub(crate) fn load_with_attach_type(
        &self,
        expected_attach_type: u32,
        target: &BtfTarget,
    ) -> Result<OwnedFd> {
        self.check_autoload()?;
        let mut attr = ProgLoadAttr {
            prog_type: self.spec.prog_type,
            insn_cnt: self.insns.len() as u32,
            insns: sys::ptr(self.insns.as_ptr()),
            license: sys::ptr(self.license.as_ptr()),
            kern_version: self.kern_version,
            prog_flags: self.spec.prog_flags,
            expected_attach_type,
            attach_btf_id: target.btf_id,
            // One field of `bpf_attr`: `attach_btf_obj_fd`, or `attach_prog_fd` for freplace.
            attach_btf_obj_fd: target
                .module_btf
                .as_ref()
                .or(target.target_prog.as_ref())
                .map_or(0, |f| f.as_raw_fd() as u32),
            fd_array: self.modules.fd_array().map_or(0, |a| sys::ptr(a.as_ptr())),
            ..Default::default()
        };
        let name_len = self.name.len().min(15);
        attr.prog_name[..name_len].copy_from_slice(&self.name.as_bytes()[..name_len]);
        if let Some(btf) = &self.btf_fd {
            attr.prog_btf_fd = btf.as_raw_fd() as u32;
            if !self.func_info.is_empty() {
                attr.func_info_rec_size = self.func_info_rec_size;
                attr.func_info = sys::ptr(self.func_info.as_ptr());
                attr.func_info_cnt = self.func_info.len() as u32;
            }
            if !self.line_info.is_empty() {
                attr.line_info_rec_size = self.line_info_rec_size;
                attr.line_info = sys::ptr(self.line_info.as_ptr());
                attr.line_info_cnt = self.line_info.len() as u32;
            }
        }
        let first = match sys::bpf_fd(sys::BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => return Ok(fd),
            Err(e) => e,
        };
        if first.raw_os_error() == Some(libc::EPERM) {
            let e = Error::os(format!("loading program '{}'", self.name), first);
            return Err(self.missing_feature(e));
        }
        // Load again with the verifier log on: the first try skips the cost of logging.
        let mut log = vec![0u8; LOG_BUF_SIZE];
        attr.log_level = 1;
        attr.log_size = log.len() as u32;
        attr.log_buf = sys::ptr(log.as_mut_ptr());
        let second = match sys::bpf_fd(sys::BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => return Ok(fd),
            // A log longer than the buffer makes the kernel (6.4+) answer ENOSPC in place
            // of its verdict (the log's tail still says why): the first answer is the verdict.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => first,
            Err(e) => e,
        };
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]).trim_end().to_string();
        let e = self.load_error(second, text);
        // The verifier read the program: whatever it says, the kind itself was accepted.
        if e.code == Code::Verifier {
            return Err(e);
        }
        Err(self.missing_feature(e))
    }

    /// A load refused on a kernel that lacks what the program's kind needs (EPERM with
    /// every capability present, e.g. fentry without trampolines; EINVAL for an attach type
    /// the kernel does not know) is `UNSUPPORTED`, naming the feature and its kernel.
    fn missing_feature(&self, mut e: Error) -> Error {
        if crate::caps::missing_caps().is_empty() {
            if let Some((feature, needs)) = crate::features::requirement(self.spec.kind) {
                if !crate::features::is_supported(feature) {
                    e.code = Code::Unsupported;
                    e.message = format!(
                        "loading program '{}' (SEC \"{}\"): this kernel ({}) does not support \
                         {feature} (features().{feature} is false; it needs {needs}); the \
                         kernel said: {}",
                        self.name,
                        self.section,
                        crate::features::features().kernel,
                        e.message
                    );
                }
            }
        }
        e
    }

    fn load_error(&self, err: std::io::Error, log: String) -> Error {
        let errno = err.raw_os_error();
        if log.is_empty() {
            // An expected attach type of 0 is "none" for most program types (it is also
            // BPF_CGROUP_INET_INGRESS, which would mislead here).
            let attach = match self.spec.expected_attach_type {
                0 => String::new(),
                t => format!(
                    ", expected attach type {}",
                    sys::names::describe_attach_type(t)
                ),
            };
            return Error::os(
                format!(
                    "loading program '{}' (SEC \"{}\", program type {}{attach})",
                    self.name,
                    self.section,
                    sys::names::describe_prog_type(self.spec.prog_type)
                ),
                err,
            );
        }
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        Error {
            code: Code::Verifier,
            errno,
            message: format!(
                "the verifier rejected program '{}' (SEC \"{}\"): {err}\n--- verifier log (last {} lines) ---\n{tail}",
                self.name,
                self.section,
                LOG_TAIL_LINES.min(lines.len())
            ),
            verifier_log: Some(log),
            subject: Box::new(crate::error::Subject {
                program: Some(self.name.clone()),
                ..Default::default()
            }),
        }
    }
}
