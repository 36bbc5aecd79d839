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
export { QueuedRetryExporter, RetryQueue, type QueuedExporterStats, type QueuedRetryExporterOptions, type RetryQueueOptions } from './queued-exporter';
export { asError, classifyGrpcError, pushExporterSender, type MetricsSender, type Sender, type SendOutcome } from './sender';
export { queuedPushExporter, type QueuedMetricsExporter, type QueuedPushExporterOptions } from './push-exporter';
