/**
 * `batch`, after the Collector's batch processor (send_batch_size,
 * send_batch_max_size, timeout; metadata_keys is not supported).
 *
 * What it means depends on the signal, because flowtel's two kinds of data
 * travel differently:
 *
 * - **Logs** arrive one event at a time (a failed connection, a DNS
 *   response). The processor holds records and hands them on together: as
 *   soon as `send_batch_size` records are held (at most `send_batch_max_size`
 *   per batch, the rest stays held), or `timeout` after the first record held,
 *   whichever comes first; on shutdown (and config reload) everything held is
 *   handed on, nothing is lost. Each batch it makes is one export request of
 *   the push exporters (otlp, otlphttp), which otherwise batch records
 *   themselves for at most 1 s / 512 records. `timeout: 0` hands every
 *   incoming batch on at once (cut to send_batch_max_size).
 *
 * - **Metrics** are already batched: receivers send one batch per collection,
 *   and each exporter aggregates every series and sends one request per
 *   `export_interval`. Holding collections here would only delay them (and a
 *   collection must stay whole: its gauges are replaced as one set, and
 *   `aggregate` sums within a batch), so in a metrics pipeline batches pass
 *   at once and `send_batch_size`/`timeout` do not apply. What does apply is
 *   `send_batch_max_size`: the push exporters of the pipeline (otlp,
 *   otlphttp) split each export request into requests of at most that many
 *   data points — what keeps a host with 100 000 series under a gateway's
 *   request size limit (gRPC's default is 4 MiB).
 */
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../config/schema';
import { ConfigError, type BufferingProcessor, type ProcessorFactory } from '../pipeline/component';
import type { LogBatch, LogConsumer, LogRecordData } from '../pipeline/logs';
import type { MeasurementConsumer } from '../pipeline/measurements';

export const batchSchema = {
  send_batch_size: {
    type: 'number',
    integer: true,
    min: 0,
    default: 8192,
    description:
      'Logs: hand the held records on as soon as this many are held (0: only the timeout does). Metrics: does not apply (each exporter already sends one request per export_interval).',
  },
  timeout: {
    type: 'duration',
    minMs: 0,
    default: '200ms',
    description: 'Logs: hand the held records on at the latest this long after the first of them arrived; 0 hands every batch on at once. Metrics: does not apply.',
  },
  send_batch_max_size: {
    type: 'number',
    integer: true,
    min: 0,
    default: 0,
    description:
      'Upper limit of a batch (0: none; at least send_batch_size otherwise). Logs: most records per batch handed on (one export request each). Metrics: the push exporters of the pipeline split each export request into requests of at most this many data points.',
  },
} as const satisfies Schema;

export type BatchConfig = SchemaValue<typeof batchSchema>;

function validateBatchConfig(raw: unknown, path: string): BatchConfig {
  const config = validateObject(raw, path, batchSchema);
  if (config.send_batch_max_size > 0 && config.send_batch_max_size < config.send_batch_size) {
    throw new ConfigError(`${path}.send_batch_max_size`, `must be 0 (no limit) or at least send_batch_size (${config.send_batch_size}), got ${config.send_batch_max_size}`);
  }
  return config;
}

/** Why a batch was handed on (the Collector's trigger names). */
export type BatchTrigger = 'size' | 'timeout' | 'shutdown';

/**
 * The logs side: holds records and hands them on in batches. `emit` gets
 * every batch synchronously (from consume, the timer or flush).
 */
export class LogBatcher implements LogConsumer {
  private held: LogRecordData[] = [];
  /** Source of every held record, or null once they come from several receivers. */
  private heldSource: string | null | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Batches handed on, by trigger. */
  readonly sent: Record<BatchTrigger, number> = { size: 0, timeout: 0, shutdown: 0 };
  /** Records handed on. */
  sentRecords = 0;

  constructor(
    private readonly config: BatchConfig,
    private readonly next: LogConsumer,
  ) {}

  get active(): boolean {
    return this.next.active !== false;
  }

  /** Records held now. */
  get size(): number {
    return this.held.length;
  }

