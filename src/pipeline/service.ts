/**
 * The running agent: components built from a validated config and wired as
 * the Collector wires them. Each receiver is created once and fans out to
 * every pipeline that lists it; each pipeline fans out to its exporters; each
 * exporter owns a MeterProvider whose reader it is, so an exporter listed by
 * two pipelines receives both.
 */
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { Logger } from 'pino';
import type { ValidatedConfig } from '../config/validate';
import { buildResource } from '../telemetry/resource';
import type { Resource } from '@opentelemetry/resources';
import {
  isBufferingProcessor,
  type ComponentContext,
  type ExporterContext,
  type MetricsExporter,
  type MetricsProcessor,
  type MetricsReceiver,
  type PipelineProcessor,
  type ReceiverContext,
} from './component';
import { FanOut, InstrumentSink } from './instrument-sink';
import { FlowMetrics, FLOWTEL_SCOPE } from './flow-metrics';
import type { MeasurementBatch, MeasurementConsumer } from './measurements';
import { isLogsProcessor, LogFanOut, type LogBatch, type LogConsumer, type LogsProcessor } from './logs';
import { exporterResource, isResourceTransformer, type ResourceTransformer } from './pipeline-resource';
import { FilterProcessor, type FilterPushdown } from '../processors/filter';
import { isBatchProcessor } from '../processors/batch';
import type { LogsRemovalReason, ProcessorInService, ServiceObserver, ServiceView } from '../telemetry/observer';
import { DomainNames } from './domain-names';

/** A pipeline's processors, in order, then its exporters. */
class ProcessorChain implements MeasurementConsumer {
  constructor(
    private readonly processors: readonly MetricsProcessor[],
    private readonly next: MeasurementConsumer,
  ) {}
  consume(batch: MeasurementBatch): void {
    let b = batch;
    for (const p of this.processors) b = p.process(b);
    this.next.consume(b);
  }
}

/** Records a logs processor removed: by the receiver they came from (absent: merged by a batch processor). */
type LogsRemoved = (source: string | undefined, count: number, reason: LogsRemovalReason) => void;

/** A logs pipeline's processors (their processLogs), in order, then its exporters' logs sides. */
class LogProcessorChain implements LogConsumer {
  constructor(
    private readonly processors: readonly LogsProcessor[],
    private readonly next: LogConsumer,
    private readonly removed: LogsRemoved,
  ) {}
  get active(): boolean {
    return this.next.active !== false;
  }
  consumeLogs(batch: LogBatch): void {
    let b = batch;
    for (const p of this.processors) {
      const before = b.records.length;
      b = p.processLogs(b);
      if (b.records.length < before) this.removed(batch.source, before - b.records.length, p.refuses ? 'refused' : 'dropped');
      if (b.records.length === 0) return;
    }
    this.next.consumeLogs(b);
  }
}

/**
 * A metrics pipeline's processors in order, then `next`. A buffering
 * processor (batch) splits the chain: what is before it runs on each
 * incoming batch, what is after it on each batch it hands on.
 */
function metricsChain(processors: readonly PipelineProcessor[], next: MeasurementConsumer): MeasurementConsumer {
  let consumer = next;
  let run: MetricsProcessor[] = [];
  const close = (): void => {
    if (run.length > 0) consumer = new ProcessorChain(run, consumer);
    run = [];
  };
  for (let i = processors.length - 1; i >= 0; i--) {
    const p = processors[i] as PipelineProcessor;
    if (isBufferingProcessor(p)) {
      close();
      consumer = p.connect(consumer);
    } else {
      run.unshift(p);
    }
  }
  close();
  return consumer;
}

/** The same for a logs pipeline (only processors that take logs are in it: validation). */
function logsChain(processors: readonly PipelineProcessor[], next: LogConsumer, removed: LogsRemoved): LogConsumer {
  let consumer = next;
  let run: LogsProcessor[] = [];
  const close = (): void => {
    if (run.length > 0) consumer = new LogProcessorChain(run, consumer, removed);
    run = [];
  };
  for (let i = processors.length - 1; i >= 0; i--) {
    const p = processors[i] as PipelineProcessor;
    if (isBufferingProcessor(p)) {
      close();
      consumer = p.connectLogs(consumer);
    } else if (isLogsProcessor(p)) {
      run.unshift(p);
    }
  }
  close();
  return consumer;
}

/** Log records nobody takes (a receiver in no logs pipeline). */
const NO_LOGS: LogConsumer = { active: false, consumeLogs: () => undefined };

