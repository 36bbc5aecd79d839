/**
 * The sending queue and retries (src/exporters/retry) with a scripted sender:
 * exact counts, order, backoff and shutdown, without a network.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { ExponentialBackoff } from '../../src/exporters/retry/backoff';
import { QueuedRetryExporter } from '../../src/exporters/retry/queued-exporter';
import { classifyGrpcError, type MetricsSender, type SendOutcome } from '../../src/exporters/retry/sender';
import type { QueueSettings, RetrySettings } from '../../src/exporters/retry/config';
import { captureLogger } from '../helpers/capture-logger';

const batch = (n: number): ResourceMetrics => ({ resource: resourceFromAttributes({ batch: n }), scopeMetrics: [] });
const numberOf = (m: ResourceMetrics): number => m.resource.attributes.batch as number;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(condition: () => boolean, timeoutMs = 3_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs}ms`);
    await sleep(5);
  }
}

const UNAVAILABLE: SendOutcome = { kind: 'retryable', error: new Error('UNAVAILABLE') };

/** A sender that answers from a script (then success), records calls and concurrency. */
class ScriptedSender implements MetricsSender {
  readonly calls: Array<{ batch: number; atMs: number }> = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Batches whose send succeeded, in order. */
  readonly delivered: number[] = [];
  shutdowns = 0;

  constructor(
    private readonly script: Array<SendOutcome | ((n: number) => SendOutcome)> = [],
    private readonly latencyMs = 2,
  ) {}

  async send(metrics: ResourceMetrics): Promise<SendOutcome> {
    const n = numberOf(metrics);
    this.calls.push({ batch: n, atMs: Date.now() });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await sleep(this.latencyMs);
    this.inFlight--;
    const next = this.script.shift();
    const outcome = next === undefined ? { kind: 'success' as const } : typeof next === 'function' ? next(n) : next;
    if (outcome.kind === 'success') this.delivered.push(n);
    return outcome;
  }

  async shutdown(): Promise<void> {
    this.shutdowns++;
  }
}

const FAST_RETRY: RetrySettings = { enabled: true, initialIntervalMs: 20, maxIntervalMs: 40, multiplier: 1.5, randomizationFactor: 0, maxElapsedMs: 5_000 };
const QUEUE: QueueSettings = { enabled: true, numConsumers: 10, queueSize: 1000 };

function queued(sender: MetricsSender, overrides: { queue?: Partial<QueueSettings>; retry?: Partial<RetrySettings>; drainTimeoutMs?: number } = {}) {
  const { logger, lines } = captureLogger();
  const exporter = new QueuedRetryExporter({
    sender,
    queue: { ...QUEUE, ...overrides.queue },
    retry: { ...FAST_RETRY, ...overrides.retry },
    drainTimeoutMs: overrides.drainTimeoutMs ?? 2_000,
    logger,
    what: 'exporter test',
  });
  const results: ExportResult[] = [];
  const push = (n: number): void => exporter.export(batch(n), (r) => results.push(r));
  return { exporter, results, push, logs: lines };
}

test('backoff: initial_interval × multiplier^n up to max_interval, randomized within ±randomization_factor', () => {
  const mid = new ExponentialBackoff({ initialIntervalMs: 5000, maxIntervalMs: 30_000, multiplier: 1.5, randomizationFactor: 0.5 }, () => 0.5);
  assert.deepEqual(
    Array.from({ length: 7 }, () => mid.next()),
    [5000, 7500, 11_250, 16_875, 25_312.5, 30_000, 30_000],
  );
  mid.reset();
  assert.equal(mid.next(), 5000);
  const low = new ExponentialBackoff({ initialIntervalMs: 1000, maxIntervalMs: 30_000, multiplier: 2, randomizationFactor: 0.5 }, () => 0);
  const high = new ExponentialBackoff({ initialIntervalMs: 1000, maxIntervalMs: 30_000, multiplier: 2, randomizationFactor: 0.5 }, () => 0.999999);
  assert.equal(low.next(), 500);
  assert.ok(Math.abs(high.next() - 1500) < 0.01);
});

test('export() enqueues and reports success at once, even while the backend is slow', async () => {
  const sender = new ScriptedSender([], 200);
  const { exporter, results, push } = queued(sender);
  const started = Date.now();
  push(1);
  push(2);
  assert.ok(Date.now() - started < 50);
  assert.deepEqual(results.map((r) => r.code), [ExportResultCode.SUCCESS, ExportResultCode.SUCCESS]);
  assert.equal(exporter.queueSize(), 2, 'both held (in flight)');
  await exporter.forceFlush();
  assert.equal(exporter.sent, 2);
  assert.equal(exporter.queueSize(), 0);
  await exporter.shutdown();
});

