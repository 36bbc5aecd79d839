/**
 * Cutting an export request into requests of at most N data points (the
 * batch processor's send_batch_max_size): every point once, in order, with
 * its metric's descriptor, temporality and scope.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregationTemporality, MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { countDataPoints, splitResourceMetrics } from '../../src/exporters/retry/split';

class Reader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

/** Two scopes: a: counter c1 (5 series), histogram h (2); b: counter c2 (4). 11 points. */
async function sample(): Promise<ResourceMetrics> {
  const reader = new Reader();
  const provider = new MeterProvider({ readers: [reader] });
  const a = provider.getMeter('a', '1');
  const c1 = a.createCounter('c1', { unit: 'By' });
  for (let i = 0; i < 5; i++) c1.add(i + 1, { i });
  const h = a.createHistogram('h');
  h.record(5, { i: 0 });
  h.record(7, { i: 1 });
  const c2 = provider.getMeter('b').createCounter('c2');
  for (let i = 0; i < 4; i++) c2.add(10 * (i + 1), { i });
  const { resourceMetrics } = await reader.collect();
  return resourceMetrics;
}

/** scope/metric/i of every point, in order. */
function points(rm: ResourceMetrics): string[] {
  return rm.scopeMetrics.flatMap((s) => s.metrics.flatMap((m) => m.dataPoints.map((p) => `${s.scope.name}/${m.descriptor.name}/${String(p.attributes.i)}`)));
}

test('11 points in parts of at most 3: 3, 3, 3, 2; every point once, in order; descriptors and scopes kept', async () => {
  const rm = await sample();
  assert.equal(countDataPoints(rm), 11);
  const parts = splitResourceMetrics(rm, 3);
  assert.deepEqual(parts.map(countDataPoints), [3, 3, 3, 2]);
  assert.deepEqual(parts.flatMap(points), points(rm));
  for (const part of parts) {
    assert.equal(part.resource, rm.resource);
    for (const s of part.scopeMetrics) {
      const original = rm.scopeMetrics.find((o) => o.scope.name === s.scope.name)!;
      assert.equal(s.scope, original.scope);
      for (const m of s.metrics) {
        const om = original.metrics.find((o) => o.descriptor.name === m.descriptor.name)!;
        assert.equal(m.descriptor, om.descriptor);
        assert.equal(m.aggregationTemporality, om.aggregationTemporality);
        assert.equal(m.dataPointType, om.dataPointType);
      }
    }
  }
  // The second part continues c1 (points 3, 4) and starts h: one scope, two metrics.
  assert.deepEqual(points(parts[1]!), ['a/c1/3', 'a/c1/4', 'a/h/0']);
  // The third holds the end of scope a and the start of scope b.
  assert.deepEqual(parts[2]!.scopeMetrics.map((s) => s.scope.name), ['a', 'b']);
});

test('a request that fits, or no usable limit, is sent as it is', async () => {
  const rm = await sample();
  assert.deepEqual(splitResourceMetrics(rm, 11), [rm]);
  assert.deepEqual(splitResourceMetrics(rm, 0), [rm]);
  assert.deepEqual(splitResourceMetrics(rm, 1).map(countDataPoints), Array(11).fill(1));
});
