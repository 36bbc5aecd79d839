/**
 * The end of a metrics pipeline: records measurements for one exporter into
 * its FlowMetrics (a MetricProducer of its reader). Without one (the
 * self-telemetry endpoint, and tests that take the SDK as the reference):
 * into the SDK's Counter, Histogram and observable gauge instruments of its
 * meter.
 */
import type { Attributes, Counter, Histogram, Meter, ObservableResult } from '@opentelemetry/api';
import { METRICS, type MetricDefinition } from '../metrics/definitions';
import type { FlowMetrics } from './flow-metrics';
import { attributeKey, type Measurement, type MeasurementBatch, type MeasurementConsumer } from './measurements';

export class InstrumentSink implements MeasurementConsumer {
  private readonly counters = new Map<string, Counter>();
  private readonly histograms = new Map<string, Histogram>();
  private readonly gauges = new Map<string, GaugeSeries>();
  /** Measurements of metrics that no definition names (a bug upstream), counted not thrown. */
  unknownMetrics = 0;

  /**
   * `flowMetrics`: where counter deltas, histogram samples and gauge values
   * go (the exporter's reader collects them, see flow-metrics.ts); without
   * it, the meter's instruments.
   */
  constructor(
    private readonly meter: Meter,
    private readonly flowMetrics?: FlowMetrics,
  ) {}

  consume(batch: MeasurementBatch): void {
    const source = batch.source ?? '';
    const flowMetrics = this.flowMetrics;
    const replaced = batch.gaugesReplaced.map((name) => {
      const def = METRICS.get(name);
      if (def?.kind !== 'gauge') return undefined;
      return flowMetrics ? flowMetrics.beginGaugeReplace(def, source) : this.gauge(def).beginReplace(source);
    });
    for (const m of batch.measurements) {
      const def = METRICS.get(m.metric);
      if (!def) {
        this.unknownMetrics++;
        continue;
      }
      const attrs = m.attributes as Attributes;
      switch (def.kind) {
        case 'counter':
          if (flowMetrics) flowMetrics.record(def, m.value, m.attributes);
          else this.counter(def).add(m.value, attrs);
          break;
        case 'histogram': {
          const samples = m.samples;
          if (samples) {
            if (flowMetrics) flowMetrics.recordSamples(def, samples, m.attributes);
            else {
              const h = this.histogram(def);
              for (let i = 0; i < samples.length; i++) h.record(samples[i]!, attrs);
            }
          } else if (flowMetrics) flowMetrics.record(def, m.value, m.attributes);
          else this.histogram(def).record(m.value, attrs);
          break;
        }
        case 'gauge':
          if (flowMetrics) flowMetrics.setGauge(def, source, m.value, m.attributes);
          else this.gauge(def).set(source, m);
          break;
      }
    }
    for (const r of replaced) r?.end();
  }

  private counter(def: MetricDefinition): Counter {
    let c = this.counters.get(def.name);
    if (!c) {
      c = this.meter.createCounter(def.name, { unit: def.unit, description: def.description });
      this.counters.set(def.name, c);
    }
    return c;
  }

  private histogram(def: MetricDefinition): Histogram {
    let h = this.histograms.get(def.name);
    if (!h) {
      h = this.meter.createHistogram(def.name, {
        unit: def.unit,
        description: def.description,
        advice: def.buckets ? { explicitBucketBoundaries: [...def.buckets] } : undefined,
      });
      this.histograms.set(def.name, h);
    }
    return h;
  }

  private gauge(def: MetricDefinition): GaugeSeries {
    let g = this.gauges.get(def.name);
    if (!g) {
      const instrument = this.meter.createObservableGauge(def.name, { unit: def.unit, description: def.description });
      const series = new GaugeSeries();
      instrument.addCallback((result: ObservableResult) => series.observe(result));
      this.gauges.set(def.name, series);
      g = series;
    }
    return g;
  }
}

/**
 * The current series of one gauge, per source. A batch that replaces a gauge
 * brings its whole series set; series it no longer has read 0 from then on
 * (not their last value: under cumulative temporality sdk-metrics 2.x keeps
 * exporting the last value of every attribute set an observable gauge ever
 * observed, so a closed connection would stay "open" forever). At most
 * MAX_GONE_SERIES zeroed series are kept per gauge and source.
 */
class GaugeSeries {
  static readonly MAX_GONE_SERIES = 100_000;
  private readonly bySource = new Map<string, Map<string, Measurement>>();
  private replacing?: { source: string; seen: Set<string> };

  beginReplace(source: string): { end(): void } {
    const seen = new Set<string>();
    this.replacing = { source, seen };
    return {
      end: () => {
        this.replacing = undefined;
        const series = this.bySource.get(source);
        if (!series) return;
        let gone = 0;
        for (const [key, m] of series) {
          if (seen.has(key)) continue;
          if (m.value !== 0) series.set(key, { ...m, value: 0 });
          if (++gone > GaugeSeries.MAX_GONE_SERIES) series.delete(key);
        }
      },
    };
  }

  set(source: string, m: Measurement): void {
    let series = this.bySource.get(source);
    if (!series) {
      series = new Map();
      this.bySource.set(source, series);
    }
    const key = attributeKey(m.attributes);
    series.set(key, m);
    if (this.replacing?.source === source) this.replacing.seen.add(key);
  }

  observe(result: ObservableResult): void {
    for (const series of this.bySource.values()) for (const m of series.values()) result.observe(m.value, m.attributes as Attributes);
  }
}


/** Sends every batch to each consumer (one receiver feeding several pipelines, one pipeline several exporters). */
export class FanOut implements MeasurementConsumer {
  constructor(private readonly consumers: readonly MeasurementConsumer[]) {}
  consume(batch: MeasurementBatch): void {
    for (const c of this.consumers) c.consume(batch);
  }
}
