/**
 * `otlphttp` options, after the Collector's otlphttp exporter, and how they
 * resolve with the OTEL_EXPORTER_OTLP_* environment variables:
 *
 * | option           | env (METRICS_ or LOGS_ variant first)                | default |
 * |------------------|------------------------------------------------------|---------|
 * | metrics_endpoint | OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (used as is)     | —       |
 * | logs_endpoint    | OTEL_EXPORTER_OTLP_LOGS_ENDPOINT (used as is)        | —       |
 * | endpoint         | OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/metrics, /v1/logs) | http://localhost:4318 |
 * | headers          | OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)HEADERS (config wins per key) | none |
 * | compression      | OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)COMPRESSION             | none    |
 * | timeout          | OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)TIMEOUT (ms)            | 10s     |
 * | tls.ca_file …    | OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)CERTIFICATE / CLIENT_KEY / CLIENT_CERTIFICATE | system roots |
 * | temporality      | OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE    | cumulative |
 *
 * Config beats env: a `metrics_endpoint` (`logs_endpoint`) or `endpoint` in
 * the config wins over both endpoint variables. Plaintext or TLS follows the
 * URL scheme. Log records (a logs pipeline) are sent with the same options to
 * the logs URL, and what the config leaves unset comes from the LOGS_
 * variants of the variables.
 */
import { ConfigErrorList } from '../../config/errors';
import { validateObject, type Schema, type SchemaValue } from '../../config/schema';
import { ConfigError } from '../../pipeline/component';
import { checkHttpEndpoint, otlpHttpSignalUrl } from '../endpoint';
import { DEFAULT_OTLP_TIMEOUT_MS, otlpEnv, otlpEnvHeaders, otlpEnvTemporality, otlpEnvTimeoutMs, readPem, type OtlpSignal, type TemporalityPreference } from '../otlp-env';
import { RETRY_ON_FAILURE_OPTION, SENDING_QUEUE_OPTION, checkRetryOnFailure } from '../retry';
import type { OtlpHttpTls } from './sender';

export const DEFAULT_OTLP_HTTP_ENDPOINT = 'http://localhost:4318';

export const OTLP_HTTP_SCHEMA = {
  endpoint: {
    type: 'string',
    check: checkHttpEndpoint,
    docDefault: 'OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318',
    description:
      'Base URL (http:// plaintext, https:// TLS); /v1/metrics (log records: /v1/logs) is appended, as in the Collector (https://collector:4318 → https://collector:4318/v1/metrics).',
  },
  metrics_endpoint: {
    type: 'string',
    check: checkHttpEndpoint,
    docDefault: 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, else endpoint + /v1/metrics',
    description: 'Full URL metrics are posted to, used as is; overrides endpoint.',
  },
  logs_endpoint: {
    type: 'string',
    check: checkHttpEndpoint,
    docDefault: 'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, else endpoint + /v1/logs',
    description: 'Full URL log records (from a logs pipeline) are posted to, used as is; overrides endpoint.',
  },
  tls: {
    type: 'object',
    description: 'TLS for an https:// URL (plaintext or TLS is decided by the scheme).',
    schema: {
      ca_file: { type: 'string', docDefault: 'OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)CERTIFICATE, else system roots', description: 'PEM file with CA certificates to verify the server.' },
      cert_file: { type: 'string', docDefault: 'OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)CLIENT_CERTIFICATE', description: 'PEM client certificate for mutual TLS (needs key_file).' },
      key_file: { type: 'string', docDefault: 'OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)CLIENT_KEY', description: 'PEM client private key for mutual TLS (needs cert_file).' },
      insecure_skip_verify: { type: 'boolean', default: false, description: 'Do not verify the server certificate (testing only).' },
    },
  },
  headers: {
    type: 'map<string,string>',
    sensitive: true,
    docDefault: 'OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)HEADERS',
    description: 'HTTP headers sent with every export (e.g. authorization). Merged with the env headers; config wins per key.',
  },
  compression: {
    type: 'enum',
    values: ['gzip', 'none'],
    docDefault: 'OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)COMPRESSION, else none',
    description: 'Compression of the request body (Content-Encoding).',
  },
  encoding: { type: 'enum', values: ['proto', 'json'], default: 'proto', description: 'Request body: binary protobuf (application/x-protobuf) or OTLP JSON (application/json).' },
  timeout: {
    type: 'duration',
    docDefault: 'OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)TIMEOUT, else 10s',
    description: 'Deadline of one export attempt (retries: retry_on_failure). Also bounds how long a flush or shutdown waits for the queue to drain.',
  },
  export_interval: { type: 'duration', minMs: 100, docDefault: 'OTEL_METRIC_EXPORT_INTERVAL, else 10s', description: 'How often metrics are collected and sent.' },
  temporality: {
    type: 'enum',
    values: ['cumulative', 'delta', 'lowmemory'],
    docDefault: 'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, else cumulative',
    description: 'Aggregation temporality, as for otlp. With delta, a batch dropped (queue full, retries exhausted) is lost; with cumulative the next batch carries the totals.',
  },
  retry_on_failure: RETRY_ON_FAILURE_OPTION,
  sending_queue: SENDING_QUEUE_OPTION,
} as const satisfies Schema;

