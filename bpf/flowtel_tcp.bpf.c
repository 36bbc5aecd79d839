// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * flowtel TCP/UDP tracer.
 *
 * The TCP hot path stays free: nothing here runs per packet or per send/recv
 * for TCP. The kernel already counts bytes, segments, retransmits and RTT per
 * socket (struct tcp_sock); we read those counters
 *   - when a connection closes (inet_sock_set_state → TCP_CLOSE), into a ring
 *     buffer, so short-lived connections are never lost, and
 *   - for open sockets, once per collection, with a walk of the sockets we
 *     hold state for.
 * A connection's opening goes to the ring buffer too. Its close record alone
 * would say all there is to say, but now and then under heavy churn (up to a
 * few in 10^4 server sockets in the churn benchmark here; the floor tracer
 * sees the same) a socket's last state changes never reach the tracepoint,
 * and it is freed without a close: its open record is what lets user space
 * count it, opened and then closed when it has left the walks.
 * Process attribution comes from the process context of connect() (→ SYN_SENT)
 * and listen() (→ LISTEN); accepted sockets inherit their listener's process.
 *
 * UDP has no per-socket byte counters, so UDP is counted per datagram by
 * cgroup_skb programs that return at once for anything that is not UDP; the
 * owner of a UDP socket is recorded when it is created (cgroup/sock_create).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "flowtel_tcp.h"

/* A kfunc (kernel 6.2+); weak: an object that uses it where it is missing still opens (see dump_tracked_compat). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct flowtel_tcp_options options = {
	.ringbuf_wakeup_batch = 1,
	.track_udp = 1,
};

/* sock_info.flags beyond the FLOWTEL_F_* ones (not copied into records). */
#define SI_OPEN_SENT  0x40 /* this connection's open record is written */
#define SI_CLOSE_SENT 0x80 /* its close (or failed) record is written */
#define SI_RECORD_FLAGS 0x3f

/*
 * Per-socket state we keep for the life of the socket. Freed with the socket.
 * What every walk reads comes first: the first 56 bytes share one cache line
 * with the storage element's header (bpf_local_storage_elem.sdata.data is at
 * byte 72 of a 256-byte-aligned element), so an idle socket's walk record
 * costs one line of it.
 */
struct sock_info {
	__u64 cookie;          /* the socket's cookie, kept by the first walk that sees it (0: not yet) */
	/* The last full walk record (see struct flowtel_walk_params). */
	__u32 walk_gen;        /* the walk that wrote it (0: none) */
	__u32 walk_segs_out;   /* its segs_out and segs_in */
	__u32 walk_segs_in;
	__u8 walk_state;       /* its TCP state */
	__u8 flags;
	__u8 direction;
	__u8 proto;            /* IPPROTO_TCP / IPPROTO_UDP: made on that protocol's path (0: not known) */
	__u32 pid;
	__u16 lport;           /* local port, kept at ESTABLISHED: the kernel releases it before the close tracepoint */
	__u16 _pad;
	__u32 ino;             /* the socket's inode, read once for a socket with no known owner (sockfs inodes are 32-bit) */
	__u32 connect_us;
	__u64 syn_sent_ns;
	__u64 established_ns;
	char comm[FLOWTEL_COMM_LEN];
};

_Static_assert(__builtin_offsetof(struct sock_info, established_ns) + 8 <= 56, "what a walk reads stays in one cache line");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_info);
} sock_infos SEC(".maps");

/* Listening sockets by (netns, port): the process accepted connections belong to. */
struct listener_key {
	__u32 netns;
	__u16 port;
	__u16 family;
};

struct listener_info {
	__u32 pid;
	__u32 _pad;
	char comm[FLOWTEL_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key);
	__type(value, struct listener_info);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} conn_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flowtel_udp_key);
	__type(value, struct flowtel_udp_value);
} udp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOWTEL_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		(*v)++;
}

