/**
 * `otlphttp` end to end against the OTLP/HTTP test receiver (protobuf and
 * JSON bodies decoded independently of the SDK), with its queue and retries.
 */
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ConfigError } from '../../src/pipeline/component';
import { otlpHttpExporterFactory, otlpHttpMetricsUrl, type OtlpHttpMetricsExporter } from '../../src/exporters';
import { parseRetryAfter } from '../../src/exporters/otlphttp';
import { buildResource } from '../../src/telemetry/resource';
import { captureLogger } from '../helpers/capture-logger';
import { haveOpenssl, selfSignedCert } from '../helpers/test-certs';
import { latestMetric, resourceAttributes, startOtlpHttpReceiver, type DecodedRequest, type OtlpHttpTestReceiver } from '../helpers/otlp-receiver';

const FLOW = { 'network.transport': 'tcp', 'destination.port': 443, 'process.executable.name': 'curl' };

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs}ms`);
    await sleep(10);
  }
}

async function receiver(options: Parameters<typeof startOtlpHttpReceiver>[0] = {}): Promise<OtlpHttpTestReceiver> {
  const r = await startOtlpHttpReceiver(options);
  cleanups.push(() => r.close());
  return r;
}

const FAST = { retry_on_failure: { initial_interval: '20ms', max_interval: '100ms', randomization_factor: 0 }, export_interval: '1h', timeout: '2s' };

function pipeline(raw: Record<string, unknown>, id = 'otlphttp') {
  const { logger, lines } = captureLogger();
  const config = otlpHttpExporterFactory.validate({ ...FAST, ...raw }, `exporters.${id}`);
  const exporter: OtlpHttpMetricsExporter = otlpHttpExporterFactory.create(config, { id, logger });
  const provider = new MeterProvider({ resource: buildResource({ serviceName: 'flowtel-test' }), readers: [exporter.reader] });
  cleanups.push(() => exporter.shutdown());
  const meter = provider.getMeter('flowtel', '0.1.0');
  const counter = meter.createCounter('batches');
  const collect = async (): Promise<void> => {
    counter.add(1);
    await exporter.reader.forceFlush();
  };
  return { exporter, meter, collect, logs: lines };
}

const values = (requests: readonly DecodedRequest[]): Array<number | undefined> => requests.map((r) => latestMetric([r], 'batches')?.points[0]?.value);

for (const encoding of ['proto', 'json'] as const) {
  test(`otlphttp (${encoding}) sends counters and histograms to /v1/metrics that the receiver decodes`, async () => {
    withEnv({});
    const backend = await receiver();
    const { exporter, meter } = pipeline({ endpoint: backend.baseUrl, encoding, headers: { 'X-Tenant': 'acme' }, compression: 'gzip' });
    await exporter.start();
    const bytes = meter.createCounter('tcp_bytes_sent', { unit: 'By', description: 'bytes sent' });
    bytes.add(1000, FLOW);
    bytes.add(500, FLOW);
    const rtt = meter.createHistogram('tcp_rtt_us', { unit: 'us', advice: { explicitBucketBoundaries: [100, 1000, 10000] } });
    rtt.record(800, FLOW);
    rtt.record(1200, FLOW);
    await exporter.reader.forceFlush();

    assert.equal(backend.requests.length, 1);
    const request = backend.requests[0]!;
    assert.equal(request.encoding, encoding);
    assert.equal(request.contentEncoding, 'gzip');
    assert.equal(request.metadata['content-type'], encoding === 'proto' ? 'application/x-protobuf' : 'application/json');
    assert.equal(request.metadata['x-tenant'], 'acme');
    assert.match(request.metadata['user-agent'] ?? '', /^flowtel\/0\.1\.0$/);

    const counter = latestMetric([request], 'tcp_bytes_sent');
    assert.equal(counter?.kind, 'sum');
    assert.equal(counter?.unit, 'By');
    assert.equal(counter?.monotonic, true);
    assert.equal(counter?.temporality, 'cumulative');
    assert.equal(counter?.points[0]?.value, 1500);
    assert.deepEqual(counter?.points[0]?.attributes, FLOW);
    const histogram = latestMetric([request], 'tcp_rtt_us');
    assert.equal(histogram?.points[0]?.count, 2);
    assert.equal(histogram?.points[0]?.sum, 2000);
    assert.deepEqual(histogram?.points[0]?.bucketCounts, [0, 1, 1, 0]);
    assert.deepEqual(histogram?.points[0]?.explicitBounds, [100, 1000, 10000]);
    assert.equal(resourceAttributes(request)['service.name'], 'flowtel-test');
    assert.deepEqual({ sent: exporter.sent, failed: exporter.failed }, { sent: 1, failed: 0 });
  });
}

test('temporality: delta, uncompressed JSON', async () => {
  withEnv({});
  const backend = await receiver();
  const { exporter, meter } = pipeline({ metrics_endpoint: backend.url, encoding: 'json', temporality: 'delta' });
  const counter = meter.createCounter('tcp_retransmits');
  counter.add(3);
  await exporter.reader.forceFlush();
  counter.add(2);
  await exporter.reader.forceFlush();
  const requests = await backend.waitFor((reqs) => reqs.length >= 2);
  assert.equal(requests[0]?.contentEncoding, undefined);
  assert.deepEqual(
    requests.map((r) => [latestMetric([r], 'tcp_retransmits')?.temporality, latestMetric([r], 'tcp_retransmits')?.points[0]?.value]),
    [
      ['delta', 3],
      ['delta', 2],
    ],
  );
});

test('connection refused at start: queued, then delivered in order once the receiver is up', async () => {
  withEnv({});
  const probe = await startOtlpHttpReceiver();
  const port = probe.port;
  await probe.close();
  const { exporter, collect } = pipeline({ endpoint: `http://127.0.0.1:${port}`, sending_queue: { num_consumers: 1 } });
  for (let i = 0; i < 4; i++) await collect();
  assert.equal(exporter.queueSize(), 4);
  assert.ok(exporter.exportFailures >= 4);
  const backend = await receiver({ port });
  const requests = await backend.waitFor((reqs) => reqs.length >= 4);
  assert.deepEqual(values(requests), [1, 2, 3, 4]);
  await until(() => exporter.sent === 4);
  assert.deepEqual({ failed: exporter.failed, dropped: exporter.dropped, queue: exporter.queueSize() }, { failed: 0, dropped: 0, queue: 0 });
});

