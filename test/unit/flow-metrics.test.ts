/**
 * FlowMetrics must export what the SDK's Counter and explicit-bucket
 * Histogram instruments export for the same measurements (the SDK is the
 * reference here), and drop cumulative series nobody updates.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AggregationTemporality,
  DataPointType,
  InstrumentType,
  MeterProvider,
  MetricReader,
  type GaugeMetricData,
  type HistogramMetricData,
  type SumMetricData,
  type MetricProducer,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { FlowMetrics, type FlowMetricsOptions } from '../../src/pipeline/flow-metrics';
import { InstrumentSink } from '../../src/pipeline/instrument-sink';
import type { Measurement } from '../../src/pipeline/measurements';

type Temporality = AggregationTemporality | ((type: InstrumentType) => AggregationTemporality);

class TestReader extends MetricReader {
  constructor(temporality: Temporality, metricProducers: MetricProducer[] = []) {
    super({ aggregationTemporalitySelector: typeof temporality === 'function' ? temporality : () => temporality, metricProducers });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

interface Side {
  reader: TestReader;
  sink: InstrumentSink;
  histograms?: FlowMetrics;
}

function side(temporality: Temporality, ours: boolean, limit = 100_000): Side {
  const histograms = ours ? new FlowMetrics({ cardinalityLimit: limit }) : undefined;
  const reader = new TestReader(temporality, histograms ? [histograms] : []);
  histograms?.bind(reader);
  const provider = new MeterProvider({ readers: [reader], views: [{ instrumentName: '*', aggregationCardinalityLimit: limit }] });
  return { reader, histograms, sink: new InstrumentSink(provider.getMeter('flowtel'), histograms) };
}

/** FlowMetrics alone, read by a cumulative reader: no SDK instrument records anything. */
function flowMetricsOnly(options: FlowMetricsOptions): { metrics: FlowMetrics; reader: TestReader; sink: InstrumentSink } {
  const metrics = new FlowMetrics(options);
  const reader = new TestReader(AggregationTemporality.CUMULATIVE, [metrics]);
  metrics.bind(reader);
  new MeterProvider({ readers: [reader] });
  return { metrics, reader, sink: new InstrumentSink(new MeterProvider().getMeter('unused'), metrics) };
}

/** Histogram points by metric and attribute set, times left out. */
function points(rm: ResourceMetrics): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const scope of rm.scopeMetrics) {
    for (const m of scope.metrics) {
      const h = m as HistogramMetricData | SumMetricData | GaugeMetricData;
      for (const p of h.dataPoints as { attributes: object; value: unknown }[]) {
        const key = `${m.descriptor.name}|${m.descriptor.unit}|${m.aggregationTemporality}|${JSON.stringify(Object.entries(p.attributes).sort())}`;
        out[key] = p.value;
      }
    }
  }
  return out;
}

const bytes = (value: number, attributes: Record<string, string | number>): Measurement => ({ metric: 'tcp_bytes_sent', value, attributes });
const rtt = (value: number, attributes: Record<string, string | number>): Measurement => ({ metric: 'tcp_rtt_us', value, attributes });

function batches(): Measurement[][] {
  const a = { 'source.address': '10.0.0.1', 'destination.port': 443 };
  const b = { 'source.address': '10.0.0.2', 'destination.port': 443 };
  const aAgain = { 'destination.port': 443, 'source.address': '10.0.0.1' }; // same set, another object, other key order
  return [
    [rtt(1, a), rtt(50, a), rtt(100, b), rtt(1e9, b), rtt(0, aAgain), { metric: 'tcp_connect_latency_us', value: 250, attributes: a }, bytes(10, a), bytes(5, aAgain), bytes(7, b)],
    [rtt(100, a), rtt(NaN, a), bytes(0, a), bytes(-3, b)],
    [],
    [rtt(7, b), rtt(5000, b), bytes(1e12, b)],
  ];
}

// The Collector's "lowmemory"-like mix: delta counters, cumulative histograms.
const mixed = (type: InstrumentType): AggregationTemporality => (type === InstrumentType.COUNTER ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE);
for (const [name, temporality] of [['cumulative', AggregationTemporality.CUMULATIVE], ['delta', AggregationTemporality.DELTA], ['per instrument type', mixed]] as const) {
  test(`same points as the SDK counter and histogram (${name})`, async () => {
    const sdk = side(temporality, false);
    const ours = side(temporality, true);
    for (const batch of batches()) {
      for (const s of [sdk, ours]) s.sink.consume({ timeMs: 0, measurements: batch, gaugesReplaced: [] });
      const [want, got] = await Promise.all([sdk.reader.collect(), ours.reader.collect()]);
      assert.deepEqual(points(got.resourceMetrics), points(want.resourceMetrics));
    }
  });
}

