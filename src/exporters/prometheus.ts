/**
 * `prometheus` exporter: a pull endpoint (`GET /metrics`) served by
 * `@opentelemetry/exporter-prometheus` 0.223's PrometheusExporter, which is
 * itself the MetricReader. The HTTP server starts in `start()` (not in the
 * constructor) and closes in `shutdown()`.
 *
 * Naming, as 0.223 serializes it (asserted in test/unit/prometheus-exporter):
 * - invalid characters become `_`; monotonic sums (counters) get `_total`;
 * - NO unit suffix is added (the unit only appears as a `# UNIT` comment),
 *   and there is no option to add or remove suffixes, so the Collector's
 *   `add_metric_suffixes` has no equivalent here;
 * - every series carries `otel_scope_name`/`otel_scope_version` labels unless
 *   `without_scope_info: true`; a `target_info` gauge carries the resource
 *   unless `without_target_info: true`.
 *
 * Options (Collector names where the Collector has one):
 * - `endpoint` (`host:port`, default OTEL_EXPORTER_PROMETHEUS_HOST/PORT, else
 *   `0.0.0.0:9464`); metrics are served at `/metrics`.
 * - `namespace`: prefix joined with `_` (`flowtel` → `flowtel_tcp_bytes_sent_total`).
 * - `send_timestamps`: append sample timestamps (SDK `appendTimestamp`).
 * - `resource_to_telemetry_conversion.enabled`: copy all resource attributes
 *   onto every series as labels (SDK `withResourceConstantLabels: /.*\/`).
 * - `resource_attributes_as_labels`: a regex; only matching resource
 *   attributes become labels (flowtel-specific, overrides the above).
 * - `without_scope_info`, `without_target_info` (SDK names, snake_cased).
 */
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { ComponentFactory, ExporterContext, MetricsExporter } from '../pipeline/component';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../config/schema';
import { formatHostPort, parseHostPort, type HostPort } from './endpoint';

export const DEFAULT_PROMETHEUS_ENDPOINT = '0.0.0.0:9464';
export const PROMETHEUS_METRICS_PATH = '/metrics';

const PROMETHEUS_SCHEMA = {
  endpoint: {
    type: 'string',
    check: (value: string) => {
      const parsed = parseHostPort(value);
      return typeof parsed === 'string' ? parsed : undefined;
    },
    docDefault: `OTEL_EXPORTER_PROMETHEUS_HOST:OTEL_EXPORTER_PROMETHEUS_PORT, else ${DEFAULT_PROMETHEUS_ENDPOINT}`,
    description: 'host:port the HTTP server listens on; metrics are at /metrics.',
  },
  namespace: {
    type: 'string',
    default: '',
    allowEmpty: true,
    check: (value: string) => (value === '' || /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(value) ? undefined : 'must be a valid Prometheus name prefix ([a-zA-Z_][a-zA-Z0-9_]*)'),
    description: 'Prefix for every metric name, joined with "_".',
  },
  send_timestamps: { type: 'boolean', default: false, description: 'Append the sample timestamp to every series.' },
  resource_to_telemetry_conversion: {
    type: 'object',
    description: 'Resource attributes as labels.',
    schema: {
      enabled: { type: 'boolean', default: false, description: 'Add every resource attribute as a label on every series.' },
    },
  },
  resource_attributes_as_labels: {
    type: 'string',
    check: (value: string) => {
      try {
        new RegExp(value);
        return undefined;
      } catch (error) {
        return `invalid regular expression: ${error instanceof Error ? error.message : String(error)}`;
      }
    },
    description: 'Regex: resource attributes whose names match become labels on every series (overrides resource_to_telemetry_conversion).',
  },
  without_scope_info: { type: 'boolean', default: false, description: 'Leave out the otel_scope_name/otel_scope_version labels.' },
  without_target_info: { type: 'boolean', default: false, description: 'Leave out the target_info metric (the resource).' },
} as const satisfies Schema;

export type PrometheusExporterConfig = SchemaValue<typeof PROMETHEUS_SCHEMA>;

export interface PrometheusMetricsExporter extends MetricsExporter {
  /** The address served, `host:port`. */
  readonly endpoint: string;
  /** `http://host:port/metrics` (with 127.0.0.1 for a wildcard host). */
  readonly url: string;
}

