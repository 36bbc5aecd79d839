/**
 * The Collector's exporterhelper for a push metrics exporter: a bounded
 * in-memory queue in front of a sender, with retries and exponential backoff.
 *
 * - `export()` (called by the PeriodicExportingMetricReader once per
 *   collection) enqueues the batch and reports success at once, so the reader
 *   never waits for the backend. The queue holds at most `queue_size`
 *   batches, in flight ones included; when full it rejects the new batch (as
 *   the Collector does) and counts it in `dropped`. While a memory_limiter is
 *   above its soft limit, a queue that holds anything rejects new batches
 *   the same way (src/pipeline/memory-pressure.ts).
 * - Up to `num_consumers` batches are in flight, oldest first.
 * - A retryable failure puts the batch back in its place and makes the whole
 *   exporter wait one backoff step (concurrent failures of the same round
 *   count once); until a send succeeds again only one batch at a time is
 *   tried, oldest first. So an outage costs one probe per backoff interval,
 *   not one per batch, and when the backend is back the backlog is sent in
 *   collection order (strictly in order with `num_consumers: 1`; with more,
 *   the batches after the first go concurrently).
 * - A permanent failure, or a batch that would retry beyond
 *   `max_elapsed_time` since its first attempt, is given up: `failed`.
 * - `forceFlush()` tries everything queued now (skipping the current wait) and
 *   resolves when the queue is empty, when the backend fails again with a
 *   retryable error (the data stays queued), or after `drainTimeoutMs`.
 * - `shutdown()` makes one last attempt per queued batch; after the first
 *   retryable failure, or at `drainTimeoutMs`, what is left is dropped and
 *   counted in `dropped`.
 *
 * With `sending_queue.enabled: false`, `export()` waits for the batch's final
 * outcome (retries included) and reports it to the reader.
 *
 * Counters are in batches (one batch = one collection = one export request).
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { Logger } from 'pino';
import type { ExportFailureTracker } from '../export-failures';
import { ExponentialBackoff } from './backoff';
import type { QueueSettings, RetrySettings } from './config';
import { asError, type MetricsSender, type Sender, type SendOutcome } from './sender';
import { memoryPressure } from '../../pipeline/memory-pressure';
import { splitResourceMetrics } from './split';

/** What the exporter counts; the self-telemetry publishes these. */
export interface QueuedExporterStats {
  /** Batches delivered. */
  readonly sent: number;
  /** Batches given up: a permanent error, retries exhausted (or disabled), or a retryable failure at shutdown. */
  readonly failed: number;
  /** Batches discarded unsent: rejected by a full queue, or still queued when shutdown gave up. */
  readonly dropped: number;
  /** Attempts after the first, over all batches. */
  readonly retries: number;
  /** Batches held: waiting, waiting for a retry, or in flight (at most sending_queue.queue_size). */
  queueSize(): number;
}

export interface RetryQueueOptions<T> {
  readonly sender: Sender<T>;
  readonly queue: QueueSettings;
  readonly retry: RetrySettings;
  /** Bound on forceFlush() and shutdown(). */
  readonly drainTimeoutMs: number;
  readonly logger: Logger;
  /** `exporter otlp`: prefix of log messages. */
  readonly what: string;
  /** Sees every attempt's result (failure counting and rate-limited logging). */
  readonly tracker?: ExportFailureTracker;
  readonly random?: () => number;
  readonly dropLogIntervalMs?: number;
  /** Whether to refuse growing the queue (default: the process-wide one the memory_limiter sets). */
  readonly memoryPressure?: { readonly active: boolean };
  /** Items in a batch (log records), for sentItems/failedItems/droppedItems. Default 1. */
  readonly weight?: (item: T) => number;
}

export interface QueuedRetryExporterOptions extends RetryQueueOptions<ResourceMetrics> {
  readonly sender: MetricsSender;
}

interface Batch<T> {
  readonly seq: number;
  readonly item: T;
  attempts: number;
  firstAttemptMs?: number;
  /** Set when sending_queue is disabled: the reader waits for this. */
  settle?: (result: ExportResult) => void;
}

interface Drain {
  readonly stopOnRetryable: boolean;
  retryableSeen: boolean;
  readonly wake: () => void;
}

const SUCCESS: ExportResult = { code: ExportResultCode.SUCCESS };

/**
 * The queue itself, for any payload: a metrics collection (QueuedRetryExporter)
 * or a batch of log records (src/exporters/logs).
 */
export class RetryQueue<T> implements QueuedExporterStats {
  sent = 0;
  failed = 0;
  dropped = 0;
  retries = 0;
  /** The same counts in items (see RetryQueueOptions.weight). */
  sentItems = 0;
  failedItems = 0;
  droppedItems = 0;

