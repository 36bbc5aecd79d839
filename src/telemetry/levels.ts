/**
 * How much the agent says about itself, after the Collector's
 * `service.telemetry.metrics.level` (see src/telemetry/self-telemetry.ts for
 * what each level emits).
 */
export const METRICS_LEVELS = ['none', 'basic', 'normal', 'detailed'] as const;
export type MetricsLevel = (typeof METRICS_LEVELS)[number];
export const DEFAULT_METRICS_LEVEL: MetricsLevel = 'normal';

/** `level` is at least `min` (none < basic < normal < detailed). */
export function levelAtLeast(level: MetricsLevel, min: MetricsLevel): boolean {
  return METRICS_LEVELS.indexOf(level) >= METRICS_LEVELS.indexOf(min);
}
