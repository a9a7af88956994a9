// The arm64 guest's smoke programs (test/vm/arm64/smoke.mjs): every event goes to one ring
// buffer as struct event, filtered to `target_tgid`. Built with -D__TARGET_ARCH_arm64
// against the arm64 kernel's vmlinux.h: PT_REGS_* read struct user_pt_regs, and a syscall
// function (__arm64_sys_*) takes the syscall's pt_regs, its first argument in orig_x0.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;

/* Records the ring refused (none are expected: the suite checks it stays 0). */
__u64 dropped = 0;
/* getppid entries seen, the tracepoint's own count next to the records. */
__u64 seq = 0;

enum kind { TP = 0, ENTRY = 1, RETURN = 2 };

struct event {
	__u32 kind;
	__u32 pid;
	__s64 value;
	__u64 cookie;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} events SEC(".maps");

static __always_inline void emit(__u32 kind, __s64 value, __u64 cookie)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid != target_tgid)
		return;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		return;
	}
	e->kind = kind;
	e->pid = tgid;
	e->value = value;
	e->cookie = cookie;
	bpf_ringbuf_submit(e, 0);
}

/* One record per getppid of the target, numbered from 0 (one thread triggers). */
SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	__u64 n = seq;
	seq = n + 1;
	emit(TP, n, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(on_uentry, long x)
{
	emit(ENTRY, x, bpf_get_attach_cookie(ctx));
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_ureturn, long ret)
{
	emit(RETURN, ret, bpf_get_attach_cookie(ctx));
	return 0;
}

SEC("uprobe.multi")
int BPF_KPROBE(on_umulti_entry, long x)
{
	emit(ENTRY, x, bpf_get_attach_cookie(ctx));
	return 0;
}

SEC("uretprobe.multi")
int BPF_KRETPROBE(on_umulti_return, long ret)
{
	emit(RETURN, ret, bpf_get_attach_cookie(ctx));
	return 0;
}

/* On __arm64_sys_*: the argument is the syscall's own pt_regs. */
SEC("kprobe.multi")
int BPF_KPROBE(on_kmulti_entry, struct pt_regs *regs)
{
	emit(ENTRY, PT_REGS_PARM1_CORE_SYSCALL(regs), bpf_get_attach_cookie(ctx));
	return 0;
}

SEC("kretprobe.multi")
int BPF_KRETPROBE(on_kmulti_return, long ret)
{
	emit(RETURN, ret, bpf_get_attach_cookie(ctx));
	return 0;
}
