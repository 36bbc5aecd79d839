/**
 * What the enrichment processors (`process`, `container`, `k8s`) share: they
 * add attributes to flows, in metrics and in logs pipelines, and never change
 * the batch or attribute objects they are given.
 *
 * Receivers reuse one attribute object per flow across collections, and the
 * processors after this one cache their work per object identity; so the
 * output for an input object is kept and handed out again as long as the
 * metadata it was built from is the same (its `token`: the cache entry of the
 * pid, the version of the Kubernetes store, …). When the metadata changes, a
 * new output object is built.
 *
 * Self-telemetry: an enricher may report `flowtel_*` measurements of its
 * own (`telemetry()`). They are added to the batches of one source (the
 * first receiver this processor instance saw), so a gauge is never reported
 * twice under two sources with different ages.
 */
import type { Lifecycle, MetricsProcessor } from '../../pipeline/component';
import type { LogBatch, LogRecordData, LogsProcessor } from '../../pipeline/logs';
import { relabeled, type FlowAttributes, type Measurement, type MeasurementBatch } from '../../pipeline/measurements';
import { withRecords } from '../../pipeline/logs';
import { isFlow, withMeasurements } from '../common';

export abstract class Enricher<Token> implements MetricsProcessor, LogsProcessor, Lifecycle {
  private readonly outputs = new WeakMap<FlowAttributes, { token: Token; out: FlowAttributes }>();
  private telemetrySource?: string;

  constructor(readonly id: string) {}

  abstract start(): Promise<void>;
  abstract shutdown(): Promise<void>;

  /** Called once before each batch (metrics or logs). */
  protected beginBatch(): void {}

  /** What the enrichment of `attributes` depends on now; `undefined` = nothing to add. */
  protected abstract token(attributes: FlowAttributes): Token | undefined;

  /** The enriched copy of `attributes` (or `attributes` itself when nothing applies). */
  protected abstract enrich(attributes: FlowAttributes, token: Token): FlowAttributes;

  /** The processor's own flowtel_* measurements for this batch (counters as deltas). */
  protected telemetry(): Measurement[] {
    return [];
  }

  /** The enriched attributes of one flow (exposed for tests and for reuse). */
  enriched(attributes: FlowAttributes): FlowAttributes {
    if (!isFlow(attributes)) return attributes;
    const token = this.token(attributes);
    if (token === undefined) return attributes;
    const cached = this.outputs.get(attributes);
    if (cached && cached.token === token) return cached.out;
    const out = this.enrich(attributes, token);
    this.outputs.set(attributes, { token, out });
    return out;
  }

  process(batch: MeasurementBatch): MeasurementBatch {
    this.beginBatch();
    let changed = false;
    const out: Measurement[] = batch.measurements.map((m) => {
      const attributes = this.enriched(m.attributes);
      if (attributes === m.attributes) return m;
      changed = true;
      return relabeled(m, attributes);
    });
    const source = batch.source ?? '';
    this.telemetrySource ??= source;
    const own = this.telemetrySource === source ? this.telemetry() : [];
    if (!changed && own.length === 0) return batch;
    return withMeasurements(batch, own.length ? [...out, ...own] : out);
  }

  processLogs(batch: LogBatch): LogBatch {
    this.beginBatch();
    let changed = false;
    const out: LogRecordData[] = batch.records.map((r) => {
      const attributes = this.enriched(r.attributes);
      if (attributes === r.attributes) return r;
      changed = true;
      return { ...r, attributes };
    });
    return changed ? withRecords(batch, out) : batch;
  }
}

/** Copy `attributes` with `extra` added; keys already present are kept unless `overwrite`. */
export function withAttributes(attributes: FlowAttributes, extra: Readonly<Record<string, string | number | boolean | undefined>>, overwrite = false): FlowAttributes {
  let out: FlowAttributes | undefined;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined || v === '') continue;
    if (!overwrite && attributes[k] !== undefined) continue;
    if (attributes[k] === v) continue;
    out ??= { ...attributes };
    out[k] = v;
  }
  return out ?? attributes;
}
