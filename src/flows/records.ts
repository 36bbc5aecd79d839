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
  /**
   * The socket cookie (unique per socket for the boot). A number: cookies
   * count sockets created since boot, far below 2^53, and number keys make
   * the tracker's per-connection map much cheaper than bigint ones.
   */
  cookie: number;
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

/**
 * A record read in place from its packed buffer: the numbers are read at
 * once, the addresses, command and timestamp only when asked for. A walk of
 * 100k open connections needs little more than the counters of each (the
 * tracker knows the rest from when it first saw the connection), so this
 * spares a collection three allocations per socket. `pid` and `comm` can be
 * set (the owner found in /proc for a socket the kernel had none for).
 */
class PackedConnRecord implements ConnRecord {
  cookie: number;
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
  private commSet: string | undefined = undefined;

  constructor(
    private readonly buf: Buffer,
    private readonly off: number,
  ) {
    this.cookie = u64(buf, off);
    this.bytesSent = u64(buf, off + 16);
    this.bytesAcked = u64(buf, off + 24);
    this.bytesReceived = u64(buf, off + 32);
    this.bytesRetrans = u64(buf, off + 40);
    this.ino = u64(buf, off + 48);
    this.segsOut = buf.readUInt32LE(off + 56);
    this.segsIn = buf.readUInt32LE(off + 60);
    this.totalRetrans = buf.readUInt32LE(off + 64);
    this.srttUs = buf.readUInt32LE(off + 68);
    this.rttvarUs = buf.readUInt32LE(off + 72);
    this.connectUs = buf.readUInt32LE(off + 76);
    this.pid = buf.readUInt32LE(off + 80);
    this.netns = buf.readUInt32LE(off + 84);
    this.err = buf.readInt32LE(off + 88);
    this.family = buf.readUInt16LE(off + 92);
    this.sport = buf.readUInt16LE(off + 94);
    this.dport = buf.readUInt16LE(off + 96);
    this.kind = buf[off + 98] as ConnEventKind;
    this.direction = buf[off + 99] as ConnDirection;
    this.state = buf[off + 100]!;
    this.oldState = buf[off + 101]!;
    this.flags = buf[off + 102]!;
  }

  get tsNs(): bigint {
    return this.buf.readBigUInt64LE(this.off + 8);
  }

  get saddr(): Buffer {
    return this.buf.subarray(this.off + 104, this.off + 120);
  }

  get daddr(): Buffer {
    return this.buf.subarray(this.off + 120, this.off + 136);
  }

  get comm(): string {
    return this.commSet ?? readComm(this.buf, this.off + 136);
  }

  set comm(c: string) {
    this.commSet = c;
  }
}

export function decodeConnRecord(buf: Buffer, off: number): ConnRecord {
  return new PackedConnRecord(buf, off);
}

/**
 * One object that reads the record it was last moved to, straight from the
 * packed buffer: for walks of many sockets where most records are only
 * looked at (no object per record). Valid until the next moveTo(); read-only.
 */
export class ConnRecordCursor implements ConnRecord {
  private off = 0;
  /** 32-bit words of the buffer (records are 8-byte multiples), when it is 4-byte aligned: much faster reads than readUInt32LE. */
  private readonly words: Uint32Array | undefined;
  private w = 0;

  constructor(private readonly buf: Buffer) {
    this.words = buf.byteOffset % 4 === 0 ? new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2) : undefined;
  }

  /** Moves to record `i` (0-based); returns itself. */
  moveTo(i: number): this {
    this.off = i * CONN_RECORD_SIZE;
    this.w = this.off >>> 2;
    return this;
  }

  private u32(byteOff: number): number {
    return this.words ? this.words[this.w + (byteOff >>> 2)]! : this.buf.readUInt32LE(this.off + byteOff);
  }

  private u64(byteOff: number): number {
    return this.u32(byteOff) + this.u32(byteOff + 4) * 0x1_0000_0000;
  }

  get cookie(): number {
    return this.u64(0);
  }
  get tsNs(): bigint {
    return this.buf.readBigUInt64LE(this.off + 8);
  }
  get bytesSent(): number {
    return this.u64(16);
  }
  get bytesAcked(): number {
    return this.u64(24);
  }
  get bytesReceived(): number {
    return this.u64(32);
  }
  get bytesRetrans(): number {
    return this.u64(40);
  }
  get ino(): number {
    return this.u64(48);
  }
  get segsOut(): number {
    return this.u32(56);
  }
  get segsIn(): number {
    return this.u32(60);
  }
  get totalRetrans(): number {
    return this.u32(64);
  }
  get srttUs(): number {
    return this.u32(68);
  }
  get rttvarUs(): number {
    return this.u32(72);
  }
  get connectUs(): number {
    return this.u32(76);
  }
  get pid(): number {
    return this.u32(80);
  }
  get netns(): number {
    return this.u32(84);
  }
  get err(): number {
    return this.u32(88) | 0;
  }
  get family(): number {
    return this.buf.readUInt16LE(this.off + 92);
  }
  get sport(): number {
    return this.buf.readUInt16LE(this.off + 94);
  }
  get dport(): number {
    return this.buf.readUInt16LE(this.off + 96);
  }
  get kind(): ConnEventKind {
    return this.buf[this.off + 98] as ConnEventKind;
  }
  get direction(): ConnDirection {
    return this.buf[this.off + 99] as ConnDirection;
  }
  get state(): number {
    return this.buf[this.off + 100]!;
  }
  get oldState(): number {
    return this.buf[this.off + 101]!;
  }
  get flags(): number {
    return this.buf[this.off + 102]!;
  }
  get saddr(): Buffer {
    return this.buf.subarray(this.off + 104, this.off + 120);
  }
  get daddr(): Buffer {
    return this.buf.subarray(this.off + 120, this.off + 136);
  }
  get comm(): string {
    return readComm(this.buf, this.off + 136);
  }
}

/** Every whole record of a packed batch (a trailing partial record is ignored). */
export function decodeConnRecords(buf: Buffer): ConnRecord[] {
  const n = Math.floor(buf.length / CONN_RECORD_SIZE);
  const out = new Array<ConnRecord>(n);
  for (let i = 0; i < n; i++) out[i] = new PackedConnRecord(buf, i * CONN_RECORD_SIZE);
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
