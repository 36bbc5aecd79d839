import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
  type MetricData,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { debugExporterFactory, renderTopFlows, TopFlowsConsoleExporter } from '../../src/exporters';
import { formatBytes, formatMicros } from '../../src/exporters/debug/format';
import { captureLogger } from '../helpers/capture-logger';

/** Collects on demand, like a pull exporter. */
class ManualReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

const CURL = {
  'network.transport': 'tcp',
  'source.address': '10.0.0.5',
  'destination.address': '93.184.216.34',
  'destination.port': 443,
  'flow.direction': 'outgoing',
  'process.pid': 4242,
  'process.executable.name': 'curl',
};
const NGINX = {
  'network.transport': 'tcp',
  'source.address': '10.0.0.5',
  'source.port': 80,
  'destination.address': '2001:db8::1',
  'flow.direction': 'incoming',
  'process.pid': 77,
  'process.executable.name': 'nginx',
};
const SSH = { 'network.transport': 'tcp', 'source.address': '10.0.0.5', 'destination.address': '10.0.0.9', 'destination.port': 22, 'flow.direction': 'outgoing' };

function sdk() {
  const reader = new ManualReader();
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'flowtel' }), readers: [reader] });
  const meter = provider.getMeter('flowtel');
  const instruments = {
    sent: meter.createCounter('tcp_bytes_sent', { unit: 'By' }),
    received: meter.createCounter('tcp_bytes_received', { unit: 'By' }),
    retransmits: meter.createCounter('tcp_retransmits'),
    rtt: meter.createHistogram('tcp_rtt_us', { unit: 'us' }),
    opened: meter.createCounter('tcp_connections_opened'),
    closed: meter.createCounter('tcp_connections_closed'),
    failures: meter.createCounter('tcp_connection_failures'),
  };
  const collect = async (): Promise<ResourceMetrics> => (await reader.collect()).resourceMetrics;
  return { instruments, collect };
}

const T0 = Date.parse('2025-01-01T12:00:00Z');

test('renderTopFlows: first interval shows totals since start, sorted by bytes, top N', async () => {
  const { instruments: i, collect } = sdk();
  i.sent.add(1024 * 1024, CURL);
  i.received.add(10 * 1024, CURL);
  i.retransmits.add(2, CURL);
  i.rtt.record(1200, CURL);
  i.rtt.record(800, CURL);
  i.sent.add(5 * 1024, NGINX);
  i.received.add(300, NGINX);
  i.rtt.record(150, NGINX);
  i.sent.add(100, SSH);
  i.opened.add(3, CURL);
  i.closed.add(1, CURL);
  i.failures.add(1, { ...SSH, 'error.type': 'connection_refused' });

  const result = renderTopFlows(undefined, await collect(), { topN: 2, nowMs: T0 });
  assert.deepEqual(
    result.rows.map((r) => [r.attributes['process.executable.name'], r.bytesSent, r.bytesReceived, r.retransmits, r.rttMeanUs]),
    [
      ['curl', 1024 * 1024, 10 * 1024, 2, 1000],
      ['nginx', 5 * 1024, 300, 0, 150],
    ],
  );
  assert.deepEqual(result.totals, {
    connectionsOpened: 3,
    connectionsClosed: 1,
    connectionFailures: 1,
    bytesSent: 1024 * 1024 + 5 * 1024 + 100,
    bytesReceived: 10 * 1024 + 300,
    retransmits: 2,
    activeFlows: 3,
  });
  assert.equal(
    result.text,
    [
      '── flowtel top flows 2025-01-01T12:00:00.000Z (since start) ──',
      'connections: 3 opened, 1 closed, 1 failed | flows: 3 active, top 2 shown | sent 1.0 MiB, received 10.3 KiB, 2 retransmits',
      'PROCESS    SOURCE       DESTINATION        PROTO  DIR          SENT  RECEIVED  RETRANS    RTT',
      'curl/4242  10.0.0.5     93.184.216.34:443  tcp    outgoing  1.0 MiB  10.0 KiB        2  1.0ms',
      'nginx/77   10.0.0.5:80  2001:db8::1        tcp    incoming  5.0 KiB     300 B        0  150µs',
      '',
    ].join('\n'),
  );
});

test('renderTopFlows: later intervals show deltas of the cumulative data', async () => {
  const { instruments: i, collect } = sdk();
  i.sent.add(1000, CURL);
  i.rtt.record(1000, CURL);
  i.sent.add(500, NGINX);
  const first = renderTopFlows(undefined, await collect(), { nowMs: T0 });

  i.sent.add(100, CURL);
  i.rtt.record(3000, CURL);
  i.sent.add(4000, SSH);
  i.retransmits.add(1, SSH);
  i.opened.add(1, SSH);
  const second = renderTopFlows(first.state, await collect(), { nowMs: T0 + 10_000 });

  assert.deepEqual(
    second.rows.map((r) => [r.attributes['destination.port'] ?? r.attributes['source.port'], r.bytesSent, r.retransmits, r.rttMeanUs]),
    [
      [22, 4000, 1, undefined],
      [443, 100, 0, 3000],
    ],
    'nginx had no traffic this interval; curl RTT mean covers only the new sample',
  );
  assert.equal(second.totals.connectionsOpened, 1);
  assert.equal(second.totals.bytesSent, 4100);
  assert.match(second.text, /^── flowtel top flows 2025-01-01T12:00:10\.000Z \(last 10\.0s\) ──$/m);

  const third = renderTopFlows(second.state, await collect(), { nowMs: T0 + 20_000 });
  assert.deepEqual(third.rows, []);
  assert.match(third.text, /\(no flows with traffic in this interval\)\n$/);
});

