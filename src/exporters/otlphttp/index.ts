/**
 * `otlphttp` exporter: OTLP/HTTP metrics and log records (protobuf or JSON)
 * with the Collector's queue and retries (retry/). Options and their env
 * variables: see config.ts; the wire and error handling: sender.ts.
 *
 * In a logs pipeline the same options send ExportLogsServiceRequests to
 * `logs_endpoint` (default endpoint + /v1/logs) behind their own queue of the
 * same `sending_queue`/`retry_on_failure` settings, as the otlp exporter's
 * logs side does: records are batched for at most 1 s or 512 records (or as
 * a batch processor made them), each batch one request.
 */
import { describeSchema, validateObject } from '../../config/schema';
import type { ComponentFactory, ExporterContext } from '../../pipeline/component';
import { FLOWTEL_VERSION } from '../../telemetry/resource';
import { DEFAULT_EXPORT_INTERVAL_MS, exportIntervalFromEnv, temporalitySelector } from '../otlp-env';
import { queuedPushExporter, type QueuedMetricsExporter } from '../retry';
import { queuedLogsExporter } from '../logs/queued';
import { OTLP_HTTP_SCHEMA, resolveOtlpHttp, validateOtlpHttpConfig, type OtlpHttpExporterConfig } from './config';
import { OtlpHttpLogsSender, OtlpHttpSender } from './sender';

export { otlpHttpLogsUrl, otlpHttpMetricsUrl, resolveOtlpHttp, type OtlpHttpExporterConfig, type ResolvedOtlpHttp } from './config';
export {
  OtlpHttpLogsSender,
  OtlpHttpPoster,
  OtlpHttpSender,
  parseRetryAfter,
  type OtlpHttpEncoding,
  type OtlpHttpPostOptions,
  type OtlpHttpSenderOptions,
  type OtlpHttpTls,
} from './sender';

export type OtlpHttpMetricsExporter = QueuedMetricsExporter;

function createOtlpHttpExporter(config: OtlpHttpExporterConfig, ctx: ExporterContext, env: NodeJS.ProcessEnv = process.env): OtlpHttpMetricsExporter {
  const path = `exporters.${ctx.id}`;
  const resolved = resolveOtlpHttp(config, path, env);
  const forLogs = resolveOtlpHttp(config, path, env, 'LOGS');
  const logs = queuedLogsExporter({
    ctx,
    sender: new OtlpHttpLogsSender({
      url: forLogs.url,
      headers: forLogs.headers,
      compression: forLogs.compression,
      encoding: config.encoding,
      timeoutMs: forLogs.timeoutMs,
      userAgent: `flowtel/${FLOWTEL_VERSION}`,
      tls: forLogs.tls,
      maxSockets: config.sending_queue.num_consumers,
    }),
    retry: config.retry_on_failure,
    queue: config.sending_queue,
    attemptTimeoutMs: forLogs.timeoutMs,
  });
  const sender = new OtlpHttpSender({
    url: resolved.url,
    headers: resolved.headers,
    compression: resolved.compression,
    encoding: config.encoding,
    timeoutMs: resolved.timeoutMs,
    userAgent: `flowtel/${FLOWTEL_VERSION}`,
    tls: resolved.tls,
    maxSockets: config.sending_queue.num_consumers,
    temporality: temporalitySelector(resolved.temporality),
  });
  return queuedPushExporter({
    logs,
    ctx,
    sender,
    retry: config.retry_on_failure,
    queue: config.sending_queue,
    exportIntervalMillis: config.export_interval ?? exportIntervalFromEnv(env) ?? DEFAULT_EXPORT_INTERVAL_MS,
    attemptTimeoutMs: resolved.timeoutMs,
    startLog: { fields: { url: resolved.url, encoding: config.encoding }, message: `exporter ${ctx.id}: exporting OTLP/HTTP to ${resolved.url}` },
  });
}

export const otlpHttpExporterFactory: ComponentFactory<OtlpHttpExporterConfig, OtlpHttpMetricsExporter> = {
  kind: 'exporter',
  type: 'otlphttp',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: describeSchema(OTLP_HTTP_SCHEMA),
  defaultConfig: () => validateObject(undefined, '', OTLP_HTTP_SCHEMA),
  validate: validateOtlpHttpConfig,
  create: (config, ctx) => createOtlpHttpExporter(config, ctx),
};
