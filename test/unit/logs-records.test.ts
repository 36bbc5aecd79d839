/**
 * Log records as receivers make them and exporters encode them: ebpf_tcp
 * connection events (from the tracker's kernel records), ebpf_dns
 * transactions, and the OTLP protobuf of a batch decoded with the test's own
 * decoder (official field numbers).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { TcpConnectionTracker } from '../../src/flows/tcp-tracker';
import { ConnEventKind, ConnFlags, type ConnRecord } from '../../src/flows/records';
import { connectionEventRecord, KtimeClock, TCP_CONNECTION_CLOSED, TCP_CONNECTION_FAILED } from '../../src/receivers/ebpf_tcp/events';
import { dnsTransactionRecord, DNS_QUERY_EVENT, DNS_TIMEOUT_EVENT, nameHasher } from '../../src/receivers/ebpf_dns/logs';
import type { DnsTransaction } from '../../src/dns/transaction';
import { toReadableLogRecords } from '../../src/exporters/logs/records';
import { formatLogLine } from '../../src/exporters/logs/format';
import { Severity, type LogRecordData } from '../../src/pipeline/logs';
import { ebpfTcpReceiverFactory } from '../../src/receivers/ebpf_tcp/factory';
import { ebpfDnsReceiverFactory } from '../../src/receivers/ebpf_dns/factory';
import { decodeExportLogsServiceRequest } from '../helpers/otlp-proto';
import { connRecord } from '../helpers/conn-record';
import { flattenLogRecords } from '../helpers/otlp-receiver';

const ECONNREFUSED = 111;
const ECONNRESET = 104;
let cookie = 1;

function rec(over: Partial<ConnRecord> = {}): ConnRecord {
  return connRecord({ cookie, ...over });
}

/** Wall clock 1_700_000_000_000 ms when the monotonic clock reads 5 s. */
const clock = new KtimeClock(() => 1_700_000_000_000, () => 5_000_000_000n);

test('KtimeClock: kernel monotonic ns to wall-clock ms with one offset', () => {
  assert.equal(clock.toEpochMs(5_000_000_000n), 1_700_000_000_000);
  assert.equal(clock.toEpochMs(6_500_250_000n), 1_700_000_001_500.25);
  // The real one: hrtime and Date.now() agree to within a few ms.
  const real = new KtimeClock();
  assert.ok(Math.abs(real.toEpochMs(process.hrtime.bigint()) - Date.now()) < 5);
});

test('a refused connect: one connection_failed record, WARN, flow attributes, both ports, error.type, state before', () => {
  const t = new TcpConnectionTracker({ events: { failures: true, closed: false } });
  t.onSnapshot([]);
  t.onEvent(rec({ cookie: ++cookie, kind: ConnEventKind.Failed, err: ECONNREFUSED, state: 7, oldState: 2, tsNs: 5_010_000_000n }));
  const events = t.takeEvents();
  assert.equal(events.length, 1);
  assert.deepEqual(t.takeEvents(), [], 'taken once');
  const r = connectionEventRecord(events[0]!, clock);
  assert.equal(r.eventName, TCP_CONNECTION_FAILED);
  assert.equal(r.severityNumber, Severity.WARN);
  assert.equal(r.severityText, 'WARN');
  assert.equal(r.timeMs, 1_700_000_000_010);
  assert.deepEqual(r.attributes, {
    'network.transport': 'tcp',
    'network.type': 'ipv4',
    'source.address': '10.0.0.1',
    'destination.address': '10.0.0.2',
    'flow.direction': 'outgoing',
    'destination.port': 443,
    'process.pid': 42,
    'process.executable.name': 'curl',
    'source.port': 40000,
    'error.type': 'refused',
    'network.connection.state': 'syn_sent',
  });
  assert.equal(r.body, 'tcp 10.0.0.1:40000 → 10.0.0.2:443 (outgoing) connection failed: refused in syn_sent [curl 42]');
  // The metric is still counted as before.
  assert.equal(t.collect(0).measurements.filter((m) => m.metric === 'tcp_connection_failures').length, 1);
});

