// The arm64 guest's uprobe target: waits for a line on stdin (the probes are attached by
// then; `now` first: it does not wait), then runs what it is told and exits 0.
//   smoke_target add N          smoke_add(i, 100) for i = 0 .. N-1
//   smoke_target multi          multi_1(0); multi_2(0), multi_2(1); multi_3(0..2)
//   smoke_target syscalls N ARG N rounds of getpgid(ARG), getsid(ARG), getsid(ARG)
//   smoke_target all            multi, 3 rounds of syscalls with ARG 999999, 4 getppid()
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) long smoke_add(long x, long y)
{
	__asm__ volatile("" ::: "memory");
	return x + y;
}

__attribute__((noinline)) long multi_1(long x) { __asm__ volatile("" ::: "memory"); return x + 1; }
__attribute__((noinline)) long multi_2(long x) { __asm__ volatile("" ::: "memory"); return x + 2; }
__attribute__((noinline)) long multi_3(long x) { __asm__ volatile("" ::: "memory"); return x + 3; }

static long multi(void)
{
	long sum = multi_1(0);
	for (long i = 0; i < 2; i++)
		sum += multi_2(i);
	for (long i = 0; i < 3; i++)
		sum += multi_3(i);
	return sum;
}

static long syscalls(long rounds, pid_t arg)
{
	long sum = 0;
	for (long i = 0; i < rounds; i++) {
		sum += getpgid(arg);
		sum += getsid(arg);
		sum += getsid(arg);
	}
	return sum;
}

int main(int argc, char **argv)
{
	char line[16];
	if (argc > 1 && !strcmp(argv[1], "now")) {
		argc--;
		argv++;
	} else if (!fgets(line, sizeof(line), stdin)) {
		return 2;
	}
	if (argc < 2)
		return 2;
	long sum = 0;
	if (!strcmp(argv[1], "add") && argc == 3) {
		for (long i = 0, n = atol(argv[2]); i < n; i++)
			sum += smoke_add(i, 100);
	} else if (!strcmp(argv[1], "multi")) {
		sum += multi();
	} else if (!strcmp(argv[1], "syscalls") && argc == 4) {
		sum += syscalls(atol(argv[2]), atoi(argv[3]));
	} else if (!strcmp(argv[1], "all")) {
		sum += multi() + syscalls(3, 999999);
		for (int i = 0; i < 4; i++)
			sum += getppid() > 0;
	} else {
		return 2;
	}
	printf("%ld\n", sum);
	return 0;
}
