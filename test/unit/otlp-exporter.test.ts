import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ConfigError } from '../../src/pipeline/component';
import { otlpExporterFactory, type OtlpMetricsExporter } from '../../src/exporters';
import { buildResource } from '../../src/telemetry/resource';
import { captureLogger } from '../helpers/capture-logger';
import { haveOpenssl, selfSignedCert } from '../helpers/test-certs';
import { flattenMetrics, latestMetric, resourceAttributes, startOtlpReceiver, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const FLOW = {
  'network.transport': 'tcp',
  'source.address': '10.0.0.5',
  'destination.address': '93.184.216.34',
  'destination.port': 443,
  'process.pid': 4242,
  'process.executable.name': 'curl',
};

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const OTEL_VARS = Object.keys(process.env).filter((k) => k.startsWith('OTEL_'));
function withEnv(vars: Record<string, string>): void {
  const saved = new Map<string, string | undefined>();
  for (const key of [...OTEL_VARS, ...Object.keys(vars)]) saved.set(key, process.env[key]);
  for (const key of OTEL_VARS) delete process.env[key];
  Object.assign(process.env, vars);
  cleanups.push(() => {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });
}

async function receiver(): Promise<OtlpTestReceiver> {
  const r = await startOtlpReceiver();
  cleanups.push(() => r.close());
  return r;
}

/** An otlp exporter in a MeterProvider, shut down after the test. */
function pipeline(rawConfig: unknown, id = 'otlp') {
  const { logger, lines } = captureLogger();
  const config = otlpExporterFactory.validate(rawConfig, `exporters.${id}`);
  const exporter: OtlpMetricsExporter = otlpExporterFactory.create(config, { id, logger });
  const provider = new MeterProvider({ resource: buildResource({ serviceName: 'flowtel-test' }), readers: [exporter.reader] });
  cleanups.push(() => exporter.shutdown());
  return { exporter, provider, meter: provider.getMeter('flowtel', '0.1.0'), logs: lines };
}

test('otlp exporter sends counters and histograms that a real OTLP/gRPC receiver decodes', async () => {
  withEnv({ OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test' });
  const backend = await receiver();
  const { exporter, meter } = pipeline({ endpoint: backend.endpoint, tls: { insecure: true }, headers: { 'X-Tenant': 'acme' }, compression: 'gzip' });
  await exporter.start();

  const bytes = meter.createCounter('tcp_bytes_sent', { unit: 'By', description: 'bytes sent' });
  bytes.add(1000, FLOW);
  bytes.add(500, FLOW);
  bytes.add(7, { ...FLOW, 'process.pid': 1 });
  const rtt = meter.createHistogram('tcp_rtt_us', { unit: 'us', advice: { explicitBucketBoundaries: [100, 1000, 10000] } });
  rtt.record(800, FLOW);
  rtt.record(1200, FLOW);

  await exporter.reader.forceFlush();
  const requests = await backend.waitFor((reqs) => reqs.length > 0);
  assert.equal(exporter.exportFailures, 0);
  assert.equal(exporter.exportSuccesses, 1);

  const counter = latestMetric(requests, 'tcp_bytes_sent');
  assert.ok(counter);
  assert.equal(counter.kind, 'sum');
  assert.equal(counter.unit, 'By');
  assert.equal(counter.description, 'bytes sent');
  assert.equal(counter.monotonic, true);
  assert.equal(counter.temporality, 'cumulative');
  assert.equal(counter.scope, 'flowtel');
  const points = new Map(counter.points.map((p) => [p.attributes['process.pid'], p]));
  assert.equal(points.get(4242)?.value, 1500);
  assert.deepEqual(points.get(4242)?.attributes, FLOW);
  assert.equal(points.get(1)?.value, 7);

  const histogram = latestMetric(requests, 'tcp_rtt_us');
  assert.ok(histogram);
  assert.equal(histogram.kind, 'histogram');
  assert.equal(histogram.temporality, 'cumulative');
  const [point] = histogram.points;
  assert.equal(point?.count, 2);
  assert.equal(point?.sum, 2000);
  assert.equal(point?.min, 800);
  assert.equal(point?.max, 1200);
  assert.deepEqual(point?.explicitBounds, [100, 1000, 10000]);
  assert.deepEqual(point?.bucketCounts, [0, 1, 1, 0]);
  assert.ok(BigInt(point?.timeUnixNano ?? '0') > BigInt(point?.startTimeUnixNano ?? '0'));

  const resource = resourceAttributes(requests[0]!);
  assert.equal(resource['service.name'], 'flowtel-test');
  assert.equal(resource['service.version'], '0.1.0');
  assert.equal(resource['deployment.environment.name'], 'test');
  assert.equal(typeof resource['host.name'], 'string');
  assert.equal(resource['telemetry.sdk.language'], 'nodejs');

  const request = requests[0]!;
  assert.equal(request.metadata['x-tenant'], 'acme');
  assert.match(request.metadata['user-agent'] ?? '', /^flowtel\/0\.1\.0 /);
  // compression: gzip worked end to end (grpc-js decompresses and strips grpc-* metadata, so it is not visible here).
});

test('temporality: delta sends per-interval values', async () => {
  withEnv({});
  const backend = await receiver();
  const { exporter, meter } = pipeline({ endpoint: `http://${backend.endpoint}`, temporality: 'delta' });
  const counter = meter.createCounter('tcp_retransmits');
  counter.add(3);
  await exporter.reader.forceFlush();
  counter.add(2);
  await exporter.reader.forceFlush();
  const requests = await backend.waitFor((reqs) => reqs.length >= 2);
  const values = flattenMetrics(requests).map((m) => [m.temporality, m.points[0]?.value]);
  assert.deepEqual(values, [
    ['delta', 3],
    ['delta', 2],
  ]);
});

test('OTEL_EXPORTER_OTLP_* env vars apply when the config leaves options unset', async () => {
  const backend = await receiver();
  withEnv({
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `http://${backend.endpoint}`,
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1',
    OTEL_EXPORTER_OTLP_HEADERS: 'x-env=from-env,x-both=env',
    OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta',
  });
  const { exporter, meter } = pipeline({ headers: { 'x-both': 'config' } });
  meter.createCounter('tcp_bytes_received').add(42);
  await exporter.reader.forceFlush();
  const [request] = await backend.waitFor((reqs) => reqs.length > 0);
  assert.equal(request?.metadata['x-env'], 'from-env');
  assert.equal(request?.metadata['x-both'], 'config', 'config headers win per key');
  assert.equal(latestMetric([request!], 'tcp_bytes_received')?.temporality, 'delta');
});

test('export_interval defaults to OTEL_METRIC_EXPORT_INTERVAL when set (periodic export without flush)', async () => {
  withEnv({ OTEL_METRIC_EXPORT_INTERVAL: '100' });
  const backend = await receiver();
  const { meter } = pipeline({ endpoint: `http://${backend.endpoint}` });
  meter.createCounter('c').add(1);
  const requests = await backend.waitFor((reqs) => reqs.length >= 2, 3_000);
  assert.ok(requests.length >= 2);
});

test('a bare host:port endpoint is TLS unless OTEL_EXPORTER_OTLP_INSECURE=true or tls.insecure', async () => {
  const backend = await receiver();
  withEnv({ OTEL_EXPORTER_OTLP_INSECURE: 'true' });
  const { exporter, meter } = pipeline({ endpoint: backend.endpoint });
  meter.createCounter('c').add(1);
  await exporter.reader.forceFlush();
  await backend.waitFor((reqs) => reqs.length > 0);
  assert.equal(exporter.exportFailures, 0);
});

test('without tls or env, a bare host:port endpoint uses TLS (so a plaintext backend fails)', async () => {
  withEnv({});
  const backend = await receiver();
  const { exporter, meter } = pipeline({ endpoint: backend.endpoint, timeout: '500ms' });
  meter.createCounter('c').add(1);
  await exporter.reader.forceFlush();
  assert.equal(exporter.exportFailures, 1);
  assert.equal(backend.requests.length, 0);
});

test('a rejecting backend is counted and logged rate-limited, never thrown', async () => {
  withEnv({});
  const backend = await receiver();
  backend.setBehavior('unauthenticated');
  const { exporter, meter, logs } = pipeline({ endpoint: backend.endpoint, tls: { insecure: true }, timeout: '2s' });
  meter.createCounter('c').add(1);
  await exporter.reader.forceFlush();
  await exporter.reader.forceFlush();
  await exporter.reader.forceFlush();
  assert.equal(exporter.exportFailures, 3);
  assert.equal(backend.rejected, 3);
  const warnings = logs.filter((l) => l.level === 40);
  assert.equal(warnings.length, 1, 'one warning per minute, not one per failure');
  assert.match(warnings[0]?.msg ?? '', /^exporter otlp: export failed: /);
  assert.match(warnings[0]?.msg ?? '', /UNAUTHENTICATED|16/);

  backend.setBehavior('ok');
  await exporter.reader.forceFlush();
  assert.equal(exporter.exportSuccesses, 1);
  assert.ok(logs.some((l) => l.level === 30 && /succeeded again after 3 failed attempt/.test(l.msg)));
});

test('a backend that is down makes exports fail within the timeout, without throwing', async () => {
  withEnv({});
  const backend = await startOtlpReceiver();
  const deadEndpoint = backend.endpoint;
  await backend.close();
  const { exporter, meter } = pipeline({ endpoint: deadEndpoint, tls: { insecure: true }, timeout: '300ms' });
  meter.createCounter('c').add(1);
  const started = Date.now();
  await exporter.reader.forceFlush();
  assert.ok(Date.now() - started < 5_000);
  assert.equal(exporter.exportFailures, 1);
  await exporter.shutdown();
  await exporter.shutdown(); // idempotent
});

test('otlp config validation', () => {
  const v = (raw: unknown) => otlpExporterFactory.validate(raw, 'exporters.otlp');
  // retry_on_failure and sending_queue: the Collector's exporterhelper defaults (test/unit/exporters-retry.test.ts).
  const helper = {
    retry_on_failure: { enabled: true, initial_interval: 5000, max_interval: 30_000, max_elapsed_time: 300_000, multiplier: 1.5, randomization_factor: 0.5 },
    sending_queue: { enabled: true, num_consumers: 10, queue_size: 1000 },
  };
  assert.deepEqual(v(undefined), { tls: {}, ...helper });
  assert.deepEqual(v({ endpoint: 'https://collector:4317', timeout: '5s', export_interval: '30s' }), {
    endpoint: 'https://collector:4317',
    timeout: 5000,
    export_interval: 30_000,
    tls: {},
    ...helper,
  });
  assert.throws(() => v({ endpoint: 'http://collector:4317/v1/metrics' }), /exporters\.otlp\.endpoint: gRPC endpoints take no path/);
  assert.throws(() => v({ tls: { cert_file: 'c.pem' } }), /exporters\.otlp\.tls\.key_file: cert_file and key_file must be set together/);
  assert.throws(() => v({ tls: { insecure: true, ca_file: 'ca.pem' } }), /exporters\.otlp\.tls\.insecure: insecure: true disables TLS/);
  assert.throws(() => v({ temporality: 'sometimes' }), ConfigError);
  assert.equal(v({ temporality: 'DELTA' }).temporality, 'delta');
  assert.throws(() => v({ compresion: 'gzip' }), /did you mean "compression"/);
});

test('unreadable TLS files fail at create with the option path', () => {
  const { logger } = captureLogger();
  const config = otlpExporterFactory.validate({ endpoint: 'collector:4317', tls: { ca_file: '/nonexistent/ca.pem' } }, 'exporters.otlp');
  assert.throws(() => otlpExporterFactory.create(config, { id: 'otlp', logger }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.path, 'exporters.otlp.tls.ca_file');
    assert.match(error.message, /cannot read \/nonexistent\/ca\.pem/);
    return true;
  });
});

test('tls.ca_file verifies a TLS backend; tls.cert_file/key_file do mutual TLS', { skip: !haveOpenssl() && 'openssl not installed' }, async () => {
  withEnv({});
  const server = selfSignedCert('localhost');
  const client = selfSignedCert('flowtel-client');

  const tlsBackend = await startOtlpReceiver({ tls: { key: server.key, cert: server.cert } });
  cleanups.push(() => tlsBackend.close());
  const endpoint = `localhost:${tlsBackend.port}`;

  const untrusted = pipeline({ endpoint, timeout: '1s' }, 'otlp/untrusted');
  untrusted.meter.createCounter('c').add(1);
  await untrusted.exporter.reader.forceFlush();
  assert.equal(untrusted.exporter.exportFailures, 1, 'self-signed server is not trusted by the system roots');

  const trusted = pipeline({ endpoint, tls: { ca_file: server.certFile }, timeout: '2s' }, 'otlp/trusted');
  trusted.meter.createCounter('c').add(1);
  await trusted.exporter.reader.forceFlush();
  assert.equal(trusted.exporter.exportFailures, 0);
  assert.equal(tlsBackend.requests.length, 1);

  const mtlsBackend = await startOtlpReceiver({ tls: { key: server.key, cert: server.cert, clientCa: client.cert } });
  cleanups.push(() => mtlsBackend.close());
  const mtlsEndpoint = `https://localhost:${mtlsBackend.port}`;
  const anonymous = pipeline({ endpoint: mtlsEndpoint, tls: { ca_file: server.certFile }, timeout: '1s' }, 'otlp/anonymous');
  anonymous.meter.createCounter('c').add(1);
  await anonymous.exporter.reader.forceFlush();
  assert.equal(anonymous.exporter.exportFailures, 1, 'no client certificate');
  const mutual = pipeline(
    { endpoint: mtlsEndpoint, tls: { ca_file: server.certFile, cert_file: client.certFile, key_file: client.keyFile }, timeout: '2s' },
    'otlp/mutual',
  );
  mutual.meter.createCounter('c').add(1);
  await mutual.exporter.reader.forceFlush();
  assert.equal(mutual.exporter.exportFailures, 0);
  assert.equal(mtlsBackend.requests.length, 1);
});
