// Fan-in benchmark producer: each getppid of a child of `parent_tgid` emits `per_trigger`
// 16-byte records { seq, cpu } (bpf_loop) as fast as the kernel takes them, into one
// ring shared by every CPU (`per_cpu` 0) or into the ring of the CPU it runs on
// (`per_cpu` 1, nodebpf.bpf.h's NODEBPF_RINGBUF_PER_CPU). Sequence numbers and the
// attempts are counted per CPU (a shared counter would itself be the contended line);
// refusals of a full ring are counted by nodebpf.bpf.h's wrappers in `<ring>__lost`.
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include "nodebpf.bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 parent_tgid = 0;
const volatile __u32 per_trigger = 4096;
const volatile __u32 per_cpu = 0;

NODEBPF_RINGBUF(shared, 1 << 24);
NODEBPF_RINGBUF_PER_CPU(rings, 1 << 24, 64);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} attempted SEC(".maps");

struct record {
	__u64 seq;
	__u64 cpu;
};

static long emit_one(__u64 index, void *ctx)
{
	__u64 *n = ctx;
	struct record r = { .seq = (*n)++, .cpu = bpf_get_smp_processor_id() };

	if (per_cpu)
		nodebpf_ringbuf_per_cpu_output(rings, &r, sizeof(r), 0);
	else
		nodebpf_ringbuf_output(shared, &r, sizeof(r), 0);
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int produce(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 zero = 0;
	__u64 *n;

	if (BPF_CORE_READ(task, real_parent, tgid) != parent_tgid)
		return 0;
	n = bpf_map_lookup_elem(&attempted, &zero);
	if (!n)
		return 0;
	/* bpf_loop's context is on the stack: the CPU's count goes back after the loop. */
	__u64 seq = *n;
	bpf_loop(per_trigger, emit_one, &seq, 0);
	*n = seq;
	return 0;
}
