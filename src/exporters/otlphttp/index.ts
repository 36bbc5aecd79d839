/**
 * `otlphttp` exporter: OTLP/HTTP metrics (protobuf or JSON) with the
 * Collector's queue and retries (retry/). Options and their env variables:
 * see config.ts; the wire and error handling: sender.ts.
 */
import { describeSchema, validateObject } from '../../config/schema';
import type { ComponentFactory, ExporterContext } from '../../pipeline/component';
import { FLOWTEL_VERSION } from '../../telemetry/resource';
import { DEFAULT_EXPORT_INTERVAL_MS, exportIntervalFromEnv, temporalitySelector } from '../otlp-env';
import { queuedPushExporter, type QueuedMetricsExporter } from '../retry';
import { OTLP_HTTP_SCHEMA, resolveOtlpHttp, validateOtlpHttpConfig, type OtlpHttpExporterConfig } from './config';
import { OtlpHttpSender } from './sender';

export { otlpHttpMetricsUrl, resolveOtlpHttp, type OtlpHttpExporterConfig, type ResolvedOtlpHttp } from './config';
export { OtlpHttpSender, parseRetryAfter, type OtlpHttpEncoding, type OtlpHttpSenderOptions, type OtlpHttpTls } from './sender';

export type OtlpHttpMetricsExporter = QueuedMetricsExporter;

function createOtlpHttpExporter(config: OtlpHttpExporterConfig, ctx: ExporterContext, env: NodeJS.ProcessEnv = process.env): OtlpHttpMetricsExporter {
  const resolved = resolveOtlpHttp(config, `exporters.${ctx.id}`, env);
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
  options: describeSchema(OTLP_HTTP_SCHEMA),
  defaultConfig: () => validateObject(undefined, '', OTLP_HTTP_SCHEMA),
  validate: validateOtlpHttpConfig,
  create: (config, ctx) => createOtlpHttpExporter(config, ctx),
};
