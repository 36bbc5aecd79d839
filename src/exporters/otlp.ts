/**
 * `otlp` exporter: OTLP over gRPC (`@opentelemetry/exporter-metrics-otlp-grpc`,
 * one attempt per call: 0.223's gRPC delegate does not retry) behind the
 * Collector's exporterhelper queue and retries (retry/), driven by a
 * PeriodicExportingMetricReader.
 *
 * Every option that is not written in the config is left unset so that the
 * SDK applies the standard environment variables (0.223 resolves each
 * setting as: code option > signal-specific env > generic env > default):
 *
 * | option        | env (METRICS_ variant first)                        | default |
 * |---------------|-----------------------------------------------------|---------|
 * | endpoint      | OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT               | http://localhost:4317 |
 * | tls.*         | OTEL_EXPORTER_OTLP_(METRICS_)INSECURE / CERTIFICATE / CLIENT_KEY / CLIENT_CERTIFICATE | from the scheme |
 * | headers       | OTEL_EXPORTER_OTLP_(METRICS_)HEADERS (merged per key; config wins) | none |
 * | compression   | OTEL_EXPORTER_OTLP_(METRICS_)COMPRESSION            | none    |
 * | timeout       | OTEL_EXPORTER_OTLP_(METRICS_)TIMEOUT (ms)           | 10s     |
 * | temporality   | OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE   | cumulative |
 * | export_interval | OTEL_METRIC_EXPORT_INTERVAL (ms; read by flowtel) | 10s     |
 *
 * Transport security when `tls` is not configured follows the SDK: an
 * `http://` endpoint is plaintext, `https://` is TLS, and a bare `host:port`
 * is TLS unless OTEL_EXPORTER_OTLP_INSECURE=true. `tls.insecure: true` forces
 * plaintext; `tls.insecure: false` or any of the file options force TLS.
 *
 * A down backend never throws out of the agent: each collection is queued
 * (`sending_queue`), retried with backoff on UNAVAILABLE & co.
 * (`retry_on_failure`), and every failed attempt is counted in
 * `exportFailures` and logged at most once a minute.
 *
 * In a logs pipeline the same options send log records over
 * `LogsService/Export` (OTLPLogExporter from exporter-logs-otlp-grpc, one
 * attempt per call) behind the same kind of queue and retries: records are
 * batched for at most 1 s or 512 records (logs/buffer.ts), each batch is one
 * queue entry. What the config leaves unset comes from the
 * OTEL_EXPORTER_OTLP_LOGS_* variables, then OTEL_EXPORTER_OTLP_*.
 */