/**
 * What a receiver may filter out at the source: only what every pipeline it
 * feeds would drop, so only when each of them starts with a filter processor
 * of the same configuration.
 */
function commonFilter(firsts: ReadonlyArray<{ config: unknown; instance: PipelineProcessor } | undefined>): FilterPushdown | undefined {
  const first = firsts[0];
  if (!first || !(first.instance instanceof FilterProcessor)) return undefined;
  const key = JSON.stringify(first.config);
  if (!firsts.every((f) => f && f.instance instanceof FilterProcessor && JSON.stringify(f.config) === key)) return undefined;
  return first.instance.kernelPushdown();
}

/** Series per metric and exporter before new ones go to the overflow series. */
export const DEFAULT_CARDINALITY_LIMIT = 100_000;

interface ExporterRuntime {
  exporter: MetricsExporter;
  provider: MeterProvider;
  sink: MeasurementConsumer;
  /** The validated config it was built from (JSON), to know on reload whether it changed. */
  configKey: string;
}

interface ReceiverRuntime {
  receiver: MetricsReceiver;
  /** The receiver's `next`: retargeted on reload, so a kept receiver keeps its state. */
  relay: Relay;
  /** The receiver's `logs`, retargeted likewise. */
  logRelay: LogRelay;
  /** Its config and the filter it pushed down (JSON): a change means a restart. */
  configKey: string;
}

/** A consumer whose target can be swapped (config reload). */
class Relay implements MeasurementConsumer {
  constructor(public target: MeasurementConsumer) {}
  consume(batch: MeasurementBatch): void {
    this.target.consume(batch);
  }
}

/** The same for log records: a kept receiver's `ctx.logs` follows the new logs pipelines. */
class LogRelay implements LogConsumer {
  constructor(public target: LogConsumer) {}
  get active(): boolean {
    return this.target.active !== false;
  }
  consumeLogs(batch: LogBatch): void {
    this.target.consumeLogs(batch);
  }
}

/** What a receiver is wired to: its metrics and logs pipelines, and the filter they all start with. */
interface ReceiverInput {
  next: MeasurementConsumer;
  logs: LogConsumer;
  filter?: FilterPushdown;
}

/** The pipelines of one config: processors per pipeline, and each receiver's fan-out to them. */
interface Wiring {
  processors: PipelineProcessor[];
  /** The same, with the pipeline each is in (for self-telemetry). */
  processorsInService: ProcessorInService[];
  /** receiver id → its consumers and the filter every pipeline it feeds starts with. */
  receiverInputs: Map<string, ReceiverInput>;
  /** exporter id → most data points per request (batch processors' send_batch_max_size), for every exporter in use. */
  requestLimits: Map<string, number | undefined>;
}

export class Service {
  private exporters = new Map<string, ExporterRuntime>();
  private receivers = new Map<string, ReceiverRuntime>();
  private processors: PipelineProcessor[] = [];
  private processorsInService: ProcessorInService[] = [];
  private pipelines: ValidatedConfig['pipelines'] = [];
  private started = false;
  private readonly resource = buildResource({});
  /** Names from DNS answers, shared by this service's receivers (kept across reloads). */
  private readonly domains = new DomainNames();
  /** Self-telemetry and component status (src/telemetry/observer.ts, attachTelemetry). */
  private observer?: ServiceObserver;

  private constructor(private readonly logger: Logger) {}

  static build(config: ValidatedConfig, logger: Logger): Service {
    const svc = new Service(logger);
    svc.pipelines = config.pipelines;
    svc.exporters = svc.buildExporters(config, new Map());
    const wiring = svc.wire(config, svc.exporters);
    svc.processors = wiring.processors;
    svc.processorsInService = wiring.processorsInService;
    applyRequestLimits(svc.exporters, wiring.requestLimits);
    for (const [id, input] of wiring.receiverInputs) svc.receivers.set(id, svc.createReceiver(config, id, input));
    return svc;
  }

  private ctx(id: string, kind: string, pipeline?: string): ComponentContext {
    return { id, logger: this.logger.child({ component: id, 'component.id': id, 'component.kind': kind, ...(pipeline ? { 'pipeline.id': pipeline } : {}) }) };
  }

