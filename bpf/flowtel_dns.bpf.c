// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * flowtel DNS capture: a socket filter (SEC("socket")) attached to the DNS
 * receiver's AF_PACKET sockets (SOCK_DGRAM, so the packet starts at the IP
 * header on every device type). It runs for every packet the socket's
 * interface(s) see, so it returns 0 (drop) as early as it can; for UDP or TCP
 * with a DNS port (dns_ports) on either end it returns the snap length: the
 * kernel copies at most that many bytes into the socket's ring.
 *
 * TCP segments with no payload pass only when they carry SYN, FIN or RST
 * (user space needs them to start and end per-flow reassembly).
 * Non-first IP fragments carry no ports: they are dropped and counted.
 * On loopback every packet is seen twice (transmit and receive); the receive
 * copy is dropped here (skip_lo_incoming).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "flowtel_dns.h"

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

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct flowtel_dns_options options = {
	.snap_len = 4096,
	.skip_lo_incoming = 1,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FLOWTEL_DNS_MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} dns_ports SEC(".maps");

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
	return bpf_map_lookup_elem(&dns_ports, &port) != NULL;
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