/*
 * The in-kernel filter: flows it excludes get per-socket state flagged
 * FILTERED and are never reported (no events, not in the walks), so
 * traffic that is filtered out costs one decision per connection.
 * Semantics (same as the filter processor): a flow is dropped when any
 * EXCLUDE entry matches it, or when a criterion has INCLUDE entries and
 * none matches. Ports are the server's port; CIDRs match the remote address.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u16);
	__type(value, __u8);
} filter_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct flowtel_lpm4);
	__type(value, __u8);
} filter_cidr4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct flowtel_lpm6);
	__type(value, __u8);
} filter_cidr6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[FLOWTEL_COMM_LEN]);
	__type(value, __u8);
} filter_comms SEC(".maps");

static __always_inline int criterion(__u8 *v, __u8 has_include)
{
	if (v && *v == FLOWTEL_FILTER_EXCLUDE)
		return 0;
	if (has_include && !(v && *v == FLOWTEL_FILTER_INCLUDE))
		return 0;
	return 1;
}

/* 1 when the flow is to be reported. */
static __always_inline int filter_pass(__u16 server_port, __u16 family, const __u8 *raddr, const char *comm)
{
	if (!options.filter_enabled)
		return 1;
	if (!criterion(bpf_map_lookup_elem(&filter_ports, &server_port), options.include_ports))
		return 0;
	__u8 *v;
	int v4 = family == AF_INET;
	if (family == AF_INET6) {
		/* IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4. */
		__u32 w0, w1, w2;
		__builtin_memcpy(&w0, raddr, 4);
		__builtin_memcpy(&w1, raddr + 4, 4);
		__builtin_memcpy(&w2, raddr + 8, 4);
		v4 = !w0 && !w1 && w2 == bpf_htonl(0xffff);
	}
	if (v4) {
		struct flowtel_lpm4 k = { .prefixlen = 32 };
		__builtin_memcpy(k.addr, family == AF_INET ? raddr : raddr + 12, 4);
		v = bpf_map_lookup_elem(&filter_cidr4, &k);
	} else {
		struct flowtel_lpm6 k = { .prefixlen = 128 };
		__builtin_memcpy(k.addr, raddr, 16);
		v = bpf_map_lookup_elem(&filter_cidr6, &k);
	}
	if (!criterion(v, options.include_cidrs))
		return 0;
	char key[FLOWTEL_COMM_LEN] = {};
	__builtin_memcpy(key, comm, FLOWTEL_COMM_LEN);
	if (!criterion(bpf_map_lookup_elem(&filter_comms, key), options.include_comms))
		return 0;
	return 1;
}

/* Apply the filter to a new connection's per-socket state. */
static __always_inline void filter_socket(struct sock_info *si, const struct sock *sk, __u16 server_port)
{
	if (!options.filter_enabled)
		return;
	__u8 raddr[16] = {};
	__u16 family = sk->__sk_common.skc_family;
	if (family == AF_INET) {
		__u32 d = sk->__sk_common.skc_daddr;
		__builtin_memcpy(raddr, &d, 4);
	} else {
		__builtin_memcpy(raddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
	}
	if (!filter_pass(server_port, family, raddr, si->comm)) {
		si->flags |= FLOWTEL_F_FILTERED;
		count(FLOWTEL_CNT_FILTERED);
	}
}


static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return sk->__sk_common.skc_net.net->ns.inum;
}

static __always_inline __u64 sock_ino(const struct sock *sk)
{
	struct socket *so = BPF_CORE_READ(sk, sk_socket);
	if (!so)
		return 0;
	struct socket_alloc *sa = container_of(so, struct socket_alloc, socket);
	return BPF_CORE_READ(sa, vfs_inode.i_ino);
}

