import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { estimateRequestBytes, splitRequestBySize, splittingSender, OTLP_GRPC_MAX_REQUEST_BYTES } from '../../src/exporters/otlp-split';
import type { MetricsSender, SendOutcome } from '../../src/exporters/retry';
import { otlpExporterFactory } from '../../src/exporters';
import { buildResource } from '../../src/telemetry/resource';
import { captureLogger } from '../helpers/capture-logger';
import { flattenMetrics, startOtlpReceiver } from '../helpers/otlp-receiver';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

class ManualReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function flow(i: number): Record<string, string | number> {
  return {
    'network.transport': 'tcp',
    'source.address': '10.0.0.5',
    'destination.address': `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
    'destination.port': 443,
    'process.executable.name': 'curl-ü', // not only ASCII: sizes are bytes, not characters
  };
}

/** A collection of `flows` flows × (counter, histogram, gauge) from a real MeterProvider. */
async function collection(flows: number): Promise<ResourceMetrics> {
  const reader = new ManualReader();
  const provider = new MeterProvider({ resource: buildResource({ serviceName: 'split-test' }), readers: [reader], views: [{ instrumentName: '*', aggregationCardinalityLimit: 1_000_000 }] });
  const meter = provider.getMeter('flowtel', '0.1.0');
  const bytes = meter.createCounter('tcp_bytes_sent', { unit: 'By', description: 'bytes' });
  const rtt = meter.createHistogram('tcp_rtt_us', { unit: 'us', advice: { explicitBucketBoundaries: [50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000] } });
  const open = meter.createGauge('tcp_connections');
  for (let i = 0; i < flows; i++) {
    bytes.add(1000 + i, flow(i));
    rtt.record(100 + (i % 3000), flow(i));
    open.record(i % 7, flow(i));
  }
  const { resourceMetrics, errors } = await reader.collect();
  assert.deepEqual(errors, []);
  await provider.shutdown();
  return resourceMetrics;
}

const encodedSize = (rm: ResourceMetrics): number => ProtobufMetricsSerializer.serializeRequest(rm)!.length;
const pointsOf = (rm: ResourceMetrics): Array<[string, unknown]> =>
  rm.scopeMetrics.flatMap((s) => s.metrics.flatMap((m) => (m.dataPoints as Array<{ attributes: unknown }>).map((p): [string, unknown] => [m.descriptor.name, p.attributes])));

test('the size estimate is an upper bound of the encoded request, and not a loose one', async () => {
  for (const flows of [1, 10, 500]) {
    const rm = await collection(flows);
    const actual = encodedSize(rm);
    const estimate = estimateRequestBytes(rm);
    assert.ok(estimate >= actual, `${flows} flows: estimate ${estimate} < encoded ${actual}`);
    if (flows >= 10) assert.ok(estimate <= actual * 2, `${flows} flows: estimate ${estimate} more than twice encoded ${actual}`);
  }
});

test('a collection that fits is sent as it is', async () => {
  const rm = await collection(50);
  const parts = splitRequestBySize(rm);
  assert.equal(parts.length, 1);
  assert.equal(parts[0], rm);
});

test('a large collection is split into requests under the limit, every data point once and in order', async () => {
  const rm = await collection(3000);
  const limit = 64 * 1024;
  assert.ok(encodedSize(rm) > 4 * limit, 'the collection must need several parts');
  const parts = splitRequestBySize(rm, limit);
  assert.ok(parts.length >= 4, `${parts.length} parts`);
  for (const [i, part] of parts.entries()) {
    const size = encodedSize(part);
    assert.ok(size <= limit, `part ${i}: ${size} bytes > ${limit}`);
    assert.equal(part.resource, rm.resource, 'each part keeps the resource');
    for (const s of part.scopeMetrics) {
      assert.equal(s.scope.name, 'flowtel');
      for (const m of s.metrics) assert.ok(m.dataPoints.length > 0, 'no empty metric in a part');
    }
  }
  assert.deepEqual(
    parts.flatMap(pointsOf),
    pointsOf(rm),
    'the parts hold every data point of the collection, once, in the same order',
  );
  // The descriptions and types travel with each piece of a metric.
  const rtt = parts.flatMap((p) => p.scopeMetrics.flatMap((s) => s.metrics)).filter((m) => m.descriptor.name === 'tcp_rtt_us');
  assert.ok(rtt.length >= 2, 'the histogram itself is cut between parts');
  for (const m of rtt) assert.equal(m.descriptor.unit, 'us');
});

test('splittingSender sends the parts in order and resumes a retried collection at the part that failed', async () => {
  const rm = await collection(3000);
  const limit = 64 * 1024;
  const expected = splitRequestBySize(rm, limit).length;
  const sent: ResourceMetrics[] = [];
  let failNext = 2; // the third request fails once
  const inner: MetricsSender = {
    send(item): Promise<SendOutcome> {
      if (sent.length === failNext) {
        failNext = -1;
        return Promise.resolve({ kind: 'retryable', error: new Error('UNAVAILABLE') });
      }
      sent.push(item);
      return Promise.resolve({ kind: 'success' });
    },
    shutdown: () => Promise.resolve(),
  };
  const sender = splittingSender(inner, limit);
  const first = await sender.send(rm);
  assert.equal(first.kind, 'retryable');
  assert.equal(sent.length, 2, 'the parts before the failure were delivered');
  const second = await sender.send(rm);
  assert.equal(second.kind, 'success');
  assert.equal(sent.length, expected, 'each part delivered exactly once');
  assert.deepEqual(sent.flatMap(pointsOf), pointsOf(rm));
  // Once delivered, the same object is a new collection again (not remembered).
  const third = await sender.send(rm);
  assert.equal(third.kind, 'success');
  assert.equal(sent.length, 2 * expected);
});

test('the otlp exporter delivers a collection larger than a receiver’s 4 MiB gRPC limit, never rejected', async () => {
  const backend = await startOtlpReceiver(); // grpc-js defaults: requests over 4 MiB are refused
  cleanups.push(() => backend.close());
  const { logger } = captureLogger();
  const config = otlpExporterFactory.validate({ endpoint: backend.endpoint, tls: { insecure: true }, timeout: '60s' }, 'exporters.otlp');
  const exporter = otlpExporterFactory.create(config, { id: 'otlp', logger });
  cleanups.push(() => exporter.shutdown());
  const sizer = new ManualReader();
  const provider = new MeterProvider({
    resource: buildResource({ serviceName: 'split-test' }),
    readers: [exporter.reader, sizer],
    views: [{ instrumentName: '*', aggregationCardinalityLimit: 1_000_000 }],
  });
  await exporter.start();
  const meter = provider.getMeter('flowtel', '0.1.0');
  const rtt = meter.createHistogram('tcp_rtt_us', { unit: 'us' });
  const bytes = meter.createCounter('tcp_bytes_sent', { unit: 'By' });
  const flows = 12_000;
  for (let i = 0; i < flows; i++) {
    rtt.record(100 + i, flow(i));
    bytes.add(i + 1, flow(i));
  }
  const { resourceMetrics } = await sizer.collect();
  assert.ok(encodedSize(resourceMetrics) > OTLP_GRPC_MAX_REQUEST_BYTES, 'one request would be over the limit');

  await exporter.reader.forceFlush();
  const pointsNamed = (reqs: Parameters<typeof flattenMetrics>[0], name: string) => flattenMetrics(reqs).filter((m) => m.name === name).flatMap((m) => m.points);
  const requests = await backend.waitFor((reqs) => pointsNamed(reqs, 'tcp_bytes_sent').length >= flows && pointsNamed(reqs, 'tcp_rtt_us').length >= flows, 30_000);
  assert.ok(requests.length >= 2, `${requests.length} requests`);
  assert.equal(backend.rejected, 0);
  assert.equal(exporter.failed, 0);
  assert.equal(pointsNamed(requests, 'tcp_rtt_us').length, flows);
  const counted = pointsNamed(requests, 'tcp_bytes_sent');
  assert.equal(counted.length, flows);
  const total = counted.reduce((s, p) => s + Number((p as { value: unknown }).value), 0);
  assert.equal(total, (flows * (flows + 1)) / 2, 'every counter value arrived once');
  await provider.shutdown();
});
