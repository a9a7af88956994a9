// nodebpf latency with sessions (kprobe 6.10+, uprobe 6.13+, fsession with tracing_multi
// 7.2+): one program runs at entry and at return, and the kernel keeps a cookie per call
// between them: the entry time, right for recursion and for every thread.
#include "latency.h"

/* 7.2 passes the context; older kernels take none and ignore the register. */
extern bool bpf_session_is_return(void *ctx) __ksym;
extern __u64 *bpf_session_cookie(void *ctx) __ksym;

static __always_inline int session(void *ctx, int skip_return)
{
	__u64 *start = bpf_session_cookie(ctx);
	if (!start)
		return 0;
	if (!bpf_session_is_return(ctx)) {
		if (!mine())
			return skip_return;
		*start = bpf_ktime_get_ns();
		return 0;
	}
	/* fsession runs the return of calls that were not ours too: check again. */
	if (mine() && *start)
		record(target_of(ctx), bpf_ktime_get_ns() - *start);
	return 0;
}

/* kprobe: and uprobe: specs (the library loads it as a uprobe session for the latter). */
SEC("kprobe.session")
int session_probe(struct pt_regs *ctx)
{
	/* Non-zero at entry: no return call for this one. */
	return session(ctx, 1);
}

SEC("fsession.multi")
int session_fentry(void *ctx)
{
	return session(ctx, 0);
}
