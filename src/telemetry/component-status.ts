/**
 * The status of every component, after the Collector's component status
 * model (StatusStarting → StatusOK → StatusStopping → StatusStopped, with
 * StatusRecoverableError / StatusPermanentError on the way), and of the
 * service as a whole. The health_check extension serves it.
 *
 * Components do not report their status themselves (yet): the tracker wraps
 * the lifecycle methods of each receiver and exporter instance the service
 * created (`start`, `collect`, `shutdown`) and records what they do. A
 * receiver's timer calls `this.collect()`, so its own collections are seen too.
 *
 * What counts as healthy is the agent's liveness, not the data path's:
 * - every receiver and exporter has started, none is stopping, and
 * - no receiver failed its last collection.
 * A failing export (backend down) does not make the agent unhealthy: the
 * exporter's counts are shown, its status stays OK.
 */
import type { MetricsExporter, MetricsReceiver } from '../pipeline/component';
import type { MeasurementBatch } from '../pipeline/measurements';
import type { PipelineMembers, ServiceObserver, ServiceView } from './observer';

export type ComponentStatus =
  | 'StatusNone'
  | 'StatusStarting'
  | 'StatusOK'
  | 'StatusRecoverableError'
  | 'StatusPermanentError'
  | 'StatusFatalError'
  | 'StatusStopping'
  | 'StatusStopped';

/** The service as a whole, from its receivers' and exporters' statuses. */
export type ServiceState = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export type TrackedKind = 'receiver' | 'processor' | 'exporter' | 'extension';

export interface ComponentStatusEntry {
  readonly healthy: boolean;
  readonly status: ComponentStatus;
  readonly status_time: string;
  readonly error?: string;
  /** Exporters that count their exports (duck-typed, see exportCounts). */
  readonly exports?: { readonly succeeded: number; readonly failed: number };
}

export interface GroupStatusEntry {
  readonly healthy: boolean;
  readonly status: ComponentStatus;
  readonly components: Record<string, ComponentStatusEntry>;
}

/** The health_check response body: the Collector's fields, then per-component status. */
export interface HealthReport {
  /** `Server available` or `Server not available`, as the Collector's health_check says it. */
  readonly status: string;
  /** When the service became healthy (the zero time when it is not). */
  readonly upSince: string;
  /** Time since upSince, e.g. `12.345s` (empty when not healthy). */
  readonly uptime: string;
  readonly healthy: boolean;
  readonly state: ServiceState;
  /** `pipeline:<id>` (receivers, processors, exporters) and `extensions`. */
  readonly components: Record<string, GroupStatusEntry>;
}