  private readonly sender: Sender<T>;
  private readonly backoff: ExponentialBackoff;
  private readonly pending: Batch<T>[] = [];
  private readonly drains = new Set<Drain>();
  private inFlight = 0;
  private seq = 0;
  /** No attempt starts before this (the current backoff wait). */
  private notBeforeMs = 0;
  /** Bumped at each backoff step; failures of attempts started in an older round don't step again. */
  private round = 0;
  /** Since a retryable failure and until a success: one attempt at a time. */
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private closed = false;
  private readonly dropLog: RateLimit;

  constructor(private readonly options: RetryQueueOptions<T>) {
    this.sender = options.sender;
    this.backoff = new ExponentialBackoff(options.retry, options.random);
    this.dropLog = new RateLimit(options.dropLogIntervalMs ?? 60_000);
  }

  queueSize(): number {
    return this.pending.length + this.inFlight;
  }

  export(item: T, resultCallback: (result: ExportResult) => void): void {
    if (this.stopping) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error(`${this.options.what}: exporter is shut down`) });
      return;
    }
    const batch: Batch<T> = { seq: this.seq++, item, attempts: 0 };
    if (!this.options.queue.enabled) {
      batch.settle = resultCallback;
      this.pending.push(batch);
      this.pump();
      return;
    }
    if (this.queueSize() >= this.options.queue.queueSize) {
      this.dropped++;
      this.droppedItems += this.weigh(item);
      this.logDrop(`sending queue is full (${this.options.queue.queueSize} batches): dropped the new batch`);
      resultCallback({ code: ExportResultCode.FAILED, error: new Error(`${this.options.what}: sending queue is full`) });
      return;
    }
    if (this.queueSize() > 0 && (this.options.memoryPressure ?? memoryPressure).active) {
      // Short of memory (a memory_limiter above its soft limit): the backlog does not grow.
      this.dropped++;
      this.droppedItems += this.weigh(item);
      this.logDrop(`memory_limiter is above its soft limit: dropped the new batch instead of queueing it behind ${this.queueSize()}`);
      resultCallback({ code: ExportResultCode.FAILED, error: new Error(`${this.options.what}: short of memory, not queued`) });
      return;
    }
    this.pending.push(batch);
    resultCallback(SUCCESS);
    this.pump();
  }

  /** Try everything queued now; see the module comment for when this resolves. */
  async forceFlush(): Promise<void> {
    if (this.closed) return;
    await this.drain(true);
  }

  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.drain(false);
    if (this.pending.length > 0) this.dropRemaining('shutdown timed out');
    this.closed = true;
    this.clearTimer();
    try {
      await this.sender.shutdown();
    } catch (error) {
      this.options.logger.warn({ err: error }, `${this.options.what}: closing the connection failed`);
    }
  }

  private idle(): boolean {
    return this.pending.length === 0 && this.inFlight === 0;
  }

  private drain(stopOnRetryable: boolean): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timeout = setTimeout(() => finish(), this.options.drainTimeoutMs);
      const finish = (): void => {
        clearTimeout(timeout);
        this.drains.delete(drain);
        resolve();
      };
      const drain: Drain = {
        stopOnRetryable,
        retryableSeen: false,
        wake: () => {
          if (this.idle() || (drain.stopOnRetryable && drain.retryableSeen)) finish();
        },
      };
      this.drains.add(drain);
      // Skip the current backoff wait: try now.
      this.notBeforeMs = 0;
      this.clearTimer();
      this.pump();
      drain.wake();
    });
  }

  private wakeDrains(): void {
    for (const drain of [...this.drains]) drain.wake();
  }

  /** Start attempts while there is room; otherwise wait for the backoff. */
  private pump(): void {
    if (this.closed) return;
    const limit = this.failing ? 1 : this.options.queue.numConsumers;
    while (this.pending.length > 0 && this.inFlight < limit) {
      const wait = this.notBeforeMs - Date.now();
      if (wait > 0) {
        this.scheduleWake(wait);
        return;
      }
      this.start(this.pending.shift() as Batch<T>);
    }
  }

  private scheduleWake(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, ms);
    // A pending retry alone does not keep the process alive; shutdown() drains.
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private start(batch: Batch<T>): void {
    this.inFlight++;
    batch.attempts++;
    if (batch.attempts > 1) this.retries++;
    batch.firstAttemptMs ??= Date.now();
    const round = this.round;
    this.sender.send(batch.item).then(
      (outcome) => this.finish(batch, outcome, round),
      (error: unknown) => this.finish(batch, { kind: 'permanent', error: asError(error) }, round),
    );
  }

  private finish(batch: Batch<T>, outcome: SendOutcome, round: number): void {
    this.inFlight--;
    this.options.tracker?.record(outcome.kind === 'success' ? SUCCESS : { code: ExportResultCode.FAILED, error: outcome.error });
    switch (outcome.kind) {
      case 'success':
        this.sent++;
        this.sentItems += this.weigh(batch.item);
        this.failing = false;
        this.notBeforeMs = 0;
        this.backoff.reset();
        batch.settle?.(SUCCESS);
        break;
      case 'permanent':
        this.giveUp(batch, outcome.error);
        break;
      case 'retryable':
        for (const drain of this.drains) drain.retryableSeen = true;
        this.retryLater(batch, outcome, round);
        break;
    }
    this.pump();
    this.wakeDrains();
  }

  private retryLater(batch: Batch<T>, outcome: Extract<SendOutcome, { kind: 'retryable' }>, round: number): void {
    const retry = this.options.retry;
    if (!retry.enabled || this.stopping) {
      this.giveUp(batch, outcome.error);
      if (this.stopping) this.dropRemaining('the backend is failing at shutdown');
      return;
    }
    const now = Date.now();
    if (round === this.round) {
      // The first failure of this round: wait one more backoff step.
      this.round++;
      this.failing = true;
      this.notBeforeMs = now + Math.max(this.backoff.next(), outcome.retryAfterMs ?? 0);
    }
    const wait = Math.max(0, this.notBeforeMs - now);
    if (retry.maxElapsedMs > 0 && now - (batch.firstAttemptMs ?? now) + wait > retry.maxElapsedMs) {
      this.giveUp(batch, new Error(`no success after retrying for ${Math.round((now - (batch.firstAttemptMs ?? now)) / 1000)}s (max_elapsed_time): ${outcome.error.message}`));
      this.options.logger.warn({ err: outcome.error, attempts: batch.attempts }, `${this.options.what}: giving a batch up after ${batch.attempts} attempt(s) (max_elapsed_time)`);
      return;
    }
    // Back in its place, so the oldest batch is always the next one tried.
    const at = this.pending.findIndex((b) => b.seq > batch.seq);
    this.pending.splice(at === -1 ? this.pending.length : at, 0, batch);
  }

  private weigh(item: T): number {
    return this.options.weight ? this.options.weight(item) : 1;
  }

  private giveUp(batch: Batch<T>, error: Error): void {
    this.failed++;
    this.failedItems += this.weigh(batch.item);
    batch.settle?.({ code: ExportResultCode.FAILED, error });
  }

  private dropRemaining(reason: string): void {
    const left = this.pending.splice(0);
    if (left.length === 0) return;
    this.dropped += left.length;
    for (const batch of left) this.droppedItems += this.weigh(batch.item);
    for (const batch of left) batch.settle?.({ code: ExportResultCode.FAILED, error: new Error(`${this.options.what}: dropped at shutdown`) });
    this.options.logger.warn({ dropped: left.length }, `${this.options.what}: dropped ${left.length} queued batch(es) at shutdown: ${reason}`);
  }

  private logDrop(message: string): void {
    const suppressed = this.dropLog.take();
    if (suppressed === undefined) return;
    const more = suppressed > 0 ? ` (${suppressed} more since the last message)` : '';
    this.options.logger.warn({ dropped: this.dropped }, `${this.options.what}: ${message}${more}`);
  }
}

