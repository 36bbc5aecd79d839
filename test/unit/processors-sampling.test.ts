/** The sampling processor: consistent per-connection decisions, unbiased scaled totals, input never mutated. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FlowAttributes, Measurement, MeasurementBatch } from '../../src/pipeline/measurements';
import { samplingProcessorFactory, SamplingProcessor } from '../../src/processors';
import { fnv1a64Hex, hashUnit } from '../../src/processors/hash';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function batch(measurements: Measurement[], gaugesReplaced: string[] = []): MeasurementBatch {
  return deepFreeze({ timeMs: 1, measurements, gaugesReplaced });
}

function sampler(config: unknown): SamplingProcessor {
  return samplingProcessorFactory.create(samplingProcessorFactory.validate(config, 'processors.sampling'), {
    id: 'sampling',
    logger: undefined as never,
  }) as SamplingProcessor;
}

/** Deterministic PRNG (mulberry32) so the statistics test is reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function flowAttributes(i: number): FlowAttributes {
  return {
    'network.transport': i % 7 === 0 ? 'udp' : 'tcp',
    'network.type': 'ipv4',
    'source.address': '10.0.0.1',
    'destination.address': `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    'destination.port': 1024 + (i % 50_000),
    'flow.direction': 'outgoing',
    'process.pid': 1000 + (i % 300),
    'process.executable.name': `app${i % 17}`,
  };
}

test('FNV-1a 64 matches the reference vectors', () => {
  assert.equal(fnv1a64Hex(''), 'cbf29ce484222325');
  assert.equal(fnv1a64Hex('a'), 'af63dc4c8601ec8c');
  assert.equal(fnv1a64Hex('foobar'), '85944171f73967e8');
  assert.equal(fnv1a64Hex('é'), fnv1a64Hex('\u00e9'));
  const u = hashUnit('x', 1);
  assert.ok(u >= 0 && u < 1);
  assert.equal(hashUnit('x', 1), u, 'stable');
  assert.notEqual(hashUnit('x', 2), u, 'seeded');
});

for (const [rate, seed] of [
  [10, 0],
  [10, 1],
  [10, 12345],
  [3, 7],
  [100, 42],
] as const) {
  test(`sampling_rate ${rate}, seed ${seed}: kept fraction ≈ 1/N and the scaled sum is within 4σ of the true sum`, () => {
    const n = 20_000;
    const random = rng(seed + 1);
    const values: number[] = [];
    const measurements: Measurement[] = [];
    for (let i = 0; i < n; i++) {
      // Heavy-ish tail: most flows small, some large (bytes per interval).
      const v = Math.floor(1 + 10 ** (random() * 5));
      values.push(v);
      measurements.push({ metric: 'tcp_bytes_sent', value: v, attributes: flowAttributes(i) });
    }
    const s = sampler({ sampling_rate: rate, hash_seed: seed });
    const out = s.process(batch(measurements));

    const p = 1 / rate;
    const kept = out.measurements.length;
    const keptSd = Math.sqrt(n * p * (1 - p));
    assert.ok(Math.abs(kept - n * p) <= 4 * keptSd, `kept ${kept} of ${n}, expected ${n * p} ± ${4 * keptSd}`);

    // S = N · Σ_kept v_i with each flow kept independently with probability p:
    // E[S] = Σ v_i, Var[S] = N² · p(1−p) · Σ v_i² = (N−1) · Σ v_i².
    const trueSum = values.reduce((a, b) => a + b, 0);
    const scaledSum = out.measurements.reduce((a, m) => a + m.value, 0);
    const sd = Math.sqrt((rate - 1) * values.reduce((a, v) => a + v * v, 0));
    assert.ok(Math.abs(scaledSum - trueSum) <= 4 * sd, `scaled ${scaledSum}, true ${trueSum}, 4σ = ${4 * sd}`);
    for (const m of out.measurements) {
      assert.equal(m.attributes['sampling.rate'], rate);
      assert.equal(m.value % rate, 0, 'counters are scaled by N');
    }
    assert.deepEqual(s.counters, { kept, dropped: n - kept });
  });
}

test('a connection is always in or always out: across batches, metrics and metric-specific attributes', () => {
  const s = sampler({ sampling_rate: 4, hash_seed: 9 });
  const flows = Array.from({ length: 2000 }, (_, i) => flowAttributes(i));
  const keptIn = (b: MeasurementBatch, metric: string): Set<string> =>
    new Set(b.measurements.filter((m) => m.metric === metric).map((m) => String(m.attributes['destination.address'])));

  const first = keptIn(s.process(batch(flows.map((a) => ({ metric: 'tcp_bytes_sent', value: 10, attributes: a })))), 'tcp_bytes_sent');
  assert.ok(first.size > 300 && first.size < 700);
  // A fresh processor with the same seed (another agent, a restart) decides the same.
  const again = sampler({ sampling_rate: 4, hash_seed: 9 });
  for (let round = 0; round < 3; round++) {
    const mixed = batch(
      flows.flatMap((a, i): Measurement[] => [
        { metric: 'tcp_connections', value: 1, attributes: { ...a, 'network.connection.state': i % 2 ? 'established' : 'close_wait' } },
        { metric: 'tcp_connection_failures', value: 1, attributes: { ...a, 'error.type': 'refused' } },
        { metric: 'tcp_rtt_us', value: 100 + round, attributes: a },
      ]),
    );
    const out = (round === 0 ? again : s).process(mixed);
    assert.deepEqual(keptIn(out, 'tcp_connections'), first);
    assert.deepEqual(keptIn(out, 'tcp_connection_failures'), first);
    assert.deepEqual(keptIn(out, 'tcp_rtt_us'), first);
  }
  // Another seed samples another subset (overlap ≈ 1/16 of the flows, not 1/4).
  const other = keptIn(sampler({ sampling_rate: 4, hash_seed: 10 }).process(batch(flows.map((a) => ({ metric: 'tcp_bytes_sent', value: 1, attributes: a })))), 'tcp_bytes_sent');
  const overlap = [...other].filter((x) => first.has(x)).length;
  assert.ok(overlap < 250, `overlap ${overlap}`);
});

test('counters and gauges are scaled, histogram samples are not; all get sampling.rate', () => {
  const s = sampler({ sampling_rate: 5 });
  // Find a flow that is kept.
  let attrs: FlowAttributes | undefined;
  for (let i = 0; !attrs; i++) if (s.keeps(flowAttributes(i))) attrs = flowAttributes(i);
  const input = batch(
    [
      { metric: 'tcp_bytes_sent', value: 7, attributes: attrs },
      { metric: 'tcp_connections', value: 2, attributes: { ...attrs, 'network.connection.state': 'established' } },
      { metric: 'tcp_rtt_us', value: 250, attributes: attrs },
      { metric: 'flowtel_ebpf_dropped', value: 3, attributes: { receiver: 'ebpf_tcp', reason: 'ringbuf_full' } },
      { metric: 'flowtel_collection_duration_us', value: 900, attributes: { receiver: 'ebpf_tcp' } },
    ],
    ['tcp_connections'],
  );
  const out = s.process(input);
  assert.deepEqual(
    out.measurements.map((m) => [m.metric, m.value, m.attributes['sampling.rate']]),
    [
      ['tcp_bytes_sent', 35, 5],
      ['tcp_connections', 10, 5],
      ['tcp_rtt_us', 250, 5],
      ['flowtel_ebpf_dropped', 3, undefined],
      ['flowtel_collection_duration_us', 900, undefined],
    ],
  );
  assert.equal(out.measurements[3], input.measurements[3], 'self-telemetry passes as is');
  assert.deepEqual(out.gaugesReplaced, ['tcp_connections']);
  assert.equal(attrs['sampling.rate'], undefined, 'the input attributes are not touched');
});

test('chained samplers multiply sampling.rate; rate 1 passes everything unchanged', () => {
  const a = sampler({ sampling_rate: 2, hash_seed: 1 });
  const b = sampler({ sampling_rate: 3, hash_seed: 2 });
  const flows = Array.from({ length: 600 }, (_, i): Measurement => ({ metric: 'udp_bytes_sent', value: 1, attributes: flowAttributes(i) }));
  const out = b.process(deepFreeze(a.process(batch(flows))));
  assert.ok(out.measurements.length > 50 && out.measurements.length < 150, String(out.measurements.length));
  for (const m of out.measurements) {
    assert.equal(m.attributes['sampling.rate'], 6);
    assert.equal(m.value, 6);
  }
  const one = sampler({});
  const input = batch(flows);
  const same = one.process(input);
  assert.notEqual(same, input);
  assert.deepEqual(same, input);
});