test('closes: a reset is a failure (with its counters); a normal close only with closed: true; none without events', () => {
  const both = new TcpConnectionTracker({ events: { failures: true, closed: true } });
  const failuresOnly = new TcpConnectionTracker({ events: { failures: true, closed: false } });
  const none = new TcpConnectionTracker();
  for (const t of [both, failuresOnly, none]) {
    t.onSnapshot([]);
    const c1 = ++cookie;
    t.onEvent(rec({ cookie: c1, kind: ConnEventKind.Close, establishedNs: 5_000_000_000n, tsNs: 5_250_000_000n, state: 7, oldState: 8, bytesSent: 1000, bytesReceived: 501, flags: ConnFlags.FinReceived, totalRetrans: 2, srttUs: 321 }));
    const c2 = ++cookie;
    t.onEvent(rec({ cookie: c2, kind: ConnEventKind.Close, establishedNs: 5_000_000_000n, tsNs: 5_100_000_000n, state: 7, oldState: 1, bytesSent: 10, flags: ConnFlags.RstReceived, err: ECONNRESET }));
  }
  assert.deepEqual(none.takeEvents(), []);
  const f = failuresOnly.takeEvents();
  assert.deepEqual(f.map((e) => [e.kind, e.errorType]), [['failed', 'reset']]);
  const [closed, reset] = both.takeEvents().map((e) => connectionEventRecord(e, clock));
  assert.equal(closed!.eventName, TCP_CONNECTION_CLOSED);
  assert.equal(closed!.severityNumber, Severity.INFO);
  assert.equal(closed!.attributes['tcp.bytes_sent'], 1000);
  assert.equal(closed!.attributes['tcp.bytes_received'], 500, 'the FIN is not payload');
  assert.equal(closed!.attributes['tcp.retransmits'], 2);
  assert.equal(closed!.attributes['tcp.rtt_us'], 321);
  assert.equal(closed!.attributes['tcp.duration_ms'], 250);
  assert.equal(closed!.attributes['network.connection.state'], 'close_wait');
  assert.equal(closed!.attributes['error.type'], undefined);
  assert.equal(reset!.eventName, TCP_CONNECTION_FAILED);
  assert.equal(reset!.attributes['error.type'], 'reset');
  assert.equal(reset!.attributes['network.connection.state'], 'established');
  assert.equal(reset!.attributes['tcp.duration_ms'], 100);
  assert.match(reset!.body, /connection failed: reset in established: sent 10 B/);
});

test('ebpf_tcp connection_events option: defaults failures on, closed off', () => {
  assert.deepEqual(ebpfTcpReceiverFactory.defaultConfig().connection_events, { failures: true, closed: false });
  assert.deepEqual(ebpfTcpReceiverFactory.validate({ connection_events: { closed: true } }, 'receivers.ebpf_tcp').connection_events, { failures: true, closed: true });
  assert.throws(() => ebpfTcpReceiverFactory.validate({ connection_events: { failure: true } }, 'receivers.ebpf_tcp'), /connection_events\.failure.*failures/s);
  assert.deepEqual(ebpfTcpReceiverFactory.signals, ['metrics', 'logs']);
});

const tx = (over: Partial<DnsTransaction> = {}): DnsTransaction => ({
  outcome: 'response',
  transport: 'udp',
  networkType: 'ipv4',
  client: { address: '10.0.0.1', port: 40001 },
  server: { address: '10.0.0.2', port: 53 },
  id: 4660,
  questionName: 'api.example.com',
  questionType: 1,
  queryTimeUs: 1_705_314_600_123_000,
  responseTimeUs: 1_705_314_600_125_500,
  latencyUs: 2500,
  rcode: 0,
  answers: [
    { name: 'api.example.com', type: 1, class: 1, ttl: 60, data: '10.0.1.100' },
    { name: 'api.example.com', type: 1, class: 1, ttl: 60, data: '10.0.1.101' },
  ],
  ...over,
});

test('a DNS query and its response: the sample event\'s attributes, the query\'s time, INFO', () => {
  const r = dnsTransactionRecord(tx(), { answers: true, hashNames: false });
  assert.equal(r.eventName, DNS_QUERY_EVENT);
  assert.equal(r.severityText, 'INFO');
  assert.equal(r.timeMs, 1_705_314_600_123);
  assert.equal(new Date(r.timeMs).toISOString(), '2024-01-15T10:30:00.123Z');
  const a = r.attributes;
  assert.equal(a['dns.question.name'], 'api.example.com');
  assert.equal(a['dns.question.type'], 'A');
  assert.equal(a['dns.response_code'], 'NOERROR');
  assert.equal(a['dns.latency_ms'], 2.5);
  assert.equal(a['server.address'], '10.0.0.2');
  assert.equal(a['server.port'], 53);
  assert.equal(a['client.address'], '10.0.0.1');
  const answers = JSON.parse(String(a['dns.answers'])) as Array<{ data: string }>;
  assert.deepEqual(answers.map((x) => x.data), ['10.0.1.100', '10.0.1.101']);
  assert.equal(r.body, 'DNS A api.example.com → NOERROR in 2.5 ms: A 10.0.1.100, A 10.0.1.101 (udp 10.0.0.1:40001 → 10.0.0.2:53)');
});

