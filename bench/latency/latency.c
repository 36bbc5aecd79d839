// SPDX-License-Identifier: Apache-2.0
/*
 * latency: HTTP/1.1 GET at a constant request rate, with per-request latency
 * (an open-loop load generator, like wrk2; Debian has none).
 *
 *   latency ADDR PORT RATE SECONDS CONNECTIONS [PATH]
 *
 * Request i is due at t0 + i / RATE whatever happened before (open loop). It
 * is sent on a free keep-alive connection; when every connection is busy it
 * waits for one, and its latency is still measured from the time it was due,
 * so a stall shows in the latency of every request it delays (no coordinated
 * omission). Latencies go into a log-linear histogram (1 µs resolution up to
 * 1 ms, then 64 sub-buckets per power of two: < 1.6 % error), like HdrHistogram.
 *
 * Prints one JSON line: due, sent, completed, errors, achieved rate, and the
 * latency percentiles p50 p90 p99 p99.9 and max in microseconds.
 * A response is complete when its headers and Content-Length bytes arrived
 * (nginx serving a static page always sends Content-Length).
 *
 * One thread, epoll with nanosecond timeouts (epoll_pwait2). IPv4 only.
 * Bounded in time: it stops by itself SECONDS after it started (+2 s to
 * finish what is in flight).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* --- histogram: values in µs. [0, 1024): 1 µs each; then 64 buckets per power of two. */
#define SUB 64
#define LINEAR 1024
#define NBUCKETS (LINEAR + 40 * SUB)
static uint64_t hist[NBUCKETS];
static uint64_t hist_n, hist_max;

static int bucket_of(uint64_t us)
{
	if (us < LINEAR)
		return (int)us;
	int e = 63 - __builtin_clzll(us); /* us in [2^e, 2^(e+1)), e >= 10 */
	int sub = (int)((us - (1ull << e)) >> (e - 6));
	int b = LINEAR + (e - 10) * SUB + sub;
	return b < NBUCKETS ? b : NBUCKETS - 1;
}
static uint64_t bucket_top(int b) /* the largest value in bucket b (reported: a percentile is never under-stated) */
{
	if (b < LINEAR)
		return (uint64_t)b;
	int e = (b - LINEAR) / SUB + 10, sub = (b - LINEAR) % SUB;
	return (1ull << e) + ((uint64_t)(sub + 1) << (e - 6)) - 1;
}
static void hist_add(uint64_t us)
{
	hist[bucket_of(us)]++;
	hist_n++;
	if (us > hist_max)
		hist_max = us;
}
static uint64_t percentile(double p)
{
	if (!hist_n)
		return 0;
	uint64_t want = (uint64_t)(p / 100.0 * hist_n + 0.999999), acc = 0;
	if (want < 1)
		want = 1;
	for (int b = 0; b < NBUCKETS; b++) {
		acc += hist[b];
		if (acc >= want) {
			uint64_t t = bucket_top(b);
			return t < hist_max ? t : hist_max;
		}
	}
	return hist_max;
}

/* --- connections */
struct conn {
	int fd;
	int busy;
	uint64_t due; /* when the request in flight was due */
	size_t have;
	char buf[16384];
};

static char request[512];
static size_t request_len;
static struct sockaddr_in server;

static int open_conn(struct conn *c)
{
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		return -1;
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&server, sizeof(server)) < 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	c->busy = 0;
	c->have = 0;
	return 0;
}

/* Length of the complete response at the start of buf, 0 if not yet complete, -1 if malformed. */
static long response_len(const char *buf, size_t have)
{
	const char *end = memmem(buf, have, "\r\n\r\n", 4);
	if (!end)
		return have >= sizeof(((struct conn *)0)->buf) ? -1 : 0;
	size_t hdr = (size_t)(end - buf) + 4;
	long cl = -1;
	for (const char *p = buf; p < end;) {
		const char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!nl)
			nl = end;
		if ((size_t)(nl - p) > 15 && !strncasecmp(p, "content-length:", 15))
			cl = strtol(p + 15, NULL, 10);
		p = nl + 2;
	}
	if (cl < 0)
		return -1;
	return hdr + (size_t)cl <= have ? (long)(hdr + cl) : 0;
}

