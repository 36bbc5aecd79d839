/**
 * Decoders for the packed records of bpf/flowtel_tcp.h. The offsets here are
 * that header's layout; bpf/ asserts the struct sizes at compile time.
 */

export const CONN_RECORD_SIZE = 152;
/** struct flowtel_alive: a walk's short record of an idle connection (cookie, place among the chunk's full records, state). */
export const ALIVE_RECORD_SIZE = 16;
export const ALIVE_RECORD_OFFSETS = { cookie: 0, before: 8, state: 12 } as const;
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
  /** An open connection unchanged since its last Snapshot record: a struct flowtel_alive (ALIVE_RECORD_*), never a flowtel_conn. */
  Alive = 6,
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
  /** Kernel time (bpf_ktime_get_ns) at which the connection reached ESTABLISHED; 0n: not seen. */
  establishedNs: bigint;
  bytesSent: number;
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

/** A command name cut as the kernel keeps one: at most len - 1 characters (the last byte is its NUL). */
export function kernelComm(comm: string, len = 16): string {
  return comm.slice(0, len - 1);
}

/** A command name as the kernel keeps one: at most len - 1 bytes, NUL-padded to `len`. */
export function writeComm(buf: Buffer, off: number, comm: string, len = 16): void {
  buf.fill(0, off, off + len);
  buf.write(kernelComm(comm, len), off, 'latin1');
}

/** Sets record `i` of a packed batch's owner (pid and command), in place. */
export function writeOwner(buf: Buffer, i: number, owner: { readonly pid: number; readonly comm: string }): void {
  const off = i * CONN_RECORD_SIZE;
  buf.writeUInt32LE(owner.pid, off + CONN_RECORD_OFFSETS.pid);
  writeComm(buf, off + CONN_RECORD_OFFSETS.comm, owner.comm);
}

/** Byte offsets of struct flowtel_conn's fields (bpf/flowtel_tcp.h), the one place the decoders below take them from. */
export const CONN_RECORD_OFFSETS = {
  cookie: 0,
  tsNs: 8,
  bytesSent: 16,
  establishedNs: 24,
  bytesReceived: 32,
  bytesRetrans: 40,
  ino: 48,
  segsOut: 56,
  segsIn: 60,
  totalRetrans: 64,
  srttUs: 68,
  rttvarUs: 72,
  connectUs: 76,
  pid: 80,
  netns: 84,
  err: 88,
  family: 92,
  sport: 94,
  dport: 96,
  kind: 98,
  direction: 99,
  state: 100,
  oldState: 101,
  flags: 102,
  saddr: 104,
  daddr: 120,
  comm: 136,
} as const;
const AT = CONN_RECORD_OFFSETS;

// The numeric fields of PackedConnRecord: declared once (by ConnRecord), set in its constructor.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
interface PackedConnRecord extends Omit<ConnRecord, 'tsNs' | 'establishedNs' | 'saddr' | 'daddr' | 'comm'> {}