test('DNS: SERVFAIL and timeouts are WARN; answers off; hashed names hide names, CNAME targets too', () => {
  assert.equal(dnsTransactionRecord(tx({ rcode: 2, answers: [] }), { answers: true, hashNames: false }).severityText, 'WARN');
  assert.equal(dnsTransactionRecord(tx({ rcode: 3, answers: [] }), { answers: true, hashNames: false }).severityText, 'INFO');
  const timeout = dnsTransactionRecord(tx({ outcome: 'timeout', latencyUs: undefined, responseTimeUs: undefined, rcode: undefined, answers: undefined }), { answers: true, hashNames: false });
  assert.equal(timeout.eventName, DNS_TIMEOUT_EVENT);
  assert.equal(timeout.severityText, 'WARN');
  assert.equal(timeout.attributes['dns.response_code'], 'TIMEOUT');
  assert.equal(timeout.attributes['dns.latency_ms'], undefined);
  assert.equal(dnsTransactionRecord(tx(), { answers: false, hashNames: false }).attributes['dns.answers'], undefined);
  const hash = nameHasher('k');
  const withCname = tx({ answers: [{ name: 'api.example.com', type: 5, class: 1, ttl: 60, data: 'edge.secret.example' }, { name: 'edge.secret.example', type: 1, class: 1, ttl: 60, data: '10.0.1.100' }] });
  const hashed = dnsTransactionRecord(withCname, { answers: true, hashNames: true, hashKey: 'k' }, hash);
  const text = JSON.stringify(hashed);
  assert.ok(!text.includes('example'), text);
  assert.equal(hashed.attributes['dns.question.name'], hash('api.example.com'));
  assert.match(String(hashed.attributes['dns.answers']), /10\.0\.1\.100/);
  assert.deepEqual(ebpfDnsReceiverFactory.defaultConfig().log_records, { enabled: true, answers: true, hash_names: false });
});

test('OTLP protobuf of a batch: time, severity, body, event name, attributes and resource, by the official field numbers', () => {
  const record: LogRecordData = {
    timeMs: 1_705_314_600_123.456,
    severityNumber: Severity.WARN,
    severityText: 'WARN',
    body: 'a line',
    eventName: TCP_CONNECTION_FAILED,
    attributes: { 'destination.port': 443, 'error.type': 'refused', ok: true, ratio: 0.5 },
  };
  const resource = resourceFromAttributes({ 'service.name': 'flowtel', 'host.name': 'h1' });
  const bytes = ProtobufLogsSerializer.serializeRequest(toReadableLogRecords([record, { ...record, body: 'b' }], resource, 1_705_314_601_000));
  assert.ok(bytes);
  const decoded = decodeExportLogsServiceRequest(bytes);
  assert.equal(decoded.resourceLogs.length, 1);
  assert.equal(decoded.resourceLogs[0]!.scopeLogs[0]!.scope.name, 'flowtel');
  const flat = flattenLogRecords([decoded]);
  assert.equal(flat.length, 2);
  const r = flat[0]!;
  assert.equal(r.timeUnixNano, 1_705_314_600_123_456_000n);
  assert.equal(r.observedTimeUnixNano, 1_705_314_601_000_000_000n);
  assert.equal(r.severityNumber, 13);
  assert.equal(r.severityText, 'WARN');
  assert.equal(r.body, 'a line');
  assert.equal(r.eventName, TCP_CONNECTION_FAILED);
  assert.deepEqual(r.attributes, { 'event.name': TCP_CONNECTION_FAILED, 'destination.port': 443, 'error.type': 'refused', ok: true, ratio: 0.5 });
  assert.deepEqual(r.resource, { 'service.name': 'flowtel', 'host.name': 'h1' });
  assert.equal(flat[1]!.body, 'b');
});

test('debug lines: time, severity, event name, body; detailed adds the attributes', () => {
  const r: LogRecordData = { timeMs: Date.UTC(2024, 0, 15, 10, 30, 0, 123), severityNumber: 9, severityText: 'INFO', body: 'hello', eventName: 'flowtel.x', attributes: { a: 1 } };
  assert.equal(formatLogLine(r), '2024-01-15T10:30:00.123Z INFO  flowtel.x hello');
  assert.equal(formatLogLine(r, true), '2024-01-15T10:30:00.123Z INFO  flowtel.x hello {"a":1}');
});