/** Go's zero time, what the Collector's health_check shows for upSince when not available. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

interface Entry {
  status: ComponentStatus;
  time: Date;
  error?: string;
}

/** Successful and failed exports, if the exporter counts them (otlp: exportSuccesses/exportFailures; or sent/failed). */
export function exportCounts(exporter: object): { succeeded: number; failed: number } | undefined {
  const e = exporter as Record<string, unknown>;
  if (typeof e.exportSuccesses === 'number' && typeof e.exportFailures === 'number') return { succeeded: e.exportSuccesses, failed: e.exportFailures };
  if (typeof e.sent === 'number' && typeof e.failed === 'number') return { succeeded: e.sent, failed: e.failed };
  return undefined;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Statuses are kept per instance (a reload may replace a component by a new
 * instance of the same id, and a replacement that fails to start must not
 * mark the running one failed); the components in service are those of the
 * last ServiceView.
 */
export class StatusTracker implements ServiceObserver {
  private readonly byInstance = new WeakMap<object, Entry>();
  private readonly extensionEntries = new Map<string, Entry>();
  private readonly failedCollections = new Map<string, number>();
  private readonly instrumented = new WeakSet<object>();
  private receivers: ReadonlyMap<string, MetricsReceiver> = new Map();
  private exporters: ReadonlyMap<string, MetricsExporter> = new Map();
  private healthySince?: Date;
  private readonly created: Date;

  constructor(
    private pipelines: readonly PipelineMembers[],
    private readonly extensions: readonly string[],
    private readonly now: () => Date = () => new Date(),
  ) {
    this.created = this.now();
  }

  receiverCreated(r: MetricsReceiver): void {
    if (this.instrumented.has(r)) return;
    this.instrumented.add(r);
    this.byInstance.set(r, { status: 'StatusNone', time: this.now() });
    const id = r.id;
    const start = r.start.bind(r);
    const collect = r.collect.bind(r);
    const shutdown = r.shutdown.bind(r);
    r.start = async () => {
      this.record(r, 'StatusStarting');
      try {
        await start();
      } catch (e) {
        this.record(r, 'StatusPermanentError', e);
        throw e;
      }
      this.record(r, 'StatusOK');
    };
    r.collect = async () => {
      try {
        await collect();
      } catch (e) {
        this.failedCollections.set(id, this.collectionFailures(id) + 1);
        if (this.running(r)) this.record(r, 'StatusRecoverableError', e);
        throw e;
      }
      if (this.running(r)) this.record(r, 'StatusOK');
    };
    r.shutdown = async () => {
      this.record(r, 'StatusStopping');
      try {
        await shutdown();
      } finally {
        this.record(r, 'StatusStopped');
      }
    };
  }

  exporterCreated(exporter: MetricsExporter): void {
    if (this.instrumented.has(exporter)) return;
    this.instrumented.add(exporter);
    this.byInstance.set(exporter, { status: 'StatusNone', time: this.now() });
    const start = exporter.start.bind(exporter);
    const shutdown = exporter.shutdown.bind(exporter);
    exporter.start = async () => {
      this.record(exporter, 'StatusStarting');
      try {
        await start();
      } catch (e) {
        this.record(exporter, 'StatusPermanentError', e);
        throw e;
      }
      this.record(exporter, 'StatusOK');
    };
    exporter.shutdown = async () => {
      this.record(exporter, 'StatusStopping');
      try {
        await shutdown();
      } finally {
        this.record(exporter, 'StatusStopped');
      }
    };
  }

  serviceChanged(view: ServiceView): void {
    this.receivers = new Map(view.receivers);
    this.exporters = new Map(view.exporters);
    if (view.pipelines) this.pipelines = view.pipelines;
    this.updateHealthySince();
  }

  receiverBatch(_receiverId: string, batch: MeasurementBatch): MeasurementBatch {
    return batch;
  }

  /** Record an extension's status (the extension host does). */
  setExtension(id: string, status: ComponentStatus, error?: unknown): void {
    this.extensionEntries.set(id, entryOf(status, this.now(), error));
    this.updateHealthySince();
  }

  /** The status of the receiver or exporter in service under `id`, or of extension `id`. */
  status(kind: TrackedKind, id: string): ComponentStatus {
    if (kind === 'extension') return this.extensionEntries.get(id)?.status ?? 'StatusNone';
    const instance = kind === 'receiver' ? this.receivers.get(id) : kind === 'exporter' ? this.exporters.get(id) : undefined;
    return (instance && this.byInstance.get(instance)?.status) ?? 'StatusNone';
  }

  /** Failed collections of receiver `receiverId` (every instance under that id). */
  collectionFailures(receiverId: string): number {
    return this.failedCollections.get(receiverId) ?? 0;
  }

  state(): ServiceState {
    const statuses = [...this.receivers.values(), ...this.exporters.values()].map((c) => this.byInstance.get(c)?.status ?? 'StatusNone');
    if (statuses.some((s) => s === 'StatusPermanentError' || s === 'StatusFatalError')) return 'failed';
    if (statuses.some((s) => s === 'StatusStopping' || s === 'StatusStopped')) {
      return statuses.every((s) => s === 'StatusStopped') ? 'stopped' : 'stopping';
    }
    if (statuses.length === 0 || statuses.some((s) => s === 'StatusNone' || s === 'StatusStarting')) return 'starting';
    return 'running';
  }

  /** Every pipeline runs and no receiver failed its last collection. */
  healthy(): boolean {
    return this.state() === 'running' && [...this.receivers.values()].every((r) => this.byInstance.get(r)?.status === 'StatusOK');
  }

  report(): HealthReport {
    const healthy = this.healthy();
    const state = this.state();
    const components: Record<string, GroupStatusEntry> = {};
    for (const p of this.pipelines) {
      const members: Record<string, ComponentStatusEntry> = {};
      for (const id of p.receivers) members[key('receiver', id)] = this.entry(this.byInstance.get(this.receivers.get(id) ?? {}));
      for (const id of p.processors) members[key('processor', id)] = this.entry(undefined, processorStatus(state));
      for (const id of p.exporters) {
        const exporter = this.exporters.get(id);
        const counts = exporter && exportCounts(exporter);
        members[key('exporter', id)] = { ...this.entry(this.byInstance.get(exporter ?? {})), ...(counts ? { exports: counts } : {}) };
      }
      components[`pipeline:${p.id}`] = group(members);
    }
    if (this.extensions.length > 0) {
      const members: Record<string, ComponentStatusEntry> = {};
      for (const id of this.extensions) members[key('extension', id)] = this.entry(this.extensionEntries.get(id));
      components.extensions = group(members);
    }
    const since = healthy ? this.healthySince : undefined;
    return {
      status: healthy ? 'Server available' : 'Server not available',
      upSince: since ? since.toISOString() : ZERO_TIME,
      uptime: since ? `${((this.now().getTime() - since.getTime()) / 1000).toFixed(3)}s` : '',
      healthy,
      state,
      components,
    };
  }

  private entry(e: Entry | undefined, status: ComponentStatus = e?.status ?? 'StatusNone'): ComponentStatusEntry {
    const time = (e?.time ?? this.created).toISOString();
    return e?.error !== undefined && status === e.status
      ? { healthy: status === 'StatusOK', status, status_time: time, error: e.error }
      : { healthy: status === 'StatusOK', status, status_time: time };
  }

  private record(instance: object, status: ComponentStatus, error?: unknown): void {
    this.byInstance.set(instance, entryOf(status, this.now(), error));
    this.updateHealthySince();
  }

  private updateHealthySince(): void {
    if (!this.healthy()) this.healthySince = undefined;
    else this.healthySince ??= this.now();
  }

  /** A collection's result changes the status only between start and shutdown (the last collection at shutdown does not). */
  private running(instance: object): boolean {
    const s = this.byInstance.get(instance)?.status;
    return s === 'StatusOK' || s === 'StatusRecoverableError';
  }
}

function entryOf(status: ComponentStatus, time: Date, error?: unknown): Entry {
  return error === undefined ? { status, time } : { status, time, error: message(error) };
}

function key(kind: TrackedKind, id: string): string {
  return `${kind}:${id}`;
}

function processorStatus(state: ServiceState): ComponentStatus {
  switch (state) {
    case 'starting':
      return 'StatusStarting';
    case 'running':
      return 'StatusOK';
    case 'stopping':
      return 'StatusStopping';
    case 'stopped':
    case 'failed':
      return 'StatusStopped';
  }
}

/** A group's status, as the Collector aggregates it: the worst of its members. */
export function aggregateStatus(statuses: readonly ComponentStatus[]): ComponentStatus {
  const any = (s: ComponentStatus): boolean => statuses.includes(s);
  if (any('StatusFatalError')) return 'StatusFatalError';
  if (any('StatusPermanentError')) return 'StatusPermanentError';
  if (any('StatusStopping')) return 'StatusStopping';
  if (statuses.length > 0 && statuses.every((s) => s === 'StatusStopped')) return 'StatusStopped';
  if (any('StatusStopped')) return 'StatusStopping';
  if (any('StatusRecoverableError')) return 'StatusRecoverableError';
  if (any('StatusStarting') || any('StatusNone')) return 'StatusStarting';
  return 'StatusOK';
}

function group(members: Record<string, ComponentStatusEntry>): GroupStatusEntry {
  const list = Object.values(members);
  const status = aggregateStatus(list.map((m) => m.status));
  return { healthy: list.every((m) => m.healthy), status, components: members };
}
