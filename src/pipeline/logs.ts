/**
 * What flows through a logs pipeline: batches of log records (one per failed
 * connection, per DNS query/response pair, …). Like measurements, records and
 * their attribute objects are shared between pipelines and never changed
 * after they are sent; processors build new ones.
 *
 * Wiring (src/pipeline/service.ts): a receiver listed by logs pipelines gets
 * `ctx.logs`, a fan-out to each of them; a pipeline runs its processors'
 * `processLogs` in order, then hands the batch to each exporter's `logs`
 * side, which sends it on its own schedule with the service's Resource (the
 * same as the metrics').
 */
import type { Resource } from '@opentelemetry/resources';
import type { FlowAttributes } from './measurements';

/** OpenTelemetry severity numbers used here (SeverityNumber of the log data model). */
export const Severity = { DEBUG: 5, INFO: 9, WARN: 13, ERROR: 17 } as const;

export interface LogRecordData {
  /** When the event happened, ms since the epoch (fractions keep µs precision). */
  readonly timeMs: number;
  readonly severityNumber: number;
  readonly severityText: string;
  /** A line a person can read. */
  readonly body: string;
  /** The event's name (OpenTelemetry `event.name`), e.g. `flowtel.tcp.connection_failed`. */
  readonly eventName: string;
  readonly attributes: FlowAttributes;
}

export interface LogBatch {
  readonly records: readonly LogRecordData[];
  /** The receiver that produced it (absent: records of several receivers, merged by a batch processor). */
  readonly source?: string;
  /**
   * Made by a `batch` processor: push exporters send it as one request as it
   * is, instead of batching records themselves (1 s / 512 records).
   */
  readonly batched?: boolean;
}

export interface LogConsumer {
  consumeLogs(batch: LogBatch): void;
  /**
   * false when nothing consumes the records (a receiver kept across a reload
   * that is no longer in any logs pipeline): producers may skip building
   * them. Absent means true.
   */
  readonly active?: boolean;
}

/** An exporter's logs side: takes records and sends them on its own schedule. */
export interface LogsExporter extends LogConsumer {
  /** The Resource the records are sent with (the service's, the same as the metrics'). Called before start. */
  useResource(resource: Resource): void;
  /** Send what is buffered (on shutdown). */
  flushLogs(): Promise<void>;
}

/**
 * A processor that can be in a logs pipeline (its factory lists the `logs`
 * signal). Like `process`, it must not change the batch it is given.
 */
export interface LogsProcessor {
  readonly id: string;
  processLogs(batch: LogBatch): LogBatch;
  /**
   * Records it removes are refused (memory_limiter: the agent is under
   * pressure) rather than dropped on purpose (filter): self-telemetry counts
   * them apart.
   */
  readonly refuses?: boolean;
}

export function isLogsProcessor(p: unknown): p is LogsProcessor {
  return typeof (p as Partial<LogsProcessor> | null)?.processLogs === 'function';
}

export class LogFanOut implements LogConsumer {
  constructor(private readonly consumers: readonly LogConsumer[]) {}
  get active(): boolean {
    return this.consumers.some((c) => c.active !== false);
  }
  consumeLogs(batch: LogBatch): void {
    for (const c of this.consumers) c.consumeLogs(batch);
  }
}

/** A batch with other records (same source, same `batched`). */
export function withRecords(batch: LogBatch, records: readonly LogRecordData[]): LogBatch {
  return {
    records,
    ...(batch.source === undefined ? {} : { source: batch.source }),
    ...(batch.batched ? { batched: true } : {}),
  };
}
