/* SPDX-License-Identifier: (MIT OR Apache-2.0) */
/*
 * nodebpf.bpf.h: ring buffers whose lost records are counted.
 *
 * The kernel does not count the records a full ring buffer refuses; declare the ring
 * with NODEBPF_RINGBUF and write with nodebpf_ringbuf_output / nodebpf_ringbuf_reserve,
 * and each refusal is counted, per CPU, in a map named after the ring ("<ring>__lost"),
 * which nodebpf's rb.stats() reads beside the records it received:
 *
 *   #include <bpf/bpf_helpers.h>
 *   #include "nodebpf.bpf.h"      // clang -I node_modules/nodebpf/include
 *
 *   NODEBPF_RINGBUF(events, 1 << 20);
 *   ...
 *   struct event *e = nodebpf_ringbuf_reserve(events, sizeof(*e), 0);
 *   if (!e)
 *           return 0;           // counted
 *   ...
 *   bpf_ringbuf_submit(e, 0);
 *   // or: nodebpf_ringbuf_output(events, &ev, sizeof(ev), 0);
 */
#ifndef NODEBPF_BPF_H
#define NODEBPF_BPF_H

/* A ring buffer of `bytes` (a power of 2, a multiple of the page size), and its counter. */
#define NODEBPF_RINGBUF(name, bytes)                                                        \
	struct {                                                                            \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                                         \
		__uint(max_entries, bytes);                                                 \
	} name SEC(".maps");                                                                \
	struct {                                                                            \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                    \
		__uint(max_entries, 1);                                                     \
		__type(key, __u32);                                                         \
		__type(value, __u64);                                                       \
	} name##__lost SEC(".maps")

/* One more record lost on this CPU. Atomic: a program can interrupt another on its CPU. */
static __always_inline void nodebpf__count_lost(void *lost)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(lost, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
}

/* bpf_ringbuf_output, counting a refusal. */
#define nodebpf_ringbuf_output(ring, data, size, flags)                                     \
	({                                                                                  \
		long __nodebpf_err = bpf_ringbuf_output(&(ring), (data), (size), (flags));  \
		if (__nodebpf_err)                                                          \
			nodebpf__count_lost(&ring##__lost);                                 \
		__nodebpf_err;                                                              \
	})

/* bpf_ringbuf_reserve, counting a refusal (NULL). */
#define nodebpf_ringbuf_reserve(ring, size, flags)                                          \
	({                                                                                  \
		void *__nodebpf_rec = bpf_ringbuf_reserve(&(ring), (size), (flags));        \
		if (!__nodebpf_rec)                                                         \
			nodebpf__count_lost(&ring##__lost);                                 \
		__nodebpf_rec;                                                              \
	})

#endif /* NODEBPF_BPF_H */
