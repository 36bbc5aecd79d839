// SPDX-License-Identifier: Apache-2.0
/*
 * churn: TCP connection churn at a fixed rate, with its own count.
 *
 *   churn server PORT
 *       Accepts on 0.0.0.0:PORT and closes each connection at once (the
 *       server is the active closer, so TIME_WAIT stays on the server side
 *       and the client's ephemeral ports are free again at once).
 *       Prints "churn: ready"; on SIGINT/SIGTERM one JSON line {"accepted":N}.
 *
 *   churn client ADDR PORT RATE SECONDS [MAX_IN_FLIGHT]
 *       Opens RATE connections per second for SECONDS with non-blocking
 *       connects (at most MAX_IN_FLIGHT at once, default 512); each one
 *       waits for the server's FIN, then closes. Prints one JSON line:
 *       attempts, established (connect succeeded), failed, closed, seconds.
 *
 *   churn hold-server PORT
 *       Accepts on 0.0.0.0:PORT and keeps every connection open until
 *       SIGINT/SIGTERM. Prints "churn: ready"; at the end {"held":N}.
 *
 *   churn hold-client ADDR PORT COUNT RATE SOURCE[,SOURCE...]
 *       Opens COUNT connections (at most RATE per second) to ADDR:PORT from
 *       the SOURCE addresses in turn (bind with IP_BIND_ADDRESS_NO_PORT, so
 *       each source has its own ephemeral port range), prints one JSON line
 *       {"held":N,"failed":F,"seconds":S} once every attempt is answered,
 *       keeps them open until SIGINT/SIGTERM (or 600 s), then closes them.
 *
 * The hold modes raise RLIMIT_NOFILE to fs.nr_open (or to the hard limit
 * without CAP_SYS_RESOURCE: run several of them for more). One thread, epoll. IPv4
 * only. Bounded in count and time: it stops by itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "churn: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int server(int port)
{
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (ls < 0)
		die("socket");
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind");
	if (listen(ls, 4096) < 0)
		die("listen");
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls };
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("churn: ready\n");
	fflush(stdout);
	unsigned long long accepted = 0;
	while (!stop) {
		struct epoll_event out;
		int n = epoll_wait(ep, &out, 1, 100);
		if (n <= 0)
			continue;
		for (;;) {
			int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
			if (c < 0)
				break;
			accepted++;
			close(c);
		}
	}
	printf("{\"accepted\":%llu}\n", accepted);
	return 0;
}

enum { ST_FREE = 0, ST_CONNECTING, ST_OPEN };

static int client(const char *addr, int port, double rate, double seconds, int max_in_flight)
{
	struct rlimit rl = { 65536, 65536 };
	setrlimit(RLIMIT_NOFILE, &rl);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		fprintf(stderr, "churn: bad address %s\n", addr);
		return 2;
	}
	unsigned char *state = calloc(65536, 1);
	int ep = epoll_create1(0);
	unsigned long long attempts = 0, established = 0, failed = 0, closed = 0, errors_other = 0;
	int in_flight = 0;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	double t0 = now_s(), end = t0 + seconds, drain_until = end + 10;
	struct epoll_event evs[256];

	for (;;) {
		double t = now_s();
		if (stop || t >= drain_until || (t >= end && in_flight == 0))
			break;
		if (t < end) {
			unsigned long long target = (unsigned long long)((t - t0) * rate);
			while (attempts < target && in_flight < max_in_flight) {
				int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
				if (s < 0 || s >= 65536) {
					if (s >= 0)
						close(s);
					errors_other++;
					break;
				}
				attempts++;
				int r = connect(s, (struct sockaddr *)&a, sizeof(a));
				if (r < 0 && errno != EINPROGRESS) {
					failed++;
					close(s);
					continue;
				}
				state[s] = ST_CONNECTING;
				struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.fd = s };
				epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
				in_flight++;
			}
		}
		int n = epoll_wait(ep, evs, 256, 1);
		for (int i = 0; i < n; i++) {
			int s = evs[i].data.fd;
			uint32_t e = evs[i].events;
			if (state[s] == ST_CONNECTING) {
				int err = 0;
				socklen_t len = sizeof(err);
				getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
				if (err) {
					failed++;
					state[s] = ST_FREE;
					epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
					close(s);
					in_flight--;
					continue;
				}
				if (!(e & (EPOLLOUT | EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
					continue;
				established++;
				state[s] = ST_OPEN;
				struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = s };
				epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
			}
			if (state[s] == ST_OPEN && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
				char buf[64];
				ssize_t r = read(s, buf, sizeof(buf));
				if (r > 0 || (r < 0 && errno == EAGAIN))
					continue;
				state[s] = ST_FREE;
				epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
				close(s);
				closed++;
				in_flight--;
			}
		}
	}
	double el = now_s() - t0;
	printf("{\"attempts\":%llu,\"established\":%llu,\"failed\":%llu,\"closed\":%llu,\"unfinished\":%d,"
	       "\"socket_errors\":%llu,\"seconds\":%.3f,\"rate\":%.1f}\n",
	       attempts, established, failed, closed, in_flight, errors_other, el,
	       attempts / (seconds < el ? seconds : el));
	return 0;
}

/* Raise RLIMIT_NOFILE as far as allowed: fs.nr_open with CAP_SYS_RESOURCE, else the hard limit. */
static long raise_nofile(void)
{
	long max = 1048576;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	if (f) {
		if (fscanf(f, "%ld", &max) != 1)
			max = 1048576;
		fclose(f);
	}
	struct rlimit rl = { (rlim_t)max, (rlim_t)max };
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return max;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit");
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit(RLIMIT_NOFILE)");
	return (long)rl.rlim_max;
}