  /** Exporters used by some pipeline; those in `keep` with the same config are reused as they are. */
  private buildExporters(config: ValidatedConfig, keep: ReadonlyMap<string, ExporterRuntime>): Map<string, ExporterRuntime> {
    const out = new Map<string, ExporterRuntime>();
    for (const [id, c] of config.exporters) {
      const feeds = config.pipelines.filter((p) => p.exporters.includes(id));
      if (feeds.length === 0) continue;
      // Validation made every pipeline of the exporter list the same resource processors.
      const resourceIds = (feeds[0]?.processors ?? []).filter((pid) => config.processors.get(pid)?.factory.setsResource === true);
      const configKey = JSON.stringify([c.config, resourceIds.map((pid) => config.processors.get(pid)?.config)]);
      const old = keep.get(id);
      if (old && old.configKey === configKey) {
        out.set(id, old);
        continue;
      }
      const resource = this.exporterResource(config, resourceIds);
      // Counters and histograms are kept by flowtel (flow-metrics.ts) and collected by the exporter's reader.
      const flowMetrics = new FlowMetrics({ cardinalityLimit: DEFAULT_CARDINALITY_LIMIT });
      const ctx: ExporterContext = { ...this.ctx(id, 'exporter'), metricProducers: [flowMetrics] };
      const exporter = c.factory.create(c.config, ctx) as MetricsExporter;
      flowMetrics.bind(exporter.reader);
      if (exporter.seriesExpirationMs !== undefined) flowMetrics.expireAfter(exporter.seriesExpirationMs);
      exporter.logs?.useResource(resource);
      const provider = new MeterProvider({
        resource,
        readers: [exporter.reader],
        views: [{ instrumentName: '*', aggregationCardinalityLimit: DEFAULT_CARDINALITY_LIMIT }],
      });
      out.set(id, { exporter, provider, sink: new InstrumentSink(provider.getMeter(FLOWTEL_SCOPE.name), flowMetrics), configKey });
      this.observer?.exporterCreated(exporter, provider);
    }
    return out;
  }

  /** The service resource through the resource processors `ids` (their configs, in order). */
  private exporterResource(config: ValidatedConfig, ids: readonly string[]): Resource {
    const transforms: ResourceTransformer[] = [];
    for (const pid of ids) {
      const c = config.processors.get(pid)!;
      const instance = c.factory.create(c.config, this.ctx(pid, 'processor'));
      if (isResourceTransformer(instance)) transforms.push(instance);
    }
    return exporterResource(this.resource, transforms);
  }

  private wire(config: ValidatedConfig, exporters: ReadonlyMap<string, ExporterRuntime>): Wiring {
    const pipelineInputs = new Map<string, MeasurementConsumer>();
    const logPipelineInputs = new Map<string, LogConsumer>();
    const firstProcessor = new Map<string, { config: unknown; instance: PipelineProcessor }>();
    const processors: PipelineProcessor[] = [];
    const processorsInService: ProcessorInService[] = [];
    const requestLimits = new Map<string, number | undefined>([...exporters.keys()].map((id) => [id, undefined]));
    const removed: LogsRemoved = (source, count, reason) => this.observer?.logsRemoved?.(source, count, reason);
    for (const p of config.pipelines) {
      // Each pipeline has its own instance of each processor it lists, as in the Collector.
      const chain = p.processors.map((pid, i) => {
        const c = config.processors.get(pid)!;
        const instance = c.factory.create(c.config, this.ctx(pid, 'processor', p.id)) as PipelineProcessor;
        if (i === 0) firstProcessor.set(p.id, { config: c.config, instance });
        return instance;
      });
      processors.push(...chain);
      chain.forEach((instance, i) => processorsInService.push({ id: p.processors[i] as string, pipeline: p.id, instance }));
      if (p.signal === 'logs') {
        // Validation admits only exporters and processors whose factory lists `logs`.
        const fanout = new LogFanOut(p.exporters.map((e) => exporters.get(e)!.exporter.logs ?? NO_LOGS));
        logPipelineInputs.set(p.id, logsChain(chain, fanout, removed));
        continue;
      }
      // An exporter of a metrics pipeline with a batch processor splits its requests (the smallest limit wins).
      for (const b of chain.filter(isBatchProcessor)) {
        const limit = b.maxDataPointsPerRequest;
        if (limit === undefined) continue;
        for (const e of p.exporters) requestLimits.set(e, Math.min(limit, requestLimits.get(e) ?? Infinity));
      }
      const fanout = new FanOut(p.exporters.map((e) => exporters.get(e)!.sink));
      pipelineInputs.set(p.id, metricsChain(chain, fanout));
    }
    const receiverInputs = new Map<string, ReceiverInput>();
    for (const id of config.receivers.keys()) {
      const feeds = config.pipelines.filter((p) => p.receivers.includes(id));
      if (feeds.length === 0) continue;
      const logFeeds = feeds.filter((p) => p.signal === 'logs');
      receiverInputs.set(id, {
        next: new FanOut(feeds.filter((p) => p.signal !== 'logs').map((p) => pipelineInputs.get(p.id)!)),
        logs: logFeeds.length ? new LogFanOut(logFeeds.map((p) => logPipelineInputs.get(p.id)!)) : NO_LOGS,
        // Every pipeline the receiver feeds, logs ones included, must drop what the kernel would.
        filter: commonFilter(feeds.map((p) => firstProcessor.get(p.id))),
      });
    }
    return { processors, processorsInService, receiverInputs, requestLimits };
  }

