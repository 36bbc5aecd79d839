/**
 * What the OTLP exporters share: the OTEL_EXPORTER_OTLP_* environment
 * variables (signal-specific `METRICS_` variant first, then the generic one),
 * temporality preferences and reading PEM files named in the config.
 */
import { readFileSync } from 'node:fs';
import { AggregationTemporality, InstrumentType } from '@opentelemetry/sdk-metrics';
import { ConfigError } from '../pipeline/component';

/** The SDK's default deadline of one export (OTEL_EXPORTER_OTLP_TIMEOUT unset). */
export const DEFAULT_OTLP_TIMEOUT_MS = 10_000;
export const DEFAULT_EXPORT_INTERVAL_MS = 10_000;

/** OTEL_METRIC_EXPORT_INTERVAL (milliseconds), if set and valid. */
export function exportIntervalFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.OTEL_METRIC_EXPORT_INTERVAL?.trim();
  if (!raw) return undefined;
  const ms = Number(raw);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

export type OtlpEnvSetting = 'ENDPOINT' | 'HEADERS' | 'TIMEOUT' | 'COMPRESSION' | 'CERTIFICATE' | 'CLIENT_KEY' | 'CLIENT_CERTIFICATE';

/** The signal part of the signal-specific variables (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`). */
export type OtlpSignal = 'METRICS' | 'LOGS';

/** `OTEL_EXPORTER_OTLP_<signal>_<name>`, else `OTEL_EXPORTER_OTLP_<name>`; blank counts as unset. */
export function otlpEnv(env: NodeJS.ProcessEnv, name: OtlpEnvSetting, signal: OtlpSignal = 'METRICS'): { value: string; signalSpecific: boolean } | undefined {
  const specific = env[`OTEL_EXPORTER_OTLP_${signal}_${name}`]?.trim();
  if (specific) return { value: specific, signalSpecific: true };
  const generic = env[`OTEL_EXPORTER_OTLP_${name}`]?.trim();
  return generic ? { value: generic, signalSpecific: false } : undefined;
}

/** OTEL_EXPORTER_OTLP_(METRICS_|LOGS_)TIMEOUT in milliseconds, if set and valid. */
export function otlpEnvTimeoutMs(env: NodeJS.ProcessEnv, signal: OtlpSignal = 'METRICS'): number | undefined {
  const raw = otlpEnv(env, 'TIMEOUT', signal)?.value;
  const ms = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

/** `k1=v1,k2=v2` (values percent-decoded), as the SDK reads OTEL_EXPORTER_OTLP_HEADERS. */
export function parseOtlpHeaders(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    const raw = part.slice(eq + 1).trim();
    let value = raw;
    try {
      value = decodeURIComponent(raw);
    } catch {
      // keep it as written
    }
    if (key) out[key] = value;
  }
  return out;
}

/** Generic env headers, overridden per key by the signal's (METRICS_ or LOGS_) ones. */
export function otlpEnvHeaders(env: NodeJS.ProcessEnv, signal: OtlpSignal = 'METRICS'): Record<string, string> {
  return {
    ...parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_HEADERS ?? ''),
    ...parseOtlpHeaders(env[`OTEL_EXPORTER_OTLP_${signal}_HEADERS`] ?? ''),
  };
}

export type TemporalityPreference = 'cumulative' | 'delta' | 'lowmemory';

export function otlpEnvTemporality(env: NodeJS.ProcessEnv): TemporalityPreference | undefined {
  const raw = env.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE?.trim().toLowerCase();
  return raw === 'cumulative' || raw === 'delta' || raw === 'lowmemory' ? raw : undefined;
}

/** The SDK's selectors for each preference (exporter-metrics-otlp-http 0.223). */
export function temporalitySelector(preference: TemporalityPreference): (type: InstrumentType) => AggregationTemporality {
  switch (preference) {
    case 'cumulative':
      return () => AggregationTemporality.CUMULATIVE;
    case 'delta':
      return (type) =>
        type === InstrumentType.UP_DOWN_COUNTER || type === InstrumentType.OBSERVABLE_UP_DOWN_COUNTER
          ? AggregationTemporality.CUMULATIVE
          : AggregationTemporality.DELTA;
    case 'lowmemory':
      return (type) => (type === InstrumentType.COUNTER || type === InstrumentType.HISTOGRAM ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE);
  }
}

/** Read a PEM file named at config `path`; a ConfigError naming the option if it cannot be read. */
export function readPem(file: string, path: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(path, `cannot read ${file}: ${reason}`);
  }
}
