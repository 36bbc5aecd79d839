/** The aggregate processor: group_by/drop sums, histogram pass-through, cardinality limit and overflow. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FlowAttributes, Measurement, MeasurementBatch } from '../../src/pipeline/measurements';
import { aggregateProcessorFactory, AggregateProcessor } from '../../src/processors';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function batch(measurements: Measurement[], gaugesReplaced: string[] = []): MeasurementBatch {
  return deepFreeze({ timeMs: 5, measurements, gaugesReplaced });
}

function aggregate(config: unknown): AggregateProcessor {
  return aggregateProcessorFactory.create(aggregateProcessorFactory.validate(config, 'processors.aggregate'), {
    id: 'aggregate',
    logger: undefined as never,
  }) as AggregateProcessor;
}

const flow = (pid: number, port: number, name: string, extra: FlowAttributes = {}): FlowAttributes => ({
  'network.transport': 'tcp',
  'source.address': `10.0.0.${pid % 250}`,
  'destination.address': '10.0.2.100',
  'destination.port': port,
  'flow.direction': 'outgoing',
  'process.pid': pid,
  'process.executable.name': name,
  ...extra,
});

const m = (metric: string, value: number, attributes: FlowAttributes): Measurement => ({ metric, value, attributes });

test('group_by keeps only the listed attributes and sums counters and gauges per resulting set', () => {
  const a = aggregate({ group_by: ['destination.port', 'process.executable.name'] });
  const input = batch(
    [
      m('tcp_bytes_sent', 100, flow(1, 443, 'nginx')),
      m('tcp_bytes_sent', 50, flow(2, 443, 'nginx')),
      m('tcp_bytes_sent', 7, flow(3, 5432, 'postgres')),
      m('tcp_connections', 1, flow(1, 443, 'nginx', { 'network.connection.state': 'established' })),
      m('tcp_connections', 1, flow(2, 443, 'nginx', { 'network.connection.state': 'close_wait' })),
      m('tcp_rtt_us', 300, flow(1, 443, 'nginx')),
      m('tcp_rtt_us', 900, flow(2, 443, 'nginx')),
      m('tcp_bytes_sent', 1, flow(4, 443, 'nginx')),
      m('flowtel_ebpf_dropped', 2, { receiver: 'ebpf_tcp', reason: 'ringbuf_full' }),
    ],
    ['tcp_connections'],
  );
  const out = a.process(input);
  const nginx443 = { 'destination.port': 443, 'process.executable.name': 'nginx' };
  assert.deepEqual(out.measurements, [
    m('tcp_bytes_sent', 151, nginx443),
    m('tcp_bytes_sent', 7, { 'destination.port': 5432, 'process.executable.name': 'postgres' }),
    m('tcp_connections', 2, nginx443),
    m('tcp_rtt_us', 300, nginx443),
    m('tcp_rtt_us', 900, nginx443),
    m('flowtel_ebpf_dropped', 2, { receiver: 'ebpf_tcp', reason: 'ringbuf_full' }),
  ]);
  assert.equal(out.measurements[5], input.measurements[8], 'self-telemetry passes as is');
  assert.deepEqual(out.gaugesReplaced, ['tcp_connections']);
  assert.equal(out.timeMs, 5);
});

test('group_by with an attribute a flow lacks, and an empty group_by', () => {
  const a = aggregate({ group_by: ['source.port', 'flow.direction'] });
  const out = a.process(batch([m('tcp_bytes_sent', 1, flow(1, 443, 'a')), m('tcp_bytes_sent', 2, flow(2, 80, 'b'))]));
  assert.deepEqual(out.measurements, [m('tcp_bytes_sent', 3, { 'flow.direction': 'outgoing' })]);
  const all = aggregate({ group_by: [] });
  const total = all.process(batch([m('udp_bytes_sent', 1, flow(1, 53, 'a')), m('udp_bytes_sent', 2, flow(2, 53, 'b')), m('tcp_bytes_sent', 4, flow(3, 1, 'c'))]));
  assert.deepEqual(total.measurements, [m('udp_bytes_sent', 3, {}), m('tcp_bytes_sent', 4, {})]);
});

test('drop removes the listed attributes', () => {
  const a = aggregate({ drop: ['process.pid', 'source.address'] });
  const out = a.process(batch([m('tcp_bytes_sent', 10, flow(1, 443, 'nginx')), m('tcp_bytes_sent', 5, flow(2, 443, 'nginx')), m('tcp_bytes_sent', 1, flow(3, 443, 'curl'))]));
  const rest = (name: string): FlowAttributes => {
    const f = flow(0, 443, name);
    delete f['process.pid'];
    delete f['source.address'];
    return f;
  };
  assert.deepEqual(out.measurements, [m('tcp_bytes_sent', 15, rest('nginx')), m('tcp_bytes_sent', 1, rest('curl'))]);
});

test('neither group_by nor drop: equal attribute sets are merged regardless of key order', () => {
  const a = aggregate({});
  const x = flow(1, 443, 'nginx');
  const reordered = Object.fromEntries(Object.entries(x).reverse());
  const out = a.process(batch([m('tcp_bytes_sent', 1, x), m('tcp_bytes_sent', 2, reordered), m('tcp_bytes_sent', 4, { ...x, 'destination.port': '443' })]));
  assert.deepEqual(
    out.measurements.map((o) => o.value),
    [3, 4],
    'the number 443 and the string "443" are different attribute values',
  );
});

test('cardinality_limit: new sets beyond the limit go to one overflow series, remembered across batches', () => {
  const a = aggregate({ group_by: ['destination.port'], cardinality_limit: 3 });
  const b1 = a.process(batch([1, 2, 3, 4, 5].map((port) => m('tcp_bytes_sent', port * 10, flow(port, port, 'x')))));
  assert.deepEqual(b1.measurements, [
    m('tcp_bytes_sent', 10, { 'destination.port': 1 }),
    m('tcp_bytes_sent', 20, { 'destination.port': 2 }),
    m('tcp_bytes_sent', 30, { 'destination.port': 3 }),
    m('tcp_bytes_sent', 90, { 'otel.metric.overflow': true }),
  ]);
  // A later batch: known sets keep their identity (port 2), new ones (6) overflow, even if an earlier set is absent now.
  const b2 = a.process(
    batch([
      m('tcp_bytes_sent', 6, flow(6, 6, 'x')),
      m('tcp_bytes_sent', 2, flow(2, 2, 'x')),
      m('tcp_rtt_us', 100, flow(6, 6, 'x')),
      m('tcp_connections', 1, flow(6, 6, 'x')),
      m('tcp_connections', 1, flow(7, 7, 'x')),
    ]),
  );
  assert.deepEqual(b2.measurements, [
    m('tcp_bytes_sent', 6, { 'otel.metric.overflow': true }),
    m('tcp_bytes_sent', 2, { 'destination.port': 2 }),
    // The limit is per metric: tcp_rtt_us and tcp_connections have room.
    m('tcp_rtt_us', 100, { 'destination.port': 6 }),
    m('tcp_connections', 1, { 'destination.port': 6 }),
    m('tcp_connections', 1, { 'destination.port': 7 }),
  ]);
  assert.equal(a.cardinality('tcp_bytes_sent'), 3);
  assert.deepEqual(a.overflowCounts(), { tcp_bytes_sent: 3 });
  assert.equal(a.overflowedMeasurements, 3);
});

test('overflowed histogram samples stay samples; cardinality_limit 0 is no limit', () => {
  const a = aggregate({ cardinality_limit: 1 });
  const out = a.process(batch([m('tcp_rtt_us', 1, flow(1, 1, 'x')), m('tcp_rtt_us', 2, flow(2, 2, 'x')), m('tcp_rtt_us', 3, flow(3, 3, 'x'))]));
  assert.deepEqual(
    out.measurements.map((o) => [o.value, o.attributes['otel.metric.overflow']]),
    [
      [1, undefined],
      [2, true],
      [3, true],
    ],
  );
  assert.deepEqual(a.overflowCounts(), { tcp_rtt_us: 2 });
  const unlimited = aggregate({ cardinality_limit: 0 });
  const many = unlimited.process(batch(Array.from({ length: 20_000 }, (_, i) => m('tcp_bytes_sent', 1, flow(i, i, 'x')))));
  assert.equal(many.measurements.length, 20_000);
  assert.equal(unlimited.overflowedMeasurements, 0);
});

test('the default limit is 10000 per metric', () => {
  const a = aggregate({ group_by: ['process.pid'] });
  const out = a.process(batch(Array.from({ length: 10_005 }, (_, i) => m('tcp_bytes_sent', 1, flow(i, 443, 'x')))));
  assert.equal(out.measurements.length, 10_001);
  assert.deepEqual(out.measurements[10_000], m('tcp_bytes_sent', 5, { 'otel.metric.overflow': true }));
});
