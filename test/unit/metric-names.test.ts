/**
 * The Collector's OTLP → Prometheus naming as test/helpers/prometheus-names
 * writes it, checked on the examples the Collector and otlptranslator
 * document; then the naming decision of docs/deploy.md on every metric
 * flowtel defines: with the unit cleared (otel-config/collector*.yaml,
 * transform/prometheus_names) the Collector's names are the agent's own
 * Prometheus names (`.` → `_`, `_total` on counters, no unit suffix), and
 * without it they would not be.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { METRICS } from '../../src/metrics/definitions';
import { DNS_METRICS } from '../../src/receivers/ebpf_dns/metrics';
import { collectorLabelName, collectorMetricName, type OtlpMetricShape } from '../helpers/prometheus-names';

describe("the Collector's translation (add_metric_suffixes: true)", () => {
  const cases: [OtlpMetricShape, string][] = [
    [{ name: 'http.server.duration', unit: 's', type: 'histogram' }, 'http_server_duration_seconds'],
    [{ name: 'system.filesystem.usage', unit: 'By', type: 'gauge' }, 'system_filesystem_usage_bytes'],
    [{ name: 'requests.count', unit: '1', type: 'sum', monotonic: true }, 'requests_count_total'],
    [{ name: 'system.cpu.utilization', unit: '1', type: 'gauge' }, 'system_cpu_utilization_ratio'],
    [{ name: 'network.io', unit: 'By/s', type: 'gauge' }, 'network_io_bytes_per_second'],
    [{ name: 'queue.length', unit: '{item}', type: 'gauge' }, 'queue_length'],
    [{ name: 'active.requests', unit: '{request}', type: 'sum', monotonic: false }, 'active_requests'],
    [{ name: 'total.requests', unit: '', type: 'sum', monotonic: true }, 'requests_total'],
    [{ name: 'tcp_bytes_sent', unit: 'By', type: 'sum', monotonic: true }, 'tcp_bytes_sent_total'],
    [{ name: 'tcp_rtt_us', unit: 'us', type: 'histogram' }, 'tcp_rtt_us_microseconds'],
    [{ name: 'flowtel_process_cpu_seconds', unit: 's', type: 'sum', monotonic: true }, 'flowtel_process_cpu_seconds_total'],
    [{ name: 'flowtel_process_memory_rss', unit: 'By', type: 'gauge' }, 'flowtel_process_memory_rss_bytes'],
    [{ name: '2xx.responses', unit: '', type: 'gauge' }, '_2xx_responses'],
  ];
  for (const [metric, expected] of cases) {
    test(`${metric.name} (${metric.type}${metric.monotonic ? ', monotonic' : ''}, unit "${metric.unit}") → ${expected}`, () => {
      assert.equal(collectorMetricName(metric), expected);
    });
  }

  test('without suffixes only invalid characters change', () => {
    assert.equal(collectorMetricName({ name: 'http.server.duration', unit: 's', type: 'histogram' }, { addMetricSuffixes: false }), 'http_server_duration');
    assert.equal(collectorMetricName({ name: 'tcp_bytes_sent', unit: 'By', type: 'sum', monotonic: true }, { addMetricSuffixes: false }), 'tcp_bytes_sent');
  });

  test('namespace is a prefix', () => {
    assert.equal(collectorMetricName({ name: 'tcp_bytes_sent', unit: '', type: 'sum', monotonic: true }, { namespace: 'flowtel' }), 'flowtel_tcp_bytes_sent_total');
  });

  test('label names', () => {
    assert.equal(collectorLabelName('source.k8s.namespace.name'), 'source_k8s_namespace_name');
    assert.equal(collectorLabelName('dns.question.name'), 'dns_question_name');
    assert.equal(collectorLabelName('2xx'), 'key_2xx');
  });
});

describe('flowtel metrics: the Collector with units cleared gives the agent exporter names', () => {
  const defs = [...METRICS.values(), ...DNS_METRICS];
  /** The agent's Prometheus exporter (@opentelemetry/exporter-prometheus): sanitize, `_total` on counters, no unit. */
  const agentName = (name: string, kind: string): string => `${name.replace(/[^a-zA-Z0-9_:]/g, '_')}${kind === 'counter' && !name.endsWith('_total') ? '_total' : ''}`;
  const shape = (d: { name: string; kind: string; unit: string }, unit: string): OtlpMetricShape => ({
    name: d.name,
    unit,
    type: d.kind === 'counter' ? 'sum' : (d.kind as 'gauge' | 'histogram'),
    monotonic: d.kind === 'counter',
  });

  test('every defined metric', () => {
    assert.ok(defs.length >= 30);
    for (const d of defs) assert.equal(collectorMetricName(shape(d, '')), agentName(d.name, d.kind), d.name);
  });

  test('keeping the units would rename the microsecond histograms and the byte gauges', () => {
    const renamed = defs.filter((d) => collectorMetricName(shape(d, d.unit)) !== agentName(d.name, d.kind)).map((d) => d.name).sort();
    for (const n of ['tcp_rtt_us', 'tcp_rtt_var_us', 'tcp_connect_latency_us', 'dns_latency_us', 'flowtel_process_memory_rss', 'flowtel_process_heap_used']) assert.ok(renamed.includes(n), `${n} in ${renamed.join(', ')}`);
  });
});
