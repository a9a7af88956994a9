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
    if missing.is_empty() {
        return " (the process has CAP_SYS_ADMIN, so a kernel policy such as lockdown, \
                 seccomp or an LSM refused it)"
            .to_string();
    }
    format!(
        " (missing capabilities: {}; run as root, or grant them to the node binary or a \
         helper with `setcap cap_bpf,cap_perfmon+ep <binary>`)",
        missing.join(", ")
    )
}