test('a retryable failure is retried with backoff until it succeeds; retries are counted', async () => {
  const sender = new ScriptedSender([UNAVAILABLE, UNAVAILABLE, UNAVAILABLE]);
  const { exporter, push } = queued(sender);
  push(1);
  await until(() => exporter.sent === 1);
  assert.deepEqual({ sent: exporter.sent, failed: exporter.failed, dropped: exporter.dropped, retries: exporter.retries }, { sent: 1, failed: 0, dropped: 0, retries: 3 });
  // Waits of 20, 30, 40 ms (randomization 0, capped at max_interval).
  const gaps = sender.calls.slice(1).map((c, i) => c.atMs - (sender.calls[i]?.atMs ?? 0));
  assert.ok(gaps[0]! >= 18 && gaps[1]! >= 28 && gaps[2]! >= 38, `gaps ${gaps.join(', ')}`);
  await exporter.shutdown();
});

test('a permanent failure drops the batch at once: failed, not retried', async () => {
  const sender = new ScriptedSender([classifyGrpcError(Object.assign(new Error('bad'), { code: 3 }))]);
  const { exporter, push } = queued(sender);
  push(1);
  await exporter.forceFlush();
  await sleep(100);
  assert.deepEqual({ sent: exporter.sent, failed: exporter.failed, retries: exporter.retries, calls: sender.calls.length }, { sent: 0, failed: 1, retries: 0, calls: 1 });
  await exporter.shutdown();
});

test('gRPC status codes: UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED … retryable; INVALID_ARGUMENT, UNAUTHENTICATED … permanent', () => {
  const kind = (code: number | undefined) => classifyGrpcError(Object.assign(new Error('x'), code === undefined ? {} : { code })).kind;
  for (const code of [1, 4, 8, 10, 11, 14, 15]) assert.equal(kind(code), 'retryable', `code ${code}`);
  for (const code of [2, 3, 5, 6, 7, 9, 12, 13, 16, undefined]) assert.equal(kind(code), 'permanent', `code ${code}`);
});

test('a full queue rejects the new batch: exactly the overflow is dropped and counted', async () => {
  // The backend hangs: nothing leaves the queue while we push.
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const sender: MetricsSender = {
    send: async () => {
      await gate;
      return { kind: 'success' };
    },
    shutdown: async () => undefined,
  };
  const { exporter, results, push, logs } = queued(sender, { queue: { queueSize: 5, numConsumers: 2 } });
  for (let n = 1; n <= 12; n++) push(n);
  assert.equal(exporter.dropped, 7);
  assert.equal(exporter.queueSize(), 5);
  assert.equal(results.filter((r) => r.code === ExportResultCode.FAILED).length, 7);
  assert.equal(logs.filter((l) => /sending queue is full/.test(l.msg)).length, 1, 'logged once, rate-limited');
  release();
  await exporter.forceFlush();
  assert.equal(exporter.sent, 5);
  await exporter.shutdown();
});

test('while the backend fails, one batch at a time is tried (oldest first), and the backlog then goes out in order', async () => {
  // The first 3 concurrent attempts fail, and 2 probes after them.
  const sender = new ScriptedSender([UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE], 5);
  const { exporter, push } = queued(sender, { queue: { numConsumers: 3 } });
  for (let n = 1; n <= 8; n++) push(n);
  await until(() => exporter.sent === 8);
  // Batches 1-3 fail together; then batch 1 alone is probed (attempts 4, 5 fail, 6 succeeds); then the rest in order.
  assert.deepEqual(sender.calls.slice(0, 3).map((c) => c.batch), [1, 2, 3]);
  assert.deepEqual(sender.calls.slice(3, 6).map((c) => c.batch), [1, 1, 1]);
  assert.deepEqual(sender.calls.slice(6).map((c) => c.batch), [2, 3, 4, 5, 6, 7, 8], 'the rest, in collection order');
  assert.equal(sender.delivered[0], 1);
  assert.deepEqual([...sender.delivered].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8]);
  // The three concurrent failures stepped the backoff once (20 ms), then 30 and 40 ms for the failed probes.
  const probeGaps = [4, 5].map((i) => (sender.calls[i]?.atMs ?? 0) - (sender.calls[i - 1]?.atMs ?? 0));
  assert.ok(probeGaps[0]! >= 28 && probeGaps[0]! < 300 && probeGaps[1]! >= 38, `probe gaps ${probeGaps.join(', ')}`);
  assert.equal(exporter.retries, 3 + 1 + 1, 'per re-attempt: batch 1 three times, batches 2 and 3 once');
  await exporter.shutdown();
});

test('max_elapsed_time: a batch is given up (failed) when retrying would go on longer', async () => {
  const sender = new ScriptedSender(Array.from({ length: 100 }, () => UNAVAILABLE));
  const { exporter, push, logs } = queued(sender, { retry: { maxElapsedMs: 100 } });
  push(1);
  await until(() => exporter.failed === 1);
  assert.equal(exporter.sent, 0);
  assert.ok(exporter.retries >= 2 && exporter.retries <= 5, `retries ${exporter.retries}`);
  assert.ok(logs.some((l) => /giving a batch up after \d+ attempt\(s\) \(max_elapsed_time\)/.test(l.msg)));
  await exporter.shutdown();
});

