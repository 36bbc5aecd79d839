export { ExponentialBackoff, type BackoffSettings } from './backoff';
export {
  RETRY_ON_FAILURE_OPTION,
  SENDING_QUEUE_OPTION,
  checkRetryOnFailure,
  queueSettings,
  retrySettings,
  type QueueSettings,
  type RetryOnFailureConfig,
  type RetrySettings,
  type SendingQueueConfig,
} from './config';
export { QueuedRetryExporter, type QueuedExporterStats, type QueuedRetryExporterOptions } from './queued-exporter';
export { asError, classifyGrpcError, pushExporterSender, type MetricsSender, type SendOutcome } from './sender';
export { queuedPushExporter, type QueuedMetricsExporter, type QueuedPushExporterOptions } from './push-exporter';
