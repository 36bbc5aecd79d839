/**
 * Exporter factories: `otlp` (OTLP/gRPC push), `otlphttp` (OTLP/HTTP push),
 * `file` (OTLP JSON lines), `prometheus` (pull), `debug` (console top-flows
 * table). The push OTLP exporters share the Collector's sending queue and
 * retries (retry/).
 */
import type { MetricsExporterFactory } from '../pipeline/component';
import { debugExporterFactory } from './debug';
import { fileExporterFactory } from './file';
import { otlpExporterFactory } from './otlp';
import { otlpHttpExporterFactory } from './otlphttp';
import { prometheusExporterFactory } from './prometheus';

export { debugExporterFactory, renderTopFlows, TopFlowsConsoleExporter, type DebugExporterConfig, type TopFlowsState } from './debug';
export { otlpExporterFactory, otlpGrpcOptions, type OtlpExporterConfig, type OtlpMetricsExporter } from './otlp';
export { otlpHttpExporterFactory, otlpHttpLogsUrl, otlpHttpMetricsUrl, type OtlpHttpExporterConfig, type OtlpHttpMetricsExporter } from './otlphttp';
export { fileExporterFactory, type FileExporterConfig, type FileMetricsExporter } from './file';
export {
  prometheusExporterFactory,
  prometheusListenAddress,
  type PrometheusExporterConfig,
  type PrometheusMetricsExporter,
} from './prometheus';
export { ExportFailureTracker, FailureCountingExporter } from './export-failures';
export { QueuedRetryExporter, type QueuedExporterStats, type QueuedMetricsExporter, type MetricsSender, type SendOutcome } from './retry';

/** type → factory, for the exporters section of the component registry. */
export const exporterFactories: Readonly<Record<string, MetricsExporterFactory<unknown>>> = {
  [otlpExporterFactory.type]: otlpExporterFactory,
  [otlpHttpExporterFactory.type]: otlpHttpExporterFactory,
  [fileExporterFactory.type]: fileExporterFactory,
  [prometheusExporterFactory.type]: prometheusExporterFactory,
  [debugExporterFactory.type]: debugExporterFactory,
};
