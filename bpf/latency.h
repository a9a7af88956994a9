// The latency programs' shared part: the histograms the CLI reads from .bss (same layout
// in latency.bpf.o and latency_session.bpf.o) and how a duration is filed.
#ifndef NODEBPF_LATENCY_H
#define NODEBPF_LATENCY_H
#include "cli.h"

#define BUCKETS 64
#define MAX_ROWS 4096

const volatile __u8 per_function = 0;

__u64 hist[MAX_ROWS * BUCKETS];
/* Returns seen without their entry (already running when attached, or evicted). */
__u64 unmatched;

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

/* Bucket 0: 0 ns; bucket b: [2^(b-1), 2^b) ns. */
static __always_inline void record(__u32 target, __u64 delta)
{
	__u32 row = per_function ? target : 0;
	if (row >= MAX_ROWS)
		return;
	__u32 bucket = delta ? log2_u64(delta) + 1 : 0;
	if (bucket >= BUCKETS)
		bucket = BUCKETS - 1;
	/* Restate the bounds checked above as a mask older verifiers (6.1) can follow; the
	 * empty asm keeps clang from dropping the mask as redundant. */
	__u32 idx = row * BUCKETS + bucket;
	asm volatile("" : "+r"(idx));
	idx &= MAX_ROWS * BUCKETS - 1;
	__sync_fetch_and_add(&hist[idx], 1);
}
#endif
