/**
 * The component model, after the OpenTelemetry Collector: every component type
 * has a factory with a default config, a validate step that turns raw YAML into
 * a typed config (or throws ConfigError with a path a person can act on), and
 * creates instances that start and shut down.
 */
import type { MetricProducer, MetricReader } from '@opentelemetry/sdk-metrics';
import type { Logger } from 'pino';

export type ComponentKind = 'receiver' | 'processor' | 'exporter' | 'extension';
export type Stability = 'development' | 'alpha' | 'beta' | 'stable';

/** A config error that names where it is: `exporters.otlp.endpoint`. */
export class ConfigError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(path ? `${path}: ${message}` : message);
    this.name = 'ConfigError';
  }
}

export interface OptionDoc {
  readonly name: string;
  readonly type: string;
  readonly default?: unknown;
  readonly description: string;
}

export interface ComponentContext {
  /** Component id as written in the config, `type[/name]`. */
  readonly id: string;
  readonly logger: Logger;
}

export interface Lifecycle {
  start(): Promise<void>;
  shutdown(): Promise<void>;
}

/** The kinds of pipeline (`metrics`, `logs`) a component can be part of. */
export type Signal = 'metrics' | 'logs';

export interface ComponentFactory<Config, Instance, Ctx extends ComponentContext = ComponentContext> {
  readonly kind: ComponentKind;
  readonly type: string;
  readonly stability: Stability;
  /** Pipelines it can be in; absent means metrics only. */
  readonly signals?: readonly Signal[];
  /**
   * A processor that changes the resource the pipeline's exporters send
   * (`resource`). An exporter sends one resource, so every pipeline that
   * lists an exporter must have the same such processors (validation checks).
   */
  readonly setsResource?: boolean;
  readonly options: readonly OptionDoc[];
  defaultConfig(): Config;
  /** Merge `raw` over the default config and check it; `path` prefixes errors. */
  validate(raw: unknown, path: string): Config;
  create(config: Config, ctx: Ctx): Instance;
}

/** A metrics exporter plugs into the SDK as a MetricReader (pull or periodic push). */
export interface MetricsExporter extends Lifecycle {
  readonly id: string;
  readonly reader: MetricReader;
  /** Present when the exporter also takes log records (its factory lists the `logs` signal). */
  readonly logs?: import('./logs').LogsExporter;
  /**
   * Split each export request into requests of at most this many data
   * points (undefined: no limit). The service sets it from the `batch`
   * processors of the pipelines the exporter is in (send_batch_max_size);
   * exporters that send no requests (prometheus) do not have it.
   */
  limitRequestSize?(maxDataPoints: number | undefined): void;
  /**
   * Cumulative series without a measurement for this long (ms) are no longer
   * exported, gauges that read 0 for this long neither (FlowMetrics);
   * undefined: the default, 5 minutes.
   */
  readonly seriesExpirationMs?: number;
}

/** What an exporter is created with: its MetricReader must also collect `metricProducers` (flow histograms). */
export interface ExporterContext extends ComponentContext {
  readonly metricProducers?: MetricProducer[];
}

export type MetricsExporterFactory<Config> = ComponentFactory<Config, MetricsExporter, ExporterContext>;

/** A receiver sends each collection's batch to `next`: the fan-out to every pipeline that lists it. */
export interface ReceiverContext extends ComponentContext {
  readonly next: import('./measurements').MeasurementConsumer;
  /**
   * A filter every pipeline fed by this receiver applies first: what the
   * receiver drops at the source (e.g. in the kernel) it never has to collect.
   * The pipelines still run their filter; this is only a shortcut.
   */
  readonly filter?: import('../processors/filter').FilterPushdown;
  /** Where the receiver's log records go, when it is in a logs pipeline. */
  readonly logs?: import('./logs').LogConsumer;
  /**
   * Address → domain name learned from DNS answers, one per service, shared
   * by its receivers: ebpf_dns provides names, ebpf_tcp reads them for
   * destination.domain (src/pipeline/domain-names.ts).
   */
  readonly domains?: import('./domain-names').DomainNames;
}

export interface MetricsReceiver extends Lifecycle {
  readonly id: string;
  /** Collect now, outside the receiver's own schedule (tests, shutdown, SIGHUP). */
  collect(): Promise<void>;
}

export type ReceiverFactory<Config> = ComponentFactory<Config, MetricsReceiver, ReceiverContext>;

/**
 * A metrics processor transforms each batch on its way through one pipeline.
 * It must not mutate the batch it is given (a receiver's batch is shared by
 * every pipeline it feeds): it returns a new batch, or the same one untouched.
 */
export interface MetricsProcessor extends Lifecycle {
  readonly id: string;
  process(batch: import('./measurements').MeasurementBatch): import('./measurements').MeasurementBatch;
}

/**
 * A processor that holds data and hands it on later (`batch`): the pipeline
 * connects it to what follows it, and it passes on what it holds on its own
 * schedule and when it shuts down (nothing held is lost).
 */
export interface BufferingProcessor extends Lifecycle {
  readonly id: string;
  /** In a metrics pipeline: the consumer the pipeline feeds, handing on to `next`. */
  connect(next: import('./measurements').MeasurementConsumer): import('./measurements').MeasurementConsumer;
  /** In a logs pipeline: the same for log records. */
  connectLogs(next: import('./logs').LogConsumer): import('./logs').LogConsumer;
}

export function isBufferingProcessor(p: unknown): p is BufferingProcessor {
  const b = p as Partial<BufferingProcessor> | null;
  return typeof b?.connect === 'function' && typeof b.connectLogs === 'function';
}

/** What a processor factory creates: a processor that transforms batches, or one that holds them. */
export type PipelineProcessor = MetricsProcessor | BufferingProcessor;

export type ProcessorFactory<Config, Instance extends PipelineProcessor = MetricsProcessor> = ComponentFactory<Config, Instance>;
