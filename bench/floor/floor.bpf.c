// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The floor: the cheapest tracer of the same hook flowtel relies on.
 * One tp_btf program on inet_sock_set_state that, when a TCP socket reaches
 * TCP_CLOSE, copies the same struct tcp_sock counters flowtel reads into a
 * ring buffer record. No per-socket storage, no open events, no owner, no
 * wakeups (the reader polls). Anything flowtel costs above this is the price
 * of its extra features and of its user space.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "floor.h"

#define AF_INET 2
#define IPPROTO_TCP 6
#define TCP_CLOSE 7

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} floor_events SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(floor_set_state, struct sock *sk, int oldstate, int newstate)
{
	if (newstate != TCP_CLOSE || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	struct floor_rec *r = bpf_ringbuf_reserve(&floor_events, sizeof(*r), 0);
	if (!r)
		return 0;
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	r->cookie = bpf_get_socket_cookie((void *)sk);
	r->bytes_sent = BPF_CORE_READ(tp, bytes_sent);
	r->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	r->bytes_received = BPF_CORE_READ(tp, bytes_received);
	r->bytes_retrans = BPF_CORE_READ(tp, bytes_retrans);
	r->segs_out = BPF_CORE_READ(tp, segs_out);
	r->segs_in = BPF_CORE_READ(tp, segs_in);
	r->total_retrans = BPF_CORE_READ(tp, total_retrans);
	r->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	r->rttvar_us = BPF_CORE_READ(tp, mdev_us) >> 2;
	r->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	r->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	r->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	r->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	r->old_state = oldstate;
	r->_pad = 0;
	if (r->family == AF_INET) {
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memset(r->saddr, 0, sizeof(r->saddr));
		__builtin_memset(r->daddr, 0, sizeof(r->daddr));
		__builtin_memcpy(r->saddr, &s, 4);
		__builtin_memcpy(r->daddr, &d, 4);
	} else {
		BPF_CORE_READ_INTO(&r->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&r->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}
