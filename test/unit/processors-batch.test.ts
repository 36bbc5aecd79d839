/**
 * batch: records held and handed on by size, by timeout and at shutdown,
 * with exact counts; in a Service, each batch it makes is one OTLP request
 * (decoded by the test receiver), nothing is lost at shutdown or reload; in
 * a metrics pipeline, send_batch_max_size splits the exporter's requests.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { ConfigError, loadConfigFromTexts, validateConfig, type ValidatedConfig } from '../../src/config';
import { exporterFactories } from '../../src/exporters';
import { extensionFactories, startExtensions } from '../../src/extensions';
import type { LogBatch, LogConsumer } from '../../src/pipeline/logs';
import { Service } from '../../src/pipeline/service';
import { batchProcessorFactory, LogBatcher, processorFactories, type BatchConfig } from '../../src/processors';
import { silentLogger } from '../../src/util/log';
import { fakeReceiverFactory, fakeReceivers, logRecord } from '../helpers/fake-receiver';
import { flattenLogRecords, flattenMetrics, startOtlpReceiver, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const stoppers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stoppers.splice(0).reverse()) await s().catch(() => undefined);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function batchConfig(raw: Record<string, unknown>): BatchConfig {
  return batchProcessorFactory.validate(raw, 'processors.batch');
}

/** A LogBatcher over a consumer that keeps what it gets. */
function batcher(raw: Record<string, unknown>): { b: LogBatcher; got: LogBatch[] } {
  const got: LogBatch[] = [];
  const next: LogConsumer = { consumeLogs: (x) => void got.push(x) };
  const b = new LogBatcher(batchConfig(raw), next);
  stoppers.push(async () => b.close());
  return { b, got };
}

const ports = (batches: readonly LogBatch[]): number[] => batches.flatMap((x) => x.records.map((r) => r.attributes['destination.port'] as number));
const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

test('config: the Collector\'s defaults; send_batch_max_size below send_batch_size is an error', () => {
  assert.deepEqual(batchProcessorFactory.defaultConfig(), { send_batch_size: 8192, timeout: 200, send_batch_max_size: 0 });
  assert.deepEqual(batchConfig({ send_batch_size: 100, timeout: '1s', send_batch_max_size: 150 }), { send_batch_size: 100, timeout: 1000, send_batch_max_size: 150 });
  assert.equal(batchConfig({ timeout: '0s' }).timeout, 0);
  assert.equal(batchConfig({ timeout: 0 }).timeout, 0, 'a bare 0, as YAML `timeout: 0` gives it (Go takes it too)');
  assert.throws(() => batchConfig({ timeout: 5 }), /processors\.batch\.timeout: expected a duration with a unit/);
  assert.throws(
    () => batchConfig({ send_batch_size: 100, send_batch_max_size: 50 }),
    (e: unknown) => e instanceof ConfigError && e.message === 'processors.batch.send_batch_max_size: must be 0 (no limit) or at least send_batch_size (100), got 50',
  );
  assert.throws(() => batchConfig({ metadata_keys: ['x'] }), /unknown option "metadata_keys"/);
  assert.throws(() => batchConfig({ send_batch_size: -1 }), /must be at least 0/);
});

test('by size: 1000 records one at a time, send_batch_size 300 → 300, 300, 300 at once, 100 at shutdown, in order', () => {
  const { b, got } = batcher({ send_batch_size: 300, timeout: '1h' });
  for (const p of range(1, 1000)) b.consumeLogs({ records: [logRecord(p)], source: 'fake' });
  assert.deepEqual(got.map((x) => x.records.length), [300, 300, 300]);
  assert.equal(b.size, 100);
  b.close();
  assert.deepEqual(got.map((x) => x.records.length), [300, 300, 300, 100]);
  assert.deepEqual(ports(got), range(1, 1000));
  assert.deepEqual(b.sent, { size: 3, timeout: 0, shutdown: 1 });
  assert.equal(b.sentRecords, 1000);
  assert.ok(got.every((x) => x.batched === true && x.source === 'fake'));
  // After shutdown nothing is held: records pass at once.
  b.consumeLogs({ records: [logRecord(5000)], source: 'fake' });
  assert.deepEqual(got.at(-1)?.records.length, 1);
  assert.equal(b.size, 0);
});

test('send_batch_max_size caps each batch: 1000 records at once with size 300 / max 400 → 400, 400 now, 200 at the timeout', async () => {
  const { b, got } = batcher({ send_batch_size: 300, send_batch_max_size: 400, timeout: '50ms' });
  b.consumeLogs({ records: range(1, 1000).map((p) => logRecord(p)), source: 'fake' });
  assert.deepEqual(got.map((x) => x.records.length), [400, 400]);
  assert.equal(b.size, 200);
  await until('the timeout batch', () => got.length === 3);
  assert.deepEqual(got.map((x) => x.records.length), [400, 400, 200]);
  assert.deepEqual(ports(got), range(1, 1000));
  assert.deepEqual(b.sent, { size: 2, timeout: 1, shutdown: 0 });
});

