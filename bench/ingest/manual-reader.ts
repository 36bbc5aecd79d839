/** A MetricReader collected on demand, cumulative, as an exporter's reader would be (for the ingest benches). */
import { MetricReader, AggregationTemporality, type MetricProducer } from '@opentelemetry/sdk-metrics';

export class ManualReader extends MetricReader {
  constructor(metricProducers: MetricProducer[]) {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE, metricProducers });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}
