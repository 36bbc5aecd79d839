/**
 * What flows through a metrics pipeline: batches of measurements, one batch
 * per receiver collection. A measurement is a value for one metric and one
 * attribute set; processors (filter, sampling, attributes, aggregate) work on
 * these batches, and the pipeline's end records them into OpenTelemetry
 * instruments whose readers are the pipeline's exporters.
 */

export type AttributeValue = string | number | boolean;
export type FlowAttributes = Record<string, AttributeValue>;

/**
 * Measurements and their attribute objects are shared: a receiver's batch goes
 * to every pipeline it feeds, and receivers reuse one attribute object for all
 * of a flow's metrics and across collections (processors cache per object).
 * Nobody changes them after they are sent; processors build new ones.
 */
export interface Measurement {
  /** A name from src/metrics/definitions.ts. */
  readonly metric: string;
  /** Counter: the delta since the last collection. Histogram: one sample (unless `samples`). Gauge: the current value. */
  readonly value: number;
  readonly attributes: FlowAttributes;
  /**
   * Histogram only: the interval's samples of this attribute set, in place
   * of `value` (which is then unused). A receiver collecting 20k RTT samples
   * a second sends one measurement per flow instead of one object per sample:
   * objects that lived through a collection's scavenges into the old
   * generation and were most of the agent's heap growth under churn.
   */
  readonly samples?: ArrayLike<number>;
}

/** How many values a measurement stands for: its samples, or 1. */
export function valueCount(m: Measurement): number {
  return m.samples ? m.samples.length : 1;
}

/** The same measurement under other attributes (its samples too). */
export function relabeled(m: Measurement, attributes: FlowAttributes, value = m.value): Measurement {
  return m.samples ? { metric: m.metric, value, attributes, samples: m.samples } : { metric: m.metric, value, attributes };
}

export interface MeasurementBatch {
  /** Wall-clock time of the collection, ms since the epoch. */
  readonly timeMs: number;
  readonly measurements: Measurement[];
  /**
   * Gauge metrics whose whole series set this batch replaces (a series not in
   * the batch is gone: the connection closed).
   */
  readonly gaugesReplaced: readonly string[];
  /**
   * The receiver that collected the batch. Gauges are replaced per source, so
   * two receivers feeding one exporter do not wipe each other's series.
   */
  readonly source?: string;
}

export interface MeasurementConsumer {
  consume(batch: MeasurementBatch): void;
}

/**
 * A string that identifies an attribute set regardless of key order, telling
 * `443` from `"443"`. Keys in `skip` are left out.
 */
export function attributeKey(attributes: FlowAttributes, skip?: ReadonlySet<string>): string {
  const keys = Object.keys(attributes).sort();
  let out = '';
  for (const key of keys) {
    if (skip?.has(key)) continue;
    const value = attributes[key] as AttributeValue | undefined;
    if (value === undefined) continue;
    const tag = typeof value === 'string' ? 's' : typeof value === 'number' ? 'n' : 'b';
    out += `${key}\u0001${tag}${String(value)}\u0002`;
  }
  return out;
}
