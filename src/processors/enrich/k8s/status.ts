/**
 * How the `k8s` processor's connection to the API server is doing, as
 * self-telemetry (`flowtel_k8s_*`, registered here; docs/metrics.md):
 *
 * - flowtel_k8s_api_errors (counter): failed lists and watches, by resource
 *   and reason (`unreachable`, `http_<status>`, `other`);
 * - flowtel_k8s_relists (counter): lists, by resource and reason (`initial`,
 *   `expired` after a 410 Gone, `error` after a failure);
 * - flowtel_k8s_api_reachable (gauge): 1 while the last request of every
 *   resource succeeded, 0 from the first failure until they all succeed again;
 * - flowtel_k8s_objects (gauge): objects held, by resource.
 *
 * The counters are cumulative here; each processor instance reports deltas.
 */
import type { Logger } from 'pino';
import { registerMetric } from '../../../metrics/definitions';
import type { Measurement } from '../../../pipeline/measurements';

export const K8S_METRICS = [
  { name: 'flowtel_k8s_api_errors', kind: 'counter', unit: '{request}', description: 'Failed lists and watches of the k8s processor, by resource and reason (unreachable, http_<status>, other).' },
  { name: 'flowtel_k8s_relists', kind: 'counter', unit: '{list}', description: 'Full lists of a resource by the k8s processor, by reason: initial, expired (410 Gone), error (after a failure).' },
  { name: 'flowtel_k8s_api_reachable', kind: 'gauge', unit: '1', description: '1 while the k8s processor reaches the API server (its last request for every resource succeeded), else 0: metadata is then the last known.' },
  { name: 'flowtel_k8s_objects', kind: 'gauge', unit: '{object}', description: 'Kubernetes objects the k8s processor holds, by resource.' },
] as const;
for (const m of K8S_METRICS) registerMetric(m);

export class ApiStatus {
  /** `resource\u0000reason` → count. */
  readonly errors = new Map<string, number>();
  readonly relists = new Map<string, number>();
  private readonly failing = new Set<string>();
  private loggedOutage = false;

  constructor(private readonly logger?: Logger) {}

  get reachable(): boolean {
    return this.failing.size === 0;
  }

  succeeded(resource: string): void {
    if (this.failing.delete(resource) && this.failing.size === 0 && this.loggedOutage) {
      this.loggedOutage = false;
      this.logger?.info('k8s: API server reachable again');
    }
  }

  failed(resource: string, reason: string, error: unknown): void {
    const key = `${resource}\u0000${reason}`;
    this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
    this.failing.add(resource);
    if (!this.loggedOutage) {
      this.loggedOutage = true;
      this.logger?.warn({ resource, reason, err: error }, 'k8s: API server request failed; the last known metadata stays in use, retrying');
    }
  }

  relisted(resource: string, reason: string): void {
    const key = `${resource}\u0000${reason}`;
    this.relists.set(key, (this.relists.get(key) ?? 0) + 1);
  }
}

/** Turns the cumulative counts of an ApiStatus into the deltas one processor instance reports. */
export class StatusReporter {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly status: ApiStatus,
    private readonly processor: string,
  ) {}

  measurements(objects: ReadonlyMap<string, number>): Measurement[] {
    const out: Measurement[] = [];
    const counter = (metric: string, counts: ReadonlyMap<string, number>): void => {
      for (const [key, total] of counts) {
        const id = `${metric}\u0000${key}`;
        const delta = total - (this.last.get(id) ?? 0);
        if (delta <= 0) continue;
        this.last.set(id, total);
        const [resource, reason] = key.split('\u0000') as [string, string];
        out.push({ metric, value: delta, attributes: { processor: this.processor, resource, reason } });
      }
    };
    counter('flowtel_k8s_api_errors', this.status.errors);
    counter('flowtel_k8s_relists', this.status.relists);
    out.push({ metric: 'flowtel_k8s_api_reachable', value: this.status.reachable ? 1 : 0, attributes: { processor: this.processor } });
    for (const [resource, n] of objects) out.push({ metric: 'flowtel_k8s_objects', value: n, attributes: { processor: this.processor, resource } });
    return out;
  }
}
