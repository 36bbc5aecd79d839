export { debugExporterFactory, logDataPoints, TopFlowsConsoleExporter, type DebugExporterConfig, type TopFlowsConsoleOptions } from './exporter';
export {
  attributeSetKey,
  renderTopFlows,
  TOP_FLOWS_METRICS,
  type FlowRow,
  type IntervalTotals,
  type TopFlowsOptions,
  type TopFlowsResult,
  type TopFlowsState,
} from './top-flows';
