/**
 * Decoders for the packed records of bpf/flowtel_tcp.h. The offsets here are
 * that header's layout; bpf/ asserts the struct sizes at compile time.
 */

export const CONN_RECORD_SIZE = 152;
export const UDP_KEY_SIZE = 48;
export const UDP_VALUE_SIZE = 72;
/** FLOWTEL_UDP_F_EGRESS_FIRST of flowtel_tcp.h. */
const UDP_F_EGRESS_FIRST = 1;

export const enum ConnEventKind {
  Open = 1,
  Close = 2,
  Failed = 3,
  Snapshot = 4,
  Listener = 5,
}

export const enum ConnDirection {
  Unknown = 0,
  Outgoing = 1,
  Incoming = 2,
}

export const ConnFlags = {
  RstSent: 0x01,
  RstReceived: 0x02,
  Established: 0x04,
  PreExisting: 0x08,
  FinReceived: 0x10,
} as const;

export const AF_INET = 2;
export const AF_INET6 = 10;

/** One flowtel_conn record. Counters are the kernel's, unadjusted. */
export interface ConnRecord {
  cookie: bigint;
  tsNs: bigint;
  bytesSent: number;
  bytesAcked: number;
  bytesReceived: number;
  bytesRetrans: number;
  ino: number;
  segsOut: number;
  segsIn: number;
  totalRetrans: number;
  srttUs: number;
  rttvarUs: number;
  connectUs: number;
  pid: number;
  netns: number;
  err: number;
  family: number;
  sport: number;
  dport: number;
  kind: ConnEventKind;
  direction: ConnDirection;
  state: number;
  oldState: number;
  flags: number;
  saddr: Buffer;
  daddr: Buffer;
  comm: string;
}

function u64(buf: Buffer, off: number): number {
  // Byte and segment counters stay far below 2^53 for the life of a socket.
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * 0x1_0000_0000;
}

export function readComm(buf: Buffer, off: number, len = 16): string {
  let end = off;
  const max = off + len;
  while (end < max && buf[end] !== 0) end++;
  return buf.toString('latin1', off, end);
}

export function decodeConnRecord(buf: Buffer, off: number): ConnRecord {
  return {
    cookie: buf.readBigUInt64LE(off),
    tsNs: buf.readBigUInt64LE(off + 8),
    bytesSent: u64(buf, off + 16),
    bytesAcked: u64(buf, off + 24),
    bytesReceived: u64(buf, off + 32),
    bytesRetrans: u64(buf, off + 40),
    ino: u64(buf, off + 48),
    segsOut: buf.readUInt32LE(off + 56),
    segsIn: buf.readUInt32LE(off + 60),
    totalRetrans: buf.readUInt32LE(off + 64),
    srttUs: buf.readUInt32LE(off + 68),
    rttvarUs: buf.readUInt32LE(off + 72),
    connectUs: buf.readUInt32LE(off + 76),
    pid: buf.readUInt32LE(off + 80),
    netns: buf.readUInt32LE(off + 84),
    err: buf.readInt32LE(off + 88),
    family: buf.readUInt16LE(off + 92),
    sport: buf.readUInt16LE(off + 94),
    dport: buf.readUInt16LE(off + 96),
    kind: buf[off + 98] as ConnEventKind,
    direction: buf[off + 99] as ConnDirection,
    state: buf[off + 100]!,
    oldState: buf[off + 101]!,
    flags: buf[off + 102]!,
    saddr: buf.subarray(off + 104, off + 120),
    daddr: buf.subarray(off + 120, off + 136),
    comm: readComm(buf, off + 136),
  };
}

/** Every whole record of a packed batch (a trailing partial record is ignored). */
export function decodeConnRecords(buf: Buffer): ConnRecord[] {
  const n = Math.floor(buf.length / CONN_RECORD_SIZE);
  const out = new Array<ConnRecord>(n);
  for (let i = 0; i < n; i++) out[i] = decodeConnRecord(buf, i * CONN_RECORD_SIZE);
  return out;
}

export interface UdpFlowRecord {
  /** The packed key, as the map holds it (used to delete the entry). */
  key: Buffer;
  cookie: bigint;
  family: number;
  laddr: Buffer;
  raddr: Buffer;
  lport: number;
  rport: number;
  bytesSent: number;
  bytesReceived: number;
  datagramsSent: number;
  datagramsReceived: number;
  firstNs: bigint;
  lastNs: bigint;
  pid: number;
  comm: string;
  /** The first datagram seen of this flow was sent by the local socket (it started the exchange). */
  egressFirst: boolean;
}

export function decodeUdpFlow(keys: Buffer, values: Buffer, i: number): UdpFlowRecord {
  const k = i * UDP_KEY_SIZE;
  const v = i * UDP_VALUE_SIZE;
  return {
    key: keys.subarray(k, k + UDP_KEY_SIZE),
    cookie: keys.readBigUInt64LE(k),
    laddr: keys.subarray(k + 8, k + 24),
    raddr: keys.subarray(k + 24, k + 40),
    lport: keys.readUInt16LE(k + 40),
    rport: keys.readUInt16LE(k + 42),
    family: keys.readUInt16LE(k + 44),
    bytesSent: u64(values, v),
    bytesReceived: u64(values, v + 8),
    datagramsSent: u64(values, v + 16),
    datagramsReceived: u64(values, v + 24),
    firstNs: values.readBigUInt64LE(v + 32),
    lastNs: values.readBigUInt64LE(v + 40),
    pid: values.readUInt32LE(v + 48),
    egressFirst: (values.readUInt8(v + 52) & UDP_F_EGRESS_FIRST) !== 0,
    comm: readComm(values, v + 56),
  };
}