static __always_inline void fill_addrs(struct flowtel_conn *c, const struct sock *sk)
{
	c->family = sk->__sk_common.skc_family;
	c->sport = sk->__sk_common.skc_num;
	c->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (c->family == AF_INET) {
		__u32 s = sk->__sk_common.skc_rcv_saddr;
		__u32 d = sk->__sk_common.skc_daddr;
		__builtin_memcpy(c->saddr, &s, 4);
		__builtin_memcpy(c->daddr, &d, 4);
	} else {
		__builtin_memcpy(c->saddr, sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(c->daddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
	}
}

/*
 * may_fin: the peer's FIN may have come (any state but those before it can):
 * only then is sk_flags, on a cache line of its own for a walk, read.
 */
static __always_inline void fill_counters(struct flowtel_conn *c, const struct sock *sk, bool may_fin)
{
	/*
	 * Plain loads through the kernel's typed pointer (CO-RE relocated, no
	 * helper call per field): a walk of 100k sockets spends most of its time
	 * here.
	 */
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	if (!tp)
		return;
	c->bytes_sent = tp->bytes_sent;
	c->bytes_received = tp->bytes_received;
	c->segs_out = tp->segs_out;
	c->segs_in = tp->segs_in;
	c->total_retrans = tp->total_retrans;
	c->srtt_us = tp->srtt_us >> 3;
	c->rttvar_us = tp->mdev_us >> 2;
	if (bpf_core_field_exists(tp->bytes_retrans))
		c->bytes_retrans = tp->bytes_retrans;
	/* SOCK_DONE (bit 1 of sk_flags) is set by tcp_fin(): the peer's FIN, one
	 * unit of sequence space that bytes_received counts too. */
	if (may_fin && (sk->__sk_common.skc_flags & (1UL << 1)))
		c->flags |= FLOWTEL_F_FIN_RECEIVED;
}

static __always_inline void fill_owner(struct flowtel_conn *c, const struct sock_info *si)
{
	if (!si) {
		c->flags |= FLOWTEL_F_PRE_EXISTING;
		return;
	}
	c->pid = si->pid;
	c->connect_us = si->connect_us;
	c->established_ns = si->established_ns;
	c->direction = si->direction;
	c->flags |= si->flags & SI_RECORD_FLAGS;
	__builtin_memcpy(c->comm, si->comm, FLOWTEL_COMM_LEN);
}

static __always_inline void submit(struct flowtel_conn *c)
{
	__u64 flags = 0;
	__u32 batch = options.ringbuf_wakeup_batch;
	if (batch > 1) {
		/*
		 * Wake the reader once per `batch` records: when the unread data
		 * crosses the threshold with this record (it counts from its
		 * reservation), not on every record above it. The reader also polls
		 * on a timer, so a missed crossing only delays records briefly.
		 */
		const __u64 slot = sizeof(*c) + BPF_RINGBUF_HDR_SZ;
		__u64 avail = bpf_ringbuf_query(&conn_events, BPF_RB_AVAIL_DATA);
		__u64 threshold = (__u64)batch * slot;
		flags = avail >= threshold && avail < threshold + slot ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(c, flags);
	count(FLOWTEL_CNT_EVENTS);
}

static __always_inline struct flowtel_conn *reserve(void)
{
	struct flowtel_conn *c = bpf_ringbuf_reserve(&conn_events, sizeof(*c), 0);
	if (!c) {
		count(FLOWTEL_CNT_RINGBUF_FULL);
		return 0;
	}
	__builtin_memset(c, 0, sizeof(*c));
	return c;
}

static __always_inline void listener_key_of(struct listener_key *k, const struct sock *sk, __u16 port)
{
	k->netns = sock_netns(sk);
	k->port = port;
	k->family = 0; /* one listener per port and netns is the common case; v4/v6 share */
}

static __always_inline void emit(const struct sock *sk, struct sock_info *si, __u8 kind,
				 int oldstate, int newstate, __u64 now)
{
	if (si && (si->flags & FLOWTEL_F_FILTERED))
		return;
	/* One open and one close record per connection, should a state change be handled twice (see set_state_spare). */
	__u8 sent = kind == FLOWTEL_EV_OPEN ? SI_OPEN_SENT : SI_CLOSE_SENT;
	if (si && (si->flags & sent)) {
		count(FLOWTEL_CNT_DUPLICATE);
		return;
	}
	struct flowtel_conn *c = reserve();
	if (!c)
		return;
	if (si)
		si->flags |= sent;
	c->kind = kind;
	c->ts_ns = now;
	c->cookie = bpf_get_socket_cookie((void *)sk);
	c->old_state = oldstate;
	c->state = newstate;
	c->netns = sock_netns(sk);
	c->err = sk->sk_err;
	fill_addrs(c, sk);
	/* At TCP_CLOSE the kernel has already given the local port back (inet_put_port clears it). */
	if (!c->sport && si)
		c->sport = si->lport;
	fill_counters(c, sk, true);
	fill_owner(c, si);
	submit(c);
}

/*
 * The kernel runs a tracing program at most once at a time per CPU: a state
 * change that fires while handle_set_state already runs on that CPU (a
 * softirq close or reset interrupting a process-context run, or a task
 * preempting another) is skipped and only counted in the program's
 * recursion_misses. That would lose the close of a connection. So a second
 * program on the same tracepoint, set_state_spare, attached after it (the
 * tracepoint runs its programs in attach order), handles every state change
 * that handle_set_state did not start on:
 *   - handle_set_state first notes the change (socket, old and new state) in
 *     a small per-CPU list;
 *   - set_state_spare, for the same change, finds it there and takes it off
 *     (the common case: a lookup and a compare), or does not find it: then
 *     the kernel skipped handle_set_state for it, and the spare handles it.
 * This holds wherever the nested change lands, also in the instructions
 * around a program's body (a flag set inside handle_set_state's body would
 * miss those). A change is lost only if both programs are already running on
 * that CPU, or if the kernel runs no tracing program for it at all: a kernel
 * may skip them in the context of some tasks (the sandbox kernel these were
 * measured on skips every program not loaded by init while PID 1 is the
 * current task, softirq work on top of it included; perf counting the
 * tracepoint for PID 1 matched our shortfall exactly). A lost opening is made
 * up at close (adopt_at_close); a lost close by the walks: user space counts
 * a tracked socket that two walks in a row do not find as closed.
 *
 * The list is a stack: changes nest as interrupts do, so by the time the
 * spare runs for a change, every change that began after it on that CPU has
 * ended. The spare takes its entry and everything above it (entries whose
 * spare was the one skipped). A ring that overwrote its oldest entry lost the
 * entry of a change when four more nested between the two programs (a
 * softirq's burst of packets), and the spare then handled that change a
 * second time: a second close record, and a connection counted twice. A
 * stack full of entries nobody came for starts over. Should a change still be
 * handled twice, the per-socket SI_*_SENT flags keep a socket's open and
 * close records to one each.
 */
#define SET_STATE_SEEN 8

struct set_state_seen {
	__u64 sk[SET_STATE_SEEN];
	__u32 states[SET_STATE_SEEN]; /* oldstate << 8 | newstate */
	__u32 depth;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct set_state_seen);
} set_state_seen SEC(".maps");

static __always_inline int on_set_state(struct sock *sk, int oldstate, int newstate);

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	struct set_state_seen *seen = bpf_map_lookup_elem(&set_state_seen, &zero);
	if (seen) {
		__u32 d = seen->depth;
		if (d >= SET_STATE_SEEN)
			d = 0;
		seen->sk[d] = (__u64)sk;
		seen->states[d] = (__u32)oldstate << 8 | (__u32)newstate;
		seen->depth = d + 1;
	}
	return on_set_state(sk, oldstate, newstate);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(set_state_spare, struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	struct set_state_seen *seen = bpf_map_lookup_elem(&set_state_seen, &zero);
	if (!seen)
		return 0;
	__u32 states = (__u32)oldstate << 8 | (__u32)newstate;
	__u32 depth = seen->depth;
	for (int i = SET_STATE_SEEN - 1; i >= 0; i--) {
		if ((__u32)i >= depth)
			continue;
		if (seen->sk[i] == (__u64)sk && seen->states[i] == states) {
			seen->depth = i;
			return 0;
		}
	}
	count(FLOWTEL_CNT_RECURSION_RECOVERED);
	return on_set_state(sk, oldstate, newstate);
}

/*
 * Per-socket state for a connection whose opening changes no program
 * handled. `direction`: FLOWTEL_DIR_INCOMING (a child of a listener: it gets
 * the listener's owner), FLOWTEL_DIR_OUTGOING (its connect() was missed, so
 * no owner: we are not in its context), or FLOWTEL_DIR_UNKNOWN (incoming if a
 * listener has its local port). The filters apply as to any other socket.
 */
static __always_inline struct sock_info *adopt(struct sock *sk, __u16 lport, __u8 direction)
{
	struct listener_info *li = 0;
	if (direction != FLOWTEL_DIR_OUTGOING) {
		struct listener_key k = {};
		listener_key_of(&k, sk, lport);
		li = bpf_map_lookup_elem(&listeners, &k);
		if (direction == FLOWTEL_DIR_UNKNOWN)
			direction = li ? FLOWTEL_DIR_INCOMING : FLOWTEL_DIR_OUTGOING;
	}
	struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!si) {
		count(FLOWTEL_CNT_STORAGE_FAIL);
		return 0;
	}
	si->proto = IPPROTO_TCP;
	si->direction = direction;
	if (li) {
		si->pid = li->pid;
		__builtin_memcpy(si->comm, li->comm, FLOWTEL_COMM_LEN);
	}
	filter_socket(si, sk, direction == FLOWTEL_DIR_INCOMING ? lport : bpf_ntohs(sk->__sk_common.skc_dport));
	return si;
}

/*
 * A connection that closes with no per-socket state: it was open before we
 * attached and no sweep reached it, or the kernel ran neither program for
 * any of its changes until now (see set_state_spare; a kernel may also skip
 * tracing programs in the context of some tasks, softirq work included).
 * Which of the two cannot be told, so it stays "pre-existing" (its close
 * counts, not its bytes). The kernel has released its port (skc_num is 0),
 * inet_sport still holds it: that is its source port, and a listener on it
 * makes it incoming, with the listener's owner, instead of an outgoing
 * connection from port 0 with no owner.
 */
static __always_inline struct sock_info *adopt_at_close(struct sock *sk)
{
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	__u16 lport = sk->__sk_common.skc_num;
	if (!lport)
		lport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	struct sock_info *si = adopt(sk, lport, FLOWTEL_DIR_UNKNOWN);
	if (si) {
		si->flags |= FLOWTEL_F_PRE_EXISTING;
		si->lport = lport;
	}
	return si;
}

static __always_inline int on_set_state(struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP || oldstate == newstate)
		return 0;

	if (newstate == TCP_SYN_SENT) {
		/* connect(): we are in the caller's process. */
		struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!si) {
			count(FLOWTEL_CNT_STORAGE_FAIL);
			return 0;
		}
		/* A socket may connect again after a failed attempt: start afresh. */
		si->proto = IPPROTO_TCP;
		si->syn_sent_ns = bpf_ktime_get_ns();
		si->pid = bpf_get_current_pid_tgid() >> 32;
		si->direction = FLOWTEL_DIR_OUTGOING;
		si->flags = 0;
		si->connect_us = 0;
		si->established_ns = 0;
		si->walk_gen = 0;
		bpf_get_current_comm(si->comm, sizeof(si->comm));
		filter_socket(si, sk, bpf_ntohs(sk->__sk_common.skc_dport));
		return 0;
	}

	if (newstate == TCP_LISTEN) {
		/* listen(): we are in the caller's process. */
		struct listener_key k = {};
		struct listener_info li = {};
		listener_key_of(&k, sk, sk->__sk_common.skc_num);
		li.pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(li.comm, sizeof(li.comm));
		if (bpf_map_update_elem(&listeners, &k, &li, BPF_ANY))
			count(FLOWTEL_CNT_LISTENER_MAP_FULL);
		return 0;
	}

	if (oldstate == TCP_LISTEN && newstate == TCP_CLOSE) {
		struct listener_key k = {};
		listener_key_of(&k, sk, sk->__sk_common.skc_num);
		bpf_map_delete_elem(&listeners, &k);
		return 0;
	}

	if (newstate == TCP_SYN_RECV) {
		/* A child socket cloned from its listener (oldstate LISTEN): inherit the owner. */
		adopt(sk, sk->__sk_common.skc_num, FLOWTEL_DIR_INCOMING);
		return 0;
	}

	/* Every other transition (FIN_WAIT1, CLOSE_WAIT, ...) is of no interest. */
	if (newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE)
		return 0;

	struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, 0);

	if (newstate == TCP_ESTABLISHED) {
		/*
		 * No state, though the socket went through SYN_SENT or SYN_RECV
		 * since we attached: that change was one the kernel skipped (see
		 * set_state_spare). Adopt it now, so that it is neither taken for a
		 * connection from before the agent nor missing from the walks.
		 */
		if (!si && oldstate == TCP_SYN_RECV)
			si = adopt(sk, sk->__sk_common.skc_num, FLOWTEL_DIR_INCOMING);
		else if (!si && oldstate == TCP_SYN_SENT)
			si = adopt(sk, sk->__sk_common.skc_num, FLOWTEL_DIR_OUTGOING);
		__u64 now = bpf_ktime_get_ns();
		if (si) {
			/* A socket that was in its handshake when the agent started is a new connection all the same. */
			if (oldstate == TCP_SYN_SENT && si->syn_sent_ns)
				si->connect_us = (now - si->syn_sent_ns) / 1000;
			si->established_ns = now;
			si->lport = sk->__sk_common.skc_num;
			si->flags = (si->flags | FLOWTEL_F_ESTABLISHED) & ~FLOWTEL_F_PRE_EXISTING;
		}
		emit(sk, si, FLOWTEL_EV_OPEN, oldstate, newstate, now);
		return 0;
	}

	if (newstate == TCP_CLOSE) {
		__u8 kind = FLOWTEL_EV_CLOSE;
		if (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV)
			kind = FLOWTEL_EV_FAILED;
		else if (!si)
			si = adopt_at_close(sk);
		emit(sk, si, kind, oldstate, newstate, bpf_ktime_get_ns());
	}
	return 0;
}

