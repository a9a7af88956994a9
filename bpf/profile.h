// What profile.bpf.c and the profiler's user side (ts/profile.ts) share.
#ifndef NODEBPF_PROFILE_H
#define NODEBPF_PROFILE_H

/* Frames of a stack the kernel keeps (its own limit, kernel.perf_event_max_stack, is 127
 * by default); a stack that fills them all was cut. */
#define PROFILE_MAX_DEPTH 127
/* Distinct stacks per half, and distinct keys per half: the user side sizes both. */
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

#endif
