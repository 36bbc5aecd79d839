/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared by flowtel_dns.bpf.c (a socket filter on the DNS receiver's AF_PACKET
 * sockets) and src/receivers/ebpf_dns/probes.ts, which writes the options and
 * the port map and reads the counters. Keep the layouts in step.
 */
#ifndef FLOWTEL_DNS_H
#define FLOWTEL_DNS_H

/* Capacity of the dns_ports map (key __u16 port in host order, value __u8 1). */
#define FLOWTEL_DNS_MAX_PORTS 64

/* Read-only options (.rodata), set before load. 8 bytes. */
struct flowtel_dns_options {
	__u32 snap_len;         /* bytes of each passed packet handed to user space, from the IP header */
	__u8 skip_lo_incoming;  /* drop the receive-side copy of loopback packets (each is also seen as outgoing) */
	__u8 _pad[3];
};

/* Indexes of the per-CPU dns_counters array (__u64 each). */
enum flowtel_dns_counter {
	FLOWTEL_DNS_CTR_PASSED = 0,      /* DNS packets passed to the socket */
	FLOWTEL_DNS_CTR_FRAGMENT = 1,    /* non-first IP fragments dropped (a DNS message cut short) */
	FLOWTEL_DNS_CTR_MAX = 2,
};

#endif /* FLOWTEL_DNS_H */
