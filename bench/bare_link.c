// The reference for the attach benchmarks: the bare BPF_LINK_CREATE syscall on a list of
// targets nodebpf already resolved, with the same cookies (the index) and a trivial
// program, no library in between.
// usage: bare_link kprobe FILE | bare_link uprobe BINARY FILE | bare_link tracing FILE
//   FILE: one target per line (kernel address, file offset or BTF id, decimal)
// prints "attach_seconds detach_seconds count"
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *kind = argv[1];
	const char *file = argv[argc - 1];
	FILE *f = fopen(file, "r");
	if (!f)
		return 1;
	size_t cap = 1 << 16, n = 0;
	uint64_t *targets = malloc(cap * sizeof(*targets));
	unsigned long long v;
	while (fscanf(f, "%llu", &v) == 1) {
		if (n == cap)
			targets = realloc(targets, (cap *= 2) * sizeof(*targets));
		targets[n++] = v;
	}
	fclose(f);

	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	int tracing = !strcmp(kind, "tracing");
	uint32_t attach_type = !strcmp(kind, "kprobe") ? 42 /* KPROBE_MULTI */ : tracing ? 59 /* FENTRY_MULTI */ : 48;
	attr.prog_type = tracing ? BPF_PROG_TYPE_TRACING : BPF_PROG_TYPE_KPROBE;
	attr.insn_cnt = 2;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.license = (uint64_t)(uintptr_t) "GPL";
	attr.expected_attach_type = attach_type;
	int prog = bpf(BPF_PROG_LOAD, &attr);
	if (prog < 0) {
		perror("BPF_PROG_LOAD");
		return 1;
	}
	uint32_t *ids = malloc(n * sizeof(*ids));
	uint64_t *cookies = malloc(n * sizeof(*cookies));
	for (size_t i = 0; i < n; i++) {
		ids[i] = (uint32_t)targets[i];
		cookies[i] = i; /* what nodebpf passes by default: the index */
	}
	uint64_t a[8] = { 0 }; /* the link_create union, as 64-bit words after the fixed head */
	if (!strcmp(kind, "kprobe")) {
		a[0] = (uint64_t)n << 32; /* flags 0, cnt n */
		a[2] = (uint64_t)(uintptr_t)targets; /* addrs */
		a[3] = (uint64_t)(uintptr_t)cookies;
	} else if (tracing) {
		a[0] = (uint64_t)(uintptr_t)ids;
		a[1] = (uint64_t)(uintptr_t)cookies;
		a[2] = n;
	} else {
		a[0] = (uint64_t)(uintptr_t)argv[2]; /* path */
		a[1] = (uint64_t)(uintptr_t)targets; /* offsets */
		a[3] = (uint64_t)(uintptr_t)cookies;
		a[4] = n; /* cnt, flags 0 */
	}
	memset(&attr, 0, sizeof(attr));
	attr.link_create.prog_fd = prog;
	attr.link_create.attach_type = attach_type;
	memcpy((char *)&attr.link_create + 16, a, sizeof(a) - 16);
	double t0 = now();
	int link = bpf(BPF_LINK_CREATE, &attr);
	double t1 = now();
	if (link < 0) {
		perror("BPF_LINK_CREATE");
		return 1;
	}
	close(link);
	double t2 = now();
	printf("%.6f %.6f %zu\n", t1 - t0, t2 - t1, n);
	return 0;
}
