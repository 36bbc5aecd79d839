/**
 * Matches responses to queries by (client address, client port, server
 * address, transaction id, question), keeps at most `maxInflight` queries
 * waiting (more are counted and not tracked), and turns queries with no
 * response after `timeoutUs` into timeouts. Times are kernel capture times
 * (µs since the epoch), so latency does not include the agent's own delays.
 */
import type { DnsMessage } from './parser';
import type { DnsTransaction, SocketOwner } from './transaction';

export interface DnsPacketMeta {
  tsUs: number;
  transport: 'udp' | 'tcp';
  networkType: 'ipv4' | 'ipv6';
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

interface Pending {
  tsUs: number;
  transport: 'udp' | 'tcp';
  networkType: 'ipv4' | 'ipv6';
  client: string;
  cport: number;
  server: string;
  sport: number;
  id: number;
  qname: string;
  qtype: number;
  process?: SocketOwner;
}

export interface CorrelatorStats {
  /** Queries not tracked because maxInflight were waiting. */
  overflow: number;
  /** Responses with no waiting query (its query was before the agent started, timed out, or was not tracked). */
  unmatched: number;
  /** Queries whose key was already waiting (a client retry with the same id and port): the first is kept. */
  retries: number;
}

export class DnsCorrelator {
  // Insertion order is query time order (captures are delivered in order per
  // socket; a little disorder across sockets only delays a timeout).
  private readonly inflight = new Map<string, Pending>();
  readonly stats: CorrelatorStats = { overflow: 0, unmatched: 0, retries: 0 };

  constructor(
    private readonly timeoutUs: number,
    private readonly maxInflight: number,
    private readonly emit: (t: DnsTransaction) => void,
  ) {}

  get size(): number {
    return this.inflight.size;
  }

  private static key(client: string, cport: number, server: string, id: number, qname: string, qtype: number, transport: string): string {
    return `${transport}|${client}|${cport}|${server}|${id}|${qtype}|${qname}`;
  }

  query(m: DnsPacketMeta, msg: DnsMessage, process?: SocketOwner): void {
    const q = msg.questions[0];
    const qname = q?.name ?? '';
    const qtype = q?.type ?? 0;
    const key = DnsCorrelator.key(m.src, m.sport, m.dst, msg.id, qname, qtype, m.transport);
    if (this.inflight.has(key)) {
      this.stats.retries++;
      return;
    }
    if (this.inflight.size >= this.maxInflight) {
      this.stats.overflow++;
      return;
    }
    this.inflight.set(key, {
      tsUs: m.tsUs,
      transport: m.transport,
      networkType: m.networkType,
      client: m.src,
      cport: m.sport,
      server: m.dst,
      sport: m.dport,
      id: msg.id,
      qname,
      qtype,
      ...(process ? { process } : {}),
    });
  }

  /** A response; returns the transaction if it matched a query. */
  response(m: DnsPacketMeta, msg: DnsMessage): DnsTransaction | undefined {
    const q = msg.questions[0];
    const key = DnsCorrelator.key(m.dst, m.dport, m.src, msg.id, q?.name ?? '', q?.type ?? 0, m.transport);
    const p = this.inflight.get(key);
    if (!p) {
      this.stats.unmatched++;
      return undefined;
    }
    this.inflight.delete(key);
    const t: DnsTransaction = {
      outcome: 'response',
      transport: p.transport,
      networkType: p.networkType,
      client: { address: p.client, port: p.cport },
      server: { address: p.server, port: p.sport },
      id: p.id,
      questionName: p.qname,
      questionType: p.qtype,
      queryTimeUs: p.tsUs,
      responseTimeUs: m.tsUs,
      latencyUs: Math.max(0, m.tsUs - p.tsUs),
      rcode: msg.rcode,
      truncated: msg.tc,
      answers: msg.answers,
      ...(p.process ? { process: p.process } : {}),
    };
    this.emit(t);
    return t;
  }

  /** Queries sent before `nowUs - timeout` with no response become timeouts. */
  expire(nowUs: number): void {
    const limit = nowUs - this.timeoutUs;
    for (const [k, p] of this.inflight) {
      if (p.tsUs > limit) continue;
      this.inflight.delete(k);
      this.emit({
        outcome: 'timeout',
        transport: p.transport,
        networkType: p.networkType,
        client: { address: p.client, port: p.cport },
        server: { address: p.server, port: p.sport },
        id: p.id,
        questionName: p.qname,
        questionType: p.qtype,
        queryTimeUs: p.tsUs,
        ...(p.process ? { process: p.process } : {}),
      });
    }
  }
}