static int hold_server(int port)
{
	raise_nofile();
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (ls < 0)
		die("socket");
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind");
	if (listen(ls, 65535) < 0)
		die("listen");
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls };
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("churn: ready\n");
	fflush(stdout);
	unsigned long long held = 0;
	double deadline = now_s() + 900;
	while (!stop && now_s() < deadline) {
		struct epoll_event out;
		int n = epoll_wait(ep, &out, 1, 100);
		if (n <= 0)
			continue;
		for (;;) {
			int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
			if (c < 0)
				break;
			held++; /* kept open: the process's exit closes them */
		}
	}
	printf("{\"held\":%llu}\n", held);
	return 0;
}

static int hold_client(const char *addr, int port, long count, double rate, char *sources)
{
	long maxfd = raise_nofile();
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (inet_pton(AF_INET, addr, &dst.sin_addr) != 1) {
		fprintf(stderr, "churn: bad address %s\n", addr);
		return 2;
	}
	struct in_addr src[64];
	int nsrc = 0;
	for (char *t = strtok(sources, ","); t && nsrc < 64; t = strtok(NULL, ",")) {
		if (inet_pton(AF_INET, t, &src[nsrc]) != 1) {
			fprintf(stderr, "churn: bad source address %s\n", t);
			return 2;
		}
		nsrc++;
	}
	if (nsrc == 0 || count <= 0 || rate <= 0 || count + 64 > maxfd) {
		fprintf(stderr, "churn: hold-client needs COUNT > 0 (at most %ld here: RLIMIT_NOFILE), RATE > 0 and a source address\n", maxfd - 64);
		return 2;
	}
	unsigned char *state = calloc((size_t)maxfd, 1);
	int ep = epoll_create1(0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	long attempts = 0, held = 0, failed = 0, pending = 0;
	double t0 = now_s();
	struct epoll_event evs[256];
	while (!stop && (attempts < count || pending > 0) && now_s() < t0 + 600) {
		long target = (long)((now_s() - t0) * rate);
		while (attempts < count && attempts < target && pending < 4096) {
			int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (s < 0)
				die("socket");
			int one = 1;
			setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
			struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = src[attempts % nsrc] };
			attempts++;
			if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
			    (connect(s, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS)) {
				failed++;
				close(s);
				continue;
			}
			state[s] = ST_CONNECTING;
			struct epoll_event ev = { .events = EPOLLOUT, .data.fd = s };
			epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
			pending++;
		}
		int n = epoll_wait(ep, evs, 256, 1);
		for (int i = 0; i < n; i++) {
			int s = evs[i].data.fd, err = 0;
			socklen_t len = sizeof(err);
			getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
			epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);
			pending--;
			if (err) {
				failed++;
				close(s);
				state[s] = ST_FREE;
				continue;
			}
			state[s] = ST_OPEN;
			held++;
		}
	}
	printf("{\"held\":%ld,\"failed\":%ld,\"attempts\":%ld,\"seconds\":%.3f}\n", held, failed, attempts, now_s() - t0);
	fflush(stdout);
	double until = now_s() + 600;
	while (!stop && now_s() < until)
		usleep(100000);
	for (long fd = 0; fd < maxfd; fd++)
		if (state[fd] == ST_OPEN)
			close((int)fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]));
	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), atof(argv[4]), atof(argv[5]), argc == 7 ? atoi(argv[6]) : 512);
	if (argc == 3 && !strcmp(argv[1], "hold-server"))
		return hold_server(atoi(argv[2]));
	if (argc == 7 && !strcmp(argv[1], "hold-client"))
		return hold_client(argv[2], atoi(argv[3]), atol(argv[4]), atof(argv[5]), argv[6]);
	fprintf(stderr, "usage: churn server PORT | churn client ADDR PORT RATE SECONDS [MAX_IN_FLIGHT]\n"
			"       churn hold-server PORT | churn hold-client ADDR PORT COUNT RATE SOURCE[,SOURCE...]\n");
	return 2;
}
