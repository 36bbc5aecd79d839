/**
 * `log_records`: one OTLP log record per DNS query and its response
 * (`flowtel.dns.query`) and per query that timed out (`flowtel.dns.timeout`),
 * with the attributes of the reference sample DNS event
 * (transactionLogAttributes: dns.question.name, dns.question.type,
 * dns.response_code, dns.answers, dns.latency_ms, server.address/port,
 * client.address/port, …), timestamped with the query's kernel capture time.
 *
 * Severity: INFO for NOERROR and NXDOMAIN (an answer), WARN for every other
 * response code (SERVFAIL, REFUSED, …) and for timeouts.
 */
import { createHash, createHmac } from 'node:crypto';
import { Severity, type LogRecordData } from '../../pipeline/logs';
import type { FlowAttributes } from '../../pipeline/measurements';
import { rcodeName, typeName } from '../../dns/parser';
import { transactionLogAttributes, type DnsTransaction, type LogAttributeOptions } from '../../dns/transaction';

export const DNS_QUERY_EVENT = 'flowtel.dns.query';
export const DNS_TIMEOUT_EVENT = 'flowtel.dns.timeout';

export interface DnsLogOptions {
  /** Include dns.answers. */
  readonly answers: boolean;
  /** Replace question and answer names by their SHA-256 (HMAC-SHA256 with `hashKey`), in hex. */
  readonly hashNames: boolean;
  readonly hashKey?: string;
}

/** Answers shown in the body at most (all are in dns.answers). */
const BODY_ANSWERS = 4;

export function nameHasher(key?: string): (name: string) => string {
  return (name) => (key === undefined ? createHash('sha256') : createHmac('sha256', key)).update(name, 'utf8').digest('hex');
}

function endpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The log record of one transaction; `hash` is nameHasher() when names are hashed. */
export function dnsTransactionRecord(t: DnsTransaction, opts: DnsLogOptions, hash?: (name: string) => string): LogRecordData {
  const attrOpts: LogAttributeOptions = { answers: opts.answers, ...(opts.hashNames && hash ? { hashName: hash } : {}) };
  const attributes = transactionLogAttributes(t, attrOpts) as FlowAttributes;
  const hashing = opts.hashNames && hash !== undefined;
  // Hashed names: the data of answers other than A/AAAA (CNAME targets, MX and SRV hosts, TXT, …) is hashed too.
  const shownData = (type: number, data: string): string => (hashing && type !== 1 && type !== 28 ? hash(data) : data);
  if (hashing && opts.answers && t.outcome === 'response' && t.answers) {
    attributes['dns.answers'] = JSON.stringify(t.answers.map((r) => ({ name: hash(r.name), type: typeName(r.type), ttl: r.ttl, data: shownData(r.type, r.data) })));
  }
  const name = typeof attributes['dns.question.name'] === 'string' ? (attributes['dns.question.name'] as string) : t.questionName;
  const qtype = typeName(t.questionType);
  const path = `${t.transport} ${endpoint(t.client.address, t.client.port)} → ${endpoint(t.server.address, t.server.port)}`;
  let body: string;
  let severity: number;
  if (t.outcome === 'timeout') {
    body = `DNS ${qtype} ${name || '(no question)'}: no response (timeout) (${path})`;
    severity = Severity.WARN;
  } else {
    const rcode = rcodeName(t.rcode ?? 0);
    const latency = t.latencyUs !== undefined ? ` in ${t.latencyUs / 1000} ms` : '';
    let answers = '';
    if (opts.answers && t.answers && t.answers.length > 0) {
      const shown = t.answers.slice(0, BODY_ANSWERS).map((r) => `${typeName(r.type)} ${shownData(r.type, r.data)}`);
      answers = `: ${shown.join(', ')}${t.answers.length > BODY_ANSWERS ? `, … (${t.answers.length} answers)` : ''}`;
    }
    body = `DNS ${qtype} ${name || '(no question)'} → ${rcode}${latency}${answers} (${path})`;
    severity = rcode === 'NOERROR' || rcode === 'NXDOMAIN' ? Severity.INFO : Severity.WARN;
  }
  return {
    timeMs: t.queryTimeUs / 1000,
    severityNumber: severity,
    severityText: severity === Severity.WARN ? 'WARN' : 'INFO',
    body,
    eventName: t.outcome === 'timeout' ? DNS_TIMEOUT_EVENT : DNS_QUERY_EVENT,
    attributes,
  };
}
