/**
 * `otlp` (gRPC) with retry_on_failure and sending_queue, against the real
 * test receiver: outages, retryable and permanent statuses, queue overflow.
 */
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { otlpExporterFactory, type OtlpMetricsExporter } from '../../src/exporters';
import { buildResource } from '../../src/telemetry/resource';
import { captureLogger } from '../helpers/capture-logger';
import { latestMetric, startOtlpReceiver, type DecodedRequest, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(condition: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs}ms`);
    await sleep(10);
  }
}

async function receiver(port?: number): Promise<OtlpTestReceiver> {
  const r = await startOtlpReceiver(port === undefined ? {} : { port });
  cleanups.push(() => r.close());
  return r;
}

/** A port nothing listens on (a receiver may come up there later). */
async function deadPort(): Promise<number> {
  const r = await startOtlpReceiver();
  await r.close();
  return r.port;
}

/** Short, deterministic retries; periodic export effectively off (flushes drive it). */
const FAST = { retry_on_failure: { initial_interval: '20ms', max_interval: '100ms', randomization_factor: 0 }, export_interval: '1h', timeout: '2s' };

function pipeline(raw: Record<string, unknown>) {
  const { logger, lines } = captureLogger();
  const config = otlpExporterFactory.validate({ ...FAST, ...raw }, 'exporters.otlp');
  const exporter: OtlpMetricsExporter = otlpExporterFactory.create(config, { id: 'otlp', logger });
  const provider = new MeterProvider({ resource: buildResource({ serviceName: 'flowtel-test' }), readers: [exporter.reader] });
  cleanups.push(() => exporter.shutdown());
  const counter = provider.getMeter('flowtel').createCounter('batches');
  /** Count one more and collect: one batch whose cumulative value is its number. */
  const collect = async (): Promise<void> => {
    counter.add(1);
    await exporter.reader.forceFlush();
  };
  return { exporter, collect, logs: lines };
}

const values = (requests: readonly DecodedRequest[]): Array<number | undefined> => requests.map((r) => latestMetric([r], 'batches')?.points[0]?.value);

test('backend down at start: batches are queued, then arrive in order when it comes up, none lost', async () => {
  const port = await deadPort();
  const { exporter, collect } = pipeline({ endpoint: `http://127.0.0.1:${port}`, sending_queue: { num_consumers: 1 } });
  for (let i = 0; i < 5; i++) await collect();
  assert.equal(exporter.queueSize(), 5);
  assert.equal(exporter.sent, 0);
  assert.ok(exporter.exportFailures >= 5, 'each flush tried once');

  const backend = await receiver(port);
  // grpc-js waits its own reconnect backoff (~1 s) before it connects again.
  const requests = await backend.waitFor((reqs) => reqs.length >= 5, 15_000);
  assert.deepEqual(values(requests), [1, 2, 3, 4, 5], 'in collection order');
  await until(() => exporter.sent === 5);
  assert.deepEqual({ failed: exporter.failed, dropped: exporter.dropped, queue: exporter.queueSize() }, { failed: 0, dropped: 0, queue: 0 });
  assert.ok(exporter.retries >= 1);
});

test('UNAVAILABLE three times, then OK: retried with backoff, three retries counted', async () => {
  const backend = await receiver();
  backend.setBehavior('unavailable', { times: 3 });
  const { exporter, collect, logs } = pipeline({ endpoint: `http://${backend.endpoint}` });
  await collect();
  const requests = await backend.waitFor((reqs) => reqs.length >= 1);
  await until(() => exporter.sent === 1);
  assert.deepEqual(values(requests), [1]);
  assert.equal(backend.rejected, 3);
  assert.deepEqual(
    { sent: exporter.sent, failed: exporter.failed, retries: exporter.retries, attempts: exporter.exportFailures + exporter.exportSuccesses },
    { sent: 1, failed: 0, retries: 3, attempts: 4 },
  );
  assert.ok(logs.some((l) => l.level === 30 && /succeeded again after 3 failed attempt/.test(l.msg)));
});

test('RESOURCE_EXHAUSTED is retried too', async () => {
  const backend = await receiver();
  backend.setBehavior('resource_exhausted', { times: 1 });
  const { exporter, collect } = pipeline({ endpoint: `http://${backend.endpoint}` });
  await collect();
  await backend.waitFor((reqs) => reqs.length >= 1);
  await until(() => exporter.sent === 1);
  assert.equal(exporter.retries, 1);
});

