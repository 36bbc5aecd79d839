/**
 * Cutting one metrics export request into requests of at most N data points
 * (the `batch` processor's send_batch_max_size). Metrics keep their order;
 * a metric with more points than fit is continued in the next request with
 * the same descriptor, temporality and scope, so a backend sees exactly the
 * points of the whole request, once each.
 */
import type { MetricData, ResourceMetrics, ScopeMetrics } from '@opentelemetry/sdk-metrics';

export function countDataPoints(metrics: ResourceMetrics): number {
  let n = 0;
  for (const scope of metrics.scopeMetrics) for (const metric of scope.metrics) n += metric.dataPoints.length;
  return n;
}

/** `metrics` in parts of at most `maxDataPoints` points (the request itself when it fits). */
export function splitResourceMetrics(metrics: ResourceMetrics, maxDataPoints: number): ResourceMetrics[] {
  if (!(maxDataPoints >= 1) || countDataPoints(metrics) <= maxDataPoints) return [metrics];
  const parts: ResourceMetrics[] = [];
  let scopes: ScopeMetrics[] = [];
  let room = maxDataPoints;
  const finish = (): void => {
    if (scopes.length > 0) parts.push({ resource: metrics.resource, scopeMetrics: scopes });
    scopes = [];
    room = maxDataPoints;
  };
  for (const scope of metrics.scopeMetrics) {
    let current: ScopeMetrics | undefined;
    for (const metric of scope.metrics) {
      let offset = 0;
      while (offset < metric.dataPoints.length) {
        if (room === 0) {
          finish();
          current = undefined;
        }
        const take = Math.min(room, metric.dataPoints.length - offset);
        const part = { ...metric, dataPoints: metric.dataPoints.slice(offset, offset + take) } as MetricData;
        if (!current) {
          current = { scope: scope.scope, metrics: [] };
          scopes.push(current);
        }
        current.metrics.push(part);
        offset += take;
        room -= take;
      }
    }
  }
  finish();
  return parts;
}
