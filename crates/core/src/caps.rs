//! Capability checks, so that EPERM errors can say what is missing and how to get it.

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// The capabilities nodebpf needs that this process lacks, by name.
pub fn missing_caps() -> Vec<&'static str> {
    let Some(eff) = effective_caps() else {
        return vec!["CAP_BPF", "CAP_PERFMON"];
    };
    let has = |cap: u32| eff & (1u64 << cap) != 0;
    // CAP_SYS_ADMIN implies both on every kernel we support.
    if has(CAP_SYS_ADMIN) {
        return Vec::new();
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    missing
}

/// A sentence appended to EPERM messages.
pub(crate) fn missing_caps_hint() -> String {
    let missing = missing_caps();
    if !missing.is_empty() {
        return format!(
            " (missing capabilities: {}; run as root, or grant them to the node binary or a \
             helper with `setcap cap_bpf,cap_perfmon+ep <binary>`)",
            missing.join(", ")
        );
    }
    let sys_admin = effective_caps().is_some_and(|e| e & (1u64 << CAP_SYS_ADMIN) != 0);
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    match paranoid {
        // Debian's and Ubuntu's kernels add level 3: perf_event_open needs CAP_SYS_ADMIN.
        Some(level) if level > 2 && !sys_admin => format!(
            " (the process has CAP_BPF and CAP_PERFMON, but kernel.perf_event_paranoid is \
             {level}, which on this kernel asks CAP_SYS_ADMIN for perf events (perf \
             kprobes/uprobes, tracepoints): set it to 2, add cap_sys_admin, or use a kernel \
             with the batch links, which need no perf events)"
        ),
        _ => format!(
            " (the process has {}, so a kernel policy such as lockdown, seccomp or an LSM \
             refused it)",
            if sys_admin {
                "CAP_SYS_ADMIN"
            } else {
                "CAP_BPF and CAP_PERFMON"
            }
        ),
    }
}
