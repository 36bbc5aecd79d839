/**
 * The agent's own metrics, like the Collector's `otelcol_*` but `flowtel_*`
 * (`service.telemetry.metrics`).
 *
 * Where they go:
 * - to every `prometheus` exporter of the pipelines (as observable
 *   instruments on that exporter's MeterProvider: read at scrape time), and
 * - if `address` is set, to a Prometheus endpoint of their own that serves
 *   nothing else, together with the receivers' own `flowtel_*` measurements
 *   (flowtel_ebpf_*, flowtel_tracked_connections, ...), which otherwise only
 *   travel down the receivers' pipelines like any other measurement.
 * Push exporters (otlp, debug) do not get them, except for the receivers'
 * `flowtel_*` measurements that are part of the pipelines' data.
 *
 * What each level emits (each includes the one before):
 * - none: nothing; the receivers' `flowtel_*` measurements are removed from
 *   their batches too, and `address` is not served.
 * - basic: flowtel_process_{memory_rss,heap_used,cpu_seconds,uptime},
 *   flowtel_receiver_accepted_measurements, and the exporter counters
 *   (flowtel_exporter_*) of exporters that keep them; for logs pipelines,
 *   flowtel_receiver_{accepted,refused,dropped}_log_records of the receivers
 *   in one, and flowtel_exporter_{sent,send_failed,dropped}_log_records and
 *   flowtel_exporter_log_queue_size of the exporters in one whose logs side
 *   keeps them (otlp, otlphttp), and flowtel_processor_batch_* of the batch
 *   processors in one.
 * - normal (default): flowtel_event_loop_delay (quantiles 0.5, 0.99),
 *   flowtel_receiver_failed_collections.
 * - detailed: flowtel_event_loop_delay also at 0.9 and 1 (the maximum).
 *
 * Exporter counters are read duck-typed from the exporter instance, only
 * those it has (src/exporters/retry: QueuedMetricsExporter): `sent`,
 * `failed`, `dropped` (batches), `retries`, `queueSize()` (or a number), and
 * `exportSuccesses` / `exportFailures` (attempts).
 */
import type { Attributes, BatchObservableResult, Meter, Observable } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { Server } from 'node:http';
import { MeterProvider, type MetricReader } from '@opentelemetry/sdk-metrics';
import type { Logger } from 'pino';
import { formatHostPort, parseHostPort } from '../exporters/endpoint';
import { prometheusScrapeHandler } from '../exporters/prometheus';
import { closeServer, createSecureServer, listen, schemeOf, type HttpServerSecurity } from '../util/http-server';
import { metricDefinition } from '../metrics/definitions';
import type { MetricsExporter, MetricsReceiver } from '../pipeline/component';
import { InstrumentSink } from '../pipeline/instrument-sink';
import { valueCount, type Measurement, type MeasurementBatch } from '../pipeline/measurements';
import type { LogBatch } from '../pipeline/logs';
import { DEFAULT_METRICS_LEVEL, levelAtLeast, type MetricsLevel } from './levels';
import type { LogsRemovalReason, PipelineMembers, ProcessorInService, ServiceObserver, ServiceView } from './observer';
import { EventLoopDelayMonitor, sampleProcess, type ProcessSample } from './process-metrics';
import { buildResource } from './resource';

export const SELF_TELEMETRY_METRICS_PATH = '/metrics';
/** Meter (instrumentation scope) name of the self-telemetry instruments. */
export const SELF_TELEMETRY_SCOPE = 'flowtel';

export interface SelfTelemetryOptions {
  readonly level?: MetricsLevel;
  /** host:port of a Prometheus endpoint serving only self-telemetry. */
  readonly address?: string;
  /** TLS and authentication of that endpoint (files already read; default: plain HTTP, no auth). */
  readonly security?: HttpServerSecurity;
  readonly logger: Logger;
  /** Failed collections of a receiver (the StatusTracker counts them). */
  readonly receiverFailures?: (receiverId: string) => number;
  /** Which exporters get the self-telemetry instruments. Default: Prometheus (pull) exporters. */
  readonly isPrometheus?: (exporter: MetricsExporter) => boolean;
  /** Process numbers (tests). */
  readonly sampleProcess?: () => ProcessSample;
}

