// nodebpf trace: one ring-buffer record per hit with the arguments (tracepoints: the
// record itself) and the memory they point to, and with --ret the return value
// (arguments kept from the entry until the return). Which arguments point to strings or
// structs is told by user space in the `config` map (from the tracepoint's format file or
// from --args), so one program serves every tracepoint and every typed uprobe.
#include "cli.h"

#define MAX_ARGS 6
/* Memory reads per hit (strings, structs, __data_loc arrays), and each one's bound. */
#define MAX_MEMS 6
#define MEM_LEN 256
/* A tracepoint's record, from its common header: the largest fixed part of a record in
 * 6.18's 2,323 tracepoints is 168 bytes. */
#define RAW_LEN 256
/* What is copied of a record whose tracepoint has no config (its format was unreadable). */
#define RAW_DEFAULT 64

/* With --ret the event is sent at the return, else at the entry. */
const volatile __u8 at_return = 0;

enum mem_kind {
	MEM_NONE,
	/* A NUL-terminated string at a pointer: user memory, else kernel memory. */
	MEM_STR,
	/* `len` bytes at a pointer (a struct): user memory, else kernel memory. */
	MEM_BYTES,
	/* A tracepoint's __data_loc field: u32 (length << 16 | offset in the record). */
	MEM_DATA_LOC,
	/* __rel_loc: the same, the offset counted from the end of the field. */
	MEM_REL_LOC,
};

struct mem_slot {
	/* Tracepoints: the field's offset in the record; functions: the argument's index. */
	__u16 src;
	/* MEM_BYTES: how many. */
	__u16 len;
	__u8 kind;
	__u8 pad[3];
};

struct trace_config {
	/* Tracepoints: the bytes of the record to copy (its fixed part). */
	__u16 raw_len;
	/* Slots in use: the first `nmem`. */
	__u8 nmem;
	__u8 pad[5];
	struct mem_slot mem[MAX_MEMS];
};

/* Tracepoints: keyed by the attach cookie (the record's common_type cannot tell them
 * apart: syscall tracepoints hand BPF a record whose common header holds a pt_regs
 * pointer); functions: key 0, their --args. Sized by the CLI at load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct trace_config);
} configs SEC(".maps");

/* Flags of a memory read. */
#define MEM_TRUNCATED 1
#define MEM_KERNEL 2

struct event {
	__u64 time_ns;
	__u32 pid;
	__u32 tid;
	__u32 target;
	__u32 has_ret;
	__s64 ret;
	__u64 args[MAX_ARGS];
	char comm[16];
	/* Per memory slot: the bytes read (a string's with its NUL), or the helper's error. */
	__s16 mem_len[MAX_MEMS];
	__u8 mem_flags[MAX_MEMS];
	__u16 raw_len;
	__u8 raw[RAW_LEN];
	/* Last: the record is sent up to the last slot in use. */
	char mem[MAX_MEMS][MEM_LEN];
};

/* Too big for the stack: built here. Programs of one object do not nest on a CPU (one
 * runs per spec: an entry, or a return). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct saved_key {
	__u32 tid;
	__u32 target;
};

/* Entries kept for their return: sized by the CLI at load (1 when nothing returns). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct saved_key);
	__type(value, struct event);
} saved SEC(".maps");

/* Records the ring buffer had no room for. */
__u64 lost;

