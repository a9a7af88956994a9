// What the profilers' programs (profile.bpf.c: CPU samples; offcpu.bpf.c: blocked time)
// and their user side (ts/profile/) share: the key they count by, and two halves of count
// and stack maps the user side drains in turn.
#ifndef NODEBPF_PROFILE_H
#define NODEBPF_PROFILE_H
#include "cli.h"

/* Frames of a stack the kernel keeps (its own limit, kernel.perf_event_max_stack, is 127
 * by default); a stack that fills them all was cut. */
#define PROFILE_MAX_DEPTH 127
/* Distinct stacks per half, and distinct keys per half. */
#define PROFILE_MAX_STACKS 16384
#define PROFILE_MAX_KEYS 16384
/* A stack not asked for (--no-user, --no-kernel). */
#define PROFILE_NOT_TAKEN (-1000)

struct sample_key {
	__u32 tgid;
	__u32 pid;
	__s32 user_stack;
	__s32 kernel_stack;
	char comm[16];
};

enum profile_stat {
	STAT_SAMPLES,
	STAT_IDLE,
	STAT_USER_COLLIDED,
	STAT_USER_FAILED,
	STAT_KERNEL_COLLIDED,
	STAT_KERNEL_FAILED,
	STAT_COUNTS_FULL,
	STAT_COUNT,
};

/* Which half the program writes (its low bit); the user side flips it, waits a moment,
 * then reads and empties the other. Stack ids resolve in their own half's stack map. */
__u32 generation = 0;

const volatile bool user_stacks = true;
const volatile bool kernel_stacks = true;

struct counts {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PROFILE_MAX_KEYS);
	__type(key, struct sample_key);
	__type(value, __u64);
};

struct stacks {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, PROFILE_MAX_STACKS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, PROFILE_MAX_DEPTH * sizeof(__u64));
};

struct counts counts0 SEC(".maps"), counts1 SEC(".maps");
struct stacks stacks0 SEC(".maps"), stacks1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &which);

	if (n)
		(*n)++;
}

/* A stack id of the current task, or why there is none: -EFAULT is normal (no user stack
 * in a kernel thread, no kernel stack in a sample taken in user mode), the others are
 * counted. */
static __always_inline __s32 stack_of(void *ctx, void *stacks, __u64 flags, __u32 collided, __u32 failed)
{
	long id = bpf_get_stackid(ctx, stacks, flags);

	if (id == -17 /* EEXIST */)
		stat(collided);
	else if (id < 0 && id != -14 /* EFAULT */)
		stat(failed);
	return id;
}

/* The current task's key: its ids, stacks (in `stacks`) and name. */
static __always_inline void key_of(void *ctx, void *stacks, struct sample_key *key)
{
	__u64 id = bpf_get_current_pid_tgid();

	key->tgid = id >> 32;
	key->pid = (__u32)id;
	key->user_stack = user_stacks ? stack_of(ctx, stacks, BPF_F_USER_STACK, STAT_USER_COLLIDED, STAT_USER_FAILED)
				      : PROFILE_NOT_TAKEN;
	key->kernel_stack = kernel_stacks ? stack_of(ctx, stacks, 0, STAT_KERNEL_COLLIDED, STAT_KERNEL_FAILED)
					  : PROFILE_NOT_TAKEN;
	bpf_get_current_comm(key->comm, sizeof(key->comm));
}

/* Adds `value` to `key` in `counts`; a full map is counted. */
static __always_inline void add(void *counts, struct sample_key *key, __u64 value)
{
	__u64 *n = bpf_map_lookup_elem(counts, key);

	if (!n && bpf_map_update_elem(counts, key, &value, BPF_NOEXIST) == 0)
		return;
	/* Another CPU added it in between, or the map is full. */
	if (!n)
		n = bpf_map_lookup_elem(counts, key);
	if (n)
		__sync_fetch_and_add(n, value);
	else
		stat(STAT_COUNTS_FULL);
}

#endif
