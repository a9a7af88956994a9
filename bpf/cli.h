// What the CLI's programs share: every attached target has a cookie (its index in the
// CLI's list of targets), and a pid filter set at load time.
#ifndef NODEBPF_CLI_H
#define NODEBPF_CLI_H
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* Older libbpf headers stop at the fifth argument. */
#if !defined(PT_REGS_PARM6) && defined(__TARGET_ARCH_x86)
#define PT_REGS_PARM6(x) (__PT_REGS_CAST(x)->r9)
#endif
#if !defined(PT_REGS_PARM6) && defined(__TARGET_ARCH_arm64)
#define PT_REGS_PARM6(x) (__PT_REGS_CAST(x)->regs[5])
#endif

/* GPL-compatible for the kernel (GPL-only helpers), MIT like the rest of the package. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* The process to trace; 0: all. */
const volatile __u32 target_tgid = 0;

/* Targets a run can have: more than the kernel's traceable functions, or node's symbols. */
#define MAX_TARGETS (1 << 18)

static __always_inline int mine(void)
{
	return !target_tgid || (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

/* Kernels without attach cookies (before 5.15) refuse the helper: this frozen .kconfig
 * value lets the verifier drop the call there, and nodebpf refuses to attach a second
 * target (its cookie 1) on them, UNSUPPORTED, so every hit is target 0's. */
extern bool LINUX_HAS_BPF_COOKIE __kconfig;

/* Which target fired; out-of-range cookies (never ours) map past the end. */
static __always_inline __u32 target_of(void *ctx)
{
	__u64 c = LINUX_HAS_BPF_COOKIE ? bpf_get_attach_cookie(ctx) : 0;
	return c < MAX_TARGETS ? (__u32)c : MAX_TARGETS;
}
#endif
