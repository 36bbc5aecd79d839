/**
 * `prometheus` exporter: a pull endpoint (`GET /metrics`) rendered by
 * `@opentelemetry/exporter-prometheus` 0.223's PrometheusExporter, which is
 * itself the MetricReader, on an HTTP(S) server of flowtel's own
 * (src/util/http-server.ts: TLS, authentication; the SDK's server never
 * listens). The server starts in `start()` and closes in `shutdown()`.
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
 * - `metric_expiration` (as the Collector's): series unchanged this long
 *   are no longer served (src/pipeline/flow-metrics.ts).
 * - `without_scope_info`, `without_target_info` (SDK names, snake_cased).
 * - `tls` (HTTPS, optionally requiring client certificates) and `auth`
 *   (basic or bearer credentials), as src/util/http-server.ts describes:
 *   the server is flowtel's own, the SDK only renders the scrape.
 */
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { ServerResponse } from 'node:http';
import type { MetricReader } from '@opentelemetry/sdk-metrics';
import type { Logger } from 'pino';
import type { ComponentFactory, ExporterContext, MetricsExporter } from '../pipeline/component';
import type { Server } from 'node:http';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../config/schema';
import {
  HTTP_SERVER_AUTH_OPTION,
  HTTP_SERVER_TLS_OPTION,
  assertHttpServerSecurity,
  closeServer,
  createSecureServer,
  httpServerSecurity,
  listen,
  schemeOf,
} from '../util/http-server';
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
  metric_expiration: {
    type: 'duration',
    default: '5m',
    minMs: 1000,
    description: 'A series that no measurement changed for this long is no longer served (a gauge: that read 0 for this long), so flows of processes and peers that are gone do not stay series forever; one that comes back starts again from 0.',
  },
  without_scope_info: { type: 'boolean', default: false, description: 'Leave out the otel_scope_name/otel_scope_version labels.' },
  without_target_info: { type: 'boolean', default: false, description: 'Leave out the target_info metric (the resource).' },
  tls: HTTP_SERVER_TLS_OPTION,
  auth: HTTP_SERVER_AUTH_OPTION,
} as const satisfies Schema;

export type PrometheusExporterConfig = SchemaValue<typeof PROMETHEUS_SCHEMA>;

export interface PrometheusMetricsExporter extends MetricsExporter {
  /** The address served, `host:port`. */
  readonly endpoint: string;
  /** `http(s)://host:port/metrics` (with 127.0.0.1 for a wildcard host). */
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

/**
 * Answers a scrape with the reader's metrics rendered by `serializer`: the
 * same as the SDK's own handler, but an exception while rendering (a page
 * past V8's longest string, with too many series) fails the scrape with a
 * 500 and a log line (at most one a minute) instead of escaping as an
 * unhandled rejection, which would end the agent.
 */
export function prometheusScrapeHandler(
  reader: MetricReader,
  serializer: PrometheusSerializer,
  logger: Logger,
  who: string,
): (res: ServerResponse) => Promise<void> {
  let lastFailureLog = 0;
  return async (res) => {
    try {
      const { resourceMetrics, errors } = await reader.collect();
      if (errors.length > 0) logger.warn({ errors: errors.map(String) }, `${who}: errors while collecting metrics`);
      const body = serializer.serialize(resourceMetrics);
      res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    } catch (error) {
      const now = Date.now();
      if (now - lastFailureLog > 60_000) {
        lastFailureLog = now;
        logger.error({ err: error }, `${who}: a scrape could not be rendered (too many series? see the aggregate processor and include_ephemeral_ports); answering 500`);
      }
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`# flowtel: rendering the metrics failed: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  };
}

function validatePrometheusConfig(raw: unknown, path: string): PrometheusExporterConfig {
  const config = validateObject(raw, path, PROMETHEUS_SCHEMA);
  assertHttpServerSecurity(config, path);
  return config;
}

function createPrometheusExporter(config: PrometheusExporterConfig, ctx: ExporterContext): PrometheusMetricsExporter {
  const security = httpServerSecurity(config.tls, config.auth, `exporters.${ctx.id}`);
  const scheme = schemeOf(security);
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
  const serializer = new PrometheusSerializer(
    config.namespace ?? '',
    config.send_timestamps,
    withResourceConstantLabels,
    config.without_target_info,
    config.without_scope_info,
  );
  const serve = prometheusScrapeHandler(reader, serializer, ctx.logger, `exporter ${ctx.id}`);
  const urlHost = address.host === '0.0.0.0' || address.host === '::' ? '127.0.0.1' : address.host;
  let server: Server | undefined;
  let stopped = false;
  return {
    id: ctx.id,
    reader,
    seriesExpirationMs: config.metric_expiration,
    endpoint,
    url: `${scheme}://${formatHostPort({ host: urlHost, port: address.port })}${PROMETHEUS_METRICS_PATH}`,
    async start() {
      if (server) return;
      const s = createSecureServer(security, (req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path !== PROMETHEUS_METRICS_PATH) return void res.writeHead(404).end();
        if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { allow: 'GET, HEAD' }).end();
        void serve(res);
      });
      // Scrapes are short: an idle keep-alive connection must not hold the shutdown.
      s.keepAliveTimeout = 5_000;
      try {
        await listen(s, address.host, address.port);
      } catch (error) {
        throw new Error(listenErrorMessage(ctx.id, endpoint, error), { cause: error });
      }
      s.on('error', (error) => ctx.logger.error({ err: error }, `exporter ${ctx.id}: server error`));
      // Failed handshakes (no client certificate, plain HTTP on the TLS port) are the client's problem: debug only.
      s.on('tlsClientError', (error: Error) => ctx.logger.debug({ err: error.message }, `exporter ${ctx.id}: TLS handshake failed`));
      server = s;
      ctx.logger.info(
        { endpoint, tls: security.tls !== undefined, clientCertificates: security.tls?.clientCa !== undefined, auth: security.auth !== undefined },
        `exporter ${ctx.id}: serving Prometheus metrics at ${scheme}://${endpoint}${PROMETHEUS_METRICS_PATH}`,
      );
    },
    async shutdown() {
      if (stopped) return;
      stopped = true;
      const s = server;
      server = undefined;
      if (s) await closeServer(s);
      // reader.shutdown() also closes the SDK's own server, which never listened.
      try {
        await reader.shutdown();
      } catch (error) {
        ctx.logger.warn({ err: error }, `exporter ${ctx.id}: shutdown failed`);
      }
      if (s) ctx.logger.debug(`exporter ${ctx.id}: stopped`);
    },
  };
}

export const prometheusExporterFactory: ComponentFactory<PrometheusExporterConfig, PrometheusMetricsExporter> = {
  kind: 'exporter',
  type: 'prometheus',
  stability: 'beta',
  options: describeSchema(PROMETHEUS_SCHEMA),
  defaultConfig: () => validateObject(undefined, '', PROMETHEUS_SCHEMA),
  validate: validatePrometheusConfig,
  create: createPrometheusExporter,
};
