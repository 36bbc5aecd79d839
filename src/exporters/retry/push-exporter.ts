/**
 * A push MetricsExporter (otlp, otlphttp): a PeriodicExportingMetricReader
 * over a QueuedRetryExporter over a sender.
 */
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import type { ExporterContext, MetricsExporter } from '../../pipeline/component';
import { ExportFailureTracker } from '../export-failures';
import { queueSettings, retrySettings, type RetryOnFailureConfig, type SendingQueueConfig } from './config';
import { QueuedRetryExporter, type QueuedExporterStats } from './queued-exporter';
import type { MetricsSender } from './sender';
import type { QueuedLogsExporter } from '../logs/queued';

export interface QueuedMetricsExporter extends MetricsExporter, QueuedExporterStats {
  /** Failed export attempts since creation (each retry that fails counts). */
  readonly exportFailures: number;
  /** Successful export attempts since creation (= sent). */
  readonly exportSuccesses: number;
}

export interface QueuedPushExporterOptions {
  readonly ctx: ExporterContext;
  readonly sender: MetricsSender;
  readonly retry: RetryOnFailureConfig;
  readonly queue: SendingQueueConfig;
  readonly exportIntervalMillis: number;
  /** Deadline of one attempt; also bounds forceFlush/shutdown draining. */
  readonly attemptTimeoutMs: number;
  /** Logged at debug level by start(). */
  readonly startLog: { readonly fields: Record<string, unknown>; readonly message: string };
  /** The exporter's logs side, if it has one: shut down after the metrics. */
  readonly logs?: QueuedLogsExporter;
}

export function queuedPushExporter(options: QueuedPushExporterOptions): QueuedMetricsExporter {
  const { ctx, exportIntervalMillis } = options;
  const what = `exporter ${ctx.id}`;
  const tracker = new ExportFailureTracker(ctx.logger, what);
  const queued = new QueuedRetryExporter({
    sender: options.sender,
    queue: queueSettings(options.queue),
    retry: retrySettings(options.retry),
    drainTimeoutMs: options.attemptTimeoutMs,
    logger: ctx.logger,
    what,
    tracker,
  });
  // With the queue, export() returns at once; without it, the reader waits
  // for the outcome, retries included, for up to one interval.
  const exportTimeoutMillis = options.queue.enabled ? Math.min(exportIntervalMillis, options.attemptTimeoutMs) : exportIntervalMillis;
  const reader = new PeriodicExportingMetricReader({ exporter: queued, exportIntervalMillis, exportTimeoutMillis, metricProducers: ctx.metricProducers });
  let stopped = false;
  const logs = options.logs;
  return {
    id: ctx.id,
    reader,
    ...(logs ? { logs } : {}),
    get exportFailures() {
      return tracker.failures;
    },
    get exportSuccesses() {
      return tracker.successes;
    },
    get sent() {
      return queued.sent;
    },
    get failed() {
      return queued.failed;
    },
    get dropped() {
      return queued.dropped;
    },
    get retries() {
      return queued.retries;
    },
    queueSize: () => queued.queueSize(),
    limitRequestSize(maxDataPoints) {
      queued.maxDataPoints = maxDataPoints;
    },
    async start() {
      ctx.logger.debug({ ...options.startLog.fields, exportIntervalMillis }, options.startLog.message);
    },
    async shutdown() {
      if (stopped) return;
      stopped = true;
      try {
        // A reader already shut down by its MeterProvider only logs; the queue is drained either way.
        await reader.shutdown();
      } catch (error) {
        ctx.logger.warn({ err: error }, `${what}: shutdown failed`);
      }
      await queued.shutdown();
      await logs?.shutdown();
    },
  };
}
