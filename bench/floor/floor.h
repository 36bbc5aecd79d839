/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The floor tracer's record: the tcp_sock counters of one connection at close. */
#ifndef FLOOR_H
#define FLOOR_H

struct floor_rec {
	__u64 cookie;
	__u64 bytes_sent;
	__u64 bytes_acked;
	__u64 bytes_received;
	__u64 bytes_retrans;
	__u32 segs_out;
	__u32 segs_in;
	__u32 total_retrans;
	__u32 srtt_us;
	__u32 rttvar_us;
	__u32 netns;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 old_state;
	__u8 _pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

#endif
