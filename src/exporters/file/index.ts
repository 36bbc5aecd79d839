/**
 * `file` exporter, after the Collector's: every `export_interval`, one line
 * of OTLP JSON (an ExportMetricsServiceRequest, as @opentelemetry/otlp-transformer
 * encodes it: lowerCamelCase fields, 64-bit times as decimal strings, enums
 * as numbers) is appended to `path`. Lines are buffered and written every
 * `flush_interval` (and on flush/shutdown); the file rotates by size
 * (rotating-writer.ts).
 *
 * In a logs pipeline, each batch of log records becomes one line of OTLP
 * JSON (an ExportLogsServiceRequest) in the same file, with the same
 * buffering and rotation, as the Collector's file exporter writes every
 * signal to its one file.
 *
 * Options: `path` (required), `format` (json), `append`, `rotation.max_megabytes`,
 * `rotation.max_backups`, `rotation.localtime`, `flush_interval`, plus
 * flowtel's `export_interval` and `temporality`.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { JsonLogsSerializer, JsonMetricsSerializer } from '@opentelemetry/otlp-transformer';
import type { Resource } from '@opentelemetry/resources';
import { PeriodicExportingMetricReader, type AggregationTemporality, type InstrumentType, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { describeSchema, schemaDefaults, validateObject, type Schema, type SchemaValue } from '../../config/schema';
import { isConfigMap } from '../../config/types';
import type { ComponentFactory, ExporterContext, MetricsExporter } from '../../pipeline/component';
import type { LogBatch, LogsExporter } from '../../pipeline/logs';
import { buildResource } from '../../telemetry/resource';
import { ExportFailureTracker } from '../export-failures';
import { settled, toReadableLogRecords } from '../logs/records';
import { temporalitySelector } from '../otlp-env';
import { RotatingFileWriter, type RotationSettings } from './rotating-writer';

export { RotatingFileWriter, type RotatingFileWriterOptions, type RotationSettings } from './rotating-writer';

/** The Collector's max_megabytes when `rotation` is written without it. */
export const DEFAULT_ROTATION_MEGABYTES = 100;
const MEGABYTE = 1024 * 1024;

const FILE_SCHEMA = {
  path: { type: 'string', required: true, description: 'File the metrics (and log records) are written to (created if missing; its directory must exist).' },
  format: {
    type: 'enum',
    values: ['json'],
    default: 'json',
    description: 'json: OTLP JSON, one ExportMetricsServiceRequest (or, from a logs pipeline, ExportLogsServiceRequest) per line, as the Collector\'s file exporter writes it.',
  },
  append: {
    type: 'boolean',
    default: false,
    description: 'Keep what the file already holds (true) or truncate it at start (false). With rotation the file is always appended to, as in the Collector.',
  },
  rotation: {
    type: 'object',
    description: 'Rotation by size; on when this section is written.',
    schema: {
      max_megabytes: {
        type: 'number',
        min: 0.0001,
        docDefault: `${DEFAULT_ROTATION_MEGABYTES} when rotation is written, else no rotation`,
        description: 'Rotate before the file would grow past this many MiB (fractions allowed: 0.5 = 512 KiB).',
      },
      max_backups: { type: 'number', integer: true, min: 0, default: 100, description: 'How many rotated files (metrics-2024-05-01T10-00-00.000.json for metrics.json) are kept, the newest; 0 keeps all.' },
      localtime: { type: 'boolean', default: false, description: 'Local time instead of UTC in the names of rotated files.' },
    },
  },
  flush_interval: { type: 'duration', default: '1s', description: 'How often buffered lines are written to the file.' },
  export_interval: { type: 'duration', minMs: 100, default: '10s', description: 'How often metrics are collected and written.' },
  temporality: {
    type: 'enum',
    values: ['cumulative', 'delta', 'lowmemory'],
    default: 'cumulative',
    description: 'Aggregation temporality of the written data, as for otlp.',
  },
} as const satisfies Schema;

export type FileExporterConfig = SchemaValue<typeof FILE_SCHEMA>;

export interface FileMetricsExporter extends MetricsExporter {
  readonly path: string;
  /** Lines (export requests) written to the file. */
  readonly written: number;
  /** Lines that could not be encoded or written (disk full, file removed, …). */
  readonly exportFailures: number;
}

function validateFileConfig(raw: unknown, path: string): FileExporterConfig {
  const config = validateObject(raw, path, FILE_SCHEMA);
  const rotationWritten = isConfigMap(raw) && raw.rotation !== undefined && raw.rotation !== null;
  if (rotationWritten && config.rotation.max_megabytes === undefined) config.rotation.max_megabytes = DEFAULT_ROTATION_MEGABYTES;
  return config;
}