const BASIC_METRICS = [
  'flowtel_process_memory_rss',
  'flowtel_process_heap_used',
  'flowtel_process_cpu_seconds',
  'flowtel_process_uptime',
  'flowtel_receiver_accepted_measurements',
  'flowtel_exporter_sent_batches',
  'flowtel_exporter_send_failed_batches',
  'flowtel_exporter_dropped_batches',
  'flowtel_exporter_retries',
  'flowtel_exporter_queue_size',
  'flowtel_exporter_sent_requests',
  'flowtel_exporter_send_failed_requests',
  'flowtel_receiver_accepted_log_records',
  'flowtel_receiver_refused_log_records',
  'flowtel_receiver_dropped_log_records',
  'flowtel_exporter_sent_log_records',
  'flowtel_exporter_send_failed_log_records',
  'flowtel_exporter_dropped_log_records',
  'flowtel_exporter_log_queue_size',
  'flowtel_processor_batch_sent_batches',
  'flowtel_processor_batch_sent_log_records',
  'flowtel_processor_batch_held_log_records',
] as const;
const NORMAL_METRICS = ['flowtel_event_loop_delay', 'flowtel_receiver_failed_collections'] as const;

/** Names of the metrics self-telemetry observes at `level` (not counting the receivers' own flowtel_* measurements). */
export function selfTelemetryMetrics(level: MetricsLevel): string[] {
  if (level === 'none') return [];
  return [...BASIC_METRICS, ...(levelAtLeast(level, 'normal') ? NORMAL_METRICS : [])];
}

/** Measurements of the agent itself (receivers' flowtel_* included): they pass processors unchanged. */
export function isSelfTelemetry(metric: string): boolean {
  return metric.startsWith('flowtel_');
}

/** Exporter counters read duck-typed: property → metric. */
const EXPORTER_COUNTERS: ReadonlyArray<readonly [string, string]> = [
  ['sent', 'flowtel_exporter_sent_batches'],
  ['failed', 'flowtel_exporter_send_failed_batches'],
  ['dropped', 'flowtel_exporter_dropped_batches'],
  ['retries', 'flowtel_exporter_retries'],
  ['queueSize', 'flowtel_exporter_queue_size'],
  ['exportSuccesses', 'flowtel_exporter_sent_requests'],
  ['exportFailures', 'flowtel_exporter_send_failed_requests'],
];

/** Counters of an exporter's logs side (src/exporters/logs/queued.ts), read duck-typed from `exporter.logs`. */
const EXPORTER_LOG_COUNTERS: ReadonlyArray<readonly [string, string]> = [
  ['sentRecords', 'flowtel_exporter_sent_log_records'],
  ['failedRecords', 'flowtel_exporter_send_failed_log_records'],
  ['droppedRecords', 'flowtel_exporter_dropped_log_records'],
  ['queueSize', 'flowtel_exporter_log_queue_size'],
];

/** Whether a pipeline carries logs (its signal, or its id: `logs`, `logs/<name>`). */
function isLogsPipeline(p: PipelineMembers): boolean {
  return (p.signal ?? (p.id.split('/')[0] === 'logs' ? 'logs' : 'metrics')) === 'logs';
}