import { credentials as grpcCredentials, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import type { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporterBase } from '@opentelemetry/exporter-metrics-otlp-http';
import { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate } from '@opentelemetry/otlp-grpc-exporter-base';
import { MetricsExporterMetricsHelper } from '@opentelemetry/otlp-transformer';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { AggregationTemporality } from '@opentelemetry/sdk-metrics';
import { ConfigError, type ComponentFactory, type ExporterContext } from '../pipeline/component';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../config/schema';
import { ConfigErrorList } from '../config/errors';
import { FLOWTEL_VERSION } from '../telemetry/resource';
import { checkGrpcEndpoint } from './endpoint';
import { DEFAULT_EXPORT_INTERVAL_MS, DEFAULT_OTLP_TIMEOUT_MS, exportIntervalFromEnv, otlpEnvTimeoutMs, readPem } from './otlp-env';
import {
  RETRY_ON_FAILURE_OPTION,
  SENDING_QUEUE_OPTION,
  checkRetryOnFailure,
  classifyGrpcError,
  pushExporterSender,
  queuedPushExporter,
  asError,
  type QueuedMetricsExporter,
  type Sender,
  type SendOutcome,
} from './retry';
import { queuedLogsExporter } from './logs/queued';
import { splittingSender } from './otlp-split';
import { flowtelMetricsSerializer } from './otlp-metrics-protobuf';

export { DEFAULT_EXPORT_INTERVAL_MS, DEFAULT_OTLP_TIMEOUT_MS } from './otlp-env';

const OTLP_SCHEMA = {
  endpoint: {
    type: 'string',
    check: checkGrpcEndpoint,
    docDefault: 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (log records: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT), else OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4317',
    description: 'Where to send: host:port, http://host:port (plaintext) or https://host:port (TLS).',
  },
  tls: {
    type: 'object',
    description: 'Transport security. Unset: decided by the endpoint scheme and OTEL_EXPORTER_OTLP_* env vars.',
    schema: {
      insecure: {
        type: 'boolean',
        docDefault: 'from the endpoint scheme / OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)INSECURE',
        description: 'true: plaintext gRPC; false: TLS.',
      },
      ca_file: { type: 'string', description: 'PEM file with CA certificates to verify the server (default: system roots).' },
      cert_file: { type: 'string', description: 'PEM client certificate for mutual TLS (needs key_file).' },
      key_file: { type: 'string', description: 'PEM client private key for mutual TLS (needs cert_file).' },
    },
  },
  headers: {
    type: 'map<string,string>',
    sensitive: true,
    docDefault: 'OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)HEADERS',
    description: 'gRPC metadata sent with every export (e.g. authorization). Merged with the env headers; config wins per key.',
  },
  compression: {
    type: 'enum',
    values: ['gzip', 'none'],
    docDefault: 'OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)COMPRESSION, else none',
    description: 'Compression of export requests.',
  },
  timeout: {
    type: 'duration',
    docDefault: 'OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)TIMEOUT, else 10s',
    description: 'Deadline of one export attempt (retries: retry_on_failure). Also bounds how long a flush or shutdown waits for the queue to drain.',
  },
  export_interval: {
    type: 'duration',
    minMs: 100,
    docDefault: 'OTEL_METRIC_EXPORT_INTERVAL, else 10s',
    description: 'How often metrics are collected and sent.',
  },
  temporality: {
    type: 'enum',
    values: ['cumulative', 'delta', 'lowmemory'],
    docDefault: 'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, else cumulative',
    description: 'Aggregation temporality: cumulative, delta (counters and histograms as deltas), or lowmemory. With delta, a batch dropped (queue full, retries exhausted) is lost; with cumulative the next batch carries the totals.',
  },
  retry_on_failure: RETRY_ON_FAILURE_OPTION,
  sending_queue: SENDING_QUEUE_OPTION,
} as const satisfies Schema;

export type OtlpExporterConfig = SchemaValue<typeof OTLP_SCHEMA>;

/** Counters: see QueuedMetricsExporter (sent, failed, dropped, retries, queueSize(), exportFailures, exportSuccesses). */
export type OtlpMetricsExporter = QueuedMetricsExporter;

type OtlpGrpcOptions = NonNullable<ConstructorParameters<typeof OTLPMetricExporter>[0]>;
type Compression = NonNullable<OtlpGrpcOptions['compression']>;

function validateOtlpConfig(raw: unknown, path: string): OtlpExporterConfig {
  const config = validateObject(raw, path, OTLP_SCHEMA);
  const errors: ConfigError[] = [...checkRetryOnFailure(config.retry_on_failure, path)];
  const tls = config.tls;
  const tlsPath = `${path}.tls`;
  if ((tls.cert_file === undefined) !== (tls.key_file === undefined)) {
    const missing = tls.cert_file === undefined ? 'cert_file' : 'key_file';
    errors.push(new ConfigError(`${tlsPath}.${missing}`, 'cert_file and key_file must be set together (mutual TLS)'));
  }
  if (tls.insecure === true && (tls.ca_file ?? tls.cert_file ?? tls.key_file) !== undefined) {
    errors.push(new ConfigError(`${tlsPath}.insecure`, 'insecure: true disables TLS, so ca_file/cert_file/key_file would be ignored; remove one or the other'));
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new ConfigErrorList(path, errors);
  return config;
}

/** Credentials from `tls`, or undefined to let the SDK decide from the endpoint and env. */
function channelCredentials(tls: OtlpExporterConfig['tls'], path: string): ChannelCredentials | undefined {
  if (tls.insecure === true) return grpcCredentials.createInsecure();
  const hasFiles = tls.ca_file !== undefined || tls.cert_file !== undefined;
  if (tls.insecure === undefined && !hasFiles) return undefined;
  const ca = tls.ca_file === undefined ? null : readPem(tls.ca_file, `${path}.tls.ca_file`);
  const key = tls.key_file === undefined ? null : readPem(tls.key_file, `${path}.tls.key_file`);
  const cert = tls.cert_file === undefined ? null : readPem(tls.cert_file, `${path}.tls.cert_file`);
  return grpcCredentials.createSsl(ca, key, cert);
}

function temporalityOf(config: OtlpExporterConfig): Pick<OtlpGrpcOptions, 'temporalityPreference'> {
  switch (config.temporality) {
    case 'cumulative':
      return { temporalityPreference: AggregationTemporality.CUMULATIVE };
    case 'delta':
      return { temporalityPreference: AggregationTemporality.DELTA };
    case 'lowmemory':
      // AggregationTemporalityPreference.LOWMEMORY (= 2) is not re-exported by the gRPC package.
      return { temporalityPreference: 2 as OtlpGrpcOptions['temporalityPreference'] };
    case undefined:
      return {};
  }
}

/** The options handed to OTLPMetricExporter: only what the config sets. */
export function otlpGrpcOptions(config: OtlpExporterConfig, path = 'exporters.otlp'): OtlpGrpcOptions {
  const options: OtlpGrpcOptions = { userAgent: `flowtel/${FLOWTEL_VERSION}`, ...temporalityOf(config) };
  if (config.endpoint !== undefined) options.url = config.endpoint.trim();
  const credentials = channelCredentials(config.tls, path);
  if (credentials) options.credentials = credentials;
  if (config.headers !== undefined && Object.keys(config.headers).length > 0) {
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(config.headers)) metadata.set(key.toLowerCase(), value);
    options.metadata = metadata;
  }
  if (config.compression !== undefined) options.compression = config.compression as Compression;
  if (config.timeout !== undefined) options.timeoutMillis = config.timeout;
  return options;
}

/** One attempt per call of an OTLPLogExporter (0.223's gRPC delegate does not retry), classified like the metrics'. */
export function otlpLogsSender(inner: OTLPLogExporter): Sender<ReadableLogRecord[]> {
  return {
    send(records) {
      return new Promise<SendOutcome>((resolve) => {
        try {
          inner.export(records, (result) => resolve(result.code === ExportResultCode.SUCCESS ? { kind: 'success' } : classifyGrpcError(result.error)));
        } catch (error) {
          resolve({ kind: 'permanent', error: asError(error) });
        }
      });
    },
    shutdown: () => inner.shutdown(),
  };
}

/**
 * The options of OTLPLogExporter: the same as the metrics' (endpoint, TLS,
 * headers, compression, timeout), and what the config leaves unset comes
 * from OTEL_EXPORTER_OTLP_LOGS_* / OTEL_EXPORTER_OTLP_*.
 */
export function otlpGrpcLogsOptions(config: OtlpExporterConfig, path = 'exporters.otlp'): NonNullable<ConstructorParameters<typeof OTLPLogExporter>[0]> {
  const { temporalityPreference: _unused, ...options } = otlpGrpcOptions(config, path);
  return options;
}

/**
 * The SDK's OTLP/gRPC metric exporter (what OTLPMetricExporter builds), with
 * flowtel's encoder of the request (otlp-metrics-protobuf.ts: the same
 * bytes, a fraction of the CPU).
 */
function otlpGrpcMetricExporter(options: OtlpGrpcOptions): OTLPMetricExporterBase {
  const delegate = createOtlpGrpcExportDelegate(
    convertLegacyOtlpGrpcOptions(options, 'METRICS'),
    flowtelMetricsSerializer,
    'otlp_grpc_metric_exporter',
    MetricsExporterMetricsHelper,
    undefined,
    'MetricsExportService',
    '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
  );
  return new OTLPMetricExporterBase(delegate, options);
}

function createOtlpExporter(config: OtlpExporterConfig, ctx: ExporterContext, env: NodeJS.ProcessEnv = process.env): OtlpMetricsExporter {
  const path = `exporters.${ctx.id}`;
  // The SDK's own limit on exports in flight must not be what limits num_consumers.
  const inner = otlpGrpcMetricExporter({ ...otlpGrpcOptions(config, path), concurrencyLimit: config.sending_queue.num_consumers + 1 });
  const logs = queuedLogsExporter({
    ctx,
    sender: otlpLogsSender(new OTLPLogExporter({ ...otlpGrpcLogsOptions(config, path), concurrencyLimit: config.sending_queue.num_consumers + 1 })),
    retry: config.retry_on_failure,
    queue: config.sending_queue,
    attemptTimeoutMs: config.timeout ?? otlpEnvTimeoutMs(env, 'LOGS') ?? DEFAULT_OTLP_TIMEOUT_MS,
  });
  return queuedPushExporter({
    logs,
    ctx,
    // Collections larger than a receiver's 4 MiB gRPC limit go as several requests (otlp-split.ts).
    sender: splittingSender(pushExporterSender(inner, classifyGrpcError)),
    retry: config.retry_on_failure,
    queue: config.sending_queue,
    exportIntervalMillis: config.export_interval ?? exportIntervalFromEnv(env) ?? DEFAULT_EXPORT_INTERVAL_MS,
    attemptTimeoutMs: config.timeout ?? otlpEnvTimeoutMs(env) ?? DEFAULT_OTLP_TIMEOUT_MS,
    startLog: {
      fields: { endpoint: config.endpoint ?? env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4317' },
      message: `exporter ${ctx.id}: exporting OTLP/gRPC`,
    },
  });
}

export const otlpExporterFactory: ComponentFactory<OtlpExporterConfig, OtlpMetricsExporter> = {
  kind: 'exporter',
  type: 'otlp',
  stability: 'beta',
  signals: ['metrics', 'logs'],
  options: describeSchema(OTLP_SCHEMA),
  defaultConfig: () => validateObject(undefined, '', OTLP_SCHEMA),
  validate: validateOtlpConfig,
  create: (config, ctx) => createOtlpExporter(config, ctx),
};