export type OtlpHttpExporterConfig = SchemaValue<typeof OTLP_HTTP_SCHEMA>;

export function validateOtlpHttpConfig(raw: unknown, path: string): OtlpHttpExporterConfig {
  const config = validateObject(raw, path, OTLP_HTTP_SCHEMA);
  const errors: ConfigError[] = [...checkRetryOnFailure(config.retry_on_failure, path)];
  const tls = config.tls;
  if ((tls.cert_file === undefined) !== (tls.key_file === undefined)) {
    const missing = tls.cert_file === undefined ? 'cert_file' : 'key_file';
    errors.push(new ConfigError(`${path}.tls.${missing}`, 'cert_file and key_file must be set together (mutual TLS)'));
  }
  const hasTlsFiles = (tls.ca_file ?? tls.cert_file ?? tls.key_file) !== undefined;
  for (const option of ['endpoint', 'metrics_endpoint', 'logs_endpoint'] as const) {
    const url = config[option];
    if (url !== undefined && /^http:/i.test(url.trim()) && hasTlsFiles) {
      errors.push(new ConfigError(`${path}.${option}`, `tls files are set but ${url.trim()} is plaintext; use https://`));
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new ConfigErrorList(path, errors);
  return config;
}

/** The URL metrics are posted to (see the table above). */
export function otlpHttpMetricsUrl(config: OtlpHttpExporterConfig, env: NodeJS.ProcessEnv = process.env): string {
  return otlpHttpUrl(config, env, 'METRICS');
}

/** The URL log records are posted to (see the table above). */
export function otlpHttpLogsUrl(config: OtlpHttpExporterConfig, env: NodeJS.ProcessEnv = process.env): string {
  return otlpHttpUrl(config, env, 'LOGS');
}

function otlpHttpUrl(config: OtlpHttpExporterConfig, env: NodeJS.ProcessEnv, signal: OtlpSignal): string {
  const specific = signal === 'LOGS' ? config.logs_endpoint : config.metrics_endpoint;
  const path = signal === 'LOGS' ? 'v1/logs' : 'v1/metrics';
  if (specific !== undefined) return specific.trim();
  if (config.endpoint !== undefined) return otlpHttpSignalUrl(config.endpoint, path);
  const fromEnv = otlpEnv(env, 'ENDPOINT', signal);
  if (fromEnv === undefined || checkHttpEndpoint(fromEnv.value) !== undefined) return otlpHttpSignalUrl(DEFAULT_OTLP_HTTP_ENDPOINT, path);
  return fromEnv.signalSpecific ? fromEnv.value : otlpHttpSignalUrl(fromEnv.value, path);
}

export interface ResolvedOtlpHttp {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly compression: 'gzip' | 'none';
  readonly timeoutMs: number;
  readonly temporality: TemporalityPreference;
  readonly tls: OtlpHttpTls;
}

/**
 * Config over env over defaults, for metrics or (signal LOGS) log records;
 * reads the TLS files (ConfigError naming the option if one is unreadable).
 */
export function resolveOtlpHttp(config: OtlpHttpExporterConfig, path: string, env: NodeJS.ProcessEnv = process.env, signal: OtlpSignal = 'METRICS'): ResolvedOtlpHttp {
  const envCompression = otlpEnv(env, 'COMPRESSION', signal)?.value.toLowerCase();
  const file = (option: 'ca_file' | 'cert_file' | 'key_file', envName: 'CERTIFICATE' | 'CLIENT_CERTIFICATE' | 'CLIENT_KEY'): Buffer | undefined => {
    const configured = config.tls[option];
    if (configured !== undefined) return readPem(configured, `${path}.tls.${option}`);
    const fromEnv = otlpEnv(env, envName, signal)?.value;
    return fromEnv === undefined ? undefined : readPem(fromEnv, `${path}.tls.${option} (from OTEL_EXPORTER_OTLP_*${envName})`);
  };
  const ca = file('ca_file', 'CERTIFICATE');
  const cert = file('cert_file', 'CLIENT_CERTIFICATE');
  const key = file('key_file', 'CLIENT_KEY');
  return {
    url: otlpHttpUrl(config, env, signal),
    headers: { ...lowerCaseKeys(otlpEnvHeaders(env, signal)), ...lowerCaseKeys(config.headers ?? {}) },
    compression: config.compression ?? (envCompression === 'gzip' ? 'gzip' : 'none'),
    timeoutMs: config.timeout ?? otlpEnvTimeoutMs(env, signal) ?? DEFAULT_OTLP_TIMEOUT_MS,
    temporality: config.temporality ?? otlpEnvTemporality(env) ?? 'cumulative',
    tls: {
      rejectUnauthorized: !config.tls.insecure_skip_verify,
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
    },
  };
}

/** HTTP header names are case-insensitive: one spelling per header, so config and env merge per header. */
function lowerCaseKeys(headers: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) out[key.toLowerCase()] = value;
  return out;
}
