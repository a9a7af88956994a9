// nodebpf profile: the sampling program, run by a perf event on every online CPU (a
// frequency or a period of `cpu-clock` or `cycles`). Each sample counts one (process,
// thread, user stack, kernel stack) key, as bcc's profile does, in the half of the maps
// the user side is not draining (profile.h). Everything that goes wrong is counted per CPU
// in `stats`, never hidden: stack-map collisions (-EEXIST), other stack failures, a full
// count map; idle samples (the swapper, tid 0) are counted and dropped. The first sample of
// a process is announced on a ring buffer, so the user side takes in its mappings at once:
// a process that lives for less than the user side's next look keeps its names.
#include "profile.h"

/* Processes announced (an LRU: one forgotten is announced again, which does no harm). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} seen SEC(".maps");

/* Their tgids, as u32s. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} new_processes SEC(".maps");

static __always_inline void announce(__u32 tgid)
{
	__u8 one = 1;

	if (bpf_map_lookup_elem(&seen, &tgid))
		return;
	bpf_map_update_elem(&seen, &tgid, &one, BPF_ANY);
	bpf_ringbuf_output(&new_processes, &tgid, sizeof(tgid), 0);
}

SEC("perf_event")
int sample(struct bpf_perf_event_data *ctx)
{
	struct sample_key key = {};

	if ((__u32)bpf_get_current_pid_tgid() == 0) {
		stat(STAT_IDLE);
		return 0;
	}
	if (!mine())
		return 0;
	announce(bpf_get_current_pid_tgid() >> 32);
	if (generation & 1) {
		key_of(ctx, &stacks1, &key);
		add(&counts1, &key, 1);
	} else {
		key_of(ctx, &stacks0, &key);
		add(&counts0, &key, 1);
	}
	stat(STAT_SAMPLES);
	return 0;
}
