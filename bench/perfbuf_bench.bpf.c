// Perf-buffer benchmark producer: each getppid from `target_tgid` emits `per_trigger`
// 16-byte records with bpf_perf_event_output on its CPU, never waiting for room;
// `dropped` counts the outputs a full ring refused. Records carry their attempt's
// sequence number. (A bounded loop: bpf_perf_event_output needs the program's context,
// which bpf_loop cannot pass to its callback.)
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define MAX_PER_TRIGGER 4096

const volatile __u32 target_tgid = 0;
const volatile __u32 per_trigger = MAX_PER_TRIGGER;

__u64 attempted = 0;
__u64 dropped = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} records SEC(".maps");

struct record {
	__u64 seq;
	__u64 value;
};

SEC("tp/syscalls/sys_enter_getppid")
int produce(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	for (__u32 i = 0; i < per_trigger && i < MAX_PER_TRIGGER; i++) {
		struct record r = { .seq = attempted, .value = attempted * 3 };

		attempted++;
		if (bpf_perf_event_output(ctx, &records, BPF_F_CURRENT_CPU, &r, sizeof(r)))
			dropped++;
	}
	return 0;
}
