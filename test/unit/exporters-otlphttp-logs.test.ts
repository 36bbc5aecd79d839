/**
 * `otlphttp` in a logs pipeline: ExportLogsServiceRequests to /v1/logs (or
 * logs_endpoint), protobuf or JSON, decoded by the OTLP/HTTP test receiver
 * independently of the SDK, with the same options as the metrics (headers,
 * compression, env variables with the LOGS_ variants) and the same queue and
 * retries.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { otlpHttpExporterFactory, otlpHttpLogsUrl, type OtlpHttpMetricsExporter } from '../../src/exporters';
import { resolveOtlpHttp } from '../../src/exporters/otlphttp';
import type { LogsExporter } from '../../src/pipeline/logs';
import { buildResource } from '../../src/telemetry/resource';
import { captureLogger } from '../helpers/capture-logger';
import { logRecord } from '../helpers/fake-receiver';
import { flattenLogRecords, startOtlpHttpReceiver, type OtlpHttpTestReceiver } from '../helpers/otlp-receiver';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const FAST = { retry_on_failure: { initial_interval: '20ms', max_interval: '100ms', randomization_factor: 0 }, export_interval: '1h', timeout: '2s' };

async function receiver(options: Parameters<typeof startOtlpHttpReceiver>[0] = {}): Promise<OtlpHttpTestReceiver> {
  const r = await startOtlpHttpReceiver(options);
  cleanups.push(() => r.close());
  return r;
}

interface LogsSide extends LogsExporter {
  readonly sent: number;
  readonly failed: number;
  readonly retries: number;
  readonly sentRecords: number;
  queueSize(): number;
}

function exporter(raw: Record<string, unknown>, env?: NodeJS.ProcessEnv): { exporter: OtlpHttpMetricsExporter; logs: LogsSide } {
  const saved = { ...process.env };
  if (env) {
    for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k];
    Object.assign(process.env, env);
  }
  try {
    const config = otlpHttpExporterFactory.validate({ ...FAST, ...raw }, 'exporters.otlphttp');
    const e = otlpHttpExporterFactory.create(config, { id: 'otlphttp', logger: captureLogger().logger });
    cleanups.push(() => e.shutdown());
    e.logs!.useResource(buildResource({ serviceName: 'flowtel-logs-test' }));
    return { exporter: e, logs: e.logs as LogsSide };
  } finally {
    if (env) {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  }
}

for (const encoding of ['proto', 'json'] as const) {
  test(`otlphttp logs (${encoding}, gzip): records to /v1/logs with their fields, headers and resource`, async () => {
    const backend = await receiver();
    const { logs } = exporter({ endpoint: backend.baseUrl, encoding, compression: 'gzip', headers: { 'X-Tenant': 'acme' } });
    assert.ok(otlpHttpExporterFactory.signals?.includes('logs'));
    logs.consumeLogs({ records: [logRecord(443), logRecord(80, 'second')], source: 'fake' });
    logs.consumeLogs({ records: [logRecord(22)], source: 'fake' });
    await logs.flushLogs();
    assert.equal(backend.logRequests.length, 1, 'one request for the buffered records');
    const request = backend.logRequests[0]!;
    assert.equal(request.encoding, encoding);
    assert.equal(request.contentEncoding, 'gzip');
    assert.equal(request.metadata['content-type'], encoding === 'proto' ? 'application/x-protobuf' : 'application/json');
    assert.equal(request.metadata['x-tenant'], 'acme');
    assert.match(request.metadata['user-agent'] ?? '', /^flowtel\//);
    const flat = flattenLogRecords([request]);
    assert.deepEqual(flat.map((r) => r.attributes['destination.port']), [443, 80, 22]);
    const second = flat[1]!;
    assert.equal(second.body, 'second');
    assert.equal(second.severityNumber, 13);
    assert.equal(second.severityText, 'WARN');
    assert.equal(second.eventName, 'flowtel.test.event');
    assert.equal(second.attributes['event.name'], 'flowtel.test.event');
    assert.equal(second.timeUnixNano, 1_700_000_000_080_000_000n);
    assert.equal(second.resource['service.name'], 'flowtel-logs-test');
    assert.equal(backend.requests.length, 0, 'nothing on /v1/metrics');
    assert.deepEqual({ sent: logs.sent, sentRecords: logs.sentRecords, failed: logs.failed }, { sent: 1, sentRecords: 3, failed: 0 });
  });
}

test('logs_endpoint is used as is; 503 twice then OK: retried, every record once', async () => {
  const backend = await receiver();
  backend.setBehavior('unavailable', { times: 2 });
  const { logs } = exporter({ endpoint: 'http://127.0.0.1:1', logs_endpoint: backend.logsUrl });
  logs.consumeLogs({ records: [logRecord(1), logRecord(2)], source: 'fake' });
  await logs.flushLogs();
  await backend.waitForLogs((q) => q.length === 1);
  assert.deepEqual(flattenLogRecords(backend.logRequests).map((r) => r.attributes['destination.port']), [1, 2]);
  for (let i = 0; i < 200 && logs.sentRecords === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(backend.rejected, 2);
  assert.equal(logs.retries, 2);
  assert.equal(logs.sentRecords, 2);
});

test('400: the batch is given up at once and counted', async () => {
  const backend = await receiver();
  backend.setBehavior('invalid_argument');
  const { logs } = exporter({ endpoint: backend.baseUrl });
  logs.consumeLogs({ records: [logRecord(1)], source: 'fake' });
  await logs.flushLogs();
  const failed = logs as unknown as { failed: number; failedRecords: number };
  for (let i = 0; i < 100 && failed.failed === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual({ failed: failed.failed, failedRecords: failed.failedRecords, calls: backend.calls, retries: logs.retries }, { failed: 1, failedRecords: 1, calls: 1, retries: 0 });
});

test('URLs and env: endpoint + /v1/logs; OTEL_EXPORTER_OTLP_LOGS_ENDPOINT as is; LOGS_ headers and timeout', () => {
  const url = (raw: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => otlpHttpLogsUrl(otlpHttpExporterFactory.validate(raw, 'exporters.otlphttp'), env);
  assert.equal(url({}), 'http://localhost:4318/v1/logs');
  assert.equal(url({ endpoint: 'https://gw.example.com/otlp/' }), 'https://gw.example.com/otlp/v1/logs');
  assert.equal(url({ endpoint: 'https://a:4318', logs_endpoint: 'https://b/custom-logs' }), 'https://b/custom-logs');
  assert.equal(url({ metrics_endpoint: 'https://b/m' }), 'http://localhost:4318/v1/logs', 'metrics_endpoint is for metrics only');
  assert.equal(url({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318' }), 'http://env:4318/v1/logs');
  assert.equal(url({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318', OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://l:9/x' }), 'http://l:9/x');
  assert.equal(url({}, { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://m:9/x' }), 'http://localhost:4318/v1/logs');
  const config = otlpHttpExporterFactory.validate({ headers: { 'x-both': 'config' } }, 'exporters.otlphttp');
  const env = { OTEL_EXPORTER_OTLP_HEADERS: 'x-both=env,x-generic=g', OTEL_EXPORTER_OTLP_LOGS_HEADERS: 'x-logs=l', OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'x-metrics=m', OTEL_EXPORTER_OTLP_LOGS_TIMEOUT: '1234' };
  const logs = resolveOtlpHttp(config, 'exporters.otlphttp', env, 'LOGS');
  assert.deepEqual(logs.headers, { 'x-both': 'config', 'x-generic': 'g', 'x-logs': 'l' });
  assert.equal(logs.timeoutMs, 1234);
  const metrics = resolveOtlpHttp(config, 'exporters.otlphttp', env);
  assert.deepEqual(metrics.headers, { 'x-both': 'config', 'x-generic': 'g', 'x-metrics': 'm' });
  assert.equal(metrics.timeoutMs, 10_000);
  assert.throws(
    () => otlpHttpExporterFactory.validate({ logs_endpoint: 'http://x:1', tls: { ca_file: '/etc/ssl/ca.pem' } }, 'exporters.otlphttp'),
    /exporters\.otlphttp\.logs_endpoint: tls files are set but http:\/\/x:1 is plaintext; use https:\/\//,
  );
});

test('records still buffered at shutdown are sent', async () => {
  const backend = await receiver();
  const { exporter: e, logs } = exporter({ endpoint: backend.baseUrl });
  logs.consumeLogs({ records: [logRecord(7)], source: 'fake' });
  await e.shutdown();
  assert.deepEqual(flattenLogRecords(backend.logRequests).map((r) => r.attributes['destination.port']), [7]);
});
