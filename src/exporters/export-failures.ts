/**
 * Keeping a down backend from hurting the agent: a PushMetricExporter wrapper
 * that never throws, counts failed exports and logs them rate-limited (the
 * first failure at once, then at most one summary per interval, and a note
 * when exports succeed again).
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { Logger } from 'pino';

export const DEFAULT_FAILURE_LOG_INTERVAL_MS = 60_000;

export class ExportFailureTracker {
  /** Failed exports since the exporter was created. */
  failures = 0;
  /** Successful exports since the exporter was created. */
  successes = 0;
  private consecutive = 0;
  private suppressed = 0;
  private lastLogMs = -Infinity;

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
    private readonly logIntervalMs = DEFAULT_FAILURE_LOG_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  record(result: ExportResult): void {
    if (result.code === ExportResultCode.SUCCESS) {
      this.successes++;
      if (this.consecutive > 0) {
        this.logger.info({ failedExports: this.consecutive }, `${this.what}: export succeeded again after ${this.consecutive} failed attempt(s)`);
      }
      this.consecutive = 0;
      this.suppressed = 0;
      return;
    }
    this.failures++;
    this.consecutive++;
    const now = this.now();
    if (now - this.lastLogMs < this.logIntervalMs) {
      this.suppressed++;
      return;
    }
    const error = describeError(result.error);
    const context = { err: error, consecutiveFailures: this.consecutive, totalFailures: this.failures };
    if (this.suppressed > 0) {
      this.logger.warn(context, `${this.what}: export failed (${this.suppressed} more failure(s) not logged since the last message): ${error}`);
    } else {
      this.logger.warn(context, `${this.what}: export failed: ${error}`);
    }
    this.lastLogMs = now;
    this.suppressed = 0;
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return error === undefined ? 'unknown error' : String(error);
}

/** Wraps an exporter; every result (including a throw) goes through the tracker. */
export class FailureCountingExporter implements PushMetricExporter {
  readonly selectAggregationTemporality?: PushMetricExporter['selectAggregationTemporality'];
  readonly selectAggregation?: PushMetricExporter['selectAggregation'];

  constructor(
    private readonly inner: PushMetricExporter,
    readonly tracker: ExportFailureTracker,
  ) {
    if (inner.selectAggregationTemporality) this.selectAggregationTemporality = inner.selectAggregationTemporality.bind(inner);
    if (inner.selectAggregation) this.selectAggregation = inner.selectAggregation.bind(inner);
  }

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    let settled = false;
    const done = (result: ExportResult): void => {
      if (settled) return;
      settled = true;
      this.tracker.record(result);
      resultCallback(result);
    };
    try {
      this.inner.export(metrics, done);
    } catch (error) {
      done({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}
