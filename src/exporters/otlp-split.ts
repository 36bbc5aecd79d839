/**
 * Large collections are split into several export requests, each under the
 * gRPC message limit of OTLP receivers (4 MiB by default: the Collector's
 * otlp receiver and grpc-js both reject a larger request with
 * RESOURCE_EXHAUSTED, which would be retried and rejected again forever).
 *
 * The size of a request is bounded from above without serializing it, from
 * the protobuf encoding of OTLP (each length prefix counted at its largest,
 * every integer at its widest): each part's real size is at most its
 * estimate. Data points are cut between requests, never inside one, and
 * a part keeps its resource, scope and metric description.
 *
 * A retried collection (the queue sends the same object again) resumes at
 * the first part that was not accepted: parts already delivered are not sent
 * twice, so delta temporality does not double count.
 */
import type { Attributes, AttributeValue } from '@opentelemetry/api';
import { DataPointType, type DataPoint, type MetricData, type ResourceMetrics, type ScopeMetrics } from '@opentelemetry/sdk-metrics';
import type { MetricsSender, SendOutcome } from './retry';

/** The default maximum gRPC message a receiver accepts, less room for framing. */
export const OTLP_GRPC_MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 16 * 1024;

/** A length-delimited field: tag (1) + length varint (≤ 5) + body. */
const field = (bodyBytes: number): number => bodyBytes + 6;
const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

function valueBytes(v: AttributeValue | undefined | null): number {
  if (typeof v === 'string') return field(utf8(v));
  if (typeof v === 'number') return 11; // int (varint ≤ 10) or double (8), + tag
  if (typeof v === 'boolean') return 2;
  if (Array.isArray(v)) {
    let n = 0;
    for (const x of v as ReadonlyArray<AttributeValue | null | undefined>) n += field(valueBytes(x));
    return field(n);
  }
  return 2;
}

const attributeCache = new WeakMap<Attributes, number>();
/** Upper bound of the encoded KeyValue list of a set of attributes. */
export function attributesBytes(attrs: Attributes): number {
  const cached = attributeCache.get(attrs);
  if (cached !== undefined) return cached;
  let n = 0;
  for (const key of Object.keys(attrs)) n += field(field(utf8(key)) + field(valueBytes(attrs[key])));
  attributeCache.set(attrs, n);
  return n;
}

/** Upper bound of one encoded data point (with its enclosing field). */
export function dataPointBytes(type: DataPointType, point: DataPoint<unknown>): number {
  const attrs = attributesBytes(point.attributes);
  switch (type) {
    case DataPointType.HISTOGRAM: {
      const v = point.value as { buckets: { boundaries: readonly number[]; counts: readonly number[] } };
      // start, time, count, sum, min, max (fixed64 + tag), flags, two packed arrays of fixed64/double
      return field(attrs + 6 * 9 + 11 + field(8 * v.buckets.counts.length) + field(8 * v.buckets.boundaries.length));
    }
    case DataPointType.EXPONENTIAL_HISTOGRAM: {
      const v = point.value as { positive: { bucketCounts: readonly number[] }; negative: { bucketCounts: readonly number[] } };
      const buckets = (counts: readonly number[]): number => field(11 + field(10 * counts.length));
      // start, time, count, sum, zero_count, min, max, zero_threshold (fixed64/double + tag), scale, flags
      return field(attrs + 8 * 9 + 2 * 11 + buckets(v.positive.bucketCounts) + buckets(v.negative.bucketCounts));
    }
    default:
      // start, time, value (fixed64/double + tag), flags
      return field(attrs + 3 * 9 + 11);
  }
}

function metricOverhead(m: MetricData): number {
  const d = m.descriptor;
  // name, description, unit, the data message (+ temporality, monotonic), metadata none
  return field(field(utf8(d.name)) + field(utf8(d.description)) + field(utf8(d.unit)) + field(4 + 2 * 11));
}

function scopeOverhead(s: ScopeMetrics): number {
  const scope = s.scope;
  return field(field(field(utf8(scope.name)) + field(utf8(scope.version ?? '')) + 11) + field(utf8(scope.schemaUrl ?? '')));
}

