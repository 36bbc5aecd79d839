/**
 * Explicit-bucket histograms of flow metrics (tcp_rtt_us, connect latency,
 * DNS latency, …), kept by flowtel instead of the SDK's Histogram instrument
 * and handed to one exporter's MetricReader as a MetricProducer.
 *
 * Why: the SDK turns the attribute set of every recorded sample into a key
 * (sort the keys, JSON.stringify) — at thousands of short connections per
 * second, several samples each, that was the largest single cost of the
 * agent. Flow attribute objects are shared and reused (see measurements.ts),
 * so the key is computed once per object here and each sample costs a
 * WeakMap lookup and a bucket search.
 *
 * The output is what the SDK's explicit-bucket histogram aggregation gives
 * for the same samples: boundaries are inclusive upper bounds, count, sum,
 * min and max, the reader's temporality (cumulative: series since their
 * first sample; delta: the samples since the last collection), and the same
 * per-metric cardinality limit with an `otel.metric.overflow` series.
 */
import { ValueType } from '@opentelemetry/api';
import type { HrTime } from '@opentelemetry/api';
import { emptyResource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  InstrumentType,
  type CollectionResult,
  type DataPoint,
  type Histogram,
  type HistogramMetricData,
  type MetricProducer,
  type MetricReader,
} from '@opentelemetry/sdk-metrics';
import type { MetricDefinition } from '../metrics/definitions';
import { attributeKey, type FlowAttributes } from './measurements';

/** Instrumentation scope of everything flowtel records (the SDK meter's name too). */
export const FLOWTEL_SCOPE = { name: 'flowtel' } as const;

const OVERFLOW_ATTRIBUTES: FlowAttributes = Object.freeze({ 'otel.metric.overflow': true });

interface Series {
  readonly attributes: FlowAttributes;
  startTime: HrTime;
  counts: number[];
  count: number;
  sum: number;
  min: number;
  max: number;
}

class HistogramMetric {
  readonly series = new Map<string, Series>();
  readonly boundaries: number[];
  constructor(readonly def: MetricDefinition) {
    this.boundaries = [...(def.buckets ?? DEFAULT_BOUNDARIES)];
  }
}

/** The SDK's default explicit bucket boundaries, for a definition that names none. */
const DEFAULT_BOUNDARIES = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

/** Index of the bucket of `value`: the first boundary ≥ value, or the last (overflow) bucket. */
function bucketOf(boundaries: readonly number[], value: number): number {
  let lo = 0;
  let hi = boundaries.length - 1;
  let ret = boundaries.length;
  while (hi >= lo) {
    const mid = (lo + hi) >>> 1;
    if (boundaries[mid]! < value) lo = mid + 1;
    else {
      ret = mid;
      hi = mid - 1;
    }
  }
  return ret;
}

function hrNow(): HrTime {
  const ms = Date.now();
  return [Math.floor(ms / 1000), (ms % 1000) * 1e6];
}

export class FlowHistograms implements MetricProducer {
  private readonly metrics = new Map<string, HistogramMetric>();
  /** attributeKey of each attribute object seen (objects are shared and never changed once sent). */
  private readonly keys = new WeakMap<FlowAttributes, string>();
  private temporality = AggregationTemporality.CUMULATIVE;
  private lastCollection?: HrTime;
  /** Samples whose series went to the overflow series (cardinality limit reached). */
  overflowed = 0;

  constructor(private readonly cardinalityLimit: number) {}

  /** Take the temporality the reader asks for histograms (the reader this producer is given to). */
  bind(reader: Pick<MetricReader, 'selectAggregationTemporality'>): void {
    this.temporality = reader.selectAggregationTemporality(InstrumentType.HISTOGRAM);
  }

  record(def: MetricDefinition, value: number, attributes: FlowAttributes): void {
    if (Number.isNaN(value)) return;
    let metric = this.metrics.get(def.name);
    if (!metric) {
      metric = new HistogramMetric(def);
      this.metrics.set(def.name, metric);
    }
    let key = this.keys.get(attributes);
    if (key === undefined) {
      key = attributeKey(attributes);
      this.keys.set(attributes, key);
    }
    let s = metric.series.get(key);
    if (!s) {
      // As the SDK: the limit counts the overflow series itself.
      if (metric.series.size >= this.cardinalityLimit - 1) {
        this.overflowed++;
        key = '\u0000overflow';
        attributes = OVERFLOW_ATTRIBUTES;
        s = metric.series.get(key);
      }
      if (!s) {
        s = { attributes, startTime: this.lastCollection ?? hrNow(), counts: new Array<number>(metric.boundaries.length + 1).fill(0), count: 0, sum: 0, min: Infinity, max: -Infinity };
        metric.series.set(key, s);
      }
    }
    s.count++;
    s.sum += value;
    if (value < s.min) s.min = value;
    if (value > s.max) s.max = value;
    s.counts[bucketOf(metric.boundaries, value)]!++;
  }

  async collect(): Promise<CollectionResult> {
    const now = hrNow();
    const delta = this.temporality === AggregationTemporality.DELTA;
    const metrics: HistogramMetricData[] = [];
    for (const metric of this.metrics.values()) {
      if (metric.series.size === 0) continue;
      const dataPoints: DataPoint<Histogram>[] = [];
      for (const s of metric.series.values()) {
        dataPoints.push({
          attributes: s.attributes,
          startTime: s.startTime,
          endTime: now,
          value: { buckets: { boundaries: metric.boundaries, counts: delta ? s.counts : [...s.counts] }, count: s.count, sum: s.sum, min: s.min, max: s.max },
        });
      }
      metrics.push({
        descriptor: { name: metric.def.name, description: metric.def.description, unit: metric.def.unit, valueType: ValueType.DOUBLE },
        aggregationTemporality: this.temporality,
        dataPointType: DataPointType.HISTOGRAM,
        dataPoints,
      });
      // Delta: the next interval starts empty (a series without samples is not exported, as the SDK does).
      if (delta) metric.series.clear();
    }
    this.lastCollection = now;
    return { resourceMetrics: { resource: emptyResource(), scopeMetrics: metrics.length ? [{ scope: FLOWTEL_SCOPE, metrics }] : [] }, errors: [] };
  }
}
