/**
 * Counters and explicit-bucket histograms of flow metrics (tcp_bytes_sent,
 * tcp_rtt_us, connect latency, DNS latency, …), kept by flowtel instead of the
 * SDK's Counter and Histogram instruments and handed to one exporter's
 * MetricReader as a MetricProducer.
 *
 * Why: the SDK turns the attribute set of every recorded value into a key
 * (sort the keys, JSON.stringify) — at thousands of short connections per
 * second, several samples each, that was the largest single cost of the
 * agent. Flow attribute objects are shared and reused (see measurements.ts),
 * so the key is computed once per object here and a sample costs a WeakMap
 * lookup (and a bucket search). And the SDK never forgets an attribute set
 * of a cumulative instrument: with process.pid and addresses as attributes,
 * every short-lived process or peer would stay a series forever. Here a
 * cumulative series that no measurement updated for `expireAfterMs` (default
 * 5 minutes, as the Collector's prometheus exporter's metric_expiration) is
 * no longer exported; if it comes back it starts again from 0 with a new
 * start time (a reset, which rate() and OTLP backends understand).
 *
 * Gauges (tcp_connections, …) are kept here too, for the same reason: the
 * SDK exports the last value of every attribute set an observable gauge ever
 * observed. A receiver's batch replaces the whole series set of a gauge
 * (per source); a series it no longer has reads 0 (the connections closed),
 * and once it has read 0 for `expireAfterMs` it is no longer exported. Two
 * sources with a series of the same attributes export one point, their sum.
 *
 * Otherwise the output is what the SDK gives for the same measurements:
 * monotonic sums; histograms with inclusive upper bucket bounds, count, sum,
 * min and max; the reader's temporality (cumulative: since the series'
 * start; delta: since the last collection, series without measurements left
 * out); the same per-metric cardinality limit with an
 * `otel.metric.overflow` series.
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
  type GaugeMetricData,
  type Histogram,
  type HistogramMetricData,
  type MetricData,
  type SumMetricData,
  type MetricProducer,
  type MetricReader,
} from '@opentelemetry/sdk-metrics';
import type { MetricDefinition } from '../metrics/definitions';
import { attributeKey, type FlowAttributes } from './measurements';

/** Instrumentation scope of everything flowtel records (the SDK meter's name too). */
export const FLOWTEL_SCOPE = { name: 'flowtel' } as const;

const OVERFLOW_ATTRIBUTES: FlowAttributes = Object.freeze({ 'otel.metric.overflow': true });

/** Default of FlowMetrics' expireAfterMs: as the Collector's prometheus exporter's metric_expiration. */
export const DEFAULT_SERIES_EXPIRATION_MS = 5 * 60_000;

interface Series {
  readonly attributes: FlowAttributes;
  startTime: HrTime;
  /** Measured since the last collection. */
  dirty: boolean;
  /** Time of the first collection after its last measurement (ms). */
  updatedMs: number;
  /** Counter: the sum. Histogram: the sum of the samples. */
  sum: number;
  /** Histograms only (undefined for counters). */
  counts: number[] | undefined;
  count: number;
  min: number;
  max: number;
}

class StoredMetric {
  readonly series = new Map<string, Series>();
  readonly boundaries?: number[];
  constructor(
    readonly def: MetricDefinition,
    readonly temporality: AggregationTemporality,
  ) {
    if (def.kind === 'histogram') this.boundaries = [...(def.buckets ?? DEFAULT_BOUNDARIES)];
  }
}

interface GaugeSeries {
  readonly attributes: FlowAttributes;
  readonly startTime: HrTime;
  value: number;
  /** When a replacing batch no longer had it (ms); undefined while it is current. */
  goneSinceMs?: number;
}

const OVERFLOW_KEY = '\u0000overflow';

