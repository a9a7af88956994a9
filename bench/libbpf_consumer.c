// Reference consumer: libbpf (Debian's libbpf-dev) on the same producer and ring.
//   libbpf_consumer drain OBJ ROUNDS PER WARMUP
//     WARMUP + ROUNDS times: this process's getppid fills the ring with PER records, then
//     ring_buffer__consume drains it (timed after the WARMUP rounds), the callback
//     reading each record's seq.
//   libbpf_consumer perfdrain OBJ ROUNDS TRIGGERS PAGES WARMUP
//     the same for a perf buffer (perf_buffer__consume, PAGES pages per CPU): WARMUP +
//     ROUNDS times, TRIGGERS getppids of 4,096 records each fill it, then it is drained
//     (timed after the WARMUP rounds).
//   libbpf_consumer sustained OBJ TRIGGER TOTAL PER SLEEP_US
//     TRIGGER (test/fixtures/syscalls) makes TOTAL/PER getppids paced by SLEEP_US, while
//     ring_buffer__poll consumes.
// Prints "records seconds dropped errors timed"; errors: records out of sequence (a gap
// that is not a drop, a duplicate, a wrong value); timed: the records of the timed rounds.
#define _GNU_SOURCE
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct record { uint64_t seq, value; };
struct state { uint64_t received, next, gaps, errors, lost; };

static int on_record(void *ctx, void *data, size_t len)
{
	struct state *s = ctx;
	const struct record *r = data;
	if (len != sizeof(*r) || r->seq < s->next || r->value != r->seq * 3)
		s->errors++;
	s->gaps += r->seq - s->next;
	s->next = r->seq + 1;
	s->received++;
	return 0;
}

static void on_sample(void *ctx, int cpu, void *data, __u32 len)
{
	on_record(ctx, data, len < sizeof(struct record) ? len : sizeof(struct record));
}

static void on_lost(void *ctx, int cpu, __u64 n)
{
	((struct state *)ctx)->lost += n;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct bpf_object *open_load(const char *path, pid_t target, uint32_t per)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	if (!obj)
		return NULL;
	struct bpf_map *rodata = NULL, *m;
	bpf_object__for_each_map(m, obj)
		if (strstr(bpf_map__name(m), ".rodata"))
			rodata = m;
	size_t sz;
	const char *initial = bpf_map__initial_value(rodata, &sz);
	char ro[64];
	if (!initial || sz > sizeof(ro))
		return NULL;
	memcpy(ro, initial, sz);
	/* .rodata: u32 target_tgid, u32 per_trigger */
	memcpy(ro, &target, 4);
	memcpy(ro + 4, &per, 4);
	if (bpf_map__set_initial_value(rodata, ro, sz) || bpf_object__load(obj))
		return NULL;
	return obj;
}

/* The producer's .bss: attempted, dropped. */
static void counters(struct bpf_object *obj, uint64_t out[2])
{
	struct bpf_map *bss = NULL, *m;
	bpf_object__for_each_map(m, obj)
		if (strstr(bpf_map__name(m), ".bss"))
			bss = m;
	uint32_t zero = 0;
	out[0] = out[1] = 0;
	bpf_map__lookup_elem(bss, &zero, sizeof(zero), out, 2 * sizeof(uint64_t), 0);
}

static uint64_t dropped(struct bpf_object *obj)
{
	uint64_t c[2];
	counters(obj, c);
	return c[1];
}

static int perfdrain(int argc, char **argv)
{
	struct state s = { 0 };
	double seconds = 0;
	struct bpf_object *obj = open_load(argv[2], getpid(), 4096);
	if (!obj)
		return 1;
	struct bpf_link *link = bpf_program__attach(bpf_object__find_program_by_name(obj, "produce"));
	struct perf_buffer *pb = perf_buffer__new(bpf_object__find_map_fd_by_name(obj, "records"),
						  strtoul(argv[5], NULL, 10), on_sample, on_lost, &s, NULL);
	if (!link || !pb)
		return 1;
	long rounds = atol(argv[3]), triggers = atol(argv[4]), warmup = argc > 6 ? atol(argv[6]) : 0;
	uint64_t timed_from = 0;
	for (long i = 0; i < warmup + rounds; i++) {
		for (long t = 0; t < triggers; t++)
			syscall(SYS_getppid);
		if (i == warmup)
			timed_from = s.received;
		double t0 = now();
		perf_buffer__consume(pb);
		if (i >= warmup)
			seconds += now() - t0;
	}
	uint64_t c[2];
	counters(obj, c);
	int unaccounted = s.gaps + (c[0] - s.next) != c[1];
	printf("%llu %.6f %llu %llu %llu\n", (unsigned long long)s.received, seconds, (unsigned long long)c[1],
	       (unsigned long long)(s.errors + unaccounted), (unsigned long long)(s.received - timed_from));
	perf_buffer__free(pb);
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	if (!strcmp(argv[1], "perfdrain"))
		return perfdrain(argc, argv);
	int drain = !strcmp(argv[1], "drain");
	struct state s = { 0 };
	double seconds = 0;
	pid_t child = 0;
	int go[2];
	uint32_t per = strtoul(argv[drain ? 4 : 5], NULL, 10);
	if (!drain) {
		if (pipe(go))
			return 1;
		child = fork();
		if (child == 0) {
			dup2(go[0], 0);
			close(go[1]);
			char triggers[32];
			snprintf(triggers, sizeof(triggers), "%llu", strtoull(argv[4], NULL, 10) / per);
			int devnull = open("/dev/null", O_WRONLY);
			dup2(devnull, 1);
			execl(argv[3], argv[3], "getppid", triggers, "0", argv[6], NULL);
			_exit(127);
		}
		close(go[0]);
	}
	struct bpf_object *obj = open_load(argv[2], drain ? getpid() : child, per);
	if (!obj)
		return 1;
	struct bpf_link *link = bpf_program__attach(bpf_object__find_program_by_name(obj, "produce"));
	struct ring_buffer *rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "records"), on_record, &s, NULL);
	if (!link || !rb)
		return 1;
	uint64_t timed_from = 0;
	if (drain) {
		long rounds = atol(argv[3]), warmup = argc > 5 ? atol(argv[5]) : 0;
		for (long i = 0; i < warmup + rounds; i++) {
			syscall(SYS_getppid);
			if (i == warmup)
				timed_from = s.received;
			double t0 = now();
			ring_buffer__consume(rb);
			if (i >= warmup)
				seconds += now() - t0;
		}
	} else {
		uint64_t total = strtoull(argv[4], NULL, 10) / per * per;
		double t0 = now();
		if (write(go[1], "go\n", 3) != 3)
			return 1;
		int status;
		/* Until every record is in or dropped, and the trigger is done. */
		while (s.received + dropped(obj) < total || !waitpid(child, &status, WNOHANG))
			ring_buffer__poll(rb, 100);
		seconds = now() - t0;
	}
	uint64_t c[2];
	counters(obj, c);
	/* Every attempt not received must be a drop: gaps, and drops after the last record. */
	int unaccounted = s.gaps + (c[0] - s.next) != c[1];
	printf("%llu %.6f %llu %llu %llu\n", (unsigned long long)s.received, seconds, (unsigned long long)c[1],
	       (unsigned long long)(s.errors + unaccounted), (unsigned long long)(s.received - timed_from));
	ring_buffer__free(rb);
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