/* The scratch event with its header filled and its reads cleared. */
static __always_inline struct event *start(void *ctx)
{
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return NULL;
	__builtin_memset(e, 0, offsetof(struct event, raw));
	__u64 id = bpf_get_current_pid_tgid();
	e->time_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->target = target_of(ctx);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

static __always_inline struct trace_config *config_of(__u32 key)
{
	return bpf_map_lookup_elem(&configs, &key);
}

static __always_inline void send(struct event *e, struct trace_config *c)
{
	__u32 n = c ? c->nmem : 0;
	if (n > MAX_MEMS)
		n = MAX_MEMS;
	if (bpf_ringbuf_output(&events, e, offsetof(struct event, mem) + n * MEM_LEN, 0))
		__sync_fetch_and_add(&lost, 1);
}

/* A string at p, user memory first (a kernel address fails there at once), then kernel
 * memory; truncated if the byte where the bound cut it is not the end. */
static __always_inline long read_str(struct event *e, int i, __u64 p)
{
	char *dst = e->mem[i];
	char last = 0;
	long n = bpf_probe_read_user_str(dst, MEM_LEN, (void *)p);
	if (n >= 0) {
		if (n == MEM_LEN && !bpf_probe_read_user(&last, 1, (void *)(p + MEM_LEN - 1)) && last)
			e->mem_flags[i] |= MEM_TRUNCATED;
		return n;
	}
	n = bpf_probe_read_kernel_str(dst, MEM_LEN, (void *)p);
	if (n >= 0) {
		e->mem_flags[i] |= MEM_KERNEL;
		if (n == MEM_LEN && !bpf_probe_read_kernel(&last, 1, (void *)(p + MEM_LEN - 1)) && last)
			e->mem_flags[i] |= MEM_TRUNCATED;
	}
	return n;
}

static __always_inline long read_bytes(struct event *e, int i, __u64 p, __u32 len)
{
	if (len > MEM_LEN)
		len = MEM_LEN;
	if (!bpf_probe_read_user(e->mem[i], len, (void *)p))
		return len;
	e->mem_flags[i] |= MEM_KERNEL;
	long err = bpf_probe_read_kernel(e->mem[i], len, (void *)p);
	return err ? err : len;
}

/* The bytes of a __data_loc/__rel_loc field, from the record itself. */
static __always_inline long read_loc(struct event *e, int i, void *record, struct mem_slot *s)
{
	__u32 loc = 0;
	long err = bpf_probe_read_kernel(&loc, sizeof(loc), record + s->src);
	if (err)
		return err;
	__u32 off = (loc & 0xffff) + (s->kind == MEM_REL_LOC ? s->src + sizeof(loc) : 0);
	__u32 len = loc >> 16;
	if (len > MEM_LEN) {
		len = MEM_LEN;
		e->mem_flags[i] |= MEM_TRUNCATED;
	}
	err = bpf_probe_read_kernel(e->mem[i], len, record + off);
	return err ? err : len;
}

/* The memory the config names: pointers from the arguments (functions) or from the
 * record (tracepoints, `record` set). */
static __always_inline void read_mems(struct event *e, struct trace_config *c, void *record)
{
	for (int i = 0; i < MAX_MEMS; i++) {
		if (i >= c->nmem)
			break;
		struct mem_slot *s = &c->mem[i];
		__u64 p = 0;
		long n = 0;
		if (s->kind == MEM_STR || s->kind == MEM_BYTES) {
			if (record)
				n = bpf_probe_read_kernel(&p, sizeof(p), record + s->src);
			else if (s->src < MAX_ARGS)
				p = e->args[s->src];
			if (!n)
				n = s->kind == MEM_STR ? read_str(e, i, p) : read_bytes(e, i, p, s->len);
		} else if (record && (s->kind == MEM_DATA_LOC || s->kind == MEM_REL_LOC)) {
			n = read_loc(e, i, record, s);
		}
		e->mem_len[i] = n;
	}
}

/* At the entry: send now, or keep for the return. */
static __always_inline void entered(struct event *e)
{
	struct trace_config *c = config_of(0);
	if (c)
		read_mems(e, c, NULL);
	if (!at_return) {
		send(e, c);
		return;
	}
	struct saved_key k = { .tid = e->tid, .target = e->target };
	bpf_map_update_elem(&saved, &k, e, BPF_ANY);
}

/* At the return: what the entry kept (nothing if it was missed), and the value. */
static __always_inline void returned(void *ctx, __s64 ret)
{
	struct event *e = start(ctx);
	if (!e)
		return;
	struct saved_key k = { .tid = e->tid, .target = e->target };
	struct event *in = bpf_map_lookup_elem(&saved, &k);
	if (in) {
		__builtin_memcpy(e->args, in->args, sizeof(e->args));
		__builtin_memcpy(e->mem_len, in->mem_len, sizeof(e->mem_len));
		__builtin_memcpy(e->mem_flags, in->mem_flags, sizeof(e->mem_flags));
		bpf_probe_read_kernel(e->mem, sizeof(e->mem), in->mem);
		bpf_map_delete_elem(&saved, &k);
	}
	e->has_ret = 1;
	e->ret = ret;
	send(e, config_of(0));
}

SEC("kprobe.multi")
int entry_probe(struct pt_regs *ctx)
{
	if (!mine())
		return 0;
	struct event *e = start(ctx);
	if (!e)
		return 0;
	e->args[0] = PT_REGS_PARM1(ctx);
	e->args[1] = PT_REGS_PARM2(ctx);
	e->args[2] = PT_REGS_PARM3(ctx);
	e->args[3] = PT_REGS_PARM4(ctx);
	e->args[4] = PT_REGS_PARM5(ctx);
	e->args[5] = PT_REGS_PARM6(ctx);
	entered(e);
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
	struct event *e = start(ctx);
	if (!e)
		return 0;
	func_args(ctx, e);
	struct trace_config *c = config_of(0);
	if (c)
		read_mems(e, c, NULL);
	send(e, c);
	return 0;
}

/* fexit sees the arguments and the return value at once (the memory they point to as
 * it is at the return). */
SEC("fexit.multi")
int return_fexit(void *ctx)
{
	if (!mine())
		return 0;
	struct event *e = start(ctx);
	if (!e)
		return 0;
	__u64 ret = 0;
	func_args(ctx, e);
	bpf_get_func_ret(ctx, &ret);
	e->has_ret = 1;
	e->ret = ret;
	struct trace_config *c = config_of(0);
	if (c)
		read_mems(e, c, NULL);
	send(e, c);
	return 0;
}

/* Tracepoints: the record from its common header (field offsets as the format file
 * gives them), and the memory its fields point to. */
SEC("tracepoint")
int entry_tracepoint(void *ctx)
{
	if (!mine())
		return 0;
	struct event *e = start(ctx);
	if (!e)
		return 0;
	struct trace_config *c = config_of(e->target);
	__u32 raw = c ? c->raw_len : RAW_DEFAULT;
	if (raw > RAW_LEN)
		raw = RAW_LEN;
	if (!bpf_probe_read_kernel(e->raw, raw, ctx))
		e->raw_len = raw;
	if (c)
		read_mems(e, c, ctx);
	send(e, c);
	return 0;
}