test('by timeout: 5 records in two batches are handed on together, once the timeout has passed', async () => {
  const { b, got } = batcher({ send_batch_size: 8192, timeout: '100ms' });
  b.consumeLogs({ records: [logRecord(1), logRecord(2)], source: 'a' });
  b.consumeLogs({ records: [logRecord(3), logRecord(4), logRecord(5)], source: 'b' });
  assert.equal(got.length, 0);
  await until('the timeout batch', () => got.length === 1);
  assert.deepEqual(ports(got), [1, 2, 3, 4, 5]);
  assert.equal(got[0]!.source, undefined, 'records of two receivers: no single source');
  assert.deepEqual(b.sent, { size: 0, timeout: 1, shutdown: 0 });
  await sleep(150);
  assert.equal(got.length, 1, 'no empty batches');
});

test('timeout 0: every batch is handed on at once, cut to send_batch_max_size', () => {
  const { b, got } = batcher({ timeout: '0s', send_batch_size: 0, send_batch_max_size: 400 });
  b.consumeLogs({ records: range(1, 1000).map((p) => logRecord(p)), source: 'fake' });
  b.consumeLogs({ records: [logRecord(1001)], source: 'fake' });
  assert.deepEqual(got.map((x) => x.records.length), [400, 400, 200, 1]);
  assert.equal(b.size, 0);
});

// ---------------------------------------------------------------------------
// In a Service

function config(text: string): ValidatedConfig {
  return validateConfig(loadConfigFromTexts([{ source: 't.yaml', text }], [], { env: {} }), [
    fakeReceiverFactory,
    ...Object.values(exporterFactories),
    ...Object.values(processorFactories),
    ...Object.values(extensionFactories),
  ] as never[]);
}

async function run(text: string): Promise<Service> {
  const service = Service.build(config(text), silentLogger());
  await service.start();
  stoppers.push(() => service.shutdown());
  return service;
}

async function otlpReceiver(): Promise<OtlpTestReceiver> {
  const r = await startOtlpReceiver();
  stoppers.push(() => r.close());
  return r;
}

const requestSizes = (r: OtlpTestReceiver): number[] => r.logRequests.map((q) => flattenLogRecords([q]).length);

test('logs pipeline: each batch is one OTLP request — 1010 records in 250s, the last 10 at shutdown; without batch the exporter makes 512s', async () => {
  const r = await otlpReceiver();
  const plain = await otlpReceiver();
  const service = await run(`
receivers: { fake: {} }
processors: { batch: { send_batch_size: 250, timeout: 1h } }
exporters:
  otlp: { endpoint: "http://${r.endpoint}", export_interval: 1h }
  otlp/plain: { endpoint: "http://${plain.endpoint}", export_interval: 1h }
service:
  pipelines:
    logs: { receivers: [fake], processors: [batch], exporters: [otlp] }
    logs/plain: { receivers: [fake], exporters: [otlp/plain] }
`);
  const fake = fakeReceivers.get('fake')!;
  for (const p of range(1, 1010)) fake.emit(logRecord(p));
  await r.waitForLogs((q) => q.length === 4);
  assert.deepEqual(requestSizes(r), [250, 250, 250, 250]);
  await service.shutdown();
  assert.deepEqual(requestSizes(r), [250, 250, 250, 250, 10]);
  // Requests go out concurrently (sending_queue.num_consumers: 10), so they may arrive in any order.
  const received = flattenLogRecords(r.logRequests).map((x) => x.attributes['destination.port'] as number);
  assert.deepEqual([...received].sort((a, b) => a - b), range(1, 1010), 'every record once');
  for (const q of r.logRequests) {
    const p = flattenLogRecords([q]).map((x) => x.attributes['destination.port'] as number);
    assert.deepEqual(p, range(p[0]!, p.length), 'each request holds consecutive records, in order');
  }
  assert.deepEqual(requestSizes(plain), [512, 498], 'the exporter\'s own batching when there is no batch processor');
  const logsSide = service.exporter('otlp')!.logs as unknown as { sentRecords: number; sent: number };
  assert.deepEqual({ sent: logsSide.sent, sentRecords: logsSide.sentRecords }, { sent: 5, sentRecords: 1010 });
});

test('logs pipeline: records held by a batch processor are handed on when a reload replaces it', async () => {
  const r = await otlpReceiver();
  const text = (processors: string): string => `
receivers: { fake: {} }
processors: { batch: { send_batch_size: 1000, timeout: 1h } }
exporters: { otlp: { endpoint: "http://${r.endpoint}", export_interval: 1h } }
service: { pipelines: { logs: { receivers: [fake], processors: [${processors}], exporters: [otlp] } } }
`;
  const service = await run(text('batch'));
  fakeReceivers.get('fake')!.emit(logRecord(1), logRecord(2), logRecord(3));
  await sleep(50);
  assert.equal(r.logRequests.length, 0, 'held');
  await service.reload(config(text('')));
  await r.waitForLogs((q) => flattenLogRecords(q).length === 3);
  assert.deepEqual(requestSizes(r), [3]);
});

