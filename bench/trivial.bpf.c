// The programs the attach benchmarks put on every target: the same two instructions as
// bench/bare_link.c's (r0 = 0; exit), so both sides ask the kernel for the same work and
// the ratio shows nodebpf's own overhead.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("kprobe.multi")
int on_kprobe(void *ctx)
{
	return 0;
}

SEC("uprobe.multi")
int on_uprobe(void *ctx)
{
	return 0;
}

SEC("fentry.multi")
int on_fentry(void *ctx)
{
	return 0;
}