  private receiverKey(config: ValidatedConfig, id: string, filter: FilterPushdown | undefined): string {
    return JSON.stringify([config.receivers.get(id)!.config, filter ?? null]);
  }

  private createReceiver(config: ValidatedConfig, id: string, input: ReceiverInput): ReceiverRuntime {
    const c = config.receivers.get(id)!;
    const relay = new Relay(input.next);
    const logRelay = new LogRelay(input.logs);
    const next: MeasurementConsumer = { consume: (b) => relay.consume(this.observer ? this.observer.receiverBatch(id, b) : b) };
    // Always given, so that a receiver kept across a reload can start (or stop) feeding logs pipelines: `active` says whether anyone listens.
    const logs: LogConsumer = {
      get active() {
        return logRelay.active;
      },
      consumeLogs: (b) => {
        if (b.records.length === 0 || !logRelay.active) return;
        const batch = b.source === undefined ? { ...b, source: id } : b;
        this.observer?.receiverLogs?.(id, batch);
        logRelay.consumeLogs(batch);
      },
    };
    const rctx: ReceiverContext = { ...this.ctx(id, 'receiver'), next, filter: input.filter, logs, domains: this.domains };
    const receiver = c.factory.create(c.config, rctx) as MetricsReceiver;
    this.observer?.receiverCreated(receiver);
    return { receiver, relay, logRelay, configKey: this.receiverKey(config, id, input.filter) };
  }

  /**
   * Replace the running config (SIGHUP). Receivers whose config and
   * pushed-down filter are unchanged keep running with their kernel state
   * (connections keep their counters) and are pointed at the new pipelines;
   * exporters whose config is unchanged keep their cumulative state. Others
   * are started, restarted or stopped. If a new exporter cannot start, the
   * old config keeps running untouched and the error is thrown.
   */
  async reload(config: ValidatedConfig): Promise<void> {
    if (!this.started) throw new Error('reload before start');
    const exporters = this.buildExporters(config, this.exporters);
    const fresh = [...exporters.values()].filter((rt) => ![...this.exporters.values()].includes(rt));
    const startedFresh: ExporterRuntime[] = [];
    try {
      for (const rt of fresh) {
        await rt.exporter.start();
        startedFresh.push(rt);
      }
    } catch (e) {
      for (const rt of startedFresh) await this.stopExporter(rt);
      throw e;
    }
    const wiring = this.wire(config, exporters);
    for (const p of wiring.processors) await p.start();
    applyRequestLimits(exporters, wiring.requestLimits);
    const receivers = new Map<string, ReceiverRuntime>();
    const toStop: ReceiverRuntime[] = [];
    const toStart: ReceiverRuntime[] = [];
    for (const [id, input] of wiring.receiverInputs) {
      const old = this.receivers.get(id);
      if (old && old.configKey === this.receiverKey(config, id, input.filter)) {
        receivers.set(id, old);
        continue;
      }
      if (old) toStop.push(old);
      const rt = this.createReceiver(config, id, input);
      receivers.set(id, rt);
      toStart.push(rt);
    }
    for (const [id, old] of this.receivers) if (!receivers.has(id)) toStop.push(old);
    // Receivers that go or change send their last collection down the old pipelines.
    for (const rt of toStop) await this.stopReceiver(rt);
    for (const [id, rt] of receivers) {
      if (toStart.includes(rt)) continue;
      const input = wiring.receiverInputs.get(id)!;
      rt.relay.target = input.next;
      rt.logRelay.target = input.logs;
    }
    const oldExporters = this.exporters;
    const oldProcessors = this.processors;
    this.exporters = exporters;
    this.receivers = receivers;
    this.processors = wiring.processors;
    this.processorsInService = wiring.processorsInService;
    this.pipelines = config.pipelines;
    this.observer?.serviceChanged(this.components());
    for (const p of oldProcessors) await p.shutdown().catch(() => undefined);
    for (const [id, rt] of oldExporters) if (exporters.get(id) !== rt) await this.stopExporter(rt);
    for (const rt of toStart) {
      try {
        await rt.receiver.start();
      } catch (e) {
        this.receivers.delete(rt.receiver.id);
        this.logger.error({ err: e, 'component.id': rt.receiver.id }, 'receiver failed to start after reload: it is not running');
      }
    }
    this.logger.info(
      { kept: [...receivers.keys()].filter((id) => !toStart.some((r) => r.receiver.id === id)), restarted: toStart.map((r) => r.receiver.id), exporters: [...exporters.keys()] },
      'configuration reloaded',
    );
  }