static __always_inline void mark(struct sock *sk, __u8 flag)
{
	if (!sk || sk->sk_protocol != IPPROTO_TCP)
		return;
	struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
	if (si)
		si->flags |= flag;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(handle_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	mark((struct sock *)sk, FLOWTEL_F_RST_SENT);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(handle_receive_reset, struct sock *sk)
{
	mark(sk, FLOWTEL_F_RST_RECEIVED);
	return 0;
}

/*
 * ts: when the walk read the socket (a walk's records share the time of its
 * chunk's first: no clock read per socket). A walk touches each socket's
 * sock_common line 1 (cookie, sk_flags) only the first time (the cookie, kept
 * in sock_info) or once the peer's FIN may have come.
 */
static __always_inline void fill_snapshot(struct flowtel_conn *c, struct sock *sk, __u8 state,
					 struct sock_info *si, __u64 ts)
{
	c->kind = state == TCP_LISTEN ? FLOWTEL_EV_LISTENER : FLOWTEL_EV_SNAPSHOT;
	c->ts_ns = ts;
	if (si && si->cookie) {
		c->cookie = si->cookie;
	} else {
		c->cookie = bpf_get_socket_cookie(sk);
		if (si)
			si->cookie = c->cookie;
	}
	c->state = state;
	c->netns = sock_netns(sk);
	/*
	 * The inode is how user space finds an owner in /proc: only needed when
	 * we know none (four dependent loads saved per socket), and read once
	 * (two cache misses and two helper calls per walk of every socket that
	 * was open before the agent, for as long as it stays open).
	 */
	if (!si || !si->pid) {
		__u64 ino = si ? si->ino : 0;
		if (!ino) {
			ino = sock_ino(sk);
			if (si && ino == (__u32)ino)
				si->ino = ino;
		}
		c->ino = ino;
	}
	fill_addrs(c, sk);
	/*
	 * A socket on its way to TCP_CLOSE (the server end of a connection it
	 * closed, moving to TIME_WAIT) has given its local port back before its
	 * state says so: the port it had at ESTABLISHED, as emit() does.
	 */
	if (!c->sport && si)
		c->sport = si->lport;
	fill_counters(c, sk, state == TCP_CLOSE_WAIT || state == TCP_LAST_ACK || state == TCP_CLOSING || state == TCP_CLOSE);
	fill_owner(c, si);
}

/*
 * Open connections, once per collection: every socket that has our
 * per-socket state, in every network namespace (iter/tcp would only walk the
 * namespace of the process that reads it).
 *
 * The records go to snapshot_chunk, not to the iterator's seq_file: the
 * sk_storage map iterator resumes a read() by walking its bucket from the
 * start (and such a map has as few buckets as CPUs), so a walk cut into
 * 32 KiB reads costs the square of the number of sockets. Writing nothing
 * to the seq_file, one read() walks until the chunk is full; the program
 * then returns 1 (retry this socket), read() fails with EAGAIN, user space
 * takes the chunk, empties it and reads on from that socket.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 32768); /* records per read() (4.75 MiB); user space may set another size before load */
	__type(key, __u32);
	__type(value, struct flowtel_conn);
} snapshot_chunk SEC(".maps");

/* Short records of idle connections (see dump_tracked), beside snapshot_chunk. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 262144); /* 4 MiB */
	__type(key, __u32);
	__type(value, struct flowtel_alive);
} alive_chunk SEC(".maps");

