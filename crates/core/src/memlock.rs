//! Kernels before 5.11 charge maps and programs to the process's RLIMIT_MEMLOCK (often
//! 64 KiB or 8 MiB), so a few maps fail with EPERM; libbpf and bpftool lift the limit
//! there, and so does nodebpf, once per process, before it creates maps or loads programs.
//! Newer kernels charge memory cgroups and the rlimit is left as it is.

use std::sync::Once;

/// Lifts RLIMIT_MEMLOCK where the kernel charges BPF memory to it. A failure (no
/// CAP_SYS_RESOURCE) is left for the kernel's EPERM to report where it matters.
pub fn lift_where_charged() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if crate::features::features().memcg_accounting {
            return;
        }
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit reads the struct we pass; no other preconditions.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    });
}
