/**
 * A down backend must not take the memory the memory_limiter protects: while
 * a limiter is above its soft limit, a sending queue that holds a batch
 * rejects new ones (dropped, counted) instead of growing; an empty queue
 * still sends, so a healthy backend keeps getting data.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { QueuedRetryExporter } from '../../src/exporters/retry/queued-exporter';
import type { MetricsSender, SendOutcome } from '../../src/exporters/retry/sender';
import { memoryPressure } from '../../src/pipeline/memory-pressure';
import { MemoryLimiterProcessor } from '../../src/processors/memory_limiter';
import { captureLogger } from '../helpers/capture-logger';

const batch = (n: number): ResourceMetrics => ({ resource: resourceFromAttributes({ batch: n }), scopeMetrics: [] });

class Backend implements MetricsSender {
  down = true;
  readonly delivered: number[] = [];
  async send(metrics: ResourceMetrics): Promise<SendOutcome> {
    await new Promise((r) => setTimeout(r, 1));
    if (this.down) return { kind: 'retryable', error: new Error('UNAVAILABLE') };
    this.delivered.push(metrics.resource.attributes.batch as number);
    return { kind: 'success' };
  }
  async shutdown(): Promise<void> {}
}

test('under memory pressure a queue holding batches drops new ones and counts them; an empty one still sends', async () => {
  const pressure = { active: false };
  const backend = new Backend();
  const { logger, lines } = captureLogger();
  const exporter = new QueuedRetryExporter({
    sender: backend,
    queue: { enabled: true, numConsumers: 4, queueSize: 1000 },
    retry: { enabled: true, initialIntervalMs: 10, maxIntervalMs: 20, multiplier: 1.5, randomizationFactor: 0, maxElapsedMs: 0 },
    drainTimeoutMs: 1_000,
    logger,
    what: 'exporter test',
    memoryPressure: pressure,
  });
  for (const n of [1, 2, 3]) exporter.export(batch(n), () => undefined);
  assert.equal(exporter.queueSize(), 3);
  pressure.active = true;
  const results: number[] = [];
  for (const n of [4, 5, 6, 7]) exporter.export(batch(n), (r) => results.push(r.code));
  assert.equal(exporter.queueSize(), 3, 'the backlog does not grow');
  assert.equal(exporter.dropped, 4);
  assert.deepEqual(results, [1, 1, 1, 1], 'each rejected batch is reported failed to the reader');
  assert.equal(lines.filter((l) => /memory_limiter is above its soft limit: dropped the new batch/.test(l.msg)).length, 1, 'logged once, rate-limited');

  // The backend comes back: the backlog drains; an empty queue takes a batch even under pressure.
  backend.down = false;
  await exporter.forceFlush();
  assert.deepEqual(backend.delivered.sort(), [1, 2, 3]);
  assert.equal(exporter.queueSize(), 0);
  exporter.export(batch(8), () => undefined);
  await exporter.forceFlush();
  assert.deepEqual(backend.delivered.sort(), [1, 2, 3, 8]);
  assert.equal(exporter.dropped, 4);
  await exporter.shutdown();
});

test('memory_limiter instances set the process-wide pressure while above their soft limit, and clear it', async () => {
  let rss = 10 * 1024 * 1024;
  const limiter = new MemoryLimiterProcessor('memory_limiter', { check_interval: 60_000, limit_mib: 100 } as never, () => rss, 1024 ** 3);
  const other = new MemoryLimiterProcessor('memory_limiter', { check_interval: 60_000, limit_mib: 1000 } as never, () => rss, 1024 ** 3);
  await limiter.start();
  await other.start();
  assert.equal(memoryPressure.active, false);
  rss = 90 * 1024 * 1024; // above 100 − 20% spike
  limiter.check();
  other.check();
  assert.equal(memoryPressure.active, true, 'one limiter above its soft limit is enough');
  rss = 10 * 1024 * 1024;
  limiter.check();
  assert.equal(memoryPressure.active, false);
  rss = 95 * 1024 * 1024;
  limiter.check();
  await limiter.shutdown();
  await other.shutdown();
  assert.equal(memoryPressure.active, false, 'a limiter that stops clears its part');
});