test('metrics pipeline: send_batch_max_size 100 splits a 250-series collection into requests of 100, 100 and 50 points, each point once', async () => {
  const r = await otlpReceiver();
  const service = await run(`
receivers: { fake: {} }
processors: { batch: { send_batch_size: 100, send_batch_max_size: 100 } }
exporters: { otlp: { endpoint: "http://${r.endpoint}", export_interval: 1h } }
service: { pipelines: { metrics: { receivers: [fake], processors: [batch], exporters: [otlp] } } }
`);
  const fake = fakeReceivers.get('fake')!;
  fake.send(range(1, 250).map((p) => ({ metric: 'tcp_bytes_sent', value: p, attributes: { 'destination.port': p, 'network.transport': 'tcp' } })));
  await service.shutdown();
  const points = r.requests.map((q) => flattenMetrics([q]).reduce((n, m) => n + m.points.length, 0));
  assert.deepEqual(points, [100, 100, 50]);
  const all = flattenMetrics(r.requests).flatMap((m) => m.points.map((p) => [m.name, p.attributes['destination.port'], p.value]));
  assert.equal(all.length, 250);
  assert.deepEqual(
    all.map((x) => x[1]).sort((a, b) => Number(a) - Number(b)),
    range(1, 250),
  );
  assert.ok(all.every(([name, port, value]) => name === 'tcp_bytes_sent' && port === value));
  const exporter = service.exporter('otlp') as unknown as { sent: number; failed: number };
  assert.deepEqual({ sent: exporter.sent, failed: exporter.failed }, { sent: 3, failed: 0 });
});

test('metrics pipeline: without send_batch_max_size one collection is one request', async () => {
  const r = await otlpReceiver();
  const service = await run(`
receivers: { fake: {} }
processors: { batch: {} }
exporters: { otlp: { endpoint: "http://${r.endpoint}", export_interval: 1h } }
service: { pipelines: { metrics: { receivers: [fake], processors: [batch], exporters: [otlp] } } }
`);
  fakeReceivers.get('fake')!.send(range(1, 250).map((p) => ({ metric: 'tcp_bytes_sent', value: p, attributes: { 'destination.port': p } })));
  await service.shutdown();
  assert.equal(r.requests.length, 1);
  assert.equal(flattenMetrics(r.requests)[0]?.points.length, 250);
});

test('self-telemetry: batches handed on by trigger, records handed on and held, per processor and pipeline', async () => {
  const r = await otlpReceiver();
  const c = config(`
receivers: { fake: {} }
processors: { batch: { send_batch_size: 3, timeout: 1h } }
exporters: { otlp: { endpoint: "http://${r.endpoint}", export_interval: 1h } }
service:
  telemetry: { metrics: { level: basic } }
  pipelines: { logs/b: { receivers: [fake], processors: [batch], exporters: [otlp] } }
`);
  const service = Service.build(c, silentLogger());
  const running = await startExtensions(c, service, silentLogger());
  stoppers.push(() => running.shutdown());
  await service.start();
  stoppers.push(() => service.shutdown());
  for (const p of range(1, 7)) fakeReceivers.get('fake')!.emit(logRecord(p));
  const batchSeries = (): string[] =>
    running.telemetry
      .collect()
      .filter((m) => m.metric.startsWith('flowtel_processor_batch_'))
      .map((m) => `${m.metric}{${Object.entries(m.attributes).map(([k, v]) => `${k}=${v}`).join(',')}} ${m.value}`)
      .sort();
  assert.deepEqual(batchSeries(), [
    'flowtel_processor_batch_held_log_records{processor=batch,pipeline=logs/b} 1',
    'flowtel_processor_batch_sent_batches{processor=batch,pipeline=logs/b,trigger=shutdown} 0',
    'flowtel_processor_batch_sent_batches{processor=batch,pipeline=logs/b,trigger=size} 2',
    'flowtel_processor_batch_sent_batches{processor=batch,pipeline=logs/b,trigger=timeout} 0',
    'flowtel_processor_batch_sent_log_records{processor=batch,pipeline=logs/b} 6',
  ]);
  await service.shutdown();
  assert.ok(batchSeries().includes('flowtel_processor_batch_sent_batches{processor=batch,pipeline=logs/b,trigger=shutdown} 1'));
  assert.ok(batchSeries().includes('flowtel_processor_batch_held_log_records{processor=batch,pipeline=logs/b} 0'));
  assert.deepEqual(requestSizes(r), [3, 3, 1]);
});
