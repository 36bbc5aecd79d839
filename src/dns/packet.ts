/**
 * IPv4/IPv6 + UDP/TCP headers of a captured packet (it starts at the IP
 * header: the capture socket is SOCK_DGRAM). Decodes into one reusable
 * object; addresses become strings in the form flows use (src/flows/addresses.ts).
 */
import { formatAddress } from '../flows/addresses';

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;

export interface L4Packet {
  networkType: 'ipv4' | 'ipv6';
  /** IP version of the header (an IPv4-mapped IPv6 source is still version 6 here). */
  version: 4 | 6;
  /** Offsets of the source and destination address bytes in the buffer (4 or 16 bytes by `version`). */
  srcOff: number;
  dstOff: number;
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
  /** Offset of the transport payload in the buffer. */
  payload: number;
  /** Payload bytes present in the capture. */
  payloadLen: number;
  /** Payload bytes the packet had (from the IP header): more than payloadLen when the capture cut it short. */
  payloadFullLen: number;
  /** TCP only. */
  seq: number;
  flags: number;
}

export function newL4Packet(): L4Packet {
  return { networkType: 'ipv4', version: 4, srcOff: 0, dstOff: 0, src: '', dst: '', proto: 0, sport: 0, dport: 0, payload: 0, payloadLen: 0, payloadFullLen: 0, seq: 0, flags: 0 };
}

const EXT_HEADERS = new Set([0, 43, 60]);

/** Fill `out` from buf[off, off + caplen); false if it is not a whole-enough IPv4/IPv6 UDP/TCP packet. */
export function decodeL4(buf: Buffer, off: number, caplen: number, out: L4Packet): boolean {
  const end = Math.min(buf.length, off + caplen);
  if (end - off < 20) return false;
  const v = buf[off]! >> 4;
  let l4: number;
  let l3end: number;
  let proto: number;
  if (v === 4) {
    const ihl = (buf[off]! & 0xf) * 4;
    if (ihl < 20) return false;
    if ((buf.readUInt16BE(off + 6) & 0x1fff) !== 0) return false; // a later fragment: no transport header
    proto = buf[off + 9]!;
    l4 = off + ihl;
    l3end = off + buf.readUInt16BE(off + 2);
    out.networkType = 'ipv4';
    out.version = 4;
    out.srcOff = off + 12;
    out.dstOff = off + 16;
    out.src = `${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
    out.dst = `${buf[off + 16]}.${buf[off + 17]}.${buf[off + 18]}.${buf[off + 19]}`;
  } else if (v === 6) {
    if (end - off < 40) return false;
    proto = buf[off + 6]!;
    l4 = off + 40;
    l3end = l4 + buf.readUInt16BE(off + 4);
    for (let i = 0; i < 4 && (EXT_HEADERS.has(proto) || proto === 44); i++) {
      if (l4 + 8 > end) return false;
      if (proto === 44) {
        if ((buf.readUInt16BE(l4 + 2) & 0xfff8) !== 0) return false;
        proto = buf[l4]!;
        l4 += 8;
      } else {
        const next = buf[l4]!;
        l4 += (buf[l4 + 1]! + 1) * 8;
        proto = next;
      }
    }
    const s = formatAddress(10, buf.subarray(off + 8, off + 24));
    const d = formatAddress(10, buf.subarray(off + 24, off + 40));
    out.networkType = s.type;
    out.version = 6;
    out.srcOff = off + 8;
    out.dstOff = off + 24;
    out.src = s.address;
    out.dst = d.address;
  } else {
    return false;
  }
  out.proto = proto;
  if (proto === IPPROTO_UDP) {
    if (l4 + 8 > end) return false;
    out.sport = buf.readUInt16BE(l4);
    out.dport = buf.readUInt16BE(l4 + 2);
    out.payload = l4 + 8;
    out.seq = 0;
    out.flags = 0;
  } else if (proto === IPPROTO_TCP) {
    if (l4 + 20 > end) return false;
    out.sport = buf.readUInt16BE(l4);
    out.dport = buf.readUInt16BE(l4 + 2);
    out.seq = buf.readUInt32BE(l4 + 4);
    out.flags = buf[l4 + 13]!;
    const doff = (buf[l4 + 12]! >> 4) * 4;
    if (doff < 20) return false;
    out.payload = l4 + doff;
  } else {
    return false;
  }
  out.payloadFullLen = Math.max(0, l3end - out.payload);
  out.payloadLen = Math.max(0, Math.min(end, l3end) - out.payload);
  return true;
}