/* [0]: records in snapshot_chunk, [1]: in alive_chunk. User space sets both to 0 before each read(). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} snapshot_count SEC(".maps");

/* When dump_tracked began its current chunk (see fill_snapshot). */
__u64 walk_chunk_ts;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flowtel_walk_params);
} walk_params SEC(".maps");

/*
 * dump_tracked's body. `direct`: read an idle socket's two segment counters
 * with plain loads through bpf_rdonly_cast (kernel 6.2+) instead of two
 * probe-read helper calls, whose cache misses then overlap; a walk of many
 * idle sockets is ~5-10 % shorter. (bpf_skc_to_tcp_sock, the other way to a
 * typed tcp_sock, reads sk_protocol: a cache line of its own.)
 */
static __always_inline int walk_tracked(struct bpf_iter__bpf_sk_storage_map *ctx, const bool direct)
{
	struct sock *sk = ctx->sk;
	struct sock_info *si = ctx->value;
	__u32 zero = 0;

	/*
	 * A socket whose close record is written is over, whatever state the
	 * walk reads (the tracepoint runs before the kernel stores TCP_CLOSE):
	 * user space may have counted its close already and must not see it
	 * again as a connection it does not know.
	 */
	if (!sk || !si || (si->flags & (FLOWTEL_F_FILTERED | SI_CLOSE_SENT)))
		return 0;
	/* TCP: known from who made the state, else the socket's protocol (one more cache line). */
	if (si->proto != IPPROTO_TCP && (si->proto || sk->sk_protocol != IPPROTO_TCP))
		return 0;
	__u8 state = sk->__sk_common.skc_state;
	if (state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV || state == TCP_CLOSE || state == TCP_LISTEN)
		return 0;
	__u32 one = 1;
	struct flowtel_walk_params *wp = bpf_map_lookup_elem(&walk_params, &zero);
	__u32 *n = bpf_map_lookup_elem(&snapshot_count, &zero);
	__u32 *na = bpf_map_lookup_elem(&snapshot_count, &one);
	if (!n || !na || !wp)
		return 0;
	__u32 i = *n;
	/*
	 * Idle since its last full record, which user space has read: say only
	 * that it is still there, and in which state. Every counter we report
	 * moves with segs_out (sent, retransmitted) or segs_in (received, RTT
	 * samples, the peer's FIN), so equal segment counts mean equal counters.
	 * The rest of the record (its write, and the socket's other cache lines)
	 * is most of a walk of many idle connections. How the two counters are
	 * read: see `direct` above.
	 */
	if (si->walk_gen && si->walk_gen <= wp->acked && si->walk_state == state) {
		__u32 segs_out, segs_in;
		if (direct) {
			const struct tcp_sock *tp = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock));
			segs_out = tp->segs_out;
			segs_in = tp->segs_in;
		} else {
			const struct tcp_sock *tp = (const void *)sk;
			segs_out = BPF_CORE_READ(tp, segs_out);
			segs_in = BPF_CORE_READ(tp, segs_in);
		}
		if (segs_out == si->walk_segs_out && segs_in == si->walk_segs_in) {
			__u32 j = *na;
			struct flowtel_alive *a = bpf_map_lookup_elem(&alive_chunk, &j);
			if (!a)
				return 1; /* full: this socket again once user space has taken the chunk */
			a->cookie = si->cookie;
			a->before = i;
			a->state = state;
			*na = j + 1;
			return 0;
		}
	}
	struct flowtel_conn *c = bpf_map_lookup_elem(&snapshot_chunk, &i);
	if (!c)
		return 1; /* full (i == max_entries): this socket again once user space has taken the chunk */
	if (i == 0)
		walk_chunk_ts = bpf_ktime_get_ns();
	__builtin_memset(c, 0, sizeof(*c));
	fill_snapshot(c, sk, state, si, walk_chunk_ts);
	if (wp->gen) {
		si->walk_gen = wp->gen;
		si->walk_state = state;
		si->walk_segs_out = c->segs_out;
		si->walk_segs_in = c->segs_in;
	}
	*n = i + 1;
	return 0;
}