test('503 twice then OK: retried; 400: failed at once, not retried', async () => {
  withEnv({});
  const backend = await receiver();
  backend.setBehavior('unavailable', { times: 2 });
  const { exporter, collect, logs } = pipeline({ endpoint: backend.baseUrl });
  await collect();
  await backend.waitFor((reqs) => reqs.length >= 1);
  await until(() => exporter.sent === 1);
  assert.deepEqual({ retries: exporter.retries, rejected: backend.rejected }, { retries: 2, rejected: 2 });
  assert.ok(logs.some((l) => l.level === 40 && /HTTP 503 Service Unavailable: test receiver behavior: unavailable/.test(l.msg)));

  backend.setBehavior('invalid_argument');
  await collect();
  await sleep(200);
  assert.equal(backend.calls, 4, '3 for the first batch, 1 for the second');
  assert.deepEqual({ sent: exporter.sent, failed: exporter.failed, retries: exporter.retries }, { sent: 1, failed: 1, retries: 2 });
});

test('429 with Retry-After: the retry waits as long as the backend asked', async () => {
  withEnv({});
  const backend = await receiver();
  backend.setBehavior('resource_exhausted', { times: 1, retryAfterSeconds: 1 });
  const { exporter, collect } = pipeline({ endpoint: backend.baseUrl });
  const started = Date.now();
  await collect();
  await backend.waitFor((reqs) => reqs.length >= 1, 5_000);
  assert.ok(Date.now() - started >= 950, `retried after ${Date.now() - started}ms`);
  await until(() => exporter.sent === 1);
  assert.equal(exporter.retries, 1);
  assert.equal(parseRetryAfter('120'), 120_000);
  assert.equal(parseRetryAfter(new Date(Date.now() + 5_000).toUTCString(), Date.now()) !== undefined, true);
  assert.equal(parseRetryAfter('soon'), undefined);
});

