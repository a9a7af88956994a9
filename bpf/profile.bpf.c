// nodebpf profile: the sampling program, run by a perf event on every online CPU (a
// frequency or a period of `cpu-clock` or `cycles`). Each sample counts one (process,
// thread, user stack, kernel stack) key, as bcc's profile does, in one of two halves the
// user side alternates: it flips `generation`, then reads and empties the half the
// program no longer writes, so intervals are drained without racing the program.
// Stack ids resolve only in their own half's stack map. Everything that goes wrong is
// counted per CPU in `stats`, never hidden: stack-map collisions (-EEXIST), other stack
// failures, a full count map; idle samples (the swapper, tid 0) are counted and dropped.
#include "cli.h"
#include "profile.h"

/* Which half the program writes (its low bit); the user side flips it. */
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

/* A stack id, or why there is none: -EFAULT is normal (no user stack in a kernel thread,
 * no kernel stack in a sample taken in user mode), the others are counted. */
static __always_inline __s32 stack_of(struct bpf_perf_event_data *ctx, void *stacks, __u64 flags, __u32 collided,
				      __u32 failed)
{
	long id = bpf_get_stackid(ctx, stacks, flags);

	if (id == -17 /* EEXIST */)
		stat(collided);
	else if (id < 0 && id != -14 /* EFAULT */)
		stat(failed);
	return id;
}

static __always_inline int record(struct bpf_perf_event_data *ctx, void *counts, void *stacks, __u64 id)
{
	struct sample_key key = {
		.tgid = id >> 32,
		.pid = (__u32)id,
		.user_stack = user_stacks ? stack_of(ctx, stacks, BPF_F_USER_STACK, STAT_USER_COLLIDED, STAT_USER_FAILED)
					  : PROFILE_NOT_TAKEN,
		.kernel_stack = kernel_stacks ? stack_of(ctx, stacks, 0, STAT_KERNEL_COLLIDED, STAT_KERNEL_FAILED)
					      : PROFILE_NOT_TAKEN,
	};
	__u64 one = 1, *n;

	bpf_get_current_comm(key.comm, sizeof(key.comm));
	n = bpf_map_lookup_elem(counts, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
	} else if (bpf_map_update_elem(counts, &key, &one, BPF_NOEXIST)) {
		/* Another CPU added it in between, or the map is full. */
		n = bpf_map_lookup_elem(counts, &key);
		if (n)
			__sync_fetch_and_add(n, 1);
		else
			stat(STAT_COUNTS_FULL);
	}
	stat(STAT_SAMPLES);
	return 0;
}

SEC("perf_event")
int sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();

	if ((__u32)id == 0) {
		stat(STAT_IDLE);
		return 0;
	}
	if (!mine())
		return 0;
	if (generation & 1)
		return record(ctx, &counts1, &stacks1, id);
	return record(ctx, &counts0, &stacks0, id);
}
