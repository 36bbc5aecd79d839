/**
 * The end of a metrics pipeline: records measurements into OpenTelemetry SDK
 * instruments of one exporter's MeterProvider.
 */
import type { Attributes, Counter, Histogram, Meter, ObservableGauge, ObservableResult } from '@opentelemetry/api';
import { METRICS, type MetricDefinition } from '../metrics/definitions';
import type { Measurement, MeasurementBatch, MeasurementConsumer } from './measurements';

export class InstrumentSink implements MeasurementConsumer {
  private readonly counters = new Map<string, Counter>();
  private readonly histograms = new Map<string, Histogram>();
  private readonly gauges = new Map<string, { instrument: ObservableGauge; values: Measurement[] }>();
  /** Measurements of metrics that no definition names (a bug upstream), counted not thrown. */
  unknownMetrics = 0;

  constructor(private readonly meter: Meter) {}

  consume(batch: MeasurementBatch): void {
    for (const name of batch.gaugesReplaced) {
      const g = this.gauges.get(name);
      if (g) g.values = [];
    }
    for (const m of batch.measurements) {
      const def = METRICS.get(m.metric);
      if (!def) {
        this.unknownMetrics++;
        continue;
      }
      const attrs = m.attributes as Attributes;
      switch (def.kind) {
        case 'counter':
          this.counter(def).add(m.value, attrs);
          break;
        case 'histogram':
          this.histogram(def).record(m.value, attrs);
          break;
        case 'gauge':
          this.gauge(def).values.push(m);
          break;
      }
    }
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

  private gauge(def: MetricDefinition): { instrument: ObservableGauge; values: Measurement[] } {
    let g = this.gauges.get(def.name);
    if (!g) {
      const instrument = this.meter.createObservableGauge(def.name, { unit: def.unit, description: def.description });
      const entry = { instrument, values: [] as Measurement[] };
      instrument.addCallback((result: ObservableResult) => {
        for (const m of entry.values) result.observe(m.value, m.attributes as Attributes);
      });
      this.gauges.set(def.name, entry);
      g = entry;
    }
    return g;
  }
}

/** Sends every batch to each consumer (one receiver feeding several pipelines, one pipeline several exporters). */
export class FanOut implements MeasurementConsumer {
  constructor(private readonly consumers: readonly MeasurementConsumer[]) {}
  consume(batch: MeasurementBatch): void {
    for (const c of this.consumers) c.consume(batch);
  }
}
