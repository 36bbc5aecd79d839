/**
 * From captured packets to DNS messages and transactions, independent of how
 * the packets were captured (the ebpf_dns receiver feeds it from the kernel,
 * tests feed it crafted packets): IP/UDP/TCP decoding, removal of capture
 * copies, TCP reassembly, parsing, query/response correlation, and the
 * address → name cache. `onPacket` never throws: what cannot be decoded is
 * counted by reason.
 */
import { CaptureDedup } from './dedup';
import { DnsCorrelator, type DnsPacketMeta } from './correlator';
import { DnsNameCache } from './name-cache';
import { decodeL4, IPPROTO_TCP, newL4Packet, type L4Packet } from './packet';
import { parseDnsMessage, RRType, type DnsMessage, type ParseFailure } from './parser';
import { TcpDnsReassembler } from './tcp-stream';
import type { DnsTransaction, SocketOwner } from './transaction';

export type MalformedReason = ParseFailure | 'not_ip' | 'internal';

export type { SocketOwner };

const EXPIRE_EVERY_PACKETS = 4096;
const EXPIRE_MARGIN_US = 1_000_000;

/**
 * Who sent a query: the owner of the socket whose packets leave from
 * `port` at the address in buf[addrOff, +4 (version 4) or +16 (version 6)),
 * as known at `tsUs` (the query's capture time, µs since the epoch).
 * Asked once per query, while the query's packet is being handled.
 */
export interface QueryOwnerLookup {
  lookup(proto: number, version: 4 | 6, buf: Buffer, addrOff: number, port: number, tsUs: number): SocketOwner | undefined;
}

export interface DnsEngineOptions {
  timeoutMs: number;
  maxInflight: number;
  maxTcpFlows: number;
  /** Follow DNS over TCP (default true). */
  tcp?: boolean;
  nameCache?: DnsNameCache;
  dedupWindowMs?: number;
  /**
   * How long capture copies are remembered (default 5 s): at least the lag
   * between the capture sockets that can see the same packet (one socket: the
   * window is enough).
   */
  dedupKeepMs?: number;
  /** Process attribution of queries (absent: none). */
  owners?: QueryOwnerLookup;
}

/** What the engine found, for whoever makes metrics or logs of it. */
export interface DnsEvents {
  /** `owner`: the process that sent it, when known. */
  query(meta: DnsPacketMeta, msg: DnsMessage, owner?: SocketOwner): void;
  /** `owner`: the process that sent the query it answers, when it was matched and known. */
  response(meta: DnsPacketMeta, msg: DnsMessage, owner?: SocketOwner): void;
  /** A query answered (with latency) or timed out. */
  transaction(t: DnsTransaction): void;
}

export interface DnsEngineStats {
  packets: number;
  messages: number;
  queries: number;
  responses: number;
  duplicates: number;
  malformed: Partial<Record<MalformedReason, number>>;
  /** Responses whose answers were cut by the capture (snap length, lost fragment): header and question still counted. */
  partial: number;
}

export class DnsEngine {
  readonly correlator: DnsCorrelator;
  readonly tcp: TcpDnsReassembler;
  readonly dedup: CaptureDedup;
  readonly nameCache?: DnsNameCache;
  readonly stats: DnsEngineStats = { packets: 0, messages: 0, queries: 0, responses: 0, duplicates: 0, malformed: {}, partial: 0 };
  private readonly l4: L4Packet = newL4Packet();
  /** The buffer `l4` was decoded from (a TCP message may be handed out from a reassembly buffer). */
  private packetBuf: Buffer = Buffer.alloc(0);
  private readonly followTcp: boolean;
  private readonly owners?: QueryOwnerLookup;
  /** Latest capture time seen, and packets since the last expiry by capture time. */
  private maxTsUs = 0;
  private sinceExpiry = 0;
  private lastError?: unknown;

  constructor(
    opts: DnsEngineOptions,
    private readonly events: DnsEvents,
  ) {
    this.correlator = new DnsCorrelator(opts.timeoutMs * 1000, opts.maxInflight, (t) => events.transaction(t));
    this.tcp = new TcpDnsReassembler(opts.maxTcpFlows);
    this.dedup = new CaptureDedup((opts.dedupWindowMs ?? 500) * 1000, 200_000, (opts.dedupKeepMs ?? 5000) * 1000);
    this.nameCache = opts.nameCache;
    this.followTcp = opts.tcp ?? true;
    this.owners = opts.owners;
  }