/** Hand-built data, for cases the SDK does not produce (series vanishing, resets, delta input). */
function resourceMetrics(metrics: MetricData[]): ResourceMetrics {
  return { resource: resourceFromAttributes({}), scopeMetrics: [{ scope: { name: 'test' }, metrics }] };
}

function sum(name: string, points: Array<[Record<string, string | number>, number]>, temporality = AggregationTemporality.CUMULATIVE): MetricData {
  return {
    descriptor: { name, description: '', unit: '', type: 'COUNTER', valueType: 1 } as MetricData['descriptor'],
    aggregationTemporality: temporality,
    dataPointType: DataPointType.SUM,
    isMonotonic: true,
    dataPoints: points.map(([attributes, value]) => ({ attributes, value, startTime: [0, 0], endTime: [1, 0] })),
  };
}

test('renderTopFlows: vanished series are dropped from the state; restarts count in full', () => {
  const first = renderTopFlows(undefined, resourceMetrics([sum('tcp_bytes_sent', [[CURL, 100], [SSH, 50]])]), { nowMs: T0 });
  assert.equal(first.state.counters.size, 2);

  const second = renderTopFlows(first.state, resourceMetrics([sum('tcp_bytes_sent', [[SSH, 80]])]), { nowMs: T0 + 1 });
  assert.equal(second.state.counters.size, 1, 'curl series disappeared');
  assert.deepEqual(second.rows.map((r) => r.bytesSent), [30]);

  const third = renderTopFlows(second.state, resourceMetrics([sum('tcp_bytes_sent', [[CURL, 40], [SSH, 20]])]), { nowMs: T0 + 2 });
  assert.deepEqual(
    third.rows.map((r) => [r.attributes['process.executable.name'] ?? 'ssh', r.bytesSent]),
    [
      ['curl', 40],
      ['ssh', 20],
    ],
    'curl is new again (full value); ssh went backwards (restart: full value)',
  );

  const delta = renderTopFlows(third.state, resourceMetrics([sum('tcp_bytes_sent', [[SSH, 7]], AggregationTemporality.DELTA)]), { nowMs: T0 + 3 });
  assert.deepEqual(delta.rows.map((r) => r.bytesSent), [7]);
});

test('TopFlowsConsoleExporter writes one table per export; detailed logs every data point', async () => {
  const written: string[] = [];
  const { logger, lines } = captureLogger();
  const exporter = new TopFlowsConsoleExporter({ topN: 5, write: (t) => void written.push(t), dataPointLogger: logger });
  assert.equal(exporter.selectAggregationTemporality(), AggregationTemporality.CUMULATIVE);
  const data = resourceMetrics([sum('tcp_bytes_sent', [[CURL, 100]]), sum('tcp_bytes_received', [[CURL, 5]])]);
  const result = await new Promise<ExportResult>((resolve) => exporter.export(data, resolve));
  assert.equal(result.code, ExportResultCode.SUCCESS);
  assert.equal(written.length, 1);
  assert.match(written[0] ?? '', /curl\/4242/);
  assert.deepEqual(
    lines.map((l) => [l.msg, l.metric, l.value]),
    [
      ['data point', 'tcp_bytes_sent', 100],
      ['data point', 'tcp_bytes_received', 5],
    ],
  );
});

test('debug exporter config', () => {
  const v = (raw: unknown) => debugExporterFactory.validate(raw, 'exporters.debug');
  assert.deepEqual(v(undefined), { verbosity: 'basic', top_n: 10, export_interval: 10_000, output: 'stdout' });
  assert.deepEqual(v({ verbosity: 'detailed', top_n: 3, export_interval: '1s', output: 'stderr' }), {
    verbosity: 'detailed',
    top_n: 3,
    export_interval: 1000,
    output: 'stderr',
  });
  assert.throws(() => v({ top_n: 0 }), /exporters\.debug\.top_n: must be at least 1/);
  assert.throws(() => v({ verbosity: 'loud' }), /expected one of "basic", "normal", "detailed"/);
});

test('human units', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(5 * 1024 ** 3), '5.0 GiB');
  assert.equal(formatMicros(999.4), '999µs');
  assert.equal(formatMicros(12_345), '12.3ms');
  assert.equal(formatMicros(2_500_000), '2.50s');
});