function rotationOf(config: FileExporterConfig): RotationSettings | undefined {
  const mb = config.rotation.max_megabytes;
  if (mb === undefined) return undefined;
  return { maxBytes: Math.max(1, Math.floor(mb * MEGABYTE)), maxBackups: config.rotation.max_backups, localTime: config.rotation.localtime };
}

/** A PushMetricExporter that buffers OTLP JSON lines for a RotatingFileWriter. */
export class OtlpJsonFileExporter implements PushMetricExporter {
  readonly selectAggregationTemporality: (type: InstrumentType) => AggregationTemporality;
  written = 0;
  private buffered: Buffer[] = [];
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly writer: RotatingFileWriter,
    private readonly tracker: ExportFailureTracker,
    temporality: (type: InstrumentType) => AggregationTemporality,
  ) {
    this.selectAggregationTemporality = temporality;
  }

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    let encoded: Uint8Array | undefined;
    try {
      encoded = JsonMetricsSerializer.serializeRequest(metrics);
    } catch (error) {
      const result: ExportResult = { code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) };
      this.tracker.record(result);
      resultCallback(result);
      return;
    }
    if (encoded === undefined) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('nothing to write: the batch could not be encoded') });
      return;
    }
    this.pushLine(encoded);
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  /** One ExportLogsServiceRequest line for a batch of log records (an encoding failure is counted). */
  exportLogs(batch: LogBatch, resource: Resource): void {
    if (batch.records.length === 0) return;
    try {
      const encoded = JsonLogsSerializer.serializeRequest(toReadableLogRecords(batch.records, resource));
      if (encoded === undefined) throw new Error('the log records could not be encoded');
      this.pushLine(encoded);
    } catch (error) {
      this.tracker.record({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  private pushLine(encoded: Uint8Array): void {
    this.buffered.push(Buffer.concat([Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength), Buffer.from('\n')]));
  }

  /** Write what is buffered (one write at a time). */
  flush(): Promise<void> {
    const run = this.flushing.then(async () => {
      const lines = this.buffered;
      if (lines.length === 0) return;
      this.buffered = [];
      try {
        await this.writer.write(lines);
        this.written += lines.length;
        this.tracker.record({ code: ExportResultCode.SUCCESS });
      } catch (error) {
        // Dropped, not kept: a full disk must not grow the agent's memory.
        for (let i = 0; i < lines.length; i++) {
          this.tracker.record({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
        }
      }
    });
    this.flushing = run;
    return run;
  }

  forceFlush(): Promise<void> {
    return this.flush();
  }

  async shutdown(): Promise<void> {
    await this.flush();
  }
}

function createFileExporter(config: FileExporterConfig, ctx: ExporterContext): FileMetricsExporter {
  const what = `exporter ${ctx.id}`;
  const writer = new RotatingFileWriter({ path: config.path, append: config.append, rotation: rotationOf(config) });
  const tracker = new ExportFailureTracker(ctx.logger, what);
  const exporter = new OtlpJsonFileExporter(writer, tracker, temporalitySelector(config.temporality));
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: config.export_interval, exportTimeoutMillis: config.export_interval, metricProducers: ctx.metricProducers });
  let timer: NodeJS.Timeout | undefined;
  let opened = false;
  let stopped = false;
  let resource: Resource = buildResource({});
  const logs: LogsExporter = {
    useResource(r) {
      resource = r;
    },
    consumeLogs(batch) {
      if (opened && !stopped) exporter.exportLogs(batch, resource);
    },
    flushLogs: () => exporter.flush(),
  };
  return {
    id: ctx.id,
    reader,
    logs,
    path: config.path,
    get written() {
      return exporter.written;
    },
    get exportFailures() {
      return tracker.failures;
    },
    async start() {
      try {
        await writer.open();
      } catch (error) {
        throw new Error(`${what}: cannot open ${config.path}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
      resource = await settled(resource);
      opened = true;
      timer = setInterval(() => void exporter.flush(), config.flush_interval);
      timer.unref();
      ctx.logger.debug({ path: config.path, rotation: rotationOf(config) ?? null }, `${what}: writing OTLP JSON to ${config.path}`);
    },
    async shutdown() {
      if (stopped) return;
      stopped = true;
      if (timer) clearInterval(timer);
      try {
        // A reader already shut down by its MeterProvider only logs; it flushes the last export otherwise.
        await reader.shutdown();
      } catch (error) {
        ctx.logger.warn({ err: error }, `${what}: shutdown failed`);
      }
      if (opened) {
        await exporter.flush();
        await writer.close();
      }
    },
  };
}

export const fileExporterFactory: ComponentFactory<FileExporterConfig, FileMetricsExporter> = {
  kind: 'exporter',
  type: 'file',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: describeSchema(FILE_SCHEMA),
  // path has no default (required), as in the Collector.
  defaultConfig: () => ({ ...schemaDefaults(FILE_SCHEMA), path: '' }),
  validate: validateFileConfig,
  create: createFileExporter,
};
