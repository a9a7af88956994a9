// nodebpf latency: entry time per (thread, target) at entry, a log2 histogram bucket of
// the elapsed nanoseconds at return. One histogram for all targets, or one per target.
#include "cli.h"

#define BUCKETS 64
#define MAX_ROWS 4096

const volatile __u8 per_function = 0;

__u64 hist[MAX_ROWS * BUCKETS];
/* Returns seen without their entry (already running when attached, or evicted). */
__u64 unmatched;

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

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;
	shift = (v > 0xffffffff) << 5; v >>= shift; r |= shift;
	shift = (v > 0xffff) << 4; v >>= shift; r |= shift;
	shift = (v > 0xff) << 3; v >>= shift; r |= shift;
	shift = (v > 0xf) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

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
	__u32 row = per_function ? k.target : 0;
	if (row >= MAX_ROWS)
		return 0;
	__u32 bucket = delta ? log2_u64(delta) + 1 : 0;
	if (bucket >= BUCKETS)
		bucket = BUCKETS - 1;
	/* Restate the bounds checked above as a mask older verifiers (6.1) can follow; the
	 * empty asm keeps clang from dropping the mask as redundant. */
	__u32 idx = row * BUCKETS + bucket;
	asm volatile("" : "+r"(idx));
	idx &= MAX_ROWS * BUCKETS - 1;
	__sync_fetch_and_add(&hist[idx], 1);
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
