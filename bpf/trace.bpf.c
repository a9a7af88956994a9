// nodebpf trace: one ring-buffer record per hit with the first arguments and, with
// --ret, the return value (arguments kept from the entry until the return).
#include "cli.h"

#define MAX_ARGS 6

/* With --ret the event is sent at the return, else at the entry. */
const volatile __u8 at_return = 0;

struct event {
	__u64 time_ns;
	__u32 pid;
	__u32 tid;
	__u32 target;
	__u32 has_ret;
	__s64 ret;
	__u64 args[MAX_ARGS];
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct saved_key {
	__u32 tid;
	__u32 target;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct saved_key);
	__type(value, struct event);
} saved SEC(".maps");

/* Records the ring buffer had no room for. */
__u64 lost;

static __always_inline void fill(struct event *e, __u32 target)
{
	__u64 id = bpf_get_current_pid_tgid();
	e->time_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->target = target;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

static __always_inline void send(struct event *e)
{
	if (bpf_ringbuf_output(&events, e, sizeof(*e), 0))
		__sync_fetch_and_add(&lost, 1);
}

/* At the entry: send now, or keep for the return. */
static __always_inline void entered(struct event *e)
{
	if (!at_return) {
		send(e);
		return;
	}
	struct saved_key k = { .tid = e->tid, .target = e->target };
	bpf_map_update_elem(&saved, &k, e, BPF_ANY);
}

/* At the return: the arguments kept at the entry (zero if it was missed), and the value. */
static __always_inline void returned(void *ctx, __s64 ret)
{
	struct event e = {};
	fill(&e, target_of(ctx));
	struct saved_key k = { .tid = e.tid, .target = e.target };
	struct event *in = bpf_map_lookup_elem(&saved, &k);
	if (in) {
		__builtin_memcpy(e.args, in->args, sizeof(e.args));
		bpf_map_delete_elem(&saved, &k);
	}
	e.has_ret = 1;
	e.ret = ret;
	send(&e);
}

SEC("kprobe.multi")
int entry_probe(struct pt_regs *ctx)
{
	if (!mine())
		return 0;
	struct event e = {};
	fill(&e, target_of(ctx));
	e.args[0] = PT_REGS_PARM1(ctx);
	e.args[1] = PT_REGS_PARM2(ctx);
	e.args[2] = PT_REGS_PARM3(ctx);
	e.args[3] = PT_REGS_PARM4(ctx);
	e.args[4] = PT_REGS_PARM5(ctx);
	e.args[5] = PT_REGS_PARM6(ctx);
	entered(&e);
	return 0;
}

SEC("kretprobe.multi")
int return_probe(struct pt_regs *ctx)
{
	if (mine())
		returned(ctx, PT_REGS_RC(ctx));
	return 0;
}

static __always_inline void func_args(void *ctx, struct event *e)
{
	for (int i = 0; i < MAX_ARGS; i++)
		bpf_get_func_arg(ctx, i, &e->args[i]);
}

SEC("fentry.multi")
int entry_fentry(void *ctx)
{
	if (!mine())
		return 0;
	struct event e = {};
	fill(&e, target_of(ctx));
	func_args(ctx, &e);
	send(&e);
	return 0;
}

/* fexit sees the arguments and the return value at once. */
SEC("fexit.multi")
int return_fexit(void *ctx)
{
	if (!mine())
		return 0;
	struct event e = {};
	__u64 ret = 0;
	fill(&e, target_of(ctx));
	func_args(ctx, &e);
	bpf_get_func_ret(ctx, &ret);
	e.has_ret = 1;
	e.ret = ret;
	send(&e);
	return 0;
}

/* Tracepoints: the first words of the record after its 8-byte common header. */
SEC("tracepoint")
int entry_tracepoint(void *ctx)
{
	if (!mine())
		return 0;
	struct event e = {};
	fill(&e, target_of(ctx));
	bpf_probe_read_kernel(e.args, sizeof(e.args), ctx + 8);
	send(&e);
	return 0;
}
