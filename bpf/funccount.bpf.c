// nodebpf funccount: one counter per target, indexed by the attach cookie. The counters
// are one .bss array, so the CLI reads all of them with a single map lookup.
#include "cli.h"

__u64 counts[MAX_TARGETS];

static __always_inline int count(void *ctx)
{
	__u32 t = target_of(ctx);
	if (mine() && t < MAX_TARGETS)
		__sync_fetch_and_add(&counts[t], 1);
	return 0;
}

/* kprobe:, kretprobe:, uprobe:, uretprobe: (multi links, or perf probes as fallback) */
SEC("kprobe.multi")
int count_probe(struct pt_regs *ctx)
{
	return count(ctx);
}

SEC("fentry.multi")
int count_fentry(void *ctx)
{
	return count(ctx);
}

SEC("fexit.multi")
int count_fexit(void *ctx)
{
	return count(ctx);
}

SEC("tracepoint")
int count_tracepoint(void *ctx)
{
	return count(ctx);
}