/* User space loads one of the two: dump_tracked where the kernel has bpf_rdonly_cast. */
SEC("iter/bpf_sk_storage_map")
int dump_tracked(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	return walk_tracked(ctx, true);
}

SEC("iter/bpf_sk_storage_map")
int dump_tracked_compat(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	return walk_tracked(ctx, false);
}

/*
 * At start, once per network namespace: sockets that were open before we
 * attached. Each gets per-socket state (flagged pre-existing) so that the
 * walk above finds it from then on; listeners are reported for owner lookup.
 */
SEC("iter/tcp")
int dump_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct seq_file *seq = ctx->meta->seq;
	struct flowtel_conn c = {};

	if (!skc)
		return 0;
	__u8 state = skc->skc_state;
	if (state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV || state == TCP_CLOSE)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	struct sock *sk = (struct sock *)tp;
	struct sock_info *si = 0;
	if (state != TCP_LISTEN) {
		si = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
		if (!si) {
			si = bpf_sk_storage_get(&sock_infos, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
			if (si) {
				si->proto = IPPROTO_TCP;
				si->flags |= FLOWTEL_F_PRE_EXISTING;
			} else
				count(FLOWTEL_CNT_STORAGE_FAIL);
		}
	}
	fill_snapshot(&c, sk, state, si, bpf_ktime_get_ns());
	bpf_seq_write(seq, &c, sizeof(c));
	return 0;
}