function readNumber(target: object, property: string): number | undefined {
  let v: unknown;
  try {
    v = (target as Record<string, unknown>)[property];
    if (typeof v === 'function') v = (v as () => unknown).call(target);
  } catch {
    return undefined;
  }
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function isPrometheusExporter(exporter: MetricsExporter): boolean {
  return exporter.reader instanceof PrometheusExporter;
}

/** The dedicated endpoint: its own MeterProvider whose reader is a Prometheus server. */
interface Endpoint {
  readonly address: string;
  readonly reader: PrometheusExporter;
  readonly provider: MeterProvider;
  readonly sink: InstrumentSink;
  readonly security: HttpServerSecurity;
  server?: Server;
}

export class SelfTelemetry implements ServiceObserver {
  readonly level: MetricsLevel;
  private readonly accepted = new Map<string, number>();
  /** Log records per receiver id ('' for records merged from several receivers). */
  private readonly logRecords: Record<'accepted' | LogsRemovalReason, Map<string, number>> = { accepted: new Map(), refused: new Map(), dropped: new Map() };
  /** Receivers and exporters in a logs pipeline. */
  private logsReceivers = new Set<string>();
  private logsExporters = new Set<string>();
  private exporters: ReadonlyArray<MetricsExporter> = [];
  private processors: readonly ProcessorInService[] = [];
  /** Receivers in service (counts of receivers gone after a reload are not reported). */
  private receiverIds: string[] = [];
  private readonly registered = new WeakSet<MeterProvider>();
  private readonly eventLoop: EventLoopDelayMonitor;
  private readonly endpoint?: Endpoint;
  private readonly sample: () => ProcessSample;
  private started = false;
  /** Ids of the pipelines' exporters that got the instruments. */
  readonly servedBy = new Set<string>();

  constructor(private readonly options: SelfTelemetryOptions) {
    this.level = options.level ?? DEFAULT_METRICS_LEVEL;
    this.sample = options.sampleProcess ?? sampleProcess;
    this.eventLoop = new EventLoopDelayMonitor(levelAtLeast(this.level, 'detailed') ? [0.5, 0.9, 0.99, 1] : [0.5, 0.99]);
    if (options.address !== undefined && this.level !== 'none') this.endpoint = createEndpoint(options.address, options.security ?? {});
    if (this.endpoint) this.register(this.endpoint.provider.getMeter(SELF_TELEMETRY_SCOPE));
  }

  /** `http(s)://host:port/metrics` of the dedicated endpoint (127.0.0.1 for a wildcard host). */
  get url(): string | undefined {
    if (!this.endpoint) return undefined;
    const a = parseHostPort(this.endpoint.address) as { host: string; port: number };
    const host = a.host === '0.0.0.0' || a.host === '::' ? '127.0.0.1' : a.host;
    return `${schemeOf(this.endpoint.security)}://${formatHostPort({ host, port: a.port })}${SELF_TELEMETRY_METRICS_PATH}`;
  }

  receiverCreated(receiver: MetricsReceiver): void {
    if (!this.accepted.has(receiver.id)) this.accepted.set(receiver.id, 0);
  }

  exporterCreated(exporter: MetricsExporter, provider: MeterProvider): void {
    if (this.level === 'none' || this.registered.has(provider)) return;
    if (!(this.options.isPrometheus ?? isPrometheusExporter)(exporter)) return;
    this.registered.add(provider);
    this.register(provider.getMeter(SELF_TELEMETRY_SCOPE));
    this.servedBy.add(exporter.id);
  }

  serviceChanged(view: ServiceView): void {
    this.receiverIds = [...view.receivers.keys()];
    this.exporters = [...view.exporters.values()];
    if (view.processors) this.processors = view.processors;
    if (view.pipelines) {
      const logs = view.pipelines.filter(isLogsPipeline);
      this.logsReceivers = new Set(logs.flatMap((p) => p.receivers));
      this.logsExporters = new Set(logs.flatMap((p) => p.exporters));
    }
    for (const id of this.receiverIds) if (!this.accepted.has(id)) this.accepted.set(id, 0);
  }

  receiverBatch(receiverId: string, batch: MeasurementBatch): MeasurementBatch {
    let values = 0;
    for (const m of batch.measurements) values += valueCount(m);
    this.accepted.set(receiverId, (this.accepted.get(receiverId) ?? 0) + values);
    if (this.level === 'none') return withoutSelfTelemetry(batch);
    if (this.endpoint) {
      const own = batch.measurements.filter((m) => isSelfTelemetry(m.metric));
      const gauges = batch.gaugesReplaced.filter(isSelfTelemetry);
      if (own.length > 0 || gauges.length > 0) this.endpoint.sink.consume({ ...batch, measurements: own, gaugesReplaced: gauges, source: batch.source ?? receiverId });
    }
    return batch;
  }

  receiverLogs(receiverId: string, batch: LogBatch): void {
    this.count('accepted', receiverId, batch.records.length);
  }

  logsRemoved(source: string | undefined, count: number, reason: LogsRemovalReason): void {
    this.count(reason, source ?? '', count);
  }

  private count(kind: 'accepted' | LogsRemovalReason, receiverId: string, n: number): void {
    const m = this.logRecords[kind];
    m.set(receiverId, (m.get(receiverId) ?? 0) + n);
  }

  /** Log records of a receiver so far: handed to its logs pipelines, refused (memory_limiter), dropped (filter). */
  logRecordCounts(receiverId: string): { accepted: number; refused: number; dropped: number } {
    return {
      accepted: this.logRecords.accepted.get(receiverId) ?? 0,
      refused: this.logRecords.refused.get(receiverId) ?? 0,
      dropped: this.logRecords.dropped.get(receiverId) ?? 0,
    };
  }

  /** Measurements a receiver sent in its batches so far. */
  acceptedMeasurements(receiverId: string): number {
    return this.accepted.get(receiverId) ?? 0;
  }

  async start(): Promise<void> {
    if (this.started || this.level === 'none') return;
    this.started = true;
    if (levelAtLeast(this.level, 'normal')) this.eventLoop.start();
    const endpoint = this.endpoint;
    if (endpoint) {
      const serve = prometheusScrapeHandler(endpoint.reader, new PrometheusSerializer(), this.options.logger, 'self-telemetry');
      const server = createSecureServer(endpoint.security, (req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path !== SELF_TELEMETRY_METRICS_PATH) return void res.writeHead(404).end();
        if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { allow: 'GET, HEAD' }).end();
        void serve(res);
      });
      server.keepAliveTimeout = 5_000;
      const a = parseHostPort(endpoint.address) as { host: string; port: number };
      try {
        await listen(server, a.host, a.port);
      } catch (error) {
        this.eventLoop.stop();
        this.started = false;
        throw new Error(listenErrorMessage(endpoint.address, error), { cause: error });
      }
      server.on('error', (error) => this.options.logger.error({ err: error }, 'self-telemetry: server error'));
      server.on('tlsClientError', (error: Error) => this.options.logger.debug({ err: error.message }, 'self-telemetry: TLS handshake failed'));
      endpoint.server = server;
      this.options.logger.info(
        { endpoint: endpoint.address, tls: endpoint.security.tls !== undefined, auth: endpoint.security.auth !== undefined },
        `self-telemetry: serving Prometheus metrics at ${this.url}`,
      );
    }
  }

  async shutdown(): Promise<void> {
    this.eventLoop.stop();
    const server = this.endpoint?.server;
    if (this.endpoint) this.endpoint.server = undefined;
    if (server) await closeServer(server);
    if (this.endpoint) {
      try {
        await this.endpoint.provider.shutdown();
      } catch (error) {
        this.options.logger.warn({ err: error }, 'self-telemetry: endpoint shutdown failed');
      }
    }
    this.started = false;
  }

  /** The current value of every self-telemetry metric at this level (counters cumulative). */
  collect(): Measurement[] {
    const out: Measurement[] = [];
    if (this.level === 'none') return out;
    const p = this.sample();
    out.push(
      { metric: 'flowtel_process_memory_rss', value: p.rssBytes, attributes: {} },
      { metric: 'flowtel_process_heap_used', value: p.heapUsedBytes, attributes: {} },
      { metric: 'flowtel_process_cpu_seconds', value: p.cpuSeconds, attributes: {} },
      { metric: 'flowtel_process_uptime', value: p.uptimeSeconds, attributes: {} },
    );
    for (const receiver of this.receiverIds) out.push({ metric: 'flowtel_receiver_accepted_measurements', value: this.accepted.get(receiver) ?? 0, attributes: { receiver } });
    for (const e of this.exporters) {
      for (const [property, metric] of EXPORTER_COUNTERS) {
        const v = readNumber(e, property);
        if (v !== undefined) out.push({ metric, value: v, attributes: { exporter: e.id } });
      }
      if (!e.logs || !this.logsExporters.has(e.id)) continue;
      for (const [property, metric] of EXPORTER_LOG_COUNTERS) {
        const v = readNumber(e.logs, property);
        if (v !== undefined) out.push({ metric, value: v, attributes: { exporter: e.id } });
      }
    }
    for (const p of this.processors) {
      // batch processors in logs pipelines (duck-typed: sentBatches by trigger, sentRecords, heldRecords).
      if (p.pipeline.split('/')[0] !== 'logs') continue;
      const by = (p.instance as { sentBatches?: unknown }).sentBatches;
      if (by === null || typeof by !== 'object') continue;
      const attributes = { processor: p.id, pipeline: p.pipeline };
      for (const [trigger, n] of Object.entries(by as Record<string, unknown>)) {
        if (typeof n === 'number') out.push({ metric: 'flowtel_processor_batch_sent_batches', value: n, attributes: { ...attributes, trigger } });
      }
      const sent = readNumber(p.instance, 'sentRecords');
      if (sent !== undefined) out.push({ metric: 'flowtel_processor_batch_sent_log_records', value: sent, attributes });
      const held = readNumber(p.instance, 'heldRecords');
      if (held !== undefined) out.push({ metric: 'flowtel_processor_batch_held_log_records', value: held, attributes });
    }
    const logReceivers = this.receiverIds.filter((id) => this.logsReceivers.has(id));
    // Records merged from several receivers by a batch processor, then removed: no receiver attribute.
    if (this.logRecords.refused.has('') || this.logRecords.dropped.has('')) logReceivers.push('');
    for (const receiver of logReceivers) {
      const counts = this.logRecordCounts(receiver);
      const attributes: Record<string, string> = receiver === '' ? {} : { receiver };
      if (receiver !== '') out.push({ metric: 'flowtel_receiver_accepted_log_records', value: counts.accepted, attributes });
      out.push({ metric: 'flowtel_receiver_refused_log_records', value: counts.refused, attributes });
      out.push({ metric: 'flowtel_receiver_dropped_log_records', value: counts.dropped, attributes });
    }
    if (levelAtLeast(this.level, 'normal')) {
      for (const receiver of this.receiverIds) {
        out.push({ metric: 'flowtel_receiver_failed_collections', value: this.options.receiverFailures?.(receiver) ?? 0, attributes: { receiver } });
      }
      const q = this.eventLoop.quantilesSeconds();
      if (q) for (const [quantile, seconds] of q) out.push({ metric: 'flowtel_event_loop_delay', value: seconds, attributes: { quantile: String(quantile) } });
    }
    return out;
  }

  /** Observable instruments for every metric of the level on `meter`, read together at collection time. */
  private register(meter: Meter): void {
    const instruments = new Map<string, Observable>();
    for (const name of selfTelemetryMetrics(this.level)) {
      const def = metricDefinition(name);
      const options = { unit: def.unit, description: def.description };
      instruments.set(name, def.kind === 'counter' ? meter.createObservableCounter(name, options) : meter.createObservableGauge(name, options));
    }
    meter.addBatchObservableCallback((result) => this.observe(result, instruments), [...instruments.values()]);
  }

  private observe(result: BatchObservableResult, instruments: ReadonlyMap<string, Observable>): void {
    for (const m of this.collect()) {
      const instrument = instruments.get(m.metric);
      if (instrument) result.observe(instrument, m.value, m.attributes as Attributes);
    }
  }
}

