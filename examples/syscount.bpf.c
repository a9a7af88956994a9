// syscount: one ring-buffer record per syscall entry (tracepoint raw_syscalls/sys_enter).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* Our own process, left out so the tool does not count itself. */
const volatile __u32 self_tgid = 0;

struct event {
	__u32 tgid;
	__u32 syscall;
	char comm[16];
};
/* Keeps struct event in the object's BTF (clang emits the types globals, maps and functions
 * use): syscount.mjs decodes the records by it, with no offsets of its own. */
const struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

__u64 lost = 0;

SEC("tp/raw_syscalls/sys_enter")
int count(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == self_tgid)
		return 0;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&lost, 1);
		return 0;
	}
	e->tgid = tgid;
	e->syscall = ctx->id;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
