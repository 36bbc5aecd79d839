/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Records shared by flowtel_tcp.bpf.c (the kernel side) and the agent (the
 * TypeScript decoder in src/flows/records.ts reads the same layout: keep the
 * two in step, and keep every field naturally aligned, no implicit padding).
 */
#ifndef FLOWTEL_TCP_H
#define FLOWTEL_TCP_H

#define FLOWTEL_COMM_LEN 16
#define FLOWTEL_ABI_VERSION 1

/* What a flowtel_conn record says. */
enum flowtel_event_kind {
	FLOWTEL_EV_OPEN = 1,     /* connection established (ring buffer) */
	FLOWTEL_EV_CLOSE = 2,    /* established connection closed: final counters (ring buffer) */
	FLOWTEL_EV_FAILED = 3,   /* connection attempt that never established (ring buffer) */
	FLOWTEL_EV_SNAPSHOT = 4, /* open connection, from the iter/tcp walk */
	FLOWTEL_EV_LISTENER = 5, /* listening socket, from the iter/tcp walk */
	FLOWTEL_EV_ALIVE = 6,    /* open connection, from the walk, unchanged since its last
				  * FLOWTEL_EV_SNAPSHOT: a struct flowtel_alive, not a flowtel_conn */
};

enum flowtel_direction {
	FLOWTEL_DIR_UNKNOWN = 0,
	FLOWTEL_DIR_OUTGOING = 1, /* this host connected */
	FLOWTEL_DIR_INCOMING = 2, /* this host accepted */
};

/* Flags seen over the life of the socket (flowtel_conn.flags). */
#define FLOWTEL_F_RST_SENT      0x01
#define FLOWTEL_F_RST_RECEIVED  0x02
#define FLOWTEL_F_ESTABLISHED   0x04 /* went through ESTABLISHED while we watched */
#define FLOWTEL_F_PRE_EXISTING  0x08 /* established before the agent attached (or no per-socket state) */
#define FLOWTEL_F_FIN_RECEIVED  0x10 /* the peer's FIN was received (counted in bytes_received) */
#define FLOWTEL_F_FILTERED      0x20 /* excluded by the in-kernel filter: never reported */

/* In-kernel filter (pushed down from the filter processor). */
#define FLOWTEL_FILTER_INCLUDE 1
#define FLOWTEL_FILTER_EXCLUDE 2

struct flowtel_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct flowtel_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/*
 * One TCP connection: a state change event or a snapshot of an open socket.
 * Counters are the kernel's own (struct tcp_sock) at the time of the record.
 * 152 bytes.
 */
struct flowtel_conn {
	__u64 cookie;          /* socket cookie: unique per socket for the boot */
	__u64 ts_ns;           /* CLOCK_BOOTTIME-free monotonic ns (bpf_ktime_get_ns) of the record */
	__u64 bytes_sent;      /* tcp_sock.bytes_sent: payload bytes put on the wire, retransmits included */
	__u64 established_ns;  /* bpf_ktime_get_ns when the connection reached ESTABLISHED (0: not seen) */
	__u64 bytes_received;  /* tcp_sock.bytes_received (includes a received FIN) */
	__u64 bytes_retrans;   /* tcp_sock.bytes_retrans */
	__u64 ino;             /* socket inode (0 when detached from a file) */
	__u32 segs_out;        /* tcp_sock.segs_out */
	__u32 segs_in;         /* tcp_sock.segs_in */
	__u32 total_retrans;   /* tcp_sock.total_retrans (segments) */
	__u32 srtt_us;         /* smoothed RTT, µs (srtt_us >> 3) */
	__u32 rttvar_us;       /* RTT variance, µs (mdev_us >> 2, as tcp_info) */
	__u32 connect_us;      /* SYN sent → ESTABLISHED, µs (outgoing only, else 0) */
	__u32 pid;             /* tgid of the owner (0 = unknown) */
	__u32 netns;           /* network namespace inode */
	__s32 err;             /* sk_err at close (errno) */
	__u16 family;          /* AF_INET / AF_INET6 */
	__u16 sport;           /* local port, host order */
	__u16 dport;           /* remote port, host order */
	__u8 kind;             /* enum flowtel_event_kind */
	__u8 direction;        /* enum flowtel_direction */
	__u8 state;            /* TCP state (new state for events) */
	__u8 old_state;        /* previous TCP state (events) */
	__u8 flags;            /* FLOWTEL_F_* */
	__u8 _pad;
	__u8 saddr[16];        /* local address (IPv4 in the first 4 bytes) */
	__u8 daddr[16];        /* remote address */
	char comm[FLOWTEL_COMM_LEN];
};

