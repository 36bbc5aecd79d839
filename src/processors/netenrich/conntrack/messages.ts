/**
 * ctnetlink (nfnetlink subsystem 1) messages, built and parsed here:
 * the dump request and the conntrack entries of dumps and NEW events
 * (uapi linux/netfilter/nfnetlink_conntrack.h).
 *
 * A message: nlmsghdr (len u32, type u16, flags u16, seq u32, pid u32), then
 * nfgenmsg (family u8, version u8, res_id be16), then attributes (len u16,
 * type u16 with NLA_F_NESTED 0x8000 / NLA_F_NET_BYTEORDER 0x4000, padded to
 * 4 bytes). Integers inside ctnetlink attributes are big-endian.
 */
import { formatIp, isV4Mapped } from '../../../util/ip';

export const NFNL_SUBSYS_CTNETLINK = 1;
export const IPCTNL_MSG_CT_NEW = 0;
export const IPCTNL_MSG_CT_GET = 1;
export const IPCTNL_MSG_CT_DELETE = 2;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_DUMP = 0x300;
/** Multicast groups (bind bitmask bit = group - 1). */
export const NFNLGRP_CONNTRACK_NEW = 1;
export const NFNLGRP_CONNTRACK_DESTROY = 3;

const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_STATUS = 3;
const CTA_ZONE = 18;
const CTA_STATUS_MASK = 26;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;

/** conntrack status bits (linux/netfilter/nf_conntrack_common.h). */
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;

export interface Tuple {
  /** `10.0.0.1`, `fd00::1` (IPv4 as dotted quad). */
  readonly src: string;
  readonly dst: string;
  /** 6 tcp, 17 udp, 132 sctp, ... */
  readonly proto: number;
  /** 0 when the protocol has no ports. */
  readonly sport: number;
  readonly dport: number;
}

export interface ConntrackEntry {
  /** The tuple as the first packet had it (what the client dialled). */
  readonly orig: Tuple;
  /** The tuple replies have: its source is where the connection really went. */
  readonly reply: Tuple;
  readonly status: number;
  readonly zone: number;
  /** From an event: IPCTNL_MSG_CT_NEW or _DELETE; from a dump: NEW. */
  readonly kind: 'new' | 'delete';
}

let seq = 1;

/** A dump request for every entry (both families); with `statusMask`, the kernel returns only entries with those status bits (kernels ≥ 5.19; older ones ignore the filter). */
export function dumpRequest(statusMask?: number): Buffer {
  const attrs = statusMask === undefined ? 0 : 16;
  const buf = Buffer.alloc(16 + 4 + attrs);
  buf.writeUInt32LE(buf.length, 0);
  buf.writeUInt16LE((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, 4);
  buf.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  buf.writeUInt32LE(seq++ >>> 0, 8);
  buf.writeUInt32LE(0, 12);
  buf.writeUInt8(0, 16); // AF_UNSPEC: IPv4 and IPv6
  buf.writeUInt8(0, 17); // NFNETLINK_V0
  buf.writeUInt16BE(0, 18);
  if (statusMask !== undefined) {
    buf.writeUInt16LE(8, 20);
    buf.writeUInt16LE(CTA_STATUS, 22);
    buf.writeUInt32BE(statusMask >>> 0, 24);
    buf.writeUInt16LE(8, 28);
    buf.writeUInt16LE(CTA_STATUS_MASK, 30);
    buf.writeUInt32BE(statusMask >>> 0, 32);
  }
  return buf;
}

export type NetlinkItem =
  | { readonly type: 'entry'; readonly entry: ConntrackEntry }
  | { readonly type: 'done' }
  | { readonly type: 'error'; readonly errno: number }
  | { readonly type: 'malformed'; readonly reason: string }
  | { readonly type: 'other' };

/** Every message of one datagram. Never throws: a bad message is a `malformed` item and ends the datagram. */
export function parseDatagram(buf: Buffer): NetlinkItem[] {
  const out: NetlinkItem[] = [];
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) {
      out.push({ type: 'malformed', reason: `message length ${len} at ${off} of ${buf.length}` });
      break;
    }
    const type = buf.readUInt16LE(off + 4);
    if (type === NLMSG_DONE) out.push({ type: 'done' });
    else if (type === NLMSG_ERROR) {
      const err = len >= 20 ? buf.readInt32LE(off + 16) : 0;
      out.push(err === 0 ? { type: 'other' } : { type: 'error', errno: -err });
    } else if (type >> 8 === NFNL_SUBSYS_CTNETLINK) {
      const msg = type & 0xff;
      if (msg === IPCTNL_MSG_CT_NEW || msg === IPCTNL_MSG_CT_DELETE) {
        const entry = parseEntry(buf, off + 20, off + len, msg === IPCTNL_MSG_CT_DELETE ? 'delete' : 'new');
        out.push(typeof entry === 'string' ? { type: 'malformed', reason: entry } : { type: 'entry', entry });
      } else out.push({ type: 'other' });
    } else out.push({ type: 'other' });
    off += (len + 3) & ~3;
  }
  return out;
}