/**
 * The metrics exporterhelper: a RetryQueue of collections that the
 * PeriodicExportingMetricReader exports to. With `maxDataPoints` set (the
 * batch processor's send_batch_max_size), a collection with more points is
 * cut into several requests (split.ts), each its own queue entry.
 */
export class QueuedRetryExporter extends RetryQueue<ResourceMetrics> implements PushMetricExporter {
  readonly selectAggregationTemporality?: PushMetricExporter['selectAggregationTemporality'];
  readonly selectAggregation?: PushMetricExporter['selectAggregation'];
  /** Most data points per request; undefined: one request per collection. */
  maxDataPoints: number | undefined;

  override export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    const parts = this.maxDataPoints === undefined ? [metrics] : splitResourceMetrics(metrics, this.maxDataPoints);
    if (parts.length === 1) {
      super.export(metrics, resultCallback);
      return;
    }
    // One result for the reader: the first failure, else success, once every part has its own.
    let waiting = parts.length;
    let failure: ExportResult | undefined;
    for (const part of parts) {
      super.export(part, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) failure ??= result;
        if (--waiting === 0) resultCallback(failure ?? SUCCESS);
      });
    }
  }

  constructor(options: QueuedRetryExporterOptions) {
    super(options);
    const sender = options.sender;
    if (sender.selectAggregationTemporality) this.selectAggregationTemporality = sender.selectAggregationTemporality.bind(sender);
    if (sender.selectAggregation) this.selectAggregation = sender.selectAggregation.bind(sender);
  }
}

/** At most one message per interval; `take()` says how many were suppressed, or undefined to stay quiet. */
class RateLimit {
  private lastMs = -Infinity;
  private suppressed = 0;

  constructor(private readonly intervalMs: number) {}

  take(): number | undefined {
    const now = Date.now();
    if (now - this.lastMs < this.intervalMs) {
      this.suppressed++;
      return undefined;
    }
    const suppressed = this.suppressed;
    this.lastMs = now;
    this.suppressed = 0;
    return suppressed;
  }
}
