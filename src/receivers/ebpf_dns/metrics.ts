/**
 * DNS events → measurements: per attribute set, counts of queries, responses
 * and timeouts since the last collection, and a latency sample per answered
 * query (a series' samples in one measurement).
 */
import { LATENCY_BUCKETS_US, registerMetric } from '../../metrics/definitions';
import type { FlowAttributes, Measurement } from '../../pipeline/measurements';
import type { DnsPacketMeta } from '../../dns/correlator';
import type { DnsEvents } from '../../dns/engine';
import { rcodeName, typeName, type DnsMessage } from '../../dns/parser';
import { OTHER, TopNames } from '../../dns/top-names';
import type { DnsTransaction, SocketOwner } from '../../dns/transaction';

export const DNS_METRICS = [
  { name: 'dns_queries', kind: 'counter', unit: '{query}', description: 'DNS queries seen (sent or received by this host), each packet once, by question, server and transport.' },
  { name: 'dns_responses', kind: 'counter', unit: '{response}', description: 'DNS responses seen, by dns.response_code (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, …), question, server and transport.' },
  { name: 'dns_timeouts', kind: 'counter', unit: '{query}', description: 'DNS queries with no response within the receiver\'s query_timeout.' },
  { name: 'dns_latency_us', kind: 'histogram', unit: 'us', description: 'Time from a DNS query to its response, from kernel capture timestamps.', buckets: LATENCY_BUCKETS_US },
  // Self-telemetry
  { name: 'flowtel_dns_capture_packets', kind: 'counter', unit: '{packet}', description: 'Packets the DNS socket filter passed to the agent (PACKET_STATISTICS tp_packets), including those dropped.' },
  { name: 'flowtel_dns_capture_drops', kind: 'counter', unit: '{packet}', description: 'DNS packets lost because a capture ring was full (PACKET_STATISTICS tp_drops): raise ring_buffer_size.' },
  { name: 'flowtel_dns_malformed', kind: 'counter', unit: '{packet}', description: 'Captured DNS packets or messages that could not be decoded, by reason; they are skipped.' },
  { name: 'flowtel_dns_dropped', kind: 'counter', unit: '{event}', description: 'What the DNS receiver could not track, by reason: inflight_full, tcp_gap, tcp_flows_full, ip_fragment, owner_storage (a DNS client socket whose process could not be recorded).' },
  { name: 'flowtel_dns_duplicates', kind: 'counter', unit: '{packet}', description: 'DNS packets captured twice (on two interfaces or namespaces) and counted once.' },
  { name: 'flowtel_dns_unmatched_responses', kind: 'counter', unit: '{response}', description: 'DNS responses with no waiting query (sent before the agent started, after its timeout, or not tracked).' },
  { name: 'flowtel_dns_inflight_queries', kind: 'gauge', unit: '{query}', description: 'DNS queries waiting for their response at the last collection.' },
  { name: 'flowtel_dns_name_cache_entries', kind: 'gauge', unit: '{address}', description: 'Addresses in the DNS IP → name cache.' },
] as const;

for (const d of DNS_METRICS) registerMetric(d);

const ATTR_CACHE_MAX = 20_000;

export class DnsMetrics implements DnsEvents {
  private readonly top: TopNames;
  private readonly attrs = new Map<string, FlowAttributes>();
  private queries = new Map<FlowAttributes, number>();
  private responses = new Map<FlowAttributes, number>();
  private timeouts = new Map<FlowAttributes, number>();
  /** Latency samples per series, as plain numbers: one measurement per series at the collection (see Measurement.samples). */
  private latency = new Map<FlowAttributes, number[]>();

  constructor(
    topNames: number,
    private readonly onTransaction?: (t: DnsTransaction) => void,
  ) {
    this.top = new TopNames(topNames);
  }

  /** The shared attribute object of one series (processors cache per object). */
  private attributes(qtype: number | undefined, qname: string | undefined, server: string, transport: string, rcode: number | undefined, owner: SocketOwner | undefined): FlowAttributes {
    const process = owner?.name;
    const key = `${qtype}|${qname}|${server}|${transport}|${rcode}|${process}`;
    let a = this.attrs.get(key);
    if (!a) {
      if (this.attrs.size >= ATTR_CACHE_MAX) this.attrs.clear();
      a = { 'server.address': server, 'network.transport': transport };
      if (qtype !== undefined) a['dns.question.type'] = typeName(qtype);
      if (qname !== undefined) a['dns.question.name'] = qname;
      if (rcode !== undefined) a['dns.response_code'] = rcodeName(rcode);
      if (process !== undefined) a['process.executable.name'] = process;
      this.attrs.set(key, a);
    }
    return a;
  }

  private name(name: string, count: boolean): string {
    if (count) return this.top.label(name);
    return this.top.keptNames.has(name) ? name : OTHER;
  }

  query(meta: DnsPacketMeta, msg: DnsMessage, owner?: SocketOwner): void {
    const q = msg.questions[0];
    const a = this.attributes(q?.type, q && this.name(q.name, true), meta.dst, meta.transport, undefined, owner);
    this.queries.set(a, (this.queries.get(a) ?? 0) + 1);
  }

  response(meta: DnsPacketMeta, msg: DnsMessage, owner?: SocketOwner): void {
    const q = msg.questions[0];
    const a = this.attributes(q?.type, q && this.name(q.name, false), meta.src, meta.transport, msg.rcode, owner);
    this.responses.set(a, (this.responses.get(a) ?? 0) + 1);
  }

  transaction(t: DnsTransaction): void {
    const hasQ = t.questionName !== '';
    const a = this.attributes(hasQ ? t.questionType : undefined, hasQ ? this.name(t.questionName, false) : undefined, t.server.address, t.transport, undefined, t.process);
    if (t.outcome === 'timeout') this.timeouts.set(a, (this.timeouts.get(a) ?? 0) + 1);
    else if (t.latencyUs !== undefined) {
      const samples = this.latency.get(a);
      if (samples) samples.push(t.latencyUs);
      else this.latency.set(a, [t.latencyUs]);
    }
    this.onTransaction?.(t);
  }

  /** Everything since the last call. */
  collect(): Measurement[] {
    const out: Measurement[] = [];
    for (const [attributes, samples] of this.latency) out.push({ metric: 'dns_latency_us', value: 0, attributes, samples });
    const counts: Array<[string, Map<FlowAttributes, number>]> = [
      ['dns_queries', this.queries],
      ['dns_responses', this.responses],
      ['dns_timeouts', this.timeouts],
    ];
    this.queries = new Map();
    this.responses = new Map();
    this.timeouts = new Map();
    this.latency = new Map();
    this.top.rotate();
    for (const [metric, m] of counts) for (const [attributes, value] of m) out.push({ metric, value, attributes });
    return out;
  }

}
