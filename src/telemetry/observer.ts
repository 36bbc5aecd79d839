/**
 * How self-telemetry and the component status that health_check serves watch
 * a running Service without being part of its data path. The service
 * (src/pipeline/service.ts, `attachTelemetry`) tells its observer:
 * - of every receiver and exporter instance it creates, before it starts
 *   (at attach for those built already, and on each config reload);
 * - which components are in service, after attach and after each reload;
 * - every batch a receiver sends, before its pipelines get it;
 * - every batch of log records a receiver sends to its logs pipelines, and
 *   the records the logs pipelines' processors refused or dropped.
 */
import type { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { MetricsExporter, MetricsReceiver } from '../pipeline/component';
import type { MeasurementBatch } from '../pipeline/measurements';
import type { LogBatch } from '../pipeline/logs';

/** refused: a memory_limiter turned the records away (pressure); dropped: a processor removed them on purpose (filter). */
export type LogsRemovalReason = 'refused' | 'dropped';

export interface PipelineMembers {
  readonly id: string;
  /** metrics or logs (from the id when absent). */
  readonly signal?: 'metrics' | 'logs';
  readonly receivers: readonly string[];
  readonly processors: readonly string[];
  readonly exporters: readonly string[];
}

/** A processor instance and the pipeline it is in (each pipeline has its own instances). */
export interface ProcessorInService {
  readonly id: string;
  readonly pipeline: string;
  readonly instance: object;
}

/** The components in service (only those some pipeline uses). */
export interface ServiceView {
  readonly receivers: ReadonlyMap<string, MetricsReceiver>;
  readonly exporters: ReadonlyMap<string, MetricsExporter>;
  /** Processor instances, when the service knows them. */
  readonly processors?: readonly ProcessorInService[];
  /** The pipelines, when the service knows them (after a reload: the new config's). */
  readonly pipelines?: readonly PipelineMembers[];
}

export interface ServiceObserver {
  /** A receiver instance was created; it has not started. */
  receiverCreated(receiver: MetricsReceiver): void;
  /** An exporter instance was created with the MeterProvider whose reader it is; it has not started. */
  exporterCreated(exporter: MetricsExporter, provider: MeterProvider): void;
  /** The components now in service. */
  serviceChanged(view: ServiceView): void;
  /**
   * Every batch receiver `receiverId` sends, before its pipelines see it.
   * Returns the batch the pipelines get: `batch` itself, or a new batch (it
   * must not change the one it is given).
   */
  receiverBatch(receiverId: string, batch: MeasurementBatch): MeasurementBatch;
  /** Log records receiver `receiverId` handed to its logs pipelines (only when some pipeline takes them). */
  receiverLogs?(receiverId: string, batch: LogBatch): void;
  /**
   * `count` records of receiver `source` were removed by a processor of a
   * logs pipeline (counted once per pipeline that removes them). `source`
   * is absent when a batch processor earlier in the pipeline merged records
   * of several receivers.
   */
  logsRemoved?(source: string | undefined, count: number, reason: LogsRemovalReason): void;
}

/** Several observers as one; batches go through them in order. */
export class ObserverChain implements ServiceObserver {
  constructor(private readonly observers: readonly ServiceObserver[]) {}
  receiverCreated(receiver: MetricsReceiver): void {
    for (const o of this.observers) o.receiverCreated(receiver);
  }
  exporterCreated(exporter: MetricsExporter, provider: MeterProvider): void {
    for (const o of this.observers) o.exporterCreated(exporter, provider);
  }
  serviceChanged(view: ServiceView): void {
    for (const o of this.observers) o.serviceChanged(view);
  }
  receiverBatch(receiverId: string, batch: MeasurementBatch): MeasurementBatch {
    let b = batch;
    for (const o of this.observers) b = o.receiverBatch(receiverId, b);
    return b;
  }
  receiverLogs(receiverId: string, batch: LogBatch): void {
    for (const o of this.observers) o.receiverLogs?.(receiverId, batch);
  }
  logsRemoved(source: string | undefined, count: number, reason: LogsRemovalReason): void {
    for (const o of this.observers) o.logsRemoved?.(source, count, reason);
  }
}
