/** Exporter factories: `otlp` (gRPC push), `prometheus` (pull), `debug` (console top-flows table). */
import type { MetricsExporterFactory } from '../pipeline/component';
import { debugExporterFactory } from './debug';
import { otlpExporterFactory } from './otlp';
import { prometheusExporterFactory } from './prometheus';

export { debugExporterFactory, renderTopFlows, TopFlowsConsoleExporter, type DebugExporterConfig, type TopFlowsState } from './debug';
export { otlpExporterFactory, otlpGrpcOptions, type OtlpExporterConfig, type OtlpMetricsExporter } from './otlp';
export {
  prometheusExporterFactory,
  prometheusListenAddress,
  type PrometheusExporterConfig,
  type PrometheusMetricsExporter,
} from './prometheus';
export { ExportFailureTracker, FailureCountingExporter } from './export-failures';

/** type → factory, for the exporters section of the component registry. */
export const exporterFactories: Readonly<Record<string, MetricsExporterFactory<unknown>>> = {
  [otlpExporterFactory.type]: otlpExporterFactory,
  [prometheusExporterFactory.type]: prometheusExporterFactory,
  [debugExporterFactory.type]: debugExporterFactory,
};
