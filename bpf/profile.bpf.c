// nodebpf profile: the sampling program, run by a perf event on every online CPU (a
// frequency or a period of `cpu-clock` or `cycles`). Each sample counts one (process,
// thread, user stack, kernel stack) key, as bcc's profile does, in the half of the maps
// the user side is not draining (profile.h). Everything that goes wrong is counted per CPU
// in `stats`, never hidden: stack-map collisions (-EEXIST), other stack failures, a full
// count map; idle samples (the swapper, tid 0) are counted and dropped.
#include "profile.h"

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