class StoredGauge {
  /** Series by source (the receiver), then by attribute key. */
  readonly bySource = new Map<string, Map<string, GaugeSeries>>();
  /** Series over all sources. */
  size = 0;
  /** The replacing batch being recorded: the keys it set. */
  replacing?: { source: string; seen: Set<string> };
  constructor(readonly def: MetricDefinition) {}

  source(name: string): Map<string, GaugeSeries> {
    let series = this.bySource.get(name);
    if (!series) {
      series = new Map();
      this.bySource.set(name, series);
    }
    return series;
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

/** One histogram sample into its series' count, bounds and bucket (the sum is the caller's). */
function addSample(boundaries: readonly number[], s: Series, value: number): void {
  s.count++;
  if (value < s.min) s.min = value;
  if (value > s.max) s.max = value;
  s.counts![bucketOf(boundaries, value)]!++;
}

function hrTimeOf(ms: number): HrTime {
  return [Math.floor(ms / 1000), (ms % 1000) * 1e6];
}

export interface FlowMetricsOptions {
  /** Per-metric limit of attribute sets, the overflow series included. */
  cardinalityLimit: number;
  /** Cumulative series without a measurement for this long (counted from the first collection after the last one) are dropped. Default 5 minutes; 0: never. */
  expireAfterMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

export class FlowMetrics implements MetricProducer {
  private readonly metrics = new Map<string, StoredMetric>();
  private readonly gauges = new Map<string, StoredGauge>();
  /** attributeKey of each attribute object seen (objects are shared and never changed once sent). */
  private readonly keys = new WeakMap<FlowAttributes, string>();
  private reader?: Pick<MetricReader, 'selectAggregationTemporality'>;
  private lastCollection?: HrTime;
  private readonly cardinalityLimit: number;
  private expireAfterMs: number;
  private readonly now: () => number;
  /** Measurements whose series went to the overflow series (cardinality limit reached). */
  overflowed = 0;
  /** Cumulative series dropped because no measurement updated them for expireAfterMs (and gauge series gone for that long). */
  expired = 0;

  constructor(options: FlowMetricsOptions) {
    this.cardinalityLimit = options.cardinalityLimit;
    this.expireAfterMs = options.expireAfterMs ?? DEFAULT_SERIES_EXPIRATION_MS;
    this.now = options.now ?? Date.now;
  }

  /** Change expireAfterMs (the exporter's metric_expiration); 0: never. */
  expireAfter(ms: number): void {
    this.expireAfterMs = ms;
  }

  /** Use the temporality the reader asks for, per instrument type (the reader this producer is given to). */
  bind(reader: Pick<MetricReader, 'selectAggregationTemporality'>): void {
    this.reader = reader;
  }

  /** Series currently kept, over all metrics. */
  get seriesCount(): number {
    let n = 0;
    for (const m of this.metrics.values()) n += m.series.size;
    for (const g of this.gauges.values()) n += g.size;
    return n;
  }

  /**
   * A batch from `source` that brings the whole series set of gauge `def`
   * starts: set its series with setGauge, then call end(). Series of that
   * source it did not set read 0 from then on, and expire.
   */
  beginGaugeReplace(def: MetricDefinition, source: string): { end(): void } {
    const gauge = this.gauge(def);
    const seen = new Set<string>();
    gauge.replacing = { source, seen };
    const series = gauge.source(source);
    const overflow = series.get(OVERFLOW_KEY);
    if (overflow) overflow.value = 0;
    return {
      end: () => {
        gauge.replacing = undefined;
        const nowMs = this.now();
        for (const [key, s] of series) {
          if (seen.has(key) || s.goneSinceMs !== undefined) continue;
          s.value = 0;
          s.goneSinceMs = nowMs;
        }
      },
    };
  }

  /** The current value of a gauge series. */
  setGauge(def: MetricDefinition, source: string, value: number, attributes: FlowAttributes): void {
    if (Number.isNaN(value)) return;
    const gauge = this.gauge(def);
    const series = gauge.source(source);
    let key = this.keyOf(attributes);
    let s = series.get(key);
    let overflow = false;
    if (!s && gauge.size >= this.cardinalityLimit - 1) {
      this.overflowed++;
      overflow = true;
      key = OVERFLOW_KEY;
      s = series.get(key);
      // The overflow series sums the values that did not fit (of one batch: a replacing batch starts it at 0).
      if (s) value += s.value;
    }
    if (!s) {
      s = { attributes: overflow ? OVERFLOW_ATTRIBUTES : attributes, startTime: hrTimeOf(this.now()), value: 0 };
      series.set(key, s);
      gauge.size++;
    }
    s.value = value;
    s.goneSinceMs = undefined;
    if (gauge.replacing?.source === source) gauge.replacing.seen.add(key);
  }

  private gauge(def: MetricDefinition): StoredGauge {
    let g = this.gauges.get(def.name);
    if (!g) {
      g = new StoredGauge(def);
      this.gauges.set(def.name, g);
    }
    return g;
  }

  private lastStart?: { ms: number; time: HrTime };
  /** The start time of series created at `ms` (HrTimes are never changed once made, so series share one). */
  private startTimeAt(ms: number): HrTime {
    if (this.lastStart?.ms !== ms) this.lastStart = { ms, time: hrTimeOf(ms) };
    return this.lastStart.time;
  }

  private keyOf(attributes: FlowAttributes): string {
    let key = this.keys.get(attributes);
    if (key === undefined) {
      key = attributeKey(attributes);
      this.keys.set(attributes, key);
    }
    return key;
  }

  /** A counter delta or a histogram sample (other kinds are not kept here). */
  record(def: MetricDefinition, value: number, attributes: FlowAttributes): void {
    if (Number.isNaN(value) || (def.kind !== 'counter' && def.kind !== 'histogram')) return;
    // A counter only goes up (the SDK drops negative increments too).
    if (def.kind === 'counter' && value < 0) return;
    const s = this.seriesOf(def, attributes);
    s.dirty = true;
    s.sum += value;
    if (s.counts) addSample(this.metrics.get(def.name)!.boundaries!, s, value);
  }

  /** Many samples of one histogram series (one lookup of the series for all of them). */
  recordSamples(def: MetricDefinition, samples: ArrayLike<number>, attributes: FlowAttributes): void {
    if (def.kind !== 'histogram' || samples.length === 0) return;
    const s = this.seriesOf(def, attributes);
    const boundaries = this.metrics.get(def.name)!.boundaries!;
    s.dirty = true;
    for (let i = 0; i < samples.length; i++) {
      const value = samples[i]!;
      if (Number.isNaN(value)) continue;
      s.sum += value;
      addSample(boundaries, s, value);
    }
  }

  /** The series of `attributes` (or the overflow series) of a counter or histogram, made if new. */
  private seriesOf(def: MetricDefinition, attributes: FlowAttributes): Series {
    let metric = this.metrics.get(def.name);
    if (!metric) {
      const type = def.kind === 'counter' ? InstrumentType.COUNTER : InstrumentType.HISTOGRAM;
      metric = new StoredMetric(def, this.reader?.selectAggregationTemporality(type) ?? AggregationTemporality.CUMULATIVE);
      this.metrics.set(def.name, metric);
    }
    let key = this.keyOf(attributes);
    let s = metric.series.get(key);
    if (!s) {
      // As the SDK: the limit counts the overflow series itself.
      if (metric.series.size >= this.cardinalityLimit - 1) {
        this.overflowed++;
        key = OVERFLOW_KEY;
        attributes = OVERFLOW_ATTRIBUTES;
        s = metric.series.get(key);
      }
      if (!s) {
        const b = metric.boundaries;
        const nowMs = this.now();
        // One shape for every series (counts undefined for counters), and one start time per millisecond shared by the series it created.
        s = {
          attributes,
          startTime: metric.temporality === AggregationTemporality.DELTA && this.lastCollection ? this.lastCollection : this.startTimeAt(nowMs),
          dirty: true,
          updatedMs: nowMs,
          sum: 0,
          counts: b ? new Array<number>(b.length + 1).fill(0) : undefined,
          count: 0,
          min: Infinity,
          max: -Infinity,
        };
        metric.series.set(key, s);
      }
    }
    return s;
  }

  async collect(): Promise<CollectionResult> {
    const nowMs = this.now();
    const now = hrTimeOf(nowMs);
    const expireBefore = this.expireAfterMs > 0 ? nowMs - this.expireAfterMs : -Infinity;
    const metrics: MetricData[] = [];
    for (const metric of this.metrics.values()) {
      const delta = metric.temporality === AggregationTemporality.DELTA;
      if (!delta) {
        for (const [key, s] of metric.series) {
          if (s.dirty) {
            s.dirty = false;
            s.updatedMs = nowMs;
          } else if (s.updatedMs < expireBefore) {
            metric.series.delete(key);
            this.expired++;
          }
        }
      }
      if (metric.series.size === 0) continue;
      const descriptor = { name: metric.def.name, description: metric.def.description, unit: metric.def.unit, valueType: ValueType.DOUBLE };
      const b = metric.boundaries;
      if (b) {
        const dataPoints: DataPoint<Histogram>[] = [];
        for (const s of metric.series.values()) {
          dataPoints.push({
            attributes: s.attributes,
            startTime: s.startTime,
            endTime: now,
            value: { buckets: { boundaries: b, counts: delta ? s.counts! : [...s.counts!] }, count: s.count, sum: s.sum, min: s.min, max: s.max },
          });
        }
        metrics.push({ descriptor, aggregationTemporality: metric.temporality, dataPointType: DataPointType.HISTOGRAM, dataPoints } satisfies HistogramMetricData);
      } else {
        const dataPoints: DataPoint<number>[] = [];
        for (const s of metric.series.values()) dataPoints.push({ attributes: s.attributes, startTime: s.startTime, endTime: now, value: s.sum });
        metrics.push({ descriptor, aggregationTemporality: metric.temporality, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints } satisfies SumMetricData);
      }
      // Delta: the next interval starts empty (a series without measurements is not exported, as the SDK does).
      if (delta) metric.series.clear();
    }
    const gaugeTemporality = this.reader?.selectAggregationTemporality(InstrumentType.OBSERVABLE_GAUGE) ?? AggregationTemporality.CUMULATIVE;
    for (const gauge of this.gauges.values()) {
      // Two sources (receivers) with a series of the same attributes make one point: their sum.
      const merge = gauge.bySource.size > 1 ? new Map<string, { value: number }>() : undefined;
      const dataPoints: DataPoint<number>[] = [];
      for (const series of gauge.bySource.values()) {
        for (const [key, s] of series) {
          if (s.goneSinceMs !== undefined && s.goneSinceMs < expireBefore) {
            series.delete(key);
            gauge.size--;
            this.expired++;
            continue;
          }
          const same = merge?.get(key);
          if (same) {
            same.value += s.value;
            continue;
          }
          const point = { attributes: s.attributes, startTime: s.startTime, endTime: now, value: s.value };
          dataPoints.push(point);
          merge?.set(key, point);
        }
      }
      if (dataPoints.length === 0) continue;
      const descriptor = { name: gauge.def.name, description: gauge.def.description, unit: gauge.def.unit, valueType: ValueType.DOUBLE };
      metrics.push({ descriptor, aggregationTemporality: gaugeTemporality, dataPointType: DataPointType.GAUGE, dataPoints } satisfies GaugeMetricData);
    }
    this.lastCollection = now;
    return { resourceMetrics: { resource: emptyResource(), scopeMetrics: metrics.length ? [{ scope: FLOWTEL_SCOPE, metrics }] : [] }, errors: [] };
  }
}
