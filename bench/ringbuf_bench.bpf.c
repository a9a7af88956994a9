// Ring-buffer benchmark producer. Each getppid from `target_tgid` emits `per_trigger`
// 16-byte records (bpf_loop + bpf_ringbuf_output) as fast as the kernel takes them: it
// never waits for room, and every output that fails (the ring is full) is counted in
// `dropped`. Each record carries the sequence number of its attempt, so a consumer sees
// exactly which ones were dropped.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;
const volatile __u32 per_trigger = 4096;

__u64 attempted = 0;
__u64 dropped = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} records SEC(".maps");

struct record {
	__u64 seq;
	__u64 value;
};

static long emit_one(__u64 index, void *ctx)
{
	struct record r = { .seq = attempted, .value = attempted * 3 };
	attempted++;
	if (bpf_ringbuf_output(&records, &r, sizeof(r), 0))
		dropped++;
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int produce(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	bpf_loop(per_trigger, emit_one, NULL, 0);
	return 0;
}