  /** The last unexpected error (a bug, counted as malformed `internal`); cleared when read. */
  takeLastError(): unknown {
    const e = this.lastError;
    this.lastError = undefined;
    return e;
  }

  private malformed(reason: MalformedReason): void {
    this.stats.malformed[reason] = (this.stats.malformed[reason] ?? 0) + 1;
  }

  /** One captured packet: buf[off, off + caplen), starting at its IP header. */
  onPacket(buf: Buffer, off: number, caplen: number, tsUs: number): void {
    this.stats.packets++;
    if (tsUs > this.maxTsUs) this.maxTsUs = tsUs;
    if (++this.sinceExpiry >= EXPIRE_EVERY_PACKETS) {
      // Timeouts by capture time too, not only at collections: when the agent
      // is behind (a flood), a collection can wait seconds for the capture to
      // drain, and unanswered queries would fill max_inflight meanwhile. One
      // second of margin covers capture sockets delivering a little out of step.
      this.sinceExpiry = 0;
      this.correlator.expire(this.maxTsUs - EXPIRE_MARGIN_US);
    }
    try {
      const p = this.l4;
      this.packetBuf = buf;
      if (!decodeL4(buf, off, caplen, p)) {
        this.malformed('not_ip');
        return;
      }
      if (p.proto === IPPROTO_TCP) {
        if (!this.followTcp) return;
        const key = `${p.src}|${p.sport}|${p.dst}|${p.dport}`;
        // Copies of one segment from two capture sockets can arrive after the
        // connection's FIN was handled (which forgets the flow): drop them first.
        if (this.dedup.isDuplicate(`${key}|${p.seq}|${p.flags}|${p.payloadFullLen}`, tsUs)) {
          this.stats.duplicates++;
          return;
        }
        this.tcp.onSegment(key, p.seq, p.flags, buf, p.payload, p.payloadLen, p.payloadFullLen, tsUs, (b, s, e, ts) =>
          this.message(b, s, e, ts, 'tcp', false),
        );
        return;
      }
      if (p.payloadLen < 12) {
        this.malformed('short_header');
        return;
      }
      const id = buf.readUInt16BE(p.payload);
      const qr = buf[p.payload + 2]! >> 7;
      const dupKey = `${p.src}|${p.sport}|${p.dst}|${p.dport}|${id}|${qr}|${p.payloadFullLen}`;
      if (this.dedup.isDuplicate(dupKey, tsUs)) {
        this.stats.duplicates++;
        return;
      }
      this.message(buf, p.payload, p.payload + p.payloadLen, tsUs, 'udp', p.payloadLen < p.payloadFullLen);
    } catch (e) {
      this.lastError = e;
      this.malformed('internal');
    }
  }

  private message(buf: Buffer, start: number, end: number, tsUs: number, transport: 'udp' | 'tcp', captureTruncated: boolean): void {
    this.stats.messages++;
    const qr = end - start >= 3 && (buf[start + 2]! & 0x80) !== 0;
    const res = parseDnsMessage(buf, start, end, { sections: qr ? 'answers' : 'none', captureTruncated });
    if (!res.ok) {
      this.malformed(res.error);
      return;
    }
    const msg = res.msg;
    if (msg.partial) this.stats.partial++;
    const p = this.l4;
    const meta: DnsPacketMeta = { tsUs, transport, networkType: p.networkType, src: p.src, sport: p.sport, dst: p.dst, dport: p.dport };
    if (!msg.qr) {
      this.stats.queries++;
      const owner = this.owners?.lookup(p.proto, p.version, this.packetBuf, p.srcOff, p.sport, tsUs);
      this.events.query(meta, msg, owner);
      this.correlator.query(meta, msg, owner);
      return;
    }
    this.stats.responses++;
    const t = this.correlator.response(meta, msg);
    this.events.response(meta, msg, t?.process);
    if (this.nameCache && msg.rcode === 0 && msg.questions.length > 0) {
      const qname = msg.questions[0]!.name;
      const nowMs = tsUs / 1000;
      for (const a of msg.answers) {
        if ((a.type === RRType.A || a.type === RRType.AAAA) && a.class === 1) this.nameCache.add(a.data, qname, a.ttl, nowMs);
      }
    }
  }

  /** Timeouts up to `nowUs`, and forgetting idle TCP flows. */
  expire(nowUs: number): void {
    this.correlator.expire(nowUs);
    this.tcp.expire(nowUs - 120_000_000);
  }
}
