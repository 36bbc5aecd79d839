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
import type { ComponentContext, MetricsExporter, MetricsProcessor, MetricsReceiver, ReceiverContext } from './component';
import { FanOut, InstrumentSink } from './instrument-sink';
import type { MeasurementBatch, MeasurementConsumer } from './measurements';
import { FilterProcessor, type FilterPushdown } from '../processors/filter';

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

/**
 * What a receiver may filter out at the source: only what every pipeline it
 * feeds would drop, so only when each of them starts with a filter processor
 * of the same configuration.
 */
function commonFilter(firsts: ReadonlyArray<{ config: unknown; instance: MetricsProcessor } | undefined>): FilterPushdown | undefined {
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
}

export class Service {
  private readonly exporters = new Map<string, ExporterRuntime>();
  private readonly receivers = new Map<string, MetricsReceiver>();
  private readonly processors: MetricsProcessor[] = [];
  private started = false;

  private constructor(private readonly logger: Logger) {}

  static build(config: ValidatedConfig, logger: Logger): Service {
    const svc = new Service(logger);
    const resource = buildResource({});
    const ctx = (id: string): ComponentContext => ({ id, logger: logger.child({ component: id }) });

    for (const [id, c] of config.exporters) {
      if (!config.pipelines.some((p) => p.exporters.includes(id))) continue;
      const exporter = c.factory.create(c.config, ctx(id)) as MetricsExporter;
      const provider = new MeterProvider({
        resource,
        readers: [exporter.reader],
        views: [{ instrumentName: '*', aggregationCardinalityLimit: DEFAULT_CARDINALITY_LIMIT }],
      });
      svc.exporters.set(id, { exporter, provider, sink: new InstrumentSink(provider.getMeter('flowtel')) });
    }

    const pipelineInputs = new Map<string, MeasurementConsumer>();
    const firstProcessor = new Map<string, { config: unknown; instance: MetricsProcessor }>();
    for (const p of config.pipelines) {
      // Each pipeline has its own instance of each processor it lists, as in the Collector.
      const processors = p.processors.map((pid, i) => {
        const c = config.processors.get(pid)!;
        const instance = c.factory.create(c.config, { id: pid, logger: logger.child({ component: pid, pipeline: p.id }) }) as MetricsProcessor;
        if (i === 0) firstProcessor.set(p.id, { config: c.config, instance });
        return instance;
      });
      svc.processors.push(...processors);
      const exporters = new FanOut(p.exporters.map((e) => svc.exporters.get(e)!.sink));
      pipelineInputs.set(p.id, processors.length ? new ProcessorChain(processors, exporters) : exporters);
    }

    for (const [id, c] of config.receivers) {
      const feeds = config.pipelines.filter((p) => p.receivers.includes(id));
      if (feeds.length === 0) continue;
      const next = new FanOut(feeds.map((p) => pipelineInputs.get(p.id)!));
      const rctx: ReceiverContext = { ...ctx(id), next, filter: commonFilter(feeds.map((p) => firstProcessor.get(p.id))) };
      svc.receivers.set(id, c.factory.create(c.config, rctx) as MetricsReceiver);
    }
    return svc;
  }

  receiver(id: string): MetricsReceiver | undefined {
    return this.receivers.get(id);
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
      for (const r of this.receivers.values()) {
        await r.start();
        startedReceivers.push(r);
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
    await Promise.all([...this.receivers.values()].map((r) => r.collect()));
  }

  /** Receivers stop (each sends one last collection), then every exporter exports once more and stops. */
  async shutdown(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    for (const r of this.receivers.values()) {
      try {
        await r.shutdown();
      } catch (e) {
        this.logger.error({ err: e, component: r.id }, 'receiver shutdown failed');
      }
    }
    for (const rt of this.exporters.values()) await this.stopExporter(rt);
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
