// nodebpf latency without sessions: the entry program keeps the time per (thread,
// target), the return program files the difference. A recursive call of a function on
// the same thread replaces the outer call's start; latency_session.bpf.c has no such
// limit, where the kernel has sessions.
#include "latency.h"

struct start_key {
	__u32 tid;
	__u32 target;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct start_key);
	__type(value, __u64);
} starts SEC(".maps");

static __always_inline int on_entry(void *ctx)
{
	if (!mine())
		return 0;
	struct start_key k = { .tid = (__u32)bpf_get_current_pid_tgid(), .target = target_of(ctx) };
	__u64 now = bpf_ktime_get_ns();
	bpf_map_update_elem(&starts, &k, &now, BPF_ANY);
	return 0;
}

static __always_inline int on_return(void *ctx)
{
	if (!mine())
		return 0;
	struct start_key k = { .tid = (__u32)bpf_get_current_pid_tgid(), .target = target_of(ctx) };
	__u64 *start = bpf_map_lookup_elem(&starts, &k);
	if (!start) {
		__sync_fetch_and_add(&unmatched, 1);
		return 0;
	}
	__u64 delta = bpf_ktime_get_ns() - *start;
	bpf_map_delete_elem(&starts, &k);
	record(k.target, delta);
	return 0;
}

SEC("kprobe.multi")
int entry_probe(struct pt_regs *ctx)
{
	return on_entry(ctx);
}

SEC("kretprobe.multi")
int return_probe(struct pt_regs *ctx)
{
	return on_return(ctx);
}

SEC("fentry.multi")
int entry_fentry(void *ctx)
{
	return on_entry(ctx);
}

SEC("fexit.multi")
int return_fexit(void *ctx)
{
	return on_return(ctx);
}
