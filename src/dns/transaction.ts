/**
 * One DNS query and what became of it: the unit both the metrics and (later)
 * the OTLP log records are made from. A log record per transaction carries
 * the attributes of the sample event: dns.question.name,
 * dns.question.type, dns.response_code, dns.answers, dns.latency_ms,
 * server.address/server.port, client.address, the query's timestamp and,
 * when the query's socket was attributed, process.pid and
 * process.executable.name — see `transactionLogAttributes`.
 */
import type { AttributeValue } from '../pipeline/measurements';
import { rcodeName, typeName, type DnsRecord } from './parser';

/** The process behind a DNS client socket. */
export interface SocketOwner {
  pid: number;
  /** Its executable's name (the kernel's comm of its main thread, at most 15 characters). */
  name: string;
}

export type DnsOutcome = 'response' | 'timeout';

export interface DnsEndpoint {
  address: string;
  port: number;
}

export interface DnsTransaction {
  outcome: DnsOutcome;
  transport: 'udp' | 'tcp';
  networkType: 'ipv4' | 'ipv6';
  client: DnsEndpoint;
  server: DnsEndpoint;
  id: number;
  /** Lower case; `` for a message without a question. */
  questionName: string;
  questionType: number;
  /** Kernel capture time of the query, µs since the epoch. */
  queryTimeUs: number;
  /** outcome 'response' only. */
  responseTimeUs?: number;
  latencyUs?: number;
  rcode?: number;
  /** TC bit of the response. */
  truncated?: boolean;
  answers?: DnsRecord[];
  /** The process that sent the query, when known. */
  process?: SocketOwner;
}

export interface LogAttributeOptions {
  /** Leave dns.answers out. */
  answers?: boolean;
  /** Replace names by this function's result (e.g. a keyed hash). */
  hashName?: (name: string) => string;
}

/** The attributes of the log record for one transaction. */
export function transactionLogAttributes(t: DnsTransaction, opts: LogAttributeOptions = {}): Record<string, AttributeValue> {
  const name = opts.hashName ? opts.hashName(t.questionName) : t.questionName;
  const a: Record<string, AttributeValue> = {
    'dns.question.name': name,
    'dns.question.type': typeName(t.questionType),
    'dns.id': t.id,
    'client.address': t.client.address,
    'client.port': t.client.port,
    'server.address': t.server.address,
    'server.port': t.server.port,
    'network.transport': t.transport,
    'network.type': t.networkType,
  };
  if (t.process) {
    a['process.pid'] = t.process.pid;
    a['process.executable.name'] = t.process.name;
  }
  if (t.outcome === 'timeout') a['dns.response_code'] = 'TIMEOUT';
  else {
    a['dns.response_code'] = rcodeName(t.rcode ?? 0);
    if (t.latencyUs !== undefined) a['dns.latency_ms'] = t.latencyUs / 1000;
    if (opts.answers !== false && t.answers)
      a['dns.answers'] = JSON.stringify(t.answers.map((r) => ({ name: opts.hashName ? opts.hashName(r.name) : r.name, type: typeName(r.type), ttl: r.ttl, data: r.data })));
  }
  return a;
}