int main(int argc, char **argv)
{
	if (argc < 6 || argc > 7) {
		fprintf(stderr, "usage: latency ADDR PORT RATE SECONDS CONNECTIONS [PATH]\n");
		return 2;
	}
	server.sin_family = AF_INET;
	server.sin_port = htons(atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
		fprintf(stderr, "latency: bad address %s\n", argv[1]);
		return 2;
	}
	double rate = atof(argv[3]), seconds = atof(argv[4]);
	int nconns = atoi(argv[5]);
	if (rate <= 0 || seconds <= 0 || nconns <= 0 || nconns > 4096) {
		fprintf(stderr, "latency: RATE, SECONDS > 0 and 1 <= CONNECTIONS <= 4096\n");
		return 2;
	}
	request_len = (size_t)snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: flowtel-bench\r\n\r\n",
				       argc == 7 ? argv[6] : "/", argv[1]);

	struct conn *conns = calloc((size_t)nconns, sizeof(struct conn));
	int ep = epoll_create1(0);
	for (int i = 0; i < nconns; i++) {
		if (open_conn(&conns[i]) < 0) {
			fprintf(stderr, "latency: connect %s:%s: %s\n", argv[1], argv[2], strerror(errno));
			return 1;
		}
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
	}
	int *free_list = malloc(sizeof(int) * (size_t)nconns), nfree = nconns;
	for (int i = 0; i < nconns; i++)
		free_list[i] = nconns - 1 - i;

	uint64_t period = (uint64_t)(1e9 / rate);
	uint64_t t0 = now_ns() + 1000000, end = t0 + (uint64_t)(seconds * 1e9), stop_at = end + 2000000000ull;
	uint64_t total = (uint64_t)(seconds * rate);
	uint64_t next = 0; /* index of the next request to be sent */
	uint64_t sent = 0, completed = 0, errors = 0, in_flight = 0;
	struct epoll_event evs[256];

	for (;;) {
		uint64_t t = now_ns();
		if (t >= stop_at || (next >= total && in_flight == 0))
			break;
		/* Send every request that is due, while connections are free. */
		while (next < total && nfree > 0 && t0 + next * period <= t) {
			struct conn *c = &conns[free_list[--nfree]];
			c->busy = 1;
			c->due = t0 + next * period;
			next++;
			if (write(c->fd, request, request_len) != (ssize_t)request_len) {
				errors++;
				c->busy = 0;
				close(c->fd);
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				if (open_conn(c) == 0) {
					struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)(c - conns) };
					epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
					free_list[nfree++] = (int)(c - conns);
				}
				continue;
			}
			sent++;
			in_flight++;
		}
		/* Wait until the next one is due (or a response arrives). */
		struct timespec to = { 0, 0 };
		if (next < total && nfree > 0) {
			uint64_t due = t0 + next * period;
			uint64_t wait = due > t ? due - t : 0;
			to.tv_sec = (time_t)(wait / 1000000000ull);
			to.tv_nsec = (long)(wait % 1000000000ull);
		} else {
			to.tv_nsec = 10000000; /* all busy, or all sent: responses only */
		}
		int n = epoll_pwait2(ep, evs, 256, &to, NULL);
		if (n < 0 && errno != EINTR) {
			perror("latency: epoll_pwait2");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			int idx = (int)evs[i].data.u32;
			struct conn *c = &conns[idx];
			ssize_t r = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				/* closed or failed: the request in flight is an error; reconnect */
				if (c->busy) {
					errors++;
					in_flight--;
				}
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				if (open_conn(c) == 0) {
					struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)idx };
					epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
					free_list[nfree++] = idx;
				}
				continue;
			}
			c->have += (size_t)r;
			long len = response_len(c->buf, c->have);
			if (len == 0)
				continue;
			if (len < 0 || !c->busy) {
				/* malformed, or bytes nobody asked for: count an error, start over on a new connection */
				errors++;
				if (c->busy)
					in_flight--;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				if (open_conn(c) == 0) {
					struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)idx };
					epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
					free_list[nfree++] = idx;
				}
				continue;
			}
			uint64_t done = now_ns();
			hist_add((done - c->due) / 1000);
			completed++;
			in_flight--;
			c->busy = 0;
			memmove(c->buf, c->buf + len, c->have - (size_t)len);
			c->have -= (size_t)len;
			free_list[nfree++] = idx;
		}
	}
	double el = (double)(now_ns() - t0) / 1e9;
	printf("{\"due\":%llu,\"sent\":%llu,\"completed\":%llu,\"errors\":%llu,\"unfinished\":%llu,\"seconds\":%.3f,"
	       "\"rate\":%.1f,\"p50_us\":%llu,\"p90_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu}\n",
	       (unsigned long long)total, (unsigned long long)sent, (unsigned long long)completed,
	       (unsigned long long)errors, (unsigned long long)in_flight, el, completed / (seconds < el ? seconds : el),
	       (unsigned long long)percentile(50), (unsigned long long)percentile(90), (unsigned long long)percentile(99),
	       (unsigned long long)percentile(99.9), (unsigned long long)hist_max);
	return 0;
}