/** The batch with each run of one histogram's samples under one attribute object made into one measurement with `samples`. */
function grouped(batch: Measurement[]): Measurement[] {
  const out: Measurement[] = [];
  const groups = new Map<string, { m: Measurement; samples: number[] }>();
  for (const m of batch) {
    if (!m.metric.endsWith('_us')) {
      out.push(m);
      continue;
    }
    const key = `${m.metric}|${JSON.stringify(m.attributes)}`;
    let g = groups.get(key);
    if (!g) {
      g = { m: { metric: m.metric, value: 0, attributes: m.attributes }, samples: [] };
      groups.set(key, g);
      out.push(g.m);
    }
    g.samples.push(m.value);
  }
  return out.map((m) => {
    const g = groups.get(`${m.metric}|${JSON.stringify(m.attributes)}`);
    return g?.m === m ? { ...m, samples: Float64Array.from(g.samples) } : m;
  });
}

test('histogram samples carried as one measurement (samples) export the points of one measurement per sample, ours and the SDK path', async () => {
  const one = side(AggregationTemporality.CUMULATIVE, true);
  const many = side(AggregationTemporality.CUMULATIVE, true);
  const sdkMany = side(AggregationTemporality.CUMULATIVE, false);
  for (const batch of batches()) {
    const g = grouped(batch);
    if (batch.length > 0) assert.ok(g.length < batch.length, 'the batch has samples to group');
    one.sink.consume({ timeMs: 0, measurements: batch, gaugesReplaced: [] });
    for (const s of [many, sdkMany]) s.sink.consume({ timeMs: 0, measurements: g, gaugesReplaced: [] });
    const [want, got, sdk] = await Promise.all([one.reader.collect(), many.reader.collect(), sdkMany.reader.collect()]);
    assert.deepEqual(points(got.resourceMetrics), points(want.resourceMetrics));
    assert.deepEqual(points(sdk.resourceMetrics), points(want.resourceMetrics));
  }
});

test('cardinality limit: new attribute sets beyond it go to one otel.metric.overflow series, as in the SDK', async () => {
  const limit = 5;
  const sdk = side(AggregationTemporality.CUMULATIVE, false, limit);
  const ours = side(AggregationTemporality.CUMULATIVE, true, limit);
  const batch = Array.from({ length: 12 }, (_, i) => rtt(i * 10, { 'destination.port': i }));
  for (const s of [sdk, ours]) s.sink.consume({ timeMs: 0, measurements: batch, gaugesReplaced: [] });
  const [want, got] = await Promise.all([sdk.reader.collect(), ours.reader.collect()]);
  const p = points(got.resourceMetrics);
  assert.deepEqual(p, points(want.resourceMetrics));
  assert.equal(Object.keys(p).length, limit);
  assert.equal(ours.histograms!.overflowed, 12 - (limit - 1));
});

test('cumulative series without measurements for expireAfterMs are dropped; one that comes back starts from 0', async () => {
  let now = 1_000_000;
  const { metrics, reader, sink } = flowMetricsOnly({ cardinalityLimit: 100, expireAfterMs: 60_000, now: () => now });
  const gone = { 'process.pid': 1 };
  const stays = { 'process.pid': 2 };
  sink.consume({ timeMs: 0, measurements: [bytes(100, gone), bytes(1, stays), rtt(40, gone)], gaugesReplaced: [] });
  const series = async (): Promise<string[]> => Object.keys(points((await reader.collect()).resourceMetrics)).sort();
  assert.equal((await series()).length, 3);
  for (let i = 0; i < 6; i++) {
    now += 15_000; // 90 s in all: `stays` is updated every 15 s, `gone` never again
    sink.consume({ timeMs: 0, measurements: [bytes(1, stays)], gaugesReplaced: [] });
    await reader.collect();
  }
  const left = await series();
  assert.equal(left.length, 1, left.join('\n'));
  assert.match(left[0]!, /"process.pid",2/);
  assert.equal(metrics.expired, 2);
  sink.consume({ timeMs: 0, measurements: [bytes(5, gone)], gaugesReplaced: [] });
  const back = points((await reader.collect()).resourceMetrics);
  const key = Object.keys(back).find((k) => k.startsWith('tcp_bytes_sent') && k.includes('"process.pid",1'))!;
  assert.equal(back[key], 5, 'a series that comes back starts again from 0');
});

