// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * flowtel DNS capture.
 *
 * dns_filter: a socket filter (SEC("socket")) attached to the DNS
 * receiver's AF_PACKET sockets (SOCK_DGRAM, so the packet starts at the IP
 * header on every device type). It runs for every packet the socket's
 * interface(s) see, so it returns 0 (drop) as early as it can; for UDP or TCP
 * with a DNS port (dns_port_bits) on either end it returns the snap length:
 * the kernel copies at most that many bytes into the socket's ring.
 *
 * TCP segments with no payload pass only when they carry SYN, FIN or RST
 * (user space needs them to start and end per-flow reassembly).
 * Non-first IP fragments carry no ports: they are dropped and counted.
 * On loopback every packet is seen twice (transmit and receive); the receive
 * copy is dropped here (skip_lo_incoming).
 *
 * Process attribution (optional, on the cgroup v2 root): a captured packet
 * says nothing about the process that sent it, and a DNS client's socket is
 * often gone before user space reads the packet (dig, a resolver's
 * one-query socket). So:
 *   - cgroup/connect4|6 and cgroup/sendmsg4|6 run in the calling process
 *     when a socket connect()s or sends to an address; when the port is a
 *     DNS port they mark the socket (socket storage) with the process
 *     (tgid and the thread group leader's name). Every other call returns
 *     after one bit test.
 *   - cgroup_skb/egress, for each packet leaving a socket, returns after the
 *     socket's destination port (one bit test) unless the packet goes to a
 *     DNS port; for a marked socket it writes the packet's source address
 *     and port → owner into dns_owner_table (once per socket and port per
 *     second), a memory-mapped table user space reads without a system call.
 *     This runs before the packet reaches any capture socket, so user space
 *     finds the owner when it parses the query.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "flowtel_dns.h"

_Static_assert(sizeof(struct flowtel_dns_owner_slot) == 80, "slot layout is shared with src/receivers/ebpf_dns/probes.ts");

#define IPPROTO_HOPOPTS 0
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_DSTOPTS 60
#define PACKET_OUTGOING 4
#define LOOPBACK_IFINDEX 1
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define OWNER_REFRESH_NS 1000000000ULL

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct flowtel_dns_options options = {
	.snap_len = 4096,
	.skip_lo_incoming = 1,
};

/* The DNS ports, one bit each: set by user space before load. */
const volatile __u8 dns_port_bits[FLOWTEL_DNS_PORT_BITS] = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOWTEL_DNS_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} dns_counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&dns_counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline int dns_port(__u16 port)
{
	return (dns_port_bits[port >> 3] >> (port & 7)) & 1;
}

SEC("socket")
int dns_filter(struct __sk_buff *skb)
{
	__u8 vhl;
	__u32 l4off, l3end;
	__u8 proto;

	if (options.skip_lo_incoming && skb->ifindex == LOOPBACK_IFINDEX && skb->pkt_type != PACKET_OUTGOING)
		return 0;
	if (bpf_skb_load_bytes(skb, 0, &vhl, 1))
		return 0;
	if ((vhl >> 4) == 4) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 0;
		if (ip.ihl < 5)
			return 0;
		proto = ip.protocol;
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return 0;
		if (ip.frag_off & bpf_htons(0x1fff)) {
			count(FLOWTEL_DNS_CTR_FRAGMENT);
			return 0;
		}
		l4off = ip.ihl * 4;
		l3end = bpf_ntohs(ip.tot_len);
	} else if ((vhl >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 0;
		proto = ip6.nexthdr;
		l4off = sizeof(ip6);
		l3end = sizeof(ip6) + bpf_ntohs(ip6.payload_len);
		/* A few extension headers (hop-by-hop, routing, destination options, fragment). */
#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u8 eh[8];
			if (proto != IPPROTO_HOPOPTS && proto != IPPROTO_ROUTING && proto != IPPROTO_DSTOPTS && proto != IPPROTO_FRAGMENT)
				break;
			if (bpf_skb_load_bytes(skb, l4off, eh, sizeof(eh)))
				return 0;
			if (proto == IPPROTO_FRAGMENT) {
				if ((((__u16)eh[2] << 8) | eh[3]) & 0xfff8) {
					count(FLOWTEL_DNS_CTR_FRAGMENT);
					return 0;
				}
				l4off += 8;
			} else {
				l4off += ((__u32)eh[1] + 1) * 8;
			}
			proto = eh[0];
		}
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return 0;
	} else {
		return 0;
	}

	__u16 ports[2];
	if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)))
		return 0;
	if (!dns_port(bpf_ntohs(ports[0])) && !dns_port(bpf_ntohs(ports[1])))
		return 0;
	if (proto == IPPROTO_TCP) {
		__u8 th[2]; /* data offset, flags */
		if (bpf_skb_load_bytes(skb, l4off + 12, th, sizeof(th)))
			return 0;
		__u32 hdr = l4off + (th[0] >> 4) * 4;
		if (l3end <= hdr && !(th[1] & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST)))
			return 0; /* a pure ACK */
	}
	count(FLOWTEL_DNS_CTR_PASSED);
	return options.snap_len;
}

/* ---- process attribution ---------------------------------------------- */

/* A socket that connect()ed or sent to a DNS port, and who did it. */
struct dns_sock {
	__u64 recorded_ns;  /* when its owner was last written to dns_owners */
	__u32 pid;
	__u16 recorded_port; /* the local port of that record */
	__u8 _pad[2];
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct dns_sock);
} dns_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FLOWTEL_DNS_OWNER_SETS);
	__type(key, __u32);
	__type(value, struct flowtel_dns_owner_set);
} dns_owner_table SEC(".maps");