test('INVALID_ARGUMENT: the batch is dropped at once (failed), never retried', async () => {
  const backend = await receiver();
  backend.setBehavior('invalid_argument');
  const { exporter, collect } = pipeline({ endpoint: `http://${backend.endpoint}` });
  await collect();
  await sleep(300); // many retry intervals
  assert.equal(backend.calls, 1);
  assert.deepEqual({ sent: exporter.sent, failed: exporter.failed, retries: exporter.retries, queue: exporter.queueSize() }, { sent: 0, failed: 1, retries: 0, queue: 0 });

  backend.setBehavior('ok');
  await collect();
  assert.equal(exporter.sent, 1, 'the next batch goes through');
});

test('queue overflow: exactly the batches beyond queue_size are dropped and counted; the queued ones arrive', async () => {
  const backend = await receiver();
  backend.setBehavior('unavailable');
  const { exporter, collect, logs } = pipeline({
    endpoint: `http://${backend.endpoint}`,
    sending_queue: { queue_size: 3 },
    retry_on_failure: { initial_interval: '300ms', max_interval: '300ms', randomization_factor: 0 },
  });
  for (let i = 0; i < 7; i++) await collect();
  assert.equal(exporter.dropped, 4);
  assert.equal(exporter.queueSize(), 3);
  assert.ok(logs.some((l) => l.level === 40 && /sending queue is full \(3 batches\): dropped the new batch/.test(l.msg)));

  backend.setBehavior('ok');
  const requests = await backend.waitFor((reqs) => reqs.length >= 3);
  await until(() => exporter.sent === 3);
  assert.deepEqual([...values(requests)].sort(), [1, 2, 3], 'the three oldest batches; 4-7 were rejected');
  assert.deepEqual({ dropped: exporter.dropped, failed: exporter.failed }, { dropped: 4, failed: 0 });
});

test('shutdown with the backend down: one last attempt, the rest dropped and counted, within the timeout', async () => {
  const port = await deadPort();
  const { exporter, collect } = pipeline({ endpoint: `http://127.0.0.1:${port}`, retry_on_failure: { initial_interval: '1m', max_interval: '1m' } });
  for (let i = 0; i < 3; i++) await collect();
  const started = Date.now();
  await exporter.shutdown();
  assert.ok(Date.now() - started < 3_000);
  // Shutdown collects once more (4 batches): the oldest is tried and fails, three are dropped.
  assert.deepEqual({ sent: exporter.sent, failed: exporter.failed, dropped: exporter.dropped, queue: exporter.queueSize() }, { sent: 0, failed: 1, dropped: 3, queue: 0 });
});

test('retry_on_failure and sending_queue: Collector defaults, ms durations, checks', () => {
  const v = (raw: unknown) => otlpExporterFactory.validate(raw, 'exporters.otlp');
  const defaults = v(undefined);
  assert.deepEqual(defaults.retry_on_failure, { enabled: true, initial_interval: 5000, max_interval: 30_000, max_elapsed_time: 300_000, multiplier: 1.5, randomization_factor: 0.5 });
  assert.deepEqual(defaults.sending_queue, { enabled: true, num_consumers: 10, queue_size: 1000 });
  const custom = v({ retry_on_failure: { initial_interval: '50ms', max_interval: '250ms', max_elapsed_time: '0s' }, sending_queue: { enabled: false } });
  assert.equal(custom.retry_on_failure.initial_interval, 50);
  assert.equal(custom.retry_on_failure.max_elapsed_time, 0);
  assert.equal(custom.sending_queue.enabled, false);
  assert.throws(() => v({ retry_on_failure: { initial_interval: '10s', max_interval: '1s' } }), /exporters\.otlp\.retry_on_failure\.max_interval: must be at least initial_interval/);
  assert.throws(() => v({ retry_on_failure: { randomization_factor: 2 } }), /exporters\.otlp\.retry_on_failure\.randomization_factor: must be at most 1/);
  assert.throws(() => v({ sending_queue: { queue_size: 0 } }), /exporters\.otlp\.sending_queue\.queue_size: must be at least 1/);
  assert.throws(() => v({ sending_queue: { num_consumer: 2 } }), /did you mean "num_consumers"/);
  assert.throws(() => v({ retry_on_failure: { initial_interval: 5 } }), /expected a duration with a unit/);
});