function resourceOverhead(rm: ResourceMetrics): number {
  return field(field(attributesBytes(rm.resource.attributes) + 11) + field(utf8(rm.resource.schemaUrl ?? '')));
}

/** Upper bound of the encoded ExportMetricsServiceRequest holding `rm`. */
export function estimateRequestBytes(rm: ResourceMetrics): number {
  let n = resourceOverhead(rm);
  for (const s of rm.scopeMetrics) {
    n += scopeOverhead(s);
    for (const m of s.metrics) {
      n += metricOverhead(m);
      for (const p of m.dataPoints as ReadonlyArray<DataPoint<unknown>>) n += dataPointBytes(m.dataPointType, p);
    }
  }
  return n;
}

/**
 * `rm` as one or more ResourceMetrics whose requests are each at most
 * `maxBytes` (by the upper bound above), in the original order. A single data
 * point larger than that still travels alone. Returns `[rm]` when it fits.
 */
export function splitRequestBySize(rm: ResourceMetrics, maxBytes = OTLP_GRPC_MAX_REQUEST_BYTES): ResourceMetrics[] {
  if (estimateRequestBytes(rm) <= maxBytes) return [rm];
  const parts: ResourceMetrics[] = [];
  const base = resourceOverhead(rm);
  let scopes: ScopeMetrics[] = [];
  let size = base;
  let points = 0;
  const flush = (): void => {
    if (points > 0) parts.push({ resource: rm.resource, scopeMetrics: scopes });
    scopes = [];
    size = base;
    points = 0;
  };
  for (const s of rm.scopeMetrics) {
    const sOver = scopeOverhead(s);
    let scope: ScopeMetrics | undefined;
    for (const m of s.metrics) {
      const mOver = metricOverhead(m);
      let metric: MetricData | undefined;
      for (const p of m.dataPoints as ReadonlyArray<DataPoint<unknown>>) {
        const pBytes = dataPointBytes(m.dataPointType, p);
        const extra = pBytes + (metric ? 0 : mOver) + (scope ? 0 : sOver);
        if (points > 0 && size + extra > maxBytes) {
          flush();
          scope = undefined;
          metric = undefined;
        }
        if (!scope) {
          scope = { scope: s.scope, metrics: [] };
          scopes.push(scope);
          size += sOver;
        }
        if (!metric) {
          metric = { ...m, dataPoints: [] } as MetricData;
          scope.metrics.push(metric);
          size += mOver;
        }
        (metric.dataPoints as Array<DataPoint<unknown>>).push(p);
        size += pBytes;
        points++;
      }
    }
  }
  flush();
  return parts.length > 0 ? parts : [rm];
}

/**
 * A sender that splits each collection into requests of at most `maxBytes`
 * and sends them in order. One failed part fails the attempt; the next
 * attempt at the same collection starts at that part.
 */
export function splittingSender(inner: MetricsSender, maxBytes = OTLP_GRPC_MAX_REQUEST_BYTES): MetricsSender {
  const progress = new WeakMap<ResourceMetrics, { parts: ResourceMetrics[]; next: number }>();
  const sender: MetricsSender = {
    async send(item): Promise<SendOutcome> {
      let p = progress.get(item);
      if (!p) {
        const parts = splitRequestBySize(item, maxBytes);
        if (parts.length === 1) return inner.send(item);
        p = { parts, next: 0 };
        progress.set(item, p);
      }
      while (p.next < p.parts.length) {
        const outcome = await inner.send(p.parts[p.next]!);
        if (outcome.kind !== 'success') return outcome;
        p.next++;
      }
      progress.delete(item);
      return { kind: 'success' };
    },
    shutdown: () => inner.shutdown(),
  };
  if (inner.selectAggregationTemporality) sender.selectAggregationTemporality = inner.selectAggregationTemporality.bind(inner);
  if (inner.selectAggregation) sender.selectAggregation = inner.selectAggregation.bind(inner);
  return sender;
}