test('endpoint + /v1/metrics; metrics_endpoint as is; OTEL_EXPORTER_OTLP_* env when the config is silent', () => {
  const url = (raw: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => otlpHttpMetricsUrl(otlpHttpExporterFactory.validate(raw, 'exporters.otlphttp'), env);
  assert.equal(url({}), 'http://localhost:4318/v1/metrics');
  assert.equal(url({ endpoint: 'https://collector:4318' }), 'https://collector:4318/v1/metrics');
  assert.equal(url({ endpoint: 'https://gw.example.com/otlp/' }), 'https://gw.example.com/otlp/v1/metrics');
  assert.equal(url({ endpoint: 'https://a:4318', metrics_endpoint: 'https://b/custom' }), 'https://b/custom');
  assert.equal(url({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318' }), 'http://env:4318/v1/metrics');
  assert.equal(url({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://m:9/x' }), 'http://m:9/x');
  assert.equal(url({ endpoint: 'http://config:4318' }, { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://m:9/x' }), 'http://config:4318/v1/metrics');
});

test('env headers and timeout apply; config headers win per header, case-insensitively', async () => {
  const backend = await receiver();
  withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: backend.baseUrl, OTEL_EXPORTER_OTLP_HEADERS: 'x-env=from%20env,X-Both=env' });
  const { exporter, collect } = pipeline({ headers: { 'x-both': 'config' } });
  await collect();
  const [request] = await backend.waitFor((reqs) => reqs.length > 0);
  assert.equal(request?.metadata['x-env'], 'from env');
  assert.equal(request?.metadata['x-both'], 'config');
  assert.equal(exporter.sent, 1);
});

test('otlphttp config validation', () => {
  const v = (raw: unknown) => otlpHttpExporterFactory.validate(raw, 'exporters.otlphttp');
  const defaults = v(undefined);
  assert.equal(defaults.encoding, 'proto');
  assert.deepEqual(defaults.tls, { insecure_skip_verify: false });
  assert.deepEqual(defaults.sending_queue, { enabled: true, num_consumers: 10, queue_size: 1000 });
  assert.equal(v({ encoding: 'JSON' }).encoding, 'json');
  assert.throws(() => v({ endpoint: 'collector:4318' }), /exporters\.otlphttp\.endpoint: expected a URL starting with http:\/\/ or https:\/\//);
  assert.throws(() => v({ endpoint: 'grpc://collector:4317' }), /unsupported scheme "grpc:\/\/"/);
  assert.throws(() => v({ metrics_endpoint: 'http://c:4318/v1/metrics?x=1' }), /exporters\.otlphttp\.metrics_endpoint: unexpected query/);
  assert.throws(() => v({ tls: { key_file: 'k.pem' } }), /exporters\.otlphttp\.tls\.cert_file: cert_file and key_file must be set together/);
  assert.throws(() => v({ endpoint: 'http://c:4318', tls: { ca_file: 'ca.pem' } }), /exporters\.otlphttp\.endpoint: tls files are set but http:\/\/c:4318 is plaintext/);
  assert.throws(() => v({ tls: { insecure: true } }), /unknown option "insecure"/);
  assert.throws(() => v({ encoding: 'xml' }), ConfigError);
  assert.throws(() => v({ retry_on_failure: { max_interval: '1s' } }), /retry_on_failure\.max_interval: must be at least initial_interval/);
});

test('https: tls.ca_file verifies the receiver; without it the self-signed server is refused (retryable)', { skip: !haveOpenssl() && 'openssl not installed' }, async () => {
  withEnv({});
  const server = selfSignedCert('localhost');
  const backend = await receiver({ tls: { key: server.key, cert: server.cert } });
  const endpoint = `https://localhost:${backend.port}`;

  const untrusted = pipeline({ endpoint, timeout: '1s' }, 'otlphttp/untrusted');
  await untrusted.collect();
  assert.equal(untrusted.exporter.exportFailures, 1);
  assert.equal(untrusted.exporter.queueSize(), 1, 'kept for a retry');
  assert.equal(backend.requests.length, 0);

  const trusted = pipeline({ endpoint, tls: { ca_file: server.certFile } }, 'otlphttp/trusted');
  await trusted.collect();
  assert.equal(trusted.exporter.sent, 1);
  assert.equal(backend.requests.length, 1);

  const skip = pipeline({ endpoint, tls: { insecure_skip_verify: true } }, 'otlphttp/skip');
  await skip.collect();
  assert.equal(skip.exporter.sent, 1);
});

test('mutual TLS: tls.cert_file/key_file present a client certificate; a backend that requires one refuses a client without it or with another', { skip: !haveOpenssl() && 'openssl not installed' }, async () => {
  withEnv({});
  const server = selfSignedCert('localhost');
  const client = selfSignedCert('client');
  const stranger = selfSignedCert('stranger');
  const backend = await receiver({ tls: { key: server.key, cert: server.cert, clientCa: client.cert } });
  const endpoint = `https://localhost:${backend.port}`;

  const anonymous = pipeline({ endpoint, timeout: '2s', tls: { ca_file: server.certFile } }, 'otlphttp/anonymous');
  await anonymous.collect();
  assert.equal(anonymous.exporter.sent, 0);
  assert.equal(anonymous.exporter.exportFailures, 1);

  const wrong = pipeline({ endpoint, timeout: '2s', tls: { ca_file: server.certFile, cert_file: stranger.certFile, key_file: stranger.keyFile } }, 'otlphttp/stranger');
  await wrong.collect();
  assert.equal(wrong.exporter.sent, 0);
  assert.equal(wrong.exporter.exportFailures, 1);
  assert.equal(backend.requests.length, 0, 'nothing reached the backend without the right certificate');

  const mutual = pipeline({ endpoint, tls: { ca_file: server.certFile, cert_file: client.certFile, key_file: client.keyFile } }, 'otlphttp/mutual');
  await mutual.collect();
  assert.equal(mutual.exporter.sent, 1);
  assert.equal(backend.requests.length, 1);
});