/**
 * A record decoded from its packed buffer (ring-buffer events, and the
 * connections a walk sees for the first time): the numbers are read at
 * once, the addresses, command and timestamp only when asked for, which
 * spares most records three allocations. `pid` and `comm` can be set (the
 * owner found in /proc for a socket the kernel had none for).
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
class PackedConnRecord implements ConnRecord {
  private commSet: string | undefined = undefined;

  constructor(
    private readonly buf: Buffer,
    private readonly off: number,
  ) {
    this.cookie = u64(buf, off + AT.cookie);
    this.bytesSent = u64(buf, off + AT.bytesSent);
    this.bytesReceived = u64(buf, off + AT.bytesReceived);
    this.bytesRetrans = u64(buf, off + AT.bytesRetrans);
    this.ino = u64(buf, off + AT.ino);
    this.segsOut = buf.readUInt32LE(off + AT.segsOut);
    this.segsIn = buf.readUInt32LE(off + AT.segsIn);
    this.totalRetrans = buf.readUInt32LE(off + AT.totalRetrans);
    this.srttUs = buf.readUInt32LE(off + AT.srttUs);
    this.rttvarUs = buf.readUInt32LE(off + AT.rttvarUs);
    this.connectUs = buf.readUInt32LE(off + AT.connectUs);
    this.pid = buf.readUInt32LE(off + AT.pid);
    this.netns = buf.readUInt32LE(off + AT.netns);
    this.err = buf.readInt32LE(off + AT.err);
    this.family = buf.readUInt16LE(off + AT.family);
    this.sport = buf.readUInt16LE(off + AT.sport);
    this.dport = buf.readUInt16LE(off + AT.dport);
    this.kind = buf[off + AT.kind] as ConnEventKind;
    this.direction = buf[off + AT.direction] as ConnDirection;
    this.state = buf[off + AT.state]!;
    this.oldState = buf[off + AT.oldState]!;
    this.flags = buf[off + AT.flags]!;
  }

  get tsNs(): bigint {
    return this.buf.readBigUInt64LE(this.off + AT.tsNs);
  }

  get establishedNs(): bigint {
    return this.buf.readBigUInt64LE(this.off + AT.establishedNs);
  }

  get saddr(): Buffer {
    return this.buf.subarray(this.off + AT.saddr, this.off + AT.daddr);
  }

  get daddr(): Buffer {
    return this.buf.subarray(this.off + AT.daddr, this.off + AT.comm);
  }

  get comm(): string {
    return this.commSet ?? readComm(this.buf, this.off + AT.comm);
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

  /** The buffer as 32-bit words, when it is 4-byte aligned (else undefined); the record's first word is `wordIndex`. */
  get alignedWords(): Uint32Array | undefined {
    return this.words;
  }

  get wordIndex(): number {
    return this.w;
  }

  private u32(byteOff: number): number {
    return this.words ? this.words[this.w + (byteOff >>> 2)]! : this.buf.readUInt32LE(this.off + byteOff);
  }

  private u64(byteOff: number): number {
    return this.u32(byteOff) + this.u32(byteOff + 4) * 0x1_0000_0000;
  }

  get cookie(): number {
    return this.u64(AT.cookie);
  }
  get tsNs(): bigint {
    return this.buf.readBigUInt64LE(this.off + AT.tsNs);
  }
  get bytesSent(): number {
    return this.u64(AT.bytesSent);
  }
  get establishedNs(): bigint {
    return this.buf.readBigUInt64LE(this.off + AT.establishedNs);
  }
  get bytesReceived(): number {
    return this.u64(AT.bytesReceived);
  }
  get bytesRetrans(): number {
    return this.u64(AT.bytesRetrans);
  }
  get ino(): number {
    return this.u64(AT.ino);
  }
  get segsOut(): number {
    return this.u32(AT.segsOut);
  }
  get segsIn(): number {
    return this.u32(AT.segsIn);
  }
  get totalRetrans(): number {
    return this.u32(AT.totalRetrans);
  }
  get srttUs(): number {
    return this.u32(AT.srttUs);
  }
  get rttvarUs(): number {
    return this.u32(AT.rttvarUs);
  }
  get connectUs(): number {
    return this.u32(AT.connectUs);
  }
  get pid(): number {
    return this.u32(AT.pid);
  }
  get netns(): number {
    return this.u32(AT.netns);
  }
  get err(): number {
    return this.u32(AT.err) | 0;
  }
  get family(): number {
    return this.buf.readUInt16LE(this.off + AT.family);
  }
  get sport(): number {
    return this.buf.readUInt16LE(this.off + AT.sport);
  }
  get dport(): number {
    return this.buf.readUInt16LE(this.off + AT.dport);
  }
  get kind(): ConnEventKind {
    return this.buf[this.off + AT.kind] as ConnEventKind;
  }
  get direction(): ConnDirection {
    return this.buf[this.off + AT.direction] as ConnDirection;
  }
  get state(): number {
    return this.buf[this.off + AT.state]!;
  }
  get oldState(): number {
    return this.buf[this.off + AT.oldState]!;
  }
  get flags(): number {
    return this.buf[this.off + AT.flags]!;
  }
  get saddr(): Buffer {
    return this.buf.subarray(this.off + AT.saddr, this.off + AT.daddr);
  }
  get daddr(): Buffer {
    return this.buf.subarray(this.off + AT.daddr, this.off + AT.comm);
  }
  get comm(): string {
    return readComm(this.buf, this.off + AT.comm);
  }
}

/**
 * Writes a record at `off` as the kernel lays it out (the inverse of the
 * decoders): for tests and benchmarks that replay kernel output.
 */
export function encodeConnRecord(rec: ConnRecord, buf: Buffer, off: number): void {
  buf.fill(0, off, off + CONN_RECORD_SIZE);
  const u64 = (at: number, v: number | bigint): void => void buf.writeBigUInt64LE(BigInt(v), off + at);
  u64(AT.cookie, rec.cookie);
  u64(AT.tsNs, rec.tsNs);
  u64(AT.establishedNs, rec.establishedNs);
  u64(AT.bytesSent, rec.bytesSent);
  u64(AT.bytesReceived, rec.bytesReceived);
  u64(AT.bytesRetrans, rec.bytesRetrans);
  u64(AT.ino, rec.ino);
  buf.writeUInt32LE(rec.segsOut, off + AT.segsOut);
  buf.writeUInt32LE(rec.segsIn, off + AT.segsIn);
  buf.writeUInt32LE(rec.totalRetrans, off + AT.totalRetrans);
  buf.writeUInt32LE(rec.srttUs, off + AT.srttUs);
  buf.writeUInt32LE(rec.rttvarUs, off + AT.rttvarUs);
  buf.writeUInt32LE(rec.connectUs, off + AT.connectUs);
  buf.writeUInt32LE(rec.pid, off + AT.pid);
  buf.writeUInt32LE(rec.netns, off + AT.netns);
  buf.writeInt32LE(rec.err, off + AT.err);
  buf.writeUInt16LE(rec.family, off + AT.family);
  buf.writeUInt16LE(rec.sport, off + AT.sport);
  buf.writeUInt16LE(rec.dport, off + AT.dport);
  buf[off + AT.kind] = rec.kind;
  buf[off + AT.direction] = rec.direction;
  buf[off + AT.state] = rec.state;
  buf[off + AT.oldState] = rec.oldState;
  buf[off + AT.flags] = rec.flags;
  rec.saddr.copy(buf, off + AT.saddr, 0, 16);
  rec.daddr.copy(buf, off + AT.daddr, 0, 16);
  writeComm(buf, off + AT.comm, rec.comm);
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