  /**
   * Let `observer` watch this service: self-telemetry and the component
   * status health_check serves (src/telemetry/observer.ts). Before start.
   */
  attachTelemetry(observer: ServiceObserver): void {
    this.observer = observer;
    for (const rt of this.exporters.values()) observer.exporterCreated(rt.exporter, rt.provider);
    for (const rt of this.receivers.values()) observer.receiverCreated(rt.receiver);
    observer.serviceChanged(this.components());
  }

  private components(): ServiceView {
    return {
      receivers: new Map([...this.receivers].map(([id, rt]) => [id, rt.receiver])),
      exporters: new Map([...this.exporters].map(([id, rt]) => [id, rt.exporter])),
      pipelines: this.pipelines,
      processors: this.processorsInService,
    };
  }

  receiver(id: string): MetricsReceiver | undefined {
    return this.receivers.get(id)?.receiver;
  }

  exporter(id: string): MetricsExporter | undefined {
    return this.exporters.get(id)?.exporter;
  }

  /** Exporters first (so nothing collected is lost), then receivers. On failure everything started is stopped. */
  async start(): Promise<void> {
    const startedExporters: ExporterRuntime[] = [];
    const startedReceivers: MetricsReceiver[] = [];
    try {
      for (const rt of this.exporters.values()) {
        await rt.exporter.start();
        startedExporters.push(rt);
      }
      for (const p of this.processors) await p.start();
      for (const { receiver } of this.receivers.values()) {
        await receiver.start();
        startedReceivers.push(receiver);
      }
      this.started = true;
    } catch (e) {
      for (const r of startedReceivers.reverse()) await r.shutdown().catch(() => undefined);
      for (const rt of startedExporters.reverse()) await this.stopExporter(rt);
      throw e;
    }
  }

  /** Collect every receiver now. */
  async collect(): Promise<void> {
    await Promise.all([...this.receivers.values()].map((r) => r.receiver.collect()));
  }

  /**
   * Receivers stop (each sends one last collection), then processors (a
   * batch processor hands on what it holds), then every exporter exports
   * once more and stops.
   */
  async shutdown(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    for (const rt of this.receivers.values()) await this.stopReceiver(rt);
    for (const p of this.processors) await p.shutdown().catch(() => undefined);
    for (const rt of this.exporters.values()) await this.stopExporter(rt);
  }

  private async stopReceiver(rt: ReceiverRuntime): Promise<void> {
    try {
      await rt.receiver.shutdown();
    } catch (e) {
      this.logger.error({ err: e, 'component.id': rt.receiver.id }, 'receiver shutdown failed');
    }
  }

  /**
   * The last export: MeterProvider.shutdown() shuts its reader down, and a
   * periodic reader's shutdown collects and exports once more (a forceFlush
   * before it exported everything twice: two final OTLP requests, two tables).
   */
  private async stopExporter(rt: ExporterRuntime): Promise<void> {
    try {
      await rt.provider.shutdown();
    } catch (e) {
      this.logger.warn({ err: e, component: rt.exporter.id }, 'final export failed');
    }
    try {
      await rt.exporter.shutdown();
    } catch (e) {
      this.logger.warn({ err: e, component: rt.exporter.id }, 'exporter shutdown failed');
    }
  }
}

/** Tell each exporter the most data points per request its pipelines' batch processors allow. */
function applyRequestLimits(exporters: ReadonlyMap<string, ExporterRuntime>, limits: ReadonlyMap<string, number | undefined>): void {
  for (const [id, rt] of exporters) rt.exporter.limitRequestSize?.(limits.get(id));
}
