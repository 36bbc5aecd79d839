/**
 * A histogram measurement may carry an interval's samples of one attribute
 * set (`samples`): every processor that gives a measurement new attributes
 * keeps them, and every count of measurements counts each sample.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FlowAttributes, Measurement, MeasurementBatch } from '../../src/pipeline/measurements';
import {
  aggregateProcessorFactory,
  attributesProcessorFactory,
  filterProcessorFactory,
  samplingProcessorFactory,
  type AggregateProcessor,
  type FilterProcessor,
  type SamplingProcessor,
} from '../../src/processors';
import type { MetricsProcessor, PipelineProcessor, ProcessorFactory } from '../../src/pipeline/component';

const ctx = (id: string) => ({ id, logger: undefined as never });

function make<T>(factory: ProcessorFactory<unknown, PipelineProcessor>, config: unknown, id: string): T {
  return factory.create(factory.validate(config, `processors.${id}`), ctx(id)) as T;
}

const flow = (port: number, pid: number): FlowAttributes => ({
  'network.transport': 'tcp',
  'source.address': '10.0.0.1',
  'destination.address': '10.0.0.2',
  'destination.port': port,
  'flow.direction': 'outgoing',
  'process.pid': pid,
  'process.executable.name': 'curl',
});

const SAMPLES = Float64Array.from([40, 41, 90, 4000]);

function batch(): MeasurementBatch {
  return {
    timeMs: 1,
    measurements: [
      { metric: 'tcp_rtt_us', value: 0, attributes: flow(443, 10), samples: SAMPLES },
      { metric: 'tcp_rtt_us', value: 0, attributes: flow(443, 11), samples: SAMPLES.subarray(0, 2) },
      { metric: 'tcp_bytes_sent', value: 100, attributes: flow(443, 10) },
    ],
    gaugesReplaced: [],
  };
}

const histogramValues = (b: MeasurementBatch): number[] =>
  b.measurements.filter((m) => m.metric === 'tcp_rtt_us').flatMap((m: Measurement) => (m.samples ? Array.from(m.samples) : [m.value]));

test('aggregate, attributes and sampling keep the samples of the measurements they relabel', () => {
  const cases: [string, MetricsProcessor][] = [
    ['aggregate', make<AggregateProcessor>(aggregateProcessorFactory, { group_by: ['destination.port'] }, 'aggregate')],
    ['attributes', make<MetricsProcessor>(attributesProcessorFactory, { actions: [{ key: 'env', value: 'prod', action: 'insert' }] }, 'attributes')],
    ['sampling', make<SamplingProcessor>(samplingProcessorFactory, { sampling_rate: 1 }, 'sampling')],
  ];
  for (const [name, p] of cases) {
    const out = p.process(batch());
    assert.deepEqual(histogramValues(out), [40, 41, 90, 4000, 40, 41], name);
    for (const m of out.measurements) assert.notEqual(m.attributes, batch().measurements[0]!.attributes, `${name}: relabeled`);
  }
  const grouped = cases[0]![1].process(batch());
  assert.deepEqual(
    grouped.measurements.filter((m) => m.metric === 'tcp_rtt_us').map((m) => m.attributes),
    [{ 'destination.port': 443 }, { 'destination.port': 443 }],
  );
});

test('a sampler keeps or drops a measurement with all its samples, unscaled, and counts each sample', () => {
  const s = make<SamplingProcessor>(samplingProcessorFactory, { sampling_rate: 2 }, 'sampling');
  const out = s.process(batch());
  const kept = histogramValues(out);
  assert.ok([0, 2, 4, 6].includes(kept.length), `whole measurements: ${kept.length}`);
  for (const v of kept) assert.ok(SAMPLES.includes(v), 'unscaled');
  assert.equal(s.counters.kept + s.counters.dropped, 4 + 2 + 1);
});

test('filter counts a measurement with samples as that many values', () => {
  const f = make<FilterProcessor>(filterProcessorFactory, { exclude: { processes: ['curl'] } }, 'filter');
  f.process(batch());
  assert.deepEqual(f.counters, { passed: 0, dropped: 7 });
});