test('retry_on_failure.enabled: false gives a retryable failure up at once', async () => {
  const sender = new ScriptedSender([UNAVAILABLE]);
  const { exporter, push } = queued(sender, { retry: { enabled: false } });
  push(1);
  await exporter.forceFlush();
  assert.deepEqual({ failed: exporter.failed, retries: exporter.retries }, { failed: 1, retries: 0 });
  await exporter.shutdown();
});

test('forceFlush skips the backoff wait and returns when the backend fails again, keeping the data queued', async () => {
  const sender = new ScriptedSender([UNAVAILABLE, UNAVAILABLE]);
  const { exporter, push } = queued(sender, { retry: { initialIntervalMs: 60_000, maxIntervalMs: 60_000, maxElapsedMs: 0 } });
  push(1);
  await exporter.forceFlush();
  assert.equal(sender.calls.length, 1);
  const started = Date.now();
  await exporter.forceFlush(); // tries now instead of in 60 s; fails again
  assert.ok(Date.now() - started < 500);
  assert.equal(sender.calls.length, 2);
  assert.equal(exporter.queueSize(), 1);
  await exporter.forceFlush(); // succeeds
  assert.equal(exporter.sent, 1);
  assert.equal(exporter.queueSize(), 0);
  await exporter.shutdown();
});

test('shutdown: one last attempt; when the backend still fails the rest is dropped and counted, quickly', async () => {
  const sender = new ScriptedSender(Array.from({ length: 100 }, () => UNAVAILABLE));
  const { exporter, results, push } = queued(sender, { retry: { initialIntervalMs: 60_000, maxIntervalMs: 60_000, maxElapsedMs: 0 } });
  for (let n = 1; n <= 4; n++) push(n);
  await until(() => sender.calls.length === 4 && sender.inFlight === 0);
  await sleep(10);
  assert.equal(exporter.retries, 0);
  const started = Date.now();
  await exporter.shutdown();
  assert.ok(Date.now() - started < 500);
  // Batch 1 was tried once more and failed: failed; 2-4 were dropped.
  assert.deepEqual({ sent: exporter.sent, failed: exporter.failed, dropped: exporter.dropped, queue: exporter.queueSize() }, { sent: 0, failed: 1, dropped: 3, queue: 0 });
  assert.equal(sender.shutdowns, 1);
  exporter.export(batch(9), (r) => results.push(r));
  assert.equal(results.at(-1)?.code, ExportResultCode.FAILED, 'export after shutdown fails');
  await exporter.shutdown(); // idempotent
  assert.equal(sender.shutdowns, 1);
});

test('shutdown drains a healthy queue; a drain that takes too long stops at the timeout', async () => {
  const healthy = new ScriptedSender([], 5);
  const a = queued(healthy, { queue: { numConsumers: 2 } });
  for (let n = 1; n <= 6; n++) a.push(n);
  await a.exporter.shutdown();
  assert.equal(a.exporter.sent, 6);

  const hanging: MetricsSender = { send: () => new Promise<SendOutcome>(() => undefined), shutdown: async () => undefined };
  const b = queued(hanging, { queue: { numConsumers: 1 }, drainTimeoutMs: 150 });
  for (let n = 1; n <= 3; n++) b.push(n);
  const started = Date.now();
  await b.exporter.shutdown();
  assert.ok(Date.now() - started < 1_000);
  assert.equal(b.exporter.dropped, 2, 'the two waiting batches; the one in flight is abandoned');
});

test('sending_queue.enabled: false: export() reports the final outcome, retries included', async (t) => {
  const sender = new ScriptedSender([UNAVAILABLE, { kind: 'permanent', error: new Error('rejected') }]);
  const { exporter } = queued(sender, { queue: { enabled: false } });
  // Retry timers are unref'd (they must not keep an agent alive on their own); keep this test's loop alive.
  const keepAlive = setInterval(() => undefined, 1_000);
  t.after(() => clearInterval(keepAlive));
  const first = await new Promise<ExportResult>((resolve) => exporter.export(batch(1), resolve));
  assert.equal(first.code, ExportResultCode.FAILED);
  assert.match(first.error?.message ?? '', /rejected/);
  assert.equal(exporter.retries, 1);
  const second = await new Promise<ExportResult>((resolve) => exporter.export(batch(2), resolve));
  assert.equal(second.code, ExportResultCode.SUCCESS);
  assert.deepEqual({ sent: exporter.sent, failed: exporter.failed }, { sent: 1, failed: 1 });
  await exporter.shutdown();
});
