// Ring-buffer benchmark producer. Each getppid from `target_tgid` emits up to
// `per_trigger` 16-byte records (bpf_loop + bpf_ringbuf_output), until `total` have been
// produced. It only emits while the ring is less than half full, so a consumer is measured
// at its own speed and nothing is lost; `dropped` counts failed outputs anyway.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;
const volatile __u32 per_trigger = 4096;
const volatile __u64 total = 10000000;
const volatile __u64 ring_size = 1 << 24;

__u64 produced = 0;
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
	if (produced >= total)
		return 1;
	struct record r = { .seq = produced, .value = produced * 3 };
	if (bpf_ringbuf_output(&records, &r, sizeof(r), 0)) {
		dropped++;
		return 1;
	}
	produced++;
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int produce(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	if (bpf_ringbuf_query(&records, BPF_RB_AVAIL_DATA) > ring_size / 2)
		return 0;
	bpf_loop(per_trigger, emit_one, NULL, 0);
	return 0;
}
