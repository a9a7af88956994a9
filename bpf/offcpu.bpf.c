// nodebpf offcpu: time threads spend blocked, by the stacks they blocked in (bcc's
// offcputime). At each context switch the thread leaving the CPU has its stacks taken
// (it is still the current task) and its time noted; when it next comes on a CPU, the
// time in between, in microseconds, is added to its key in the half of the maps the user
// side is not draining (profile.h). A raw tracepoint: it needs BTF for the task fields
// (CO-RE) but no BPF trampolines, which some kernels (and this project's VM) refuse.
#include "profile.h"
#include <bpf/bpf_core_read.h>

/* Blocks shorter than this are left out (microseconds). */
const volatile __u64 min_block_us = 1;

struct blocked {
	__u64 since;
	struct sample_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct blocked);
} blocked SEC(".maps");

SEC("raw_tp/sched_switch")
int on_switch(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *prev = (struct task_struct *)ctx->args[1];
	struct task_struct *next = (struct task_struct *)ctx->args[2];
	__u64 now = bpf_ktime_get_ns();
	__u32 prev_pid = BPF_CORE_READ(prev, pid);
	__u32 next_pid = BPF_CORE_READ(next, pid);
	__u32 half = generation & 1;

	if (prev_pid && mine()) {
		struct blocked b = { .since = now };

		key_of(ctx, half ? (void *)&stacks1 : (void *)&stacks0, &b.key);
		/* The stacks' half is part of the record: they resolve only there. */
		b.key.pid = prev_pid | (half << 31);
		bpf_map_update_elem(&blocked, &prev_pid, &b, BPF_ANY);
	}
	struct blocked *b = bpf_map_lookup_elem(&blocked, &next_pid);
	if (!b)
		return 0;
	__u64 us = (now - b->since) / 1000;
	struct sample_key key = b->key;
	bpf_map_delete_elem(&blocked, &next_pid);
	if (us < min_block_us)
		return 0;
	/* Counted in the half its stacks are in (the user side drains that one next). */
	__u32 in = key.pid >> 31;
	key.pid &= 0x7fffffff;
	if (in)
		add(&counts1, &key, us);
	else
		add(&counts0, &key, us);
	stat(STAT_SAMPLES);
	return 0;
}
