/**
 * The config used when no `--config` file is given: the eBPF TCP receiver,
 * the `cloud` processor (only on a machine whose firmware names a cloud:
 * `detectors: [auto]`), the console top-flows table (`debug`), a Prometheus endpoint, and — only
 * when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`
 * is set — an `otlp` exporter that takes everything (endpoint, headers, TLS,
 * timeout, compression, temporality) from the standard OTEL_* variables.
 */
import { parse as parseYaml } from 'yaml';
import { isConfigMap, type ConfigMap } from './types';

export const EMBEDDED_DEFAULT_SOURCE = '<embedded default>';

const OTLP_ENDPOINT_VARS = ['OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT'] as const;

/** True when the environment names an OTLP endpoint, so the default config should export OTLP. */
export function otlpEndpointFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const name of OTLP_ENDPOINT_VARS) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  return undefined;
}

function renderDefaultConfig(withOtlp: boolean): string {
  const exporters = withOtlp ? 'debug, prometheus, otlp' : 'debug, prometheus';
  const otlp = withOtlp
    ? `
  # Added because OTEL_EXPORTER_OTLP_(METRICS_)ENDPOINT is set: endpoint,
  # headers, TLS, timeout, compression and temporality come from OTEL_* vars.
  otlp: {}
`
    : '';
  return `# flowtel embedded default configuration.
receivers:
  ebpf_tcp:
    collection_interval: 10s

processors:
  # cloud.provider/region/availability_zone, host.id from the metadata service of
  # the cloud the firmware (DMI) names; elsewhere nothing is asked and nothing added.
  cloud:
    detectors: [auto]

exporters:
  # Top-flows table on stdout.
  debug:
    verbosity: basic
  prometheus:
    endpoint: 0.0.0.0:9464
${otlp}
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      processors: [cloud]
      exporters: [${exporters}]
`;
}

/** The default config without the conditional `otlp` exporter. */
export const EMBEDDED_DEFAULT_CONFIG: string = renderDefaultConfig(false);

/** The default config text for this environment (adds `otlp` when an OTLP endpoint env var is set). */
export function defaultConfigText(env: NodeJS.ProcessEnv = process.env): string {
  return renderDefaultConfig(otlpEndpointFromEnv(env) !== undefined);
}

/** The default config as data. */
export function defaultConfigObject(env: NodeJS.ProcessEnv = process.env): ConfigMap {
  const parsed: unknown = parseYaml(defaultConfigText(env));
  if (!isConfigMap(parsed)) throw new Error('embedded default config is not a map');
  return parsed;
}