/*
 * UDP, per datagram. cgroup_skb programs see every packet of every socket in
 * the cgroup v2 hierarchy; anything that is not UDP leaves at the first test.
 */
static __always_inline int count_udp(struct __sk_buff *skb, bool egress)
{
	struct flowtel_udp_key k = {};
	__u16 udp_len;
	__u32 l4off;

	if (!options.track_udp)
		return 1;
	/*
	 * The first test, on every packet: is it UDP? Read straight from the
	 * packet (no helper call) so that TCP packets leave in a few instructions.
	 */
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u8 proto, ihl;
		if (data + 10 <= data_end) {
			if (((__u8 *)data)[9] != IPPROTO_UDP)
				return 1;
		} else if (bpf_skb_load_bytes(skb, 9, &proto, 1) || proto != IPPROTO_UDP) {
			return 1;
		}
		if (bpf_skb_load_bytes(skb, 0, &ihl, 1))
			return 1;
		l4off = (ihl & 0xf) * 4;
		k.family = AF_INET;
		if (bpf_skb_load_bytes(skb, 12, egress ? k.laddr : k.raddr, 4) ||
		    bpf_skb_load_bytes(skb, 16, egress ? k.raddr : k.laddr, 4))
			return 1;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		__u8 nexthdr;
		if (data + 7 <= data_end) {
			if (((__u8 *)data)[6] != IPPROTO_UDP)
				return 1;
		} else if (bpf_skb_load_bytes(skb, 6, &nexthdr, 1) || nexthdr != IPPROTO_UDP) {
			return 1;
		}
		l4off = 40;
		k.family = AF_INET6;
		if (bpf_skb_load_bytes(skb, 8, egress ? k.laddr : k.raddr, 16) ||
		    bpf_skb_load_bytes(skb, 24, egress ? k.raddr : k.laddr, 16))
			return 1;
	} else {
		return 1;
	}

	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)) ||
	    bpf_skb_load_bytes(skb, l4off + 4, &udp_len, sizeof(udp_len)))
		return 1;
	k.lport = bpf_ntohs(egress ? ports[0] : ports[1]);
	k.rport = bpf_ntohs(egress ? ports[1] : ports[0]);
	k.cookie = bpf_get_socket_cookie(skb);

	__u64 payload = bpf_ntohs(udp_len);
	payload = payload >= 8 ? payload - 8 : 0;
	__u64 now = bpf_ktime_get_ns();

	struct flowtel_udp_value *v = bpf_map_lookup_elem(&udp_flows, &k);
	if (!v) {
		struct flowtel_udp_value nv = {};
		nv.first_ns = now;
		nv.flags = egress ? FLOWTEL_UDP_F_EGRESS_FIRST : 0;
		if (bpf_map_update_elem(&udp_flows, &k, &nv, BPF_NOEXIST) == -7 /* E2BIG */) {
			count(FLOWTEL_CNT_UDP_MAP_FULL);
			return 1;
		}
		v = bpf_map_lookup_elem(&udp_flows, &k);
		if (!v)
			return 1;
	}
	if (!v->pid) {
		/* The owner, recorded at socket(); looked up once per flow. */
		struct bpf_sock *bsk = skb->sk;
		if (bsk)
			bsk = bpf_sk_fullsock(bsk);
		if (bsk) {
			struct sock_info *si = bpf_sk_storage_get(&sock_infos, bsk, 0, 0);
			if (si && si->pid) {
				v->pid = si->pid;
				__builtin_memcpy(v->comm, si->comm, FLOWTEL_COMM_LEN);
			}
		}
	}
	if (egress) {
		__sync_fetch_and_add(&v->bytes_sent, payload);
		__sync_fetch_and_add(&v->datagrams_sent, 1);
	} else {
		__sync_fetch_and_add(&v->bytes_received, payload);
		__sync_fetch_and_add(&v->datagrams_received, 1);
	}
	v->last_ns = now;
	return 1;
}

SEC("cgroup_skb/egress")
int udp_egress(struct __sk_buff *skb)
{
	return count_udp(skb, true);
}

SEC("cgroup_skb/ingress")
int udp_ingress(struct __sk_buff *skb)
{
	return count_udp(skb, false);
}

/*
 * UDP sockets have no state changes to learn their owner from: socket(), in
 * the creating process's context, records it. Runs once per socket, never
 * per packet or per call.
 */
SEC("cgroup/sock_create")
int udp_sock_create(struct bpf_sock *sk)
{
	if (!options.track_udp || sk->protocol != IPPROTO_UDP)
		return 1;
	struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!si) {
		count(FLOWTEL_CNT_STORAGE_FAIL);
		return 1;
	}
	si->proto = IPPROTO_UDP;
	si->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(si->comm, sizeof(si->comm));
	return 1;
}
