/**
 * FlowHistograms must export what the SDK's explicit-bucket Histogram
 * instrument exports for the same samples: the SDK is the reference here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  MetricReader,
  type HistogramMetricData,
  type MetricProducer,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { FlowHistograms } from '../../src/pipeline/flow-histograms';
import { InstrumentSink } from '../../src/pipeline/instrument-sink';
import type { Measurement } from '../../src/pipeline/measurements';

class TestReader extends MetricReader {
  constructor(temporality: AggregationTemporality, metricProducers: MetricProducer[] = []) {
    super({ aggregationTemporalitySelector: () => temporality, metricProducers });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

interface Side {
  reader: TestReader;
  sink: InstrumentSink;
  histograms?: FlowHistograms;
}

function side(temporality: AggregationTemporality, ours: boolean, limit = 100_000): Side {
  const histograms = ours ? new FlowHistograms(limit) : undefined;
  const reader = new TestReader(temporality, histograms ? [histograms] : []);
  histograms?.bind(reader);
  const provider = new MeterProvider({ readers: [reader], views: [{ instrumentName: '*', aggregationCardinalityLimit: limit }] });
  return { reader, histograms, sink: new InstrumentSink(provider.getMeter('flowtel'), histograms) };
}

/** Histogram points by metric and attribute set, times left out. */
function points(rm: ResourceMetrics): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const scope of rm.scopeMetrics) {
    for (const m of scope.metrics) {
      if (m.dataPointType !== DataPointType.HISTOGRAM) continue;
      const h = m as HistogramMetricData;
      for (const p of h.dataPoints) {
        const key = `${m.descriptor.name}|${m.descriptor.unit}|${m.aggregationTemporality}|${JSON.stringify(Object.entries(p.attributes).sort())}`;
        out[key] = p.value;
      }
    }
  }
  return out;
}

const rtt = (value: number, attributes: Record<string, string | number>): Measurement => ({ metric: 'tcp_rtt_us', value, attributes });

function batches(): Measurement[][] {
  const a = { 'source.address': '10.0.0.1', 'destination.port': 443 };
  const b = { 'source.address': '10.0.0.2', 'destination.port': 443 };
  const aAgain = { 'destination.port': 443, 'source.address': '10.0.0.1' }; // same set, another object, other key order
  return [
    [rtt(1, a), rtt(50, a), rtt(100, b), rtt(1e9, b), rtt(0, aAgain), { metric: 'tcp_connect_latency_us', value: 250, attributes: a }],
    [rtt(100, a), rtt(NaN, a)],
    [],
    [rtt(7, b), rtt(5000, b)],
  ];
}

for (const temporality of [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA]) {
  test(`same points as the SDK histogram (${temporality === AggregationTemporality.DELTA ? 'delta' : 'cumulative'})`, async () => {
    const sdk = side(temporality, false);
    const ours = side(temporality, true);
    for (const batch of batches()) {
      for (const s of [sdk, ours]) s.sink.consume({ timeMs: 0, measurements: batch, gaugesReplaced: [] });
      const [want, got] = await Promise.all([sdk.reader.collect(), ours.reader.collect()]);
      assert.deepEqual(points(got.resourceMetrics), points(want.resourceMetrics));
    }
  });
}

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
