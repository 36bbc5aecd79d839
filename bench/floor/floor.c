// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * floor: loads floor.bpf.o, and drains its ring buffer every 50 ms (the
 * agent's own maximum latency), only counting records. Prints
 * "floor: ready" once attached, and on SIGINT/SIGTERM one JSON line with
 * the count of records and bytes, then detaches and exits.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <bpf/libbpf.h>
#include "floor.h"
#include "floor.skel.h"

static volatile sig_atomic_t stop;
static unsigned long long records, bytes;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int on_record(void *ctx, void *data, size_t size)
{
	(void)ctx;
	(void)data;
	records++;
	bytes += size;
	return 0;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

int main(void)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
	setrlimit(RLIMIT_MEMLOCK, &rl);
	libbpf_set_print(quiet);

	struct floor_bpf *skel = floor_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "floor: cannot load floor.bpf.o: %s\n", strerror(errno));
		return 1;
	}
	if (floor_bpf__attach(skel)) {
		fprintf(stderr, "floor: cannot attach: %s\n", strerror(errno));
		floor_bpf__destroy(skel);
		return 1;
	}
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.floor_events), on_record, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "floor: ring_buffer__new: %s\n", strerror(errno));
		floor_bpf__destroy(skel);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("floor: ready\n");
	fflush(stdout);

	const struct timespec tick = { 0, 50 * 1000 * 1000 };
	while (!stop) {
		ring_buffer__consume(rb);
		nanosleep(&tick, NULL);
	}
	ring_buffer__consume(rb);
	printf("{\"records\":%llu,\"bytes\":%llu}\n", records, bytes);
	ring_buffer__free(rb);
	floor_bpf__destroy(skel);
	return 0;
}