/** Listen address: config, else OTEL_EXPORTER_PROMETHEUS_HOST/PORT, else 0.0.0.0:9464. */
export function prometheusListenAddress(config: PrometheusExporterConfig, env: NodeJS.ProcessEnv = process.env): HostPort {
  if (config.endpoint !== undefined) {
    const parsed = parseHostPort(config.endpoint);
    if (typeof parsed !== 'string') return parsed;
  }
  const fallback = parseHostPort(DEFAULT_PROMETHEUS_ENDPOINT) as HostPort;
  const envPort = Number(env.OTEL_EXPORTER_PROMETHEUS_PORT);
  return {
    host: env.OTEL_EXPORTER_PROMETHEUS_HOST?.trim() || fallback.host,
    port: Number.isInteger(envPort) && envPort > 0 && envPort <= 65535 ? envPort : fallback.port,
  };
}

function resourceLabelPattern(config: PrometheusExporterConfig): RegExp | undefined {
  if (config.resource_attributes_as_labels !== undefined) return new RegExp(config.resource_attributes_as_labels);
  return config.resource_to_telemetry_conversion.enabled ? /.*/ : undefined;
}

function listenErrorMessage(id: string, address: string, error: unknown): string {
  const code = error && typeof error === 'object' && 'code' in error ? (error as NodeJS.ErrnoException).code : undefined;
  switch (code) {
    case 'EADDRINUSE':
      return `exporter ${id}: cannot listen on ${address}: the port is already in use (another flowtel or Prometheus exporter?); set exporters.${id}.endpoint to a free port`;
    case 'EACCES':
      return `exporter ${id}: cannot listen on ${address}: permission denied`;
    case 'EADDRNOTAVAIL':
      return `exporter ${id}: cannot listen on ${address}: no local interface has that address`;
    default:
      return `exporter ${id}: cannot listen on ${address}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

function createPrometheusExporter(config: PrometheusExporterConfig, ctx: ExporterContext): PrometheusMetricsExporter {
  const address = prometheusListenAddress(config);
  const endpoint = formatHostPort(address);
  const withResourceConstantLabels = resourceLabelPattern(config);
  const reader = new PrometheusExporter({
    host: address.host,
    port: address.port,
    endpoint: PROMETHEUS_METRICS_PATH,
    // The SDK serializer joins a non-empty prefix with `_` itself.
    prefix: config.namespace,
    appendTimestamp: config.send_timestamps,
    withoutScopeInfo: config.without_scope_info,
    withoutTargetInfo: config.without_target_info,
    ...(withResourceConstantLabels ? { withResourceConstantLabels } : {}),
    preventServerStart: true,
    metricProducers: ctx.metricProducers,
  });
  const urlHost = address.host === '0.0.0.0' || address.host === '::' ? '127.0.0.1' : address.host;
  let started = false;
  let stopped = false;
  return {
    id: ctx.id,
    reader,
    endpoint,
    url: `http://${formatHostPort({ host: urlHost, port: address.port })}${PROMETHEUS_METRICS_PATH}`,
    async start() {
      try {
        await reader.startServer();
      } catch (error) {
        throw new Error(listenErrorMessage(ctx.id, endpoint, error), { cause: error });
      }
      started = true;
      ctx.logger.info({ endpoint }, `exporter ${ctx.id}: serving Prometheus metrics at http://${endpoint}${PROMETHEUS_METRICS_PATH}`);
    },
    async shutdown() {
      if (stopped) return;
      stopped = true;
      // reader.shutdown() closes the server (onShutdown → stopServer).
      try {
        await reader.shutdown();
      } catch (error) {
        ctx.logger.warn({ err: error }, `exporter ${ctx.id}: shutdown failed`);
      }
      if (started) ctx.logger.debug(`exporter ${ctx.id}: stopped`);
    },
  };
}

export const prometheusExporterFactory: ComponentFactory<PrometheusExporterConfig, PrometheusMetricsExporter> = {
  kind: 'exporter',
  type: 'prometheus',
  stability: 'beta',
  options: describeSchema(PROMETHEUS_SCHEMA),
  defaultConfig: () => validateObject(undefined, '', PROMETHEUS_SCHEMA),
  validate: (raw, path) => validateObject(raw, path, PROMETHEUS_SCHEMA),
  create: createPrometheusExporter,
};