/** Attributes in [start, end): type (flags removed) → [value start, value end). */
function attributes(buf: Buffer, start: number, end: number): Map<number, [number, number]> | string {
  const out = new Map<number, [number, number]>();
  let off = start;
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4 || off + len > end) return `attribute ${type} length ${len} overruns its message`;
    out.set(type, [off + 4, off + len]);
    off += (len + 3) & ~3;
  }
  return out;
}

function formatV4(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

function formatV6(buf: Buffer, at: number): string {
  const bytes = buf.subarray(at, at + 16);
  // ::ffff:a.b.c.d is IPv4, as flows report it.
  return isV4Mapped(bytes) ? formatV4(buf, at + 12) : formatIp({ family: 6, bytes });
}

function parseTuple(buf: Buffer, start: number, end: number): Tuple | string {
  const a = attributes(buf, start, end);
  if (typeof a === 'string') return a;
  const ip = a.get(CTA_TUPLE_IP);
  const proto = a.get(CTA_TUPLE_PROTO);
  if (!ip || !proto) return 'tuple without IP or protocol';
  const ipAttrs = attributes(buf, ip[0], ip[1]);
  const protoAttrs = attributes(buf, proto[0], proto[1]);
  if (typeof ipAttrs === 'string') return ipAttrs;
  if (typeof protoAttrs === 'string') return protoAttrs;
  let src: string | undefined;
  let dst: string | undefined;
  const s4 = ipAttrs.get(CTA_IP_V4_SRC);
  const d4 = ipAttrs.get(CTA_IP_V4_DST);
  const s6 = ipAttrs.get(CTA_IP_V6_SRC);
  const d6 = ipAttrs.get(CTA_IP_V6_DST);
  if (s4 && d4 && s4[1] - s4[0] === 4 && d4[1] - d4[0] === 4) {
    src = formatV4(buf, s4[0]);
    dst = formatV4(buf, d4[0]);
  } else if (s6 && d6 && s6[1] - s6[0] === 16 && d6[1] - d6[0] === 16) {
    src = formatV6(buf, s6[0]);
    dst = formatV6(buf, d6[0]);
  } else return 'tuple without a source and destination address';
  const num = protoAttrs.get(CTA_PROTO_NUM);
  if (!num || num[1] - num[0] < 1) return 'tuple without a protocol number';
  const sp = protoAttrs.get(CTA_PROTO_SRC_PORT);
  const dp = protoAttrs.get(CTA_PROTO_DST_PORT);
  return {
    src,
    dst,
    proto: buf[num[0]] as number,
    sport: sp && sp[1] - sp[0] >= 2 ? buf.readUInt16BE(sp[0]) : 0,
    dport: dp && dp[1] - dp[0] >= 2 ? buf.readUInt16BE(dp[0]) : 0,
  };
}

function parseEntry(buf: Buffer, start: number, end: number, kind: 'new' | 'delete'): ConntrackEntry | string {
  const a = attributes(buf, start, end);
  if (typeof a === 'string') return a;
  const o = a.get(CTA_TUPLE_ORIG);
  const r = a.get(CTA_TUPLE_REPLY);
  if (!o || !r) return 'entry without original and reply tuples';
  const orig = parseTuple(buf, o[0], o[1]);
  if (typeof orig === 'string') return orig;
  const reply = parseTuple(buf, r[0], r[1]);
  if (typeof reply === 'string') return reply;
  const s = a.get(CTA_STATUS);
  const z = a.get(CTA_ZONE);
  return {
    orig,
    reply,
    status: s && s[1] - s[0] >= 4 ? buf.readUInt32BE(s[0]) : 0,
    zone: z && z[1] - z[0] >= 2 ? buf.readUInt16BE(z[0]) : 0,
    kind,
  };
}

/** The address a source-NATed connection left with (the reply's destination: a masquerade's node address and port), or undefined when the source was not translated. */
export function snatSource(e: ConntrackEntry): { address: string; port: number } | undefined {
  const translated = e.reply.dst !== e.orig.src || e.reply.dport !== e.orig.sport;
  if ((e.status & IPS_SRC_NAT) === 0 || !translated) return undefined;
  return { address: e.reply.dst, port: e.reply.dport };
}

/** Where a DNATed connection really went (the reply's source), or undefined when the destination was not translated. */
export function dnatTarget(e: ConntrackEntry): { address: string; port: number } | undefined {
  const translated = e.reply.src !== e.orig.dst || e.reply.sport !== e.orig.dport;
  if ((e.status & IPS_DST_NAT) === 0 || !translated) return undefined;
  return { address: e.reply.src, port: e.reply.sport };
}