function withoutSelfTelemetry(batch: MeasurementBatch): MeasurementBatch {
  if (!batch.measurements.some((m) => isSelfTelemetry(m.metric)) && !batch.gaugesReplaced.some(isSelfTelemetry)) return batch;
  return {
    ...batch,
    measurements: batch.measurements.filter((m) => !isSelfTelemetry(m.metric)),
    gaugesReplaced: batch.gaugesReplaced.filter((g) => !isSelfTelemetry(g)),
  };
}

function createEndpoint(address: string, security: HttpServerSecurity): Endpoint {
  const parsed = parseHostPort(address);
  if (typeof parsed === 'string') throw new Error(`service.telemetry.metrics.address: ${parsed}`);
  const reader = new PrometheusExporter({ host: parsed.host, port: parsed.port, endpoint: SELF_TELEMETRY_METRICS_PATH, preventServerStart: true });
  const provider = new MeterProvider({ resource: buildResource({}), readers: [reader as MetricReader] });
  return { address: formatHostPort(parsed), reader, provider, sink: new InstrumentSink(provider.getMeter(SELF_TELEMETRY_SCOPE)), security };
}

function listenErrorMessage(address: string, error: unknown): string {
  const code = error && typeof error === 'object' && 'code' in error ? (error as NodeJS.ErrnoException).code : undefined;
  const base = `self-telemetry: cannot listen on ${address}`;
  switch (code) {
    case 'EADDRINUSE':
      return `${base}: the port is already in use; set service.telemetry.metrics.address to a free port`;
    case 'EACCES':
      return `${base}: permission denied`;
    case 'EADDRNOTAVAIL':
      return `${base}: no local interface has that address`;
    default:
      return `${base}: ${error instanceof Error ? error.message : String(error)}`;
  }
}
