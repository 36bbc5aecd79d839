/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared by flowtel_dns.bpf.c (a socket filter on the DNS receiver's AF_PACKET
 * sockets, and the cgroup programs that record which process owns a DNS
 * client socket) and src/receivers/ebpf_dns/probes.ts, which writes the
 * options and the port set and reads the counters and the owner map.
 * Keep the layouts in step.
 */
#ifndef FLOWTEL_DNS_H
#define FLOWTEL_DNS_H

/* The DNS port set: one bit per port (bit p & 7 of byte p >> 3), in .rodata. */
#define FLOWTEL_DNS_PORT_BITS 8192

/* Read-only options (.rodata), set before load. 8 bytes. */
struct flowtel_dns_options {
	__u32 snap_len;         /* bytes of each passed packet handed to user space, from the IP header */
	__u8 skip_lo_incoming;  /* drop the receive-side copy of loopback packets (each is also seen as outgoing) */
	__u8 _pad[3];
};

/*
 * dns_owner_table: the local end of a DNS client socket, as it appears in the
 * packets it sends, → the process that connect()ed it to, or sent with
 * sendmsg() to, a DNS port. A BPF_F_MMAPABLE array that user space reads in
 * place (no system call per query): FLOWTEL_DNS_OWNER_SETS sets of
 * FLOWTEL_DNS_OWNER_WAYS slots; a key lives in set
 * fnv1a32(key) & (FLOWTEL_DNS_OWNER_SETS - 1), in the slot that holds it or
 * replaces the oldest. A slot's seq is odd while a program writes it (one
 * writer at a time: compare-and-swap); a reader that sees it odd or changed
 * ignores the slot.
 */
#define FLOWTEL_DNS_OWNER_SETS 8192
#define FLOWTEL_DNS_OWNER_WAYS 4

/* 20 bytes. */
struct flowtel_dns_owner_key {
	__u8 addr[16];          /* source address of the packet (IPv4: first 4 bytes, rest 0) */
	__u16 port;             /* source port, host order */
	__u8 proto;             /* IPPROTO_UDP or IPPROTO_TCP */
	__u8 version;           /* IP version of the packet: 4 or 6 */
};

/* 80 bytes: seq 0, pid 8, ts_ns 16, first_ns 24, cookie 32, key 40, comm 60. */
struct flowtel_dns_owner_slot {
	__u64 seq;              /* odd: being written (64 bits: BPF atomics without alu32) */
	__u32 pid;              /* tgid; 0: empty */
	__u32 _pad0;
	__u64 ts_ns;            /* bpf_ktime_get_ns (CLOCK_MONOTONIC) of the latest write */
	__u64 first_ns;         /* ... of the first write for this socket, key and process */
	__u64 cookie;           /* the socket's cookie */
	struct flowtel_dns_owner_key key;
	char comm[16];          /* the process's (thread group leader's) name */
	__u32 _pad1;
};

struct flowtel_dns_owner_set {
	struct flowtel_dns_owner_slot way[FLOWTEL_DNS_OWNER_WAYS];
};

/* Indexes of the per-CPU dns_counters array (__u64 each). */
enum flowtel_dns_counter {
	FLOWTEL_DNS_CTR_PASSED = 0,      /* DNS packets passed to the socket */
	FLOWTEL_DNS_CTR_FRAGMENT = 1,    /* non-first IP fragments dropped (a DNS message cut short) */
	FLOWTEL_DNS_CTR_OWNER_SOCKETS = 2, /* sockets marked as DNS clients (connect/sendmsg to a DNS port) */
	FLOWTEL_DNS_CTR_OWNER_STORAGE_FAIL = 3, /* socket storage could not be allocated: that socket is not attributed */
	FLOWTEL_DNS_CTR_OWNER_RECORDS = 4, /* owner records written to dns_owners */
	FLOWTEL_DNS_CTR_MAX = 5,
};

#endif /* FLOWTEL_DNS_H */