const conns = (value: number, attributes: Record<string, string | number>): Measurement => ({ metric: 'tcp_connections', value, attributes });

test('gauges: same points as the SDK observable gauge over replacing batches (gone series read 0), per source', async () => {
  const sdk = side(AggregationTemporality.CUMULATIVE, false);
  const ours = side(AggregationTemporality.CUMULATIVE, true);
  const a = { 'process.pid': 1, 'network.connection.state': 'established' };
  const b = { 'process.pid': 2, 'network.connection.state': 'established' };
  const steps: Measurement[][] = [
    [conns(3, a), conns(1, b)],
    [conns(2, a)], // b closed: 0
    [], // all closed
    [conns(5, b)], // b again
  ];
  for (const measurements of steps) {
    for (const s of [sdk, ours]) s.sink.consume({ timeMs: 0, measurements, gaugesReplaced: ['tcp_connections'], source: 'ebpf_tcp' });
    const [want, got] = await Promise.all([sdk.reader.collect(), ours.reader.collect()]);
    assert.deepEqual(points(got.resourceMetrics), points(want.resourceMetrics));
  }
  // Another receiver with a series of the same attributes: it replaces nothing of the first, and the point is the sum.
  ours.sink.consume({ timeMs: 0, measurements: [conns(7, b)], gaugesReplaced: ['tcp_connections'], source: 'ebpf_tcp/2' });
  ours.sink.consume({ timeMs: 0, measurements: [conns(6, b)], gaugesReplaced: ['tcp_connections'], source: 'ebpf_tcp' });
  const rm = (await ours.reader.collect()).resourceMetrics;
  const gauge = rm.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'tcp_connections');
  assert.equal(gauge?.dataPointType, DataPointType.GAUGE);
  assert.deepEqual(
    gauge?.dataPoints.map((p) => [p.attributes['process.pid'], p.value]),
    [
      [1, 0],
      [2, 13],
    ],
  );
});

test('gauges: a series gone (0) for expireAfterMs is no longer exported; one that comes back is exported again', async () => {
  let now = 1_000_000;
  const { metrics, reader, sink } = flowMetricsOnly({ cardinalityLimit: 100, expireAfterMs: 60_000, now: () => now });
  const gone = { 'process.pid': 1 };
  const stays = { 'process.pid': 2 };
  const replace = (measurements: Measurement[]): void => sink.consume({ timeMs: 0, measurements, gaugesReplaced: ['tcp_connections'], source: 'ebpf_tcp' });
  const values = async (): Promise<Record<string, unknown>> => points((await reader.collect()).resourceMetrics);
  replace([conns(4, gone), conns(1, stays)]);
  assert.deepEqual(Object.values(await values()).sort(), [1, 4]);
  for (let i = 0; i < 5; i++) {
    now += 15_000; // `gone` is not in the batches from +15 s on: it reads 0 for 60 s (not more than expireAfterMs)
    replace([conns(1, stays)]);
    assert.deepEqual(Object.values(await values()).sort(), [0, 1], `at +${(i + 1) * 15}s`);
  }
  now += 15_000; // gone for 75 s
  replace([conns(1, stays)]);
  const left = await values();
  assert.equal(Object.keys(left).length, 1);
  assert.match(Object.keys(left)[0]!, /"process.pid",2/);
  assert.equal(metrics.expired, 1);
  assert.equal(metrics.seriesCount, 1);
  replace([conns(2, gone), conns(1, stays)]);
  assert.deepEqual(Object.values(await values()).sort(), [1, 2]);
});

test('gauges: attribute sets beyond the cardinality limit are summed into one otel.metric.overflow series', async () => {
  const { metrics, reader, sink } = flowMetricsOnly({ cardinalityLimit: 3 });
  const replace = (measurements: Measurement[]): void => sink.consume({ timeMs: 0, measurements, gaugesReplaced: ['tcp_connections'], source: 'ebpf_tcp' });
  const overflow = async (): Promise<unknown> => {
    const p = points((await reader.collect()).resourceMetrics);
    return Object.entries(p).find(([k]) => k.includes('otel.metric.overflow'))?.[1];
  };
  replace([1, 2, 3, 4, 5].map((i) => conns(i, { 'destination.port': i })));
  assert.equal(await overflow(), 3 + 4 + 5);
  replace([1, 2, 3, 4, 5].map((i) => conns(10 * i, { 'destination.port': i })));
  assert.equal(await overflow(), 30 + 40 + 50, 'a replacing batch starts the overflow series at 0');
  assert.equal(metrics.overflowed, 6);
});