  consumeLogs(batch: LogBatch): void {
    if (batch.records.length === 0) return;
    if (this.closed || this.config.timeout === 0) {
      // No window: pass on at once, cut to the maximum size.
      this.hold(batch);
      this.drain(this.closed ? 'shutdown' : 'size');
      return;
    }
    this.hold(batch);
    const threshold = this.config.send_batch_size;
    if (threshold > 0 && this.held.length >= threshold) {
      this.stopTimer();
      while (this.held.length >= threshold) this.emit(this.take(), 'size');
    }
    if (this.held.length > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.drain('timeout');
      }, this.config.timeout);
      // What is held is handed on at shutdown; the timer alone does not keep the agent alive.
      this.timer.unref();
    }
  }

  /** Hand on everything held (shutdown, reload). Later records pass at once. */
  close(): void {
    this.closed = true;
    this.stopTimer();
    this.drain('shutdown');
  }

  private hold(batch: LogBatch): void {
    if (this.held.length === 0) this.heldSource = batch.source;
    else if (this.heldSource !== batch.source) this.heldSource = null;
    for (const r of batch.records) this.held.push(r);
  }

  /** The next batch: at most send_batch_max_size of the held records, oldest first. */
  private take(): LogRecordData[] {
    const max = this.config.send_batch_max_size;
    if (max === 0 || this.held.length <= max) {
      const all = this.held;
      this.held = [];
      return all;
    }
    return this.held.splice(0, max);
  }

  private drain(trigger: BatchTrigger): void {
    this.stopTimer();
    while (this.held.length > 0) this.emit(this.take(), trigger);
  }

  private emit(records: LogRecordData[], trigger: BatchTrigger): void {
    const source = this.heldSource ?? undefined;
    if (this.held.length === 0) this.heldSource = undefined;
    this.sent[trigger]++;
    this.sentRecords += records.length;
    this.next.consumeLogs({ records, ...(source === undefined ? {} : { source }), batched: true });
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

export class BatchProcessor implements BufferingProcessor {
  private readonly batchers: LogBatcher[] = [];

  constructor(
    readonly id: string,
    readonly config: BatchConfig,
  ) {}

  /** Batches of log records handed on, by trigger (self-telemetry reads it). */
  get sentBatches(): Record<BatchTrigger, number> {
    const out: Record<BatchTrigger, number> = { size: 0, timeout: 0, shutdown: 0 };
    for (const b of this.batchers) for (const t of Object.keys(out) as BatchTrigger[]) out[t] += b.sent[t];
    return out;
  }

  /** Log records handed on. */
  get sentRecords(): number {
    return this.batchers.reduce((n, b) => n + b.sentRecords, 0);
  }

  /** Log records held now. */
  get heldRecords(): number {
    return this.batchers.reduce((n, b) => n + b.size, 0);
  }

  /** Data points per export request for the pipeline's push exporters (send_batch_max_size), if limited. */
  get maxDataPointsPerRequest(): number | undefined {
    return this.config.send_batch_max_size > 0 ? this.config.send_batch_max_size : undefined;
  }

  /** Metrics pass at once (see the module comment); the request size limit is applied by the exporters. */
  connect(next: MeasurementConsumer): MeasurementConsumer {
    return next;
  }

  connectLogs(next: LogConsumer): LogBatcher {
    const batcher = new LogBatcher(this.config, next);
    this.batchers.push(batcher);
    return batcher;
  }

  async start(): Promise<void> {}

  /** Hand on everything held: the pipeline's exporters are still running. */
  async shutdown(): Promise<void> {
    for (const b of this.batchers) b.close();
  }
}

export function isBatchProcessor(p: unknown): p is BatchProcessor {
  return p instanceof BatchProcessor;
}

export const batchProcessorFactory: ProcessorFactory<BatchConfig, BatchProcessor> = {
  kind: 'processor',
  type: 'batch',
  stability: 'beta',
  signals: ['metrics', 'logs'],
  options: describeSchema(batchSchema),
  defaultConfig: () => validateObject(undefined, '', batchSchema),
  validate: validateBatchConfig,
  create: (config, ctx) => new BatchProcessor(ctx.id, config),
};
