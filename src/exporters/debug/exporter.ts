/**
 * `debug` exporter (the Collector's name for the console exporter): every
 * `export_interval`, prints the top-flows table (see top-flows.ts) to stdout.
 *
 * Options:
 * - `verbosity`: `basic` | `normal` (the table; normal = basic) | `detailed`
 *   (the table, plus one JSON log line per data point via the agent logger).
 * - `top_n`: rows in the table (default 10).
 * - `export_interval`: default 10s.
 * - `output`: `stdout` (default) | `stderr`.
 *
 * In a logs pipeline it prints one line per log record as it arrives
 * (time, severity, event name, body; with `detailed` also the attributes as
 * JSON), on the same output.
 */
import { ExportResultCode, hrTimeToMilliseconds, type ExportResult } from '@opentelemetry/core';
import {
  AggregationTemporality,
  DataPointType,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import type { HrTime } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { ComponentFactory, ExporterContext, MetricsExporter } from '../../pipeline/component';
import type { LogsExporter } from '../../pipeline/logs';
import { formatLogLine } from '../logs/format';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../../config/schema';
import { renderTopFlows, type TopFlowsState } from './top-flows';

const DEBUG_SCHEMA = {
  verbosity: {
    type: 'enum',
    values: ['basic', 'normal', 'detailed'],
    default: 'basic',
    description: 'basic/normal: the top-flows table, and one line per log record; detailed: also every data point as a JSON log line, and each log record\'s attributes.',
  },
  top_n: { type: 'number', integer: true, min: 1, max: 1000, default: 10, description: 'Rows in the top-flows table.' },
  export_interval: { type: 'duration', minMs: 100, default: '10s', description: 'How often the table is printed.' },
  output: { type: 'enum', values: ['stdout', 'stderr'], default: 'stdout', description: 'Where the table and the log record lines go.' },
} as const satisfies Schema;

export type DebugExporterConfig = SchemaValue<typeof DEBUG_SCHEMA>;

export interface TopFlowsConsoleOptions {
  readonly topN: number;
  readonly write: (text: string) => void;
  /** Set for verbosity `detailed`: every data point is logged here. */
  readonly dataPointLogger?: Logger;
}

/** A PushMetricExporter that renders the top-flows table; asks for cumulative data. */
export class TopFlowsConsoleExporter implements PushMetricExporter {
  private state: TopFlowsState | undefined;

  constructor(private readonly options: TopFlowsConsoleOptions) {}

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    try {
      const result = renderTopFlows(this.state, metrics, { topN: this.options.topN });
      this.state = result.state;
      this.options.write(result.text);
      if (this.options.dataPointLogger) logDataPoints(this.options.dataPointLogger, metrics);
      resultCallback({ code: ExportResultCode.SUCCESS });
    } catch (error) {
      resultCallback({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  selectAggregationTemporality(): AggregationTemporality {
    return AggregationTemporality.CUMULATIVE;
  }

  async forceFlush(): Promise<void> {}

  async shutdown(): Promise<void> {}
}

/** One log line per data point: metric, unit, attributes, value (or histogram count/sum/min/max). */
export function logDataPoints(logger: Logger, metrics: ResourceMetrics): void {
  for (const scope of metrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      const base = { metric: metric.descriptor.name, unit: metric.descriptor.unit, scope: scope.scope.name };
      const timeOf = (endTime: HrTime): string => new Date(hrTimeToMilliseconds(endTime)).toISOString();
      switch (metric.dataPointType) {
        case DataPointType.HISTOGRAM:
          for (const p of metric.dataPoints) {
            const { count, sum, min, max } = p.value;
            logger.info({ ...base, time: timeOf(p.endTime), attributes: p.attributes, count, sum, min, max }, 'data point');
          }
          break;
        case DataPointType.EXPONENTIAL_HISTOGRAM:
          for (const p of metric.dataPoints) {
            const { count, sum, min, max } = p.value;
            logger.info({ ...base, time: timeOf(p.endTime), attributes: p.attributes, count, sum, min, max }, 'data point');
          }
          break;
        case DataPointType.GAUGE:
        case DataPointType.SUM:
          for (const p of metric.dataPoints) {
            logger.info({ ...base, time: timeOf(p.endTime), attributes: p.attributes, value: p.value }, 'data point');
          }
          break;
      }
    }
  }
}

function createDebugExporter(config: DebugExporterConfig, ctx: ExporterContext): MetricsExporter {
  const stream = config.output === 'stderr' ? process.stderr : process.stdout;
  const exporter = new TopFlowsConsoleExporter({
    topN: config.top_n,
    write: (text) => {
      stream.write(text);
    },
    ...(config.verbosity === 'detailed' ? { dataPointLogger: ctx.logger } : {}),
  });
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: config.export_interval, metricProducers: ctx.metricProducers });
  let stopped = false;
  const detailed = config.verbosity === 'detailed';
  const logs: LogsExporter = {
    useResource() {},
    consumeLogs(batch) {
      if (stopped || batch.records.length === 0) return;
      let text = '';
      for (const r of batch.records) text += `${formatLogLine(r, detailed)}\n`;
      stream.write(text);
    },
    async flushLogs() {},
  };
  return {
    id: ctx.id,
    reader,
    logs,
    async start() {},
    async shutdown() {
      if (stopped) return;
      stopped = true;
      try {
        await reader.shutdown();
      } catch (error) {
        ctx.logger.warn({ err: error }, `exporter ${ctx.id}: shutdown failed`);
      }
    },
  };
}

export const debugExporterFactory: ComponentFactory<DebugExporterConfig, MetricsExporter> = {
  kind: 'exporter',
  type: 'debug',
  stability: 'development',
  signals: ['metrics', 'logs'],
  options: describeSchema(DEBUG_SCHEMA),
  defaultConfig: () => validateObject(undefined, '', DEBUG_SCHEMA),
  validate: (raw, path) => validateObject(raw, path, DEBUG_SCHEMA),
  create: createDebugExporter,
};
