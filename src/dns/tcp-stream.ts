/**
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message is prefixed with
 * its 2-byte length; one segment may carry several messages, and one message
 * may span segments. Per direction of each connection we track the next
 * sequence number and the bytes of an unfinished message (at most 64 KiB + 2).
 *
 * Whole messages inside one segment are handed out as views of the packet
 * (no copy); only a message split across segments is assembled in a buffer.
 * Duplicate segments (a retransmission, or the same packet captured on two
 * interfaces) are recognised by sequence number and ignored. After a gap (a
 * segment lost to the capture) the flow restarts at the next segment and
 * assumes it begins a message; a wrong guess shows up as malformed messages.
 */

export interface TcpStreamStats {
  /** Segments whose data had already been seen (retransmissions, second captures). */
  duplicateSegments: number;
  /** Data missing in a stream (capture loss or a segment cut by the snap length): the partial message is dropped. */
  gaps: number;
  /** Flows dropped because max_tcp_flows were tracked. */
  flowsEvicted: number;
  /** A length prefix of 0: not a DNS stream, or out of step. */
  badLength: number;
}

interface Flow {
  nextSeq: number;
  /** Unfinished message bytes (with their length prefix). */
  pending?: Buffer;
  pendingLen: number;
  lastUs: number;
}

export type MessageSink = (buf: Buffer, start: number, end: number, tsUs: number) => void;

const MAX_PENDING = 65535 + 2;

export class TcpDnsReassembler {
  private readonly flows = new Map<string, Flow>();
  readonly stats: TcpStreamStats = { duplicateSegments: 0, gaps: 0, flowsEvicted: 0, badLength: 0 };

  constructor(private readonly maxFlows = 4096) {}

  get size(): number {
    return this.flows.size;
  }

  /**
   * One captured segment of the flow `key` (one direction of a connection).
   * `captured` < `full` when the capture cut the segment short.
   */
  onSegment(key: string, seq: number, flags: number, buf: Buffer, payload: number, captured: number, full: number, tsUs: number, emit: MessageSink): void {
    let flow = this.flows.get(key);
    if (flags & 0x02 /* SYN */) {
      // A new connection (or its retransmitted SYN): data starts at seq + 1.
      if (!flow) flow = this.add(key, (seq + 1) >>> 0, tsUs);
      else if (flow.pendingLen === 0) flow.nextSeq = (seq + 1) >>> 0;
      seq = (seq + 1) >>> 0;
    }
    if (full > 0) {
      if (!flow) flow = this.add(key, seq, tsUs);
      flow.lastUs = tsUs;
      this.data(flow, seq, buf, payload, captured, full, tsUs, emit);
    }
    if (flags & 0x05 /* FIN | RST */) this.flows.delete(key);
  }

  private add(key: string, nextSeq: number, tsUs: number): Flow {
    if (this.flows.size >= this.maxFlows) {
      const oldest = this.flows.keys().next().value as string;
      this.flows.delete(oldest);
      this.stats.flowsEvicted++;
    }
    const f: Flow = { nextSeq, pendingLen: 0, lastUs: tsUs };
    this.flows.set(key, f);
    return f;
  }

  private data(flow: Flow, seq: number, buf: Buffer, payload: number, captured: number, full: number, tsUs: number, emit: MessageSink): void {
    const d = (seq - flow.nextSeq) | 0;
    if (d > 0) {
      // Bytes before this segment never arrived: drop what we had, resync here.
      this.stats.gaps++;
      flow.pendingLen = 0;
    } else if (d < 0) {
      if (-d >= full) {
        this.stats.duplicateSegments++;
        return;
      }
      // Overlap: keep the new tail only.
      payload += -d;
      captured += d;
      full += d;
      seq = flow.nextSeq;
    }
    flow.nextSeq = (seq + full) >>> 0;
    if (captured < full) {
      // Cut by the snap length: the stream has a hole after the captured bytes.
      // Messages wholly inside the captured part are still good.
      const usable = Math.max(0, captured);
      if (flow.pendingLen === 0) this.extract(buf, payload, payload + usable, tsUs, emit, flow, false);
      flow.pendingLen = 0;
      this.stats.gaps++;
      return;
    }
    if (flow.pendingLen === 0) {
      this.extract(buf, payload, payload + full, tsUs, emit, flow, true);
      return;
    }
    // Continue an unfinished message.
    let pend = flow.pending!;
    let p = payload;
    const end = payload + full;
    // Complete the length prefix first if we only had one byte of it.
    while (flow.pendingLen < 2 && p < end) pend[flow.pendingLen++] = buf[p++]!;
    if (flow.pendingLen < 2) return;
    const want = 2 + pend.readUInt16BE(0);
    if (pend.length < want) {
      const bigger = Buffer.allocUnsafe(want);
      pend.copy(bigger, 0, 0, flow.pendingLen);
      pend = flow.pending = bigger;
    }
    const take = Math.min(want - flow.pendingLen, end - p);
    buf.copy(pend, flow.pendingLen, p, p + take);
    flow.pendingLen += take;
    p += take;
    if (flow.pendingLen < want) return;
    flow.pendingLen = 0;
    flow.pending = undefined;
    if (want === 2) this.stats.badLength++;
    else emit(pend, 2, want, tsUs);
    this.extract(buf, p, end, tsUs, emit, flow, true);
  }

  /** Hand out whole messages in buf[p, end); keep a trailing partial one if `keep`. */
  private extract(buf: Buffer, p: number, end: number, tsUs: number, emit: MessageSink, flow: Flow, keep: boolean): void {
    while (end - p >= 2) {
      const len = buf.readUInt16BE(p);
      if (len === 0) {
        this.stats.badLength++;
        p += 2;
        continue;
      }
      if (end - p < 2 + len) break;
      emit(buf, p + 2, p + 2 + len, tsUs);
      p += 2 + len;
    }
    if (keep && p < end) {
      // Sized for this message (the length prefix says how big it will be).
      const want = end - p >= 2 ? 2 + buf.readUInt16BE(p) : 2;
      flow.pending = Buffer.allocUnsafe(Math.min(want, MAX_PENDING));
      buf.copy(flow.pending, 0, p, end);
      flow.pendingLen = end - p;
    }
  }

  /** Forget flows idle since before `beforeUs` (connections whose FIN/RST we never saw). */
  expire(beforeUs: number): void {
    for (const [k, f] of this.flows) if (f.lastUs < beforeUs) this.flows.delete(k);
  }
}