#ifdef __bpf__
_Static_assert(sizeof(struct flowtel_conn) == 152, "flowtel_conn layout is shared with src/flows/records.ts");
#endif

/*
 * Set by user space before each walk of dump_tracked (walk_params[0]). A
 * socket whose TCP state and segment counters are what its last full record
 * said, written in a walk user space has since read to its end, comes as a
 * FLOWTEL_EV_ALIVE record: an idle connection costs the walk a few cache
 * lines instead of the whole socket. gen 0: every record full.
 */
struct flowtel_walk_params {
	__u32 gen;   /* this walk (1, 2, ...; 0: no short records) */
	__u32 acked; /* the last walk user space read whole (0: none) */
};

/*
 * The short walk record of an idle connection (FLOWTEL_EV_ALIVE), written to
 * a map of its own (alive_chunk) so that a chunk holds many more of them than
 * of full records: a walk that restarts less often. 16 bytes.
 */
struct flowtel_alive {
	__u64 cookie;
	__u32 before;  /* full records of the same chunk written before it: its place among them */
	__u8 state;    /* TCP state */
	__u8 _pad[3];
};

#ifdef __bpf__
_Static_assert(sizeof(struct flowtel_alive) == 16, "flowtel_alive layout is shared with src/flows/records.ts");
#endif

/* UDP flow key: one socket talking to one peer. */
struct flowtel_udp_key {
	__u64 cookie;          /* socket cookie */
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;           /* host order */
	__u16 rport;           /* host order */
	__u16 family;
	__u16 _pad;
};

struct flowtel_udp_value {
	__u64 bytes_sent;      /* UDP payload bytes */
	__u64 bytes_received;
	__u64 datagrams_sent;
	__u64 datagrams_received;
	__u64 first_ns;
	__u64 last_ns;
	__u32 pid;
	__u8 flags;            /* FLOWTEL_UDP_F_* */
	__u8 _pad[3];
	char comm[FLOWTEL_COMM_LEN];
};

/* The flow's first datagram the agent saw was sent by the local socket. */
#define FLOWTEL_UDP_F_EGRESS_FIRST 1

/* Kernel-side loss and health counters (per-CPU array, index = enum). */
enum flowtel_counter {
	FLOWTEL_CNT_RINGBUF_FULL = 0,   /* events not delivered: ring buffer full */
	FLOWTEL_CNT_STORAGE_FAIL = 1,   /* per-socket storage could not be allocated */
	FLOWTEL_CNT_UDP_MAP_FULL = 2,   /* UDP flows not tracked: map full */
	FLOWTEL_CNT_LISTENER_MAP_FULL = 3,
	FLOWTEL_CNT_EVENTS = 4,         /* events written to the ring buffer */
	FLOWTEL_CNT_FILTERED = 5,       /* events dropped by in-kernel filters */
	FLOWTEL_CNT_RECURSION_RECOVERED = 6, /* state changes handle_set_state missed (recursion) that set_state_spare handled */
	FLOWTEL_CNT_DUPLICATE = 7,      /* a second open or close record of one connection, not written */
	FLOWTEL_CNT__MAX = 8,
};

/* Options set before load (const volatile in .rodata). */
struct flowtel_tcp_options {
	__u32 ringbuf_wakeup_batch; /* wake userspace every N events (0/1 = each) */
	__u8 track_udp;
	__u8 filter_enabled;        /* any filter map below has entries */
	__u8 include_ports;         /* filter_ports has INCLUDE entries: a flow must match one */
	__u8 include_cidrs;         /* filter_cidr4/6 have INCLUDE entries */
	__u8 include_comms;         /* filter_comms has INCLUDE entries */
	__u8 _pad[3];
};

#endif /* FLOWTEL_TCP_H */