/* FNV-1a, 32 bits, over the key's 20 bytes (src/receivers/ebpf_dns/probes.ts computes the same). */
static __always_inline __u32 owner_hash(const struct flowtel_dns_owner_key *k)
{
	const __u8 *b = (const __u8 *)k;
	__u32 h = 2166136261u;
#pragma unroll
	for (int i = 0; i < (int)sizeof(*k); i++) {
		h ^= b[i];
		h *= 16777619u;
	}
	return h;
}

static __always_inline int same_key(const struct flowtel_dns_owner_key *a, const struct flowtel_dns_owner_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/* Write key → owner into its set: the slot that holds the key, else the oldest. 0 if written. */
static __always_inline int record_owner(const struct flowtel_dns_owner_key *k, const struct dns_sock *ds, __u64 cookie, __u64 now)
{
	__u32 idx = owner_hash(k) & (FLOWTEL_DNS_OWNER_SETS - 1);
	struct flowtel_dns_owner_set *set = bpf_map_lookup_elem(&dns_owner_table, &idx);
	if (!set)
		return -1;
	__u32 w = 0;
	__u64 oldest = ~0ULL;
#pragma unroll
	for (__u32 i = 0; i < FLOWTEL_DNS_OWNER_WAYS; i++) {
		struct flowtel_dns_owner_slot *s = &set->way[i];
		if (same_key(&s->key, k)) {
			w = i;
			break;
		}
		if (s->ts_ns < oldest) {
			oldest = s->ts_ns;
			w = i;
		}
	}
	struct flowtel_dns_owner_slot *s = &set->way[w & (FLOWTEL_DNS_OWNER_WAYS - 1)];
	__u64 seq = s->seq;
	if (seq & 1)
		return -1; /* another CPU is writing it */
	if (__sync_val_compare_and_swap(&s->seq, seq, seq + 1) != seq)
		return -1;
	/* A refresh by the same socket and process keeps its first time: user space
	 * attributes a query only to a record that existed when it was sent. */
	if (!(same_key(&s->key, k) && s->cookie == cookie && s->pid == ds->pid))
		s->first_ns = now;
	__builtin_memcpy(&s->key, k, sizeof(*k));
	s->cookie = cookie;
	s->pid = ds->pid;
	s->ts_ns = now;
	__builtin_memcpy(s->comm, ds->comm, sizeof(s->comm));
	__sync_fetch_and_add(&s->seq, 1);
	return 0;
}

static __always_inline int mark_dns_socket(struct bpf_sock_addr *ctx)
{
	if (!dns_port(bpf_ntohs((__u16)ctx->user_port)))
		return 1;
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;
	struct dns_sock *ds = bpf_sk_storage_get(&dns_socks, sk, 0, 0);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (ds && ds->pid == pid)
		return 1; /* the same process again (a resolver's sendmsg per query) */
	if (!ds) {
		ds = bpf_sk_storage_get(&dns_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!ds) {
			count(FLOWTEL_DNS_CTR_OWNER_STORAGE_FAIL);
			return 1;
		}
		count(FLOWTEL_DNS_CTR_OWNER_SOCKETS);
	}
	ds->pid = pid;
	ds->recorded_ns = 0;
	/* The process's name (its main thread's), not the calling thread's. */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ_INTO(&ds->comm, task, group_leader, comm))
		bpf_get_current_comm(ds->comm, sizeof(ds->comm));
	return 1;
}

SEC("cgroup/connect4")
int dns_connect4(struct bpf_sock_addr *ctx)
{
	return mark_dns_socket(ctx);
}

SEC("cgroup/connect6")
int dns_connect6(struct bpf_sock_addr *ctx)
{
	return mark_dns_socket(ctx);
}

SEC("cgroup/sendmsg4")
int dns_sendmsg4(struct bpf_sock_addr *ctx)
{
	return mark_dns_socket(ctx);
}

SEC("cgroup/sendmsg6")
int dns_sendmsg6(struct bpf_sock_addr *ctx)
{
	return mark_dns_socket(ctx);
}

SEC("cgroup_skb/egress")
int dns_owner_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 1;
	/* A connected socket (every TCP one): its peer's port is on the socket. */
	__u16 dport = bpf_ntohs(sk->dst_port);
	if (dport && !dns_port(dport))
		return 1;
	__u8 version;
	__u32 l4off;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		version = 4;
		if (data + 20 > data_end)
			return 1;
		l4off = (((__u8 *)data)[0] & 0xf) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		version = 6;
		l4off = 40;
	} else {
		return 1;
	}
	if (!dport) {
		/* An unconnected UDP socket (sendto): the destination is in the packet. */
		__be16 p;
		if (bpf_skb_load_bytes(skb, l4off + 2, &p, sizeof(p)))
			return 1;
		dport = bpf_ntohs(p);
		if (!dns_port(dport))
			return 1;
	}
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	struct dns_sock *ds = bpf_sk_storage_get(&dns_socks, sk, 0, 0);
	if (!ds || !ds->pid)
		return 1;
	__u16 sport = sk->src_port;
	__u64 now = bpf_ktime_get_ns();
	if (ds->recorded_port == sport && now - ds->recorded_ns < OWNER_REFRESH_NS)
		return 1;
	struct flowtel_dns_owner_key k = {};
	k.port = sport;
	k.proto = sk->protocol;
	k.version = version;
	if (bpf_skb_load_bytes(skb, version == 4 ? 12 : 8, k.addr, version == 4 ? 4 : 16))
		return 1;
	if (record_owner(&k, ds, bpf_get_socket_cookie(skb), now))
		return 1;
	ds->recorded_port = sport;
	ds->recorded_ns = now;
	count(FLOWTEL_DNS_CTR_OWNER_RECORDS);
	return 1;
}
