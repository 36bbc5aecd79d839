/**
 * The logs side of a push exporter (otlp): a LogBuffer in front of the same
 * sending queue and retries as the metrics (retry/RetryQueue, configured by
 * the exporter's `sending_queue` and `retry_on_failure`), over a sender of
 * ReadableLogRecord batches.
 *
 * A batch made by a `batch` processor (LogBatch.batched) is one request as it
 * is: what the buffer holds is handed over first (records keep their order),
 * then the batch.
 */
import type { Resource } from '@opentelemetry/resources';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { ComponentContext } from '../../pipeline/component';
import type { LogBatch, LogRecordData, LogsExporter } from '../../pipeline/logs';
import { buildResource } from '../../telemetry/resource';
import { ExportFailureTracker } from '../export-failures';
import { queueSettings, retrySettings, type RetryOnFailureConfig, type SendingQueueConfig } from '../retry/config';
import { RetryQueue, type QueuedExporterStats } from '../retry/queued-exporter';
import type { Sender } from '../retry/sender';
import { LogBuffer } from './buffer';
import { settled, toReadableLogRecords } from './records';

export interface QueuedLogsExporter extends LogsExporter, QueuedExporterStats {
  /** Log records accepted (handed to the queue or buffered). */
  readonly records: number;
  /** Log records delivered. */
  readonly sentRecords: number;
  /** Log records given up (permanent error, retries exhausted, failing at shutdown). */
  readonly failedRecords: number;
  /** Log records discarded unsent (queue full, or still queued at shutdown). */
  readonly droppedRecords: number;
  readonly exportFailures: number;
  /** Stop: flush the buffer, drain the queue (bounded), close the sender. */
  shutdown(): Promise<void>;
}

export interface QueuedLogsOptions {
  readonly ctx: ComponentContext;
  readonly sender: Sender<ReadableLogRecord[]>;
  readonly retry: RetryOnFailureConfig;
  readonly queue: SendingQueueConfig;
  /** Deadline of one attempt; also bounds flush and shutdown. */
  readonly attemptTimeoutMs: number;
  readonly batchIntervalMs?: number;
  readonly batchSize?: number;
}

export function queuedLogsExporter(options: QueuedLogsOptions): QueuedLogsExporter {
  const { ctx } = options;
  const what = `exporter ${ctx.id} (logs)`;
  const tracker = new ExportFailureTracker(ctx.logger, what);
  let resource: Resource | undefined;
  let resourceReady: Promise<Resource> | undefined;
  const ready = (): Promise<Resource> => (resourceReady ??= settled(resource ?? buildResource({})));
  // The resource is settled once, before the first attempt; records are made readable when sent.
  const sender: Sender<readonly LogRecordData[]> = {
    async send(records) {
      const r = await ready();
      return options.sender.send(toReadableLogRecords(records, r));
    },
    shutdown: () => options.sender.shutdown(),
  };
  const queue = new RetryQueue({
    sender,
    queue: queueSettings(options.queue),
    retry: retrySettings(options.retry),
    drainTimeoutMs: options.attemptTimeoutMs,
    logger: ctx.logger,
    what,
    tracker,
    weight: (batch) => batch.length,
  });
  let records = 0;
  let stopped = false;
  const buffer = new LogBuffer((batch) => queue.export(batch, () => undefined), options.batchIntervalMs, options.batchSize);
  return {
    get records() {
      return records;
    },
    get sent() {
      return queue.sent;
    },
    get failed() {
      return queue.failed;
    },
    get dropped() {
      return queue.dropped;
    },
    get retries() {
      return queue.retries;
    },
    get sentRecords() {
      return queue.sentItems;
    },
    get failedRecords() {
      return queue.failedItems;
    },
    get droppedRecords() {
      return queue.droppedItems;
    },
    get exportFailures() {
      return tracker.failures;
    },
    queueSize: () => queue.queueSize() + (buffer.size > 0 ? 1 : 0),
    get active() {
      return !stopped;
    },
    useResource(r) {
      resource = r;
      resourceReady = undefined;
    },
    consumeLogs(batch: LogBatch) {
      if (stopped || batch.records.length === 0) return;
      records += batch.records.length;
      if (batch.batched) {
        buffer.flush();
        queue.export([...batch.records], () => undefined);
      } else {
        buffer.add(batch.records);
      }
    },
    async flushLogs() {
      buffer.flush();
      await queue.forceFlush();
    },
    async shutdown() {
      if (stopped) return;
      stopped = true;
      buffer.flush();
      await queue.shutdown();
    },
  };
}
