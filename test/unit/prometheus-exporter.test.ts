import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { prometheusExporterFactory, prometheusListenAddress, type PrometheusMetricsExporter } from '../../src/exporters';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { captureLogger } from '../helpers/capture-logger';
import { loadConfigFromTexts, validateConfig } from '../../src/config';
import { exporterFactories } from '../../src/exporters';
import { Service } from '../../src/pipeline/service';
import { silentLogger } from '../../src/util/log';
import { fakeReceiverFactory, fakeReceivers } from '../helpers/fake-receiver';
import { freePort } from '../helpers/e2e';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A free TCP port. (PrometheusExporter 0.223 treats port 0 as "unset" and
 * falls back to 9464, so tests cannot ask for an ephemeral port directly.)
 */
function exporterWith(raw: Record<string, unknown>): { exporter: PrometheusMetricsExporter; provider: MeterProvider } {
  const { logger } = captureLogger();
  const exporter = prometheusExporterFactory.create(prometheusExporterFactory.validate(raw, 'exporters.prometheus'), { id: 'prometheus', logger });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'flowtel', 'host.name': 'node-1' }),
    readers: [exporter.reader],
  });
  cleanups.push(() => exporter.shutdown());
  return { exporter, provider };
}

function record(provider: MeterProvider): void {
  const meter = provider.getMeter('flowtel', '0.1.0');
  const flow = { 'network.transport': 'tcp', 'destination.address': '10.0.0.9', 'destination.port': 443 };
  meter.createCounter('tcp_bytes_sent', { unit: 'By', description: 'bytes sent' }).add(1500, flow);
  meter.createHistogram('tcp_rtt_us', { unit: 'us', advice: { explicitBucketBoundaries: [100, 1000] } }).record(250, flow);
  meter.createObservableGauge('tcp_connections', { unit: '{connection}' }).addCallback((r) => r.observe(3, { 'network.connection.state': 'established' }));
}

test('serves /metrics after start(): names as exporter-prometheus 0.223 writes them', async () => {
  const port = await freePort();
  const { exporter, provider } = exporterWith({ endpoint: `127.0.0.1:${port}` });
  assert.equal(exporter.url, `http://127.0.0.1:${port}/metrics`);
  await assert.rejects(fetch(exporter.url), 'no server before start()');
  await exporter.start();
  record(provider);

  const response = await fetch(exporter.url);
  assert.equal(response.status, 200);
  const body = await response.text();
  const lines = body.split('\n');
  // Monotonic counters get `_total`; 0.223 adds NO unit suffix (no `_bytes`),
  // the unit only appears as a `# UNIT` comment.
  assert.ok(lines.includes('# TYPE tcp_bytes_sent_total counter'), body);
  assert.ok(lines.includes('# UNIT tcp_bytes_sent_total By'), body);
  assert.ok(
    lines.includes(
      'tcp_bytes_sent_total{network_transport="tcp",destination_address="10.0.0.9",destination_port="443",otel_scope_name="flowtel",otel_scope_version="0.1.0"} 1500',
    ),
    body,
  );
  assert.doesNotMatch(body, /tcp_bytes_sent_bytes/);
  // Histograms: _count, _sum, _bucket with le; no unit suffix either.
  assert.ok(lines.includes('# TYPE tcp_rtt_us histogram'), body);
  assert.ok(lines.some((l) => l.startsWith('tcp_rtt_us_count{') && l.endsWith(' 1')), body);
  assert.ok(lines.some((l) => l.startsWith('tcp_rtt_us_sum{') && l.endsWith(' 250')), body);
  assert.ok(lines.some((l) => l.startsWith('tcp_rtt_us_bucket{') && l.includes('le="1000"') && l.endsWith(' 1')), body);
  assert.ok(lines.some((l) => l.startsWith('tcp_rtt_us_bucket{') && l.includes('le="+Inf"')), body);
  // Gauges keep their name.
  assert.ok(lines.includes('# TYPE tcp_connections gauge'), body);
  // The resource is target_info.
  assert.ok(lines.includes('target_info{service_name="flowtel",host_name="node-1"} 1'), body);

  assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);

  await exporter.shutdown();
  await assert.rejects(fetch(exporter.url), 'server closed by shutdown()');
});

test('a scrape that cannot be rendered (a page past the longest string V8 makes) is a 500 and a log line, not the end of the agent', async () => {
  const port = await freePort();
  const { logger, lines } = captureLogger();
  const exporter = prometheusExporterFactory.create(prometheusExporterFactory.validate({ endpoint: `127.0.0.1:${port}` }, 'exporters.prometheus'), { id: 'prometheus', logger });
  const provider = new MeterProvider({ readers: [exporter.reader] });
  cleanups.push(() => exporter.shutdown());
  await exporter.start();
  record(provider);
  const serialize = PrometheusSerializer.prototype.serialize;
  PrometheusSerializer.prototype.serialize = () => {
    throw new RangeError('Invalid string length');
  };
  try {
    const failed = await fetch(exporter.url);
    assert.equal(failed.status, 500);
    assert.match(await failed.text(), /rendering the metrics failed: Invalid string length/);
    assert.ok(lines.some((l) => /a scrape could not be rendered/.test(String(l.msg))), JSON.stringify(lines));
  } finally {
    PrometheusSerializer.prototype.serialize = serialize;
  }
  const ok = await fetch(exporter.url);
  assert.equal(ok.status, 200);
  assert.match(await ok.text(), /tcp_bytes_sent_total/);
});

