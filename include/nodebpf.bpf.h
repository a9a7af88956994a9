/* SPDX-License-Identifier: (MIT OR Apache-2.0) */
/*
 * nodebpf.bpf.h: ring buffers whose lost records are counted, and one ring per CPU.
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
 *
 * Where several CPUs produce fast, one ring's producers contend for its lock: declare one
 * ring per CPU instead, which nodebpf reads as one stream (`obj.ringbuf('events')`: it
 * makes a ring of `bytes` per online CPU and puts it in the CPU's slot; order then holds
 * per CPU, not across CPUs):
 *
 *   NODEBPF_RINGBUF_PER_CPU(events, 1 << 20, 256);   // CPUs 0..255
 *   ...
 *   nodebpf_ringbuf_per_cpu_output(events, &ev, sizeof(ev), 0);
 *   // or: e = nodebpf_ringbuf_per_cpu_reserve(events, sizeof(*e), 0); ... submit
 *
 * Histograms, as nodebpf's log2Histogram() and linearHistogram() read them (bpftrace's
 * hist() and lhist()): a map of __u64 counts keyed by __u32 slot (an array, a per-CPU
 * array, a hash), each value counted in its slot:
 *
 *   nodebpf_hist_add(&latency, nodebpf_log2_slot(delta_ns));
 *   nodebpf_hist_add(&sizes, nodebpf_linear_slot(size, 0, 1000, 100));
 */
#ifndef NODEBPF_BPF_H
#define NODEBPF_BPF_H

/* The per-CPU count of the records ring `name` refused, which rb.stats() reads. */
#define NODEBPF__LOST(name)                                                                 \
	struct {                                                                            \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                    \
		__uint(max_entries, 1);                                                     \
		__type(key, __u32);                                                         \
		__type(value, __u64);                                                       \
	} name##__lost SEC(".maps")

/* A ring buffer of `bytes` (a power of 2, a multiple of the page size), and its counter. */
#define NODEBPF_RINGBUF(name, bytes)                                                        \
	struct {                                                                            \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                                         \
		__uint(max_entries, bytes);                                                 \
	} name SEC(".maps");                                                                \
	NODEBPF__LOST(name)

/*
 * Slots for one ring buffer of `bytes` per CPU id below `max_cpus` (nodebpf fills those of
 * the online CPUs when the consumer opens, and empties them when it closes), and their
 * counter.
 */
#define NODEBPF_RINGBUF_PER_CPU(name, bytes, max_cpus)                                      \
	struct name##__ring {                                                               \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                                         \
		__uint(max_entries, bytes);                                                 \
	};                                                                                  \
	struct {                                                                            \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                                   \
		__uint(max_entries, max_cpus);                                              \
		__type(key, __u32);                                                         \
		__array(values, struct name##__ring);                                       \
	} name SEC(".maps");                                                                \
	NODEBPF__LOST(name)

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

/* This CPU's ring of a NODEBPF_RINGBUF_PER_CPU map, or NULL when its slot is empty. */
static __always_inline void *nodebpf__cpu_ring(void *rings)
{
	__u32 cpu = bpf_get_smp_processor_id();

	return bpf_map_lookup_elem(rings, &cpu);
}

/* bpf_ringbuf_output into this CPU's ring, counting a refusal (or an empty slot: -ENOENT). */
#define nodebpf_ringbuf_per_cpu_output(rings, data, size, flags)                            \
	({                                                                                  \
		void *__nodebpf_ring = nodebpf__cpu_ring(&(rings));                         \
		long __nodebpf_err = __nodebpf_ring                                         \
			? bpf_ringbuf_output(__nodebpf_ring, (data), (size), (flags))       \
			: -2;                                                               \
		if (__nodebpf_err)                                                          \
			nodebpf__count_lost(&rings##__lost);                                \
		__nodebpf_err;                                                              \
	})

/* bpf_ringbuf_reserve in this CPU's ring, counting a refusal (NULL). */
#define nodebpf_ringbuf_per_cpu_reserve(rings, size, flags)                                 \
	({                                                                                  \
		void *__nodebpf_ring = nodebpf__cpu_ring(&(rings));                         \
		void *__nodebpf_rec = __nodebpf_ring                                        \
			? bpf_ringbuf_reserve(__nodebpf_ring, (size), (flags))              \
			: (void *)0;                                                        \
		if (!__nodebpf_rec)                                                         \
			nodebpf__count_lost(&rings##__lost);                                \
		__nodebpf_rec;                                                              \
	})

/* A log2 histogram's slot: 0 for 0, s = floor(log2(v)) + 1 for [2^(s-1), 2^s), up to 64. */
static __always_inline __u32 nodebpf_log2_slot(__u64 v)
{
	__u32 slot = 0, shift;

	/* Binary search for the highest set bit: no loop, no helper. */
	shift = (v > 0xffffffffULL) << 5; v >>= shift; slot |= shift;
	shift = (v > 0xffff) << 4; v >>= shift; slot |= shift;
	shift = (v > 0xff) << 3; v >>= shift; slot |= shift;
	shift = (v > 0xf) << 2; v >>= shift; slot |= shift;
	shift = (v > 0x3) << 1; v >>= shift; slot |= shift;
	slot |= v >> 1;
	return v ? slot + 1 : 0;
}

/*
 * A linear histogram's slot (bpftrace's lhist(v, min, max, step); max - min a multiple of
 * step): 0 below min, 1 + (v - min) / step, and 1 + (max - min) / step from max on.
 */
static __always_inline __u32 nodebpf_linear_slot(__s64 v, __s64 min, __s64 max, __u64 step)
{
	if (v < min)
		return 0;
	if (v >= max)
		return 1 + (__u64)(max - min) / step;
	return 1 + (__u64)(v - min) / step;
}

/* One more in slot `slot` of histogram map `hist` (an array's slot beyond it is lost). */
static __always_inline void nodebpf_hist_add(void *hist, __u32 slot)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(hist, &slot);

	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	/* A hash map's first count in this slot, unless another CPU made it meanwhile. */
	if (!bpf_map_update_elem(hist, &slot, &one, BPF_NOEXIST))
		return;
	n = bpf_map_lookup_elem(hist, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

#endif /* NODEBPF_BPF_H */
