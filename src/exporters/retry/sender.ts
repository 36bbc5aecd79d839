/**
 * What the queue needs from a transport: send one batch once and say whether
 * it worked, may work later (retryable) or never will (permanent).
 */
import { ExportResultCode } from '@opentelemetry/core';
import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';

export type SendOutcome =
  | { readonly kind: 'success' }
  /** `retryAfterMs`: the backend asked to wait this long (HTTP Retry-After). */
  | { readonly kind: 'retryable'; readonly error: Error; readonly retryAfterMs?: number }
  | { readonly kind: 'permanent'; readonly error: Error };

/** One transport for payloads of type T (a metrics collection, a batch of log records). */
export interface Sender<T> {
  /** One attempt. Never rejects: failures are outcomes. */
  send(item: T): Promise<SendOutcome>;
  shutdown(): Promise<void>;
}

export interface MetricsSender extends Sender<ResourceMetrics>, Pick<PushMetricExporter, 'selectAggregationTemporality' | 'selectAggregation'> {}

export function asError(error: unknown): Error {
  if (error instanceof Error) return error;
  return new Error(error === undefined ? 'unknown error' : String(error));
}

/**
 * gRPC status codes the Collector's otlp exporter retries (plus
 * RESOURCE_EXHAUSTED, which it retries only with a RetryInfo; flowtel always
 * does, with backoff).
 */
const RETRYABLE_GRPC_CODES: ReadonlyMap<number, string> = new Map([
  [1, 'CANCELLED'],
  [4, 'DEADLINE_EXCEEDED'],
  [8, 'RESOURCE_EXHAUSTED'],
  [10, 'ABORTED'],
  [11, 'OUT_OF_RANGE'],
  [14, 'UNAVAILABLE'],
  [15, 'DATA_LOSS'],
]);

/** A gRPC client error: retryable by status code; anything without a code is permanent. */
export function classifyGrpcError(error: unknown): SendOutcome {
  const err = asError(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'number' && RETRYABLE_GRPC_CODES.has(code)) return { kind: 'retryable', error: err };
  return { kind: 'permanent', error: err };
}

/** A sender over an SDK PushMetricExporter (one attempt per call; the SDK exporter must not retry itself). */
export function pushExporterSender(inner: PushMetricExporter, classify: (error: unknown) => SendOutcome): MetricsSender {
  const sender: MetricsSender = {
    send(metrics) {
      return new Promise<SendOutcome>((resolve) => {
        try {
          inner.export(metrics, (result) => resolve(result.code === ExportResultCode.SUCCESS ? { kind: 'success' } : classify(result.error)));
        } catch (error) {
          resolve({ kind: 'permanent', error: asError(error) });
        }
      });
    },
    shutdown: () => inner.shutdown(),
  };
  if (inner.selectAggregationTemporality) sender.selectAggregationTemporality = inner.selectAggregationTemporality.bind(inner);
  if (inner.selectAggregation) sender.selectAggregation = inner.selectAggregation.bind(inner);
  return sender;
}
