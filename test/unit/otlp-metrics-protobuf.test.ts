import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { AggregationTemporality, DataPointType, MeterProvider, MetricReader, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { encodeMetricsRequest, flowtelMetricsSerializer } from '../../src/exporters/otlp-metrics-protobuf';
import { decodeExportMetricsServiceRequest } from '../helpers/otlp-proto';

// The reference is @opentelemetry/otlp-transformer's serializer: the encoder
// must write the same bytes for every shape the SDK can hand it.
function assertSameBytes(rm: ResourceMetrics, what: string): Buffer {
  const ours = encodeMetricsRequest(rm);
  const theirs = Buffer.from(ProtobufMetricsSerializer.serializeRequest(rm)!);
  assert.equal(ours.length, theirs.length, `${what}: length`);
  assert.ok(ours.equals(theirs), `${what}: bytes differ at ${ours.findIndex((b, i) => b !== theirs[i])}`);
  return ours;
}

const t0: HrTime = [1_763_700_000, 123_456_789];
const t1: HrTime = [1_763_700_010, 999_999_999];

const flow: Attributes = {
  'source.address': '10.0.0.5',
  'destination.address': '2001:db8::1',
  'destination.port': 443,
  'network.transport': 'tcp',
  'flow.direction': 'outgoing',
  'process.pid': 4242,
  'process.executable.name': 'cürl ☃', // not ASCII
};

const odd: Attributes = {
  'negative.int': -5,
  'big.int': 2 ** 40 + 3,
  'beyond.safe': 2 ** 60,
  'min.int64': -(2 ** 63),
  double: 0.25,
  nan: Number.NaN,
  yes: true,
  no: false,
  list: ['a', 'b', ''],
  nums: [1, -1, 1.5],
  flags: [true, false],
  empty: '',
  long: 'x'.repeat(20_000), // length prefixes of three bytes
  undef: undefined,
};

function rmOf(metrics: MetricData[], resourceAttributes: Attributes = { 'service.name': 'flowtel', 'host.name': 'h1' }, schemaUrl?: string): ResourceMetrics {
  const resource = resourceFromAttributes(resourceAttributes, schemaUrl ? { schemaUrl } : undefined);
  return { resource, scopeMetrics: [{ scope: { name: 'flowtel', version: '0.1.0', schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' }, metrics }] };
}

test('sums, gauges, histograms and exponential histograms encode to the transformer’s bytes', () => {
  const metrics: MetricData[] = [
    {
      descriptor: { name: 'tcp_bytes_sent', description: 'Bytes sent', unit: 'By', valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.SUM,
      isMonotonic: true,
      dataPoints: [
        { attributes: flow, startTime: t0, endTime: t1, value: 123456789012 },
        { attributes: odd, startTime: t0, endTime: t1, value: -0.5 },
        { attributes: {}, startTime: t0, endTime: t1, value: 0 },
      ],
    },
    {
      descriptor: { name: 'ints', description: '', unit: '', valueType: ValueType.INT },
      aggregationTemporality: AggregationTemporality.DELTA,
      dataPointType: DataPointType.SUM,
      isMonotonic: false,
      dataPoints: [
        { attributes: flow, startTime: t0, endTime: t1, value: -7 },
        { attributes: flow, startTime: t1, endTime: t1, value: 2 ** 33 },
      ],
    },
    {
      descriptor: { name: 'tcp_connections', description: 'Open connections', unit: '{connection}', valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.GAUGE,
      dataPoints: [{ attributes: flow, startTime: t0, endTime: t1, value: 3 }],
    },
    {
      descriptor: { name: 'tcp_rtt_us', description: 'RTT', unit: 'us', valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.DELTA,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: [
        // The same attribute object as the sums: its cached block is copied under another field number.
        { attributes: flow, startTime: t0, endTime: t1, value: { buckets: { boundaries: [10, 100, 1000], counts: [1, 2 ** 35, 0, 4] }, count: 2 ** 35 + 5, sum: 1234.5, min: 7, max: 5000 } },
        { attributes: odd, startTime: t0, endTime: t1, value: { buckets: { boundaries: [], counts: [] }, count: 0, sum: undefined, min: undefined, max: undefined } },
      ],
    },
    {
      descriptor: { name: 'exp', description: 'exponential', unit: 'ms', valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.EXPONENTIAL_HISTOGRAM,
      dataPoints: [
        {
          attributes: flow,
          startTime: t0,
          endTime: t1,
          value: { count: 9, sum: 99.5, scale: -3, zeroCount: 1, positive: { offset: -2, bucketCounts: [1, 0, 300, 2 ** 34] }, negative: { offset: 0, bucketCounts: [] }, min: -1, max: 50 },
        },
        { attributes: odd, startTime: t0, endTime: t1, value: { count: 0, scale: 0, zeroCount: 0, positive: { offset: 5, bucketCounts: [] }, negative: { offset: 0, bucketCounts: [2] } } },
      ],
    },
  ];
  const bytes = assertSameBytes(rmOf(metrics, { 'service.name': 'flowtel', 'k8s.pod.uid': 'ü', n: 1 }, 'https://opentelemetry.io/schemas/1.30.0'), 'all kinds');
  // Encoded twice (the second time from the cached attribute blocks), still the same.
  assert.ok(encodeMetricsRequest(rmOf(metrics, { 'service.name': 'flowtel', 'k8s.pod.uid': 'ü', n: 1 }, 'https://opentelemetry.io/schemas/1.30.0')).equals(bytes));

  // And an independent decoder reads back what went in.
  const decoded = decodeExportMetricsServiceRequest(bytes);
  const rm = decoded.resourceMetrics[0]!;
  assert.equal(rm.resource.attributes['k8s.pod.uid'], 'ü');
  const byName = new Map(rm.scopeMetrics[0]!.metrics.map((m) => [m.name, m]));
  const sum = byName.get('tcp_bytes_sent')!.data;
  assert.equal(sum.kind, 'sum');
  if (sum.kind === 'sum') {
    assert.equal(sum.dataPoints[0]!.value, 123456789012);
    assert.equal(sum.dataPoints[0]!.attributes['process.executable.name'], 'cürl ☃');
    assert.equal(sum.dataPoints[0]!.startTimeUnixNano, 1_763_700_000_123_456_789n);
    assert.equal(sum.dataPoints[1]!.attributes['big.int'], 2 ** 40 + 3);
    assert.equal(sum.dataPoints[1]!.attributes['negative.int'], -5);
    assert.equal((sum.dataPoints[1]!.attributes.long as string).length, 20_000);
  }
  const hist = byName.get('tcp_rtt_us')!.data;
  assert.equal(hist.kind, 'histogram');
  if (hist.kind === 'histogram') {
    assert.deepEqual(hist.dataPoints[0]!.bucketCounts, [1, 2 ** 35, 0, 4]);
    assert.equal(hist.dataPoints[0]!.attributes['destination.port'], 443);
    assert.equal(hist.temporality, 'delta');
  }
});

test('a request without metrics, and one without a scope version or resource attributes', () => {
  assertSameBytes({ resource: resourceFromAttributes({}), scopeMetrics: [] }, 'empty');
  assertSameBytes({ resource: resourceFromAttributes({}), scopeMetrics: [{ scope: { name: '' }, metrics: [] }] }, 'empty scope');
});

test('what the SDK itself collects encodes to the transformer’s bytes', async () => {
  class Reader extends MetricReader {
    protected onForceFlush(): Promise<void> {
      return Promise.resolve();
    }
    protected onShutdown(): Promise<void> {
      return Promise.resolve();
    }
  }
  const reader = new Reader();
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'x' }), readers: [reader] });
  const meter = provider.getMeter('m', '1.2.3');
  const c = meter.createCounter('c', { unit: '1' });
  const h = meter.createHistogram('h', { unit: 'ms', advice: { explicitBucketBoundaries: [1, 10] } });
  const u = meter.createUpDownCounter('u', { valueType: ValueType.INT });
  const g = meter.createObservableGauge('g');
  g.addCallback((r) => r.observe(4.5, { a: 'b' }));
  for (let i = 0; i < 50; i++) {
    c.add(i, { i: i % 7 });
    h.record(i * 1.5, { i: i % 3 });
    u.add(i % 2 ? -i : i, { even: i % 2 === 0 });
  }
  const { resourceMetrics } = await reader.collect();
  assertSameBytes(resourceMetrics, 'SDK collection');
  await provider.shutdown();
});

test('40,000 points: lengths of several bytes at every level', () => {
  const points = [];
  for (let i = 0; i < 40_000; i++) points.push({ attributes: { 'destination.address': `10.0.${i >> 8}.${i & 255}`, 'destination.port': i }, startTime: t0, endTime: t1, value: i * 3 });
  const rm = rmOf([
    { descriptor: { name: 'm', description: 'd', unit: 'By', valueType: ValueType.DOUBLE }, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: points },
  ]);
  const bytes = assertSameBytes(rm, '40,000 points');
  assert.ok(bytes.length > 0x200000, 'a length prefix of four bytes');
});

test('the serializer reads responses as the transformer does', () => {
  assert.deepEqual(flowtelMetricsSerializer.deserializeResponse(new Uint8Array(0)), ProtobufMetricsSerializer.deserializeResponse(new Uint8Array(0)));
});
