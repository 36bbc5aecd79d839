/**
 * What flows through a logs pipeline: batches of log records (one per failed
 * connection, per DNS query/response pair, …). Like measurements, records and
 * their attribute objects are shared between pipelines and never changed
 * after they are sent.
 */
import type { FlowAttributes } from './measurements';

/** OpenTelemetry severity numbers used here. */
export const Severity = { DEBUG: 5, INFO: 9, WARN: 13, ERROR: 17 } as const;

export interface LogRecordData {
  /** When the event happened, ms since the epoch. */
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
  /** The receiver that produced it. */
  readonly source?: string;
}

export interface LogConsumer {
  consumeLogs(batch: LogBatch): void;
}

/** An exporter's logs side: takes records and sends them on its own schedule. */
export interface LogsExporter extends LogConsumer {
  /** Send what is buffered (on shutdown). */
  flushLogs(): Promise<void>;
}

export class LogFanOut implements LogConsumer {
  constructor(private readonly consumers: readonly LogConsumer[]) {}
  consumeLogs(batch: LogBatch): void {
    for (const c of this.consumers) c.consumeLogs(batch);
  }
}
