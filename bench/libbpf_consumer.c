// Reference consumer: libbpf's ring_buffer__poll (Debian's libbpf-dev), same producer.
// usage: libbpf_consumer OBJ TRIGGER TOTAL  -> prints "records seconds dropped errors"
#define _GNU_SOURCE
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct record { uint64_t seq, value; };
struct state { uint64_t received, next, errors; };

static int on_record(void *ctx, void *data, size_t len)
{
	struct state *s = ctx;
	const struct record *r = data;
	if (len != sizeof(*r) || r->seq != s->next || r->value != r->seq * 3)
		s->errors++;
	s->next = r->seq + 1;
	s->received++;
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	uint64_t total = strtoull(argv[3], NULL, 10);
	int go[2];
	if (pipe(go))
		return 1;
	pid_t child = fork();
	if (child == 0) {
		dup2(go[0], 0);
		close(go[1]);
		execl(argv[2], argv[2], "getppid", "1000000000000", NULL);
		_exit(127);
	}
	close(go[0]);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		return 1;
	struct bpf_map *rodata = NULL, *m;
	bpf_object__for_each_map(m, obj)
		if (strstr(bpf_map__name(m), ".rodata"))
			rodata = m;
	size_t sz;
	const char *initial = bpf_map__initial_value(rodata, &sz);
	char ro[64];
	if (!initial || sz > sizeof(ro))
		return 1;
	memcpy(ro, initial, sz);
	// .rodata layout: u32 target_tgid, u32 per_trigger, u64 total, u64 ring_size
	*(uint32_t *)ro = child;
	*(uint64_t *)(ro + 8) = total;
	if (bpf_map__set_initial_value(rodata, ro, sz))
		return 1;
	if (bpf_object__load(obj))
		return 1;
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "produce");
	struct bpf_link *link = bpf_program__attach(prog);
	if (!link)
		return 1;
	struct state s = { 0 };
	struct ring_buffer *rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "records"), on_record, &s, NULL);
	double t0 = now();
	if (write(go[1], "go\n", 3) != 3)
		return 1;
	while (s.received < total)
		ring_buffer__poll(rb, 100);
	double t1 = now();
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	struct bpf_map *bss = NULL;
	bpf_object__for_each_map(m, obj)
		if (strstr(bpf_map__name(m), ".bss"))
			bss = m;
	uint64_t counters[2] = { 0 };
	uint32_t zero = 0;
	bpf_map__lookup_elem(bss, &zero, sizeof(zero), counters, sizeof(counters), 0);
	printf("%llu %.6f %llu %llu\n", (unsigned long long)s.received, t1 - t0, (unsigned long long)counters[1],
	       (unsigned long long)s.errors);
	ring_buffer__free(rb);
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