test('namespace, without_scope_info, without_target_info, resource labels', async () => {
  const port = await freePort();
  const { exporter, provider } = exporterWith({
    endpoint: `127.0.0.1:${port}`,
    namespace: 'flowtel',
    without_scope_info: true,
    without_target_info: true,
    resource_to_telemetry_conversion: { enabled: true },
  });
  await exporter.start();
  record(provider);
  const body = await (await fetch(exporter.url)).text();
  assert.match(body, /^flowtel_tcp_bytes_sent_total\{network_transport="tcp",destination_address="10\.0\.0\.9",destination_port="443",service_name="flowtel",host_name="node-1"\} 1500$/m);
  assert.doesNotMatch(body, /otel_scope_name/);
  assert.doesNotMatch(body, /target_info/);
});

test('a port in use is a clear error from start()', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const { port } = blocker.address() as AddressInfo;
  const { exporter } = exporterWith({ endpoint: `127.0.0.1:${port}` });
  await assert.rejects(exporter.start(), (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.equal(
      error.message,
      `exporter prometheus: cannot listen on 127.0.0.1:${port}: the port is already in use (another flowtel or Prometheus exporter?); set exporters.prometheus.endpoint to a free port`,
    );
    return true;
  });
});

test('prometheus config: defaults, env fallback, validation', () => {
  const v = (raw: unknown) => prometheusExporterFactory.validate(raw, 'exporters.prometheus');
  const defaults = v(null);
  assert.deepEqual(defaults, {
    namespace: '',
    send_timestamps: false,
    resource_to_telemetry_conversion: { enabled: false },
    metric_expiration: 300_000,
    without_scope_info: false,
    without_target_info: false,
    tls: { min_version: '1.2' },
    auth: { basic: {} },
  });
  assert.deepEqual(prometheusListenAddress(defaults, {}), { host: '0.0.0.0', port: 9464 });
  assert.deepEqual(prometheusListenAddress(defaults, { OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: '9999' }), {
    host: '127.0.0.1',
    port: 9999,
  });
  assert.deepEqual(prometheusListenAddress(v({ endpoint: '[::1]:9000' }), { OTEL_EXPORTER_PROMETHEUS_PORT: '9999' }), { host: '::1', port: 9000 });
  assert.deepEqual(prometheusListenAddress(v({ endpoint: ':9100' }), {}), { host: '0.0.0.0', port: 9100 });
  assert.throws(() => v({ endpoint: '9464' }), /exporters\.prometheus\.endpoint: expected host:port/);
  assert.throws(() => v({ endpoint: 'h:70000' }), /port must be between 1 and 65535/);
  assert.throws(() => v({ namespace: 'my-app' }), /exporters\.prometheus\.namespace: must be a valid Prometheus name prefix/);
  assert.throws(() => v({ resource_attributes_as_labels: '(' }), /invalid regular expression/);
  assert.throws(() => v({ add_metric_suffixes: false }), /unknown option "add_metric_suffixes"/);
  assert.equal(v({ metric_expiration: '90s' }).metric_expiration, 90_000);
  assert.throws(() => v({ metric_expiration: '10ms' }), /exporters\.prometheus\.metric_expiration/);
});

test('metric_expiration: a series unchanged that long (a gauge at 0 that long) is no longer served; the others are', async () => {
  const port = await freePort();
  const text = `
receivers: { fake: {} }
exporters:
  prometheus: { endpoint: "127.0.0.1:${port}", metric_expiration: 1s, without_scope_info: true, without_target_info: true }
service:
  pipelines:
    metrics: { receivers: [fake], exporters: [prometheus] }
`;
  const config = validateConfig(loadConfigFromTexts([{ source: 't.yaml', text }], [], { env: {} }), [fakeReceiverFactory, ...Object.values(exporterFactories)] as never[]);
  const service = Service.build(config, silentLogger());
  await service.start();
  cleanups.push(() => service.shutdown());
  const fake = fakeReceivers.get('fake')!;
  const gone = { 'process.pid': 1 };
  const stays = { 'process.pid': 2 };
  const scrape = async (): Promise<string[]> =>
    (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).split('\n').filter((l) => /^tcp_/.test(l));
  fake.send(
    [
      { metric: 'tcp_bytes_sent', value: 10, attributes: gone },
      { metric: 'tcp_bytes_sent', value: 20, attributes: stays },
      { metric: 'tcp_connections', value: 1, attributes: gone },
      { metric: 'tcp_connections', value: 1, attributes: stays },
    ],
    ['tcp_connections'],
  );
  assert.deepEqual((await scrape()).sort(), [
    'tcp_bytes_sent_total{process_pid="1"} 10',
    'tcp_bytes_sent_total{process_pid="2"} 20',
    'tcp_connections{process_pid="1"} 1',
    'tcp_connections{process_pid="2"} 1',
  ]);
  // pid 1 is gone: its counter no longer moves and its gauge reads 0.
  fake.send([{ metric: 'tcp_bytes_sent', value: 1, attributes: stays }, { metric: 'tcp_connections', value: 1, attributes: stays }], ['tcp_connections']);
  assert.deepEqual((await scrape()).sort(), ['tcp_bytes_sent_total{process_pid="1"} 10', 'tcp_bytes_sent_total{process_pid="2"} 21', 'tcp_connections{process_pid="1"} 0', 'tcp_connections{process_pid="2"} 1']);
  await new Promise((resolve) => setTimeout(resolve, 1300));
  fake.send([{ metric: 'tcp_bytes_sent', value: 1, attributes: stays }, { metric: 'tcp_connections', value: 1, attributes: stays }], ['tcp_connections']);
  assert.deepEqual((await scrape()).sort(), ['tcp_bytes_sent_total{process_pid="2"} 22', 'tcp_connections{process_pid="2"} 1']);
});
