/**
 * `memory_limiter`, after the Collector's: every `check_interval` it reads the
 * agent's memory (RSS); above the soft limit (`limit - spike_limit`) it
 * refuses flow data — the batches' flow measurements are dropped and counted —
 * until memory is back under it, so the agent degrades to losing data it
 * says it lost instead of being OOM-killed. Above the hard limit it also asks
 * V8 for a garbage collection when `global.gc` is exposed (node --expose-gc,
 * as bin/flowtel runs it), at most every `min_gc_interval_when_hard_limited`.
 *
 * Limits are MiB (`limit_mib`, `spike_limit_mib`) or a percentage of the
 * memory available to the agent (`limit_percentage`, `spike_limit_percentage`):
 * the cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes) when there is
 * one, else the machine's memory. Self-telemetry (no flow attributes) always
 * passes, so the agent can still report that it is dropping.
 *
 * In a logs pipeline it refuses every log record while above the soft limit
 * (counted in `refusedRecords`, and by self-telemetry as
 * flowtel_receiver_refused_log_records of the receiver they came from).
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../config/schema';
import { ConfigError, type MetricsProcessor, type ProcessorFactory } from '../pipeline/component';
import { valueCount, type Measurement, type MeasurementBatch } from '../pipeline/measurements';
import { withRecords, type LogBatch, type LogsProcessor } from '../pipeline/logs';
import { isFlow, withMeasurements } from './common';
import { memoryPressure } from '../pipeline/memory-pressure';
import { exposedGc } from '../util/burst-gc';

const MIB = 1024 * 1024;

export const memoryLimiterSchema = {
  check_interval: { type: 'duration', default: '1s', minMs: 10, description: 'How often memory is measured.' },
  limit_mib: { type: 'number', min: 1, description: 'Hard limit in MiB of resident memory. One of limit_mib or limit_percentage is required.' },
  spike_limit_mib: { type: 'number', min: 0, description: 'Headroom below the hard limit, MiB: data is refused above limit − spike (the soft limit). Default 20% of the limit.' },
  limit_percentage: { type: 'number', min: 1, max: 100, description: "Hard limit as a percentage of the memory available (the cgroup's limit, else the machine's)." },
  spike_limit_percentage: { type: 'number', min: 0, max: 100, description: 'Headroom as a percentage of the memory available.' },
  min_gc_interval_when_hard_limited: {
    type: 'duration',
    default: '10s',
    minMs: 0,
    description: 'Above the hard limit, the least time between two forced garbage collections (a full collection blocks the agent for tens of ms; node must run with --expose-gc, as bin/flowtel does).',
  },
} as const satisfies Schema;

export type MemoryLimiterConfig = SchemaValue<typeof memoryLimiterSchema>;

function validate(raw: unknown, path: string): MemoryLimiterConfig {
  const c = validateObject(raw, path, memoryLimiterSchema);
  if ((c.limit_mib === undefined) === (c.limit_percentage === undefined)) {
    throw new ConfigError(path, 'set exactly one of limit_mib and limit_percentage');
  }
  if (c.spike_limit_mib !== undefined && c.limit_mib !== undefined && c.spike_limit_mib >= c.limit_mib) {
    throw new ConfigError(`${path}.spike_limit_mib`, `must be below limit_mib (${c.limit_mib})`);
  }
  if (c.spike_limit_percentage !== undefined && c.limit_percentage !== undefined && c.spike_limit_percentage >= c.limit_percentage) {
    throw new ConfigError(`${path}.spike_limit_percentage`, `must be below limit_percentage (${c.limit_percentage})`);
  }
  return c;
}

/** Bytes of memory this process may use: its cgroup's limit, else the machine's. */
export function availableMemory(read: (f: string) => string = (f) => readFileSync(f, 'utf8')): number {
  const candidates: string[] = [];
  try {
    for (const line of read('/proc/self/cgroup').split('\n')) {
      const [, controllers, path] = line.split(':');
      if (controllers === '') candidates.push(`/sys/fs/cgroup/unified${path}/memory.max`, `/sys/fs/cgroup${path}/memory.max`);
      if (controllers?.split(',').includes('memory')) candidates.push(`/sys/fs/cgroup/memory${path}/memory.limit_in_bytes`);
    }
  } catch {
    /* no cgroups */
  }
  const machine = totalmem();
  for (const f of candidates) {
    try {
      const v = read(f).trim();
      if (v === 'max') continue;
      const n = Number(v);
      if (Number.isFinite(n) && n > 0 && n < machine) return n;
    } catch {
      /* not this one */
    }
  }
  return machine;
}

export class MemoryLimiterProcessor implements MetricsProcessor, LogsProcessor {
  /** Removed log records are refused, not dropped on purpose. */
  readonly refuses = true;
  /** Log records refused while above the soft limit. */
  refusedRecords = 0;
  readonly hardLimit: number;
  readonly softLimit: number;
  private timer?: NodeJS.Timeout;
  private refusing = false;
  /** Flow measurements refused while above the soft limit. */
  refused = 0;
  /** Garbage collections forced above the hard limit. */
  forcedGcs = 0;
  private lastGcMs = -Infinity;

  constructor(
    readonly id: string,
    private readonly config: MemoryLimiterConfig,
    private readonly measure: () => number = () => process.memoryUsage().rss,
    available: number = availableMemory(),
    private readonly gc: (() => void) | undefined = exposedGc(),
    private readonly now: () => number = Date.now,
  ) {
    this.hardLimit = config.limit_mib !== undefined ? config.limit_mib * MIB : ((config.limit_percentage ?? 100) / 100) * available;
    const spike =
      config.spike_limit_mib !== undefined
        ? config.spike_limit_mib * MIB
        : config.spike_limit_percentage !== undefined
          ? (config.spike_limit_percentage / 100) * available
          : this.hardLimit * 0.2;
    this.softLimit = this.hardLimit - spike;
  }

  get refusingData(): boolean {
    return this.refusing;
  }

  /** Measure now (also what the timer does). */
  check(): void {
    const used = this.measure();
    this.refusing = used > this.softLimit;
    // The exporters' queues stop growing too (src/pipeline/memory-pressure.ts).
    memoryPressure.set(this, this.refusing);
    if (used > this.hardLimit && this.gc && this.now() - this.lastGcMs >= this.config.min_gc_interval_when_hard_limited) {
      this.lastGcMs = this.now();
      this.forcedGcs++;
      this.gc();
    }
  }

  async start(): Promise<void> {
    this.check();
    this.timer = setInterval(() => this.check(), this.config.check_interval);
    this.timer.unref();
  }

  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    memoryPressure.set(this, false);
  }

  process(batch: MeasurementBatch): MeasurementBatch {
    if (!this.refusing) return batch;
    const kept: Measurement[] = [];
    let refused = 0;
    for (const m of batch.measurements) {
      if (isFlow(m.attributes)) refused += valueCount(m);
      else kept.push(m);
    }
    this.refused += refused;
    // Counted where it can be seen: a self-telemetry measurement passes every processor.
    if (refused > 0) kept.push({ metric: 'flowtel_processor_refused_measurements', value: refused, attributes: { processor: this.id } });
    // Flow gauges are not replaced by an empty set: they keep their last
    // values instead of reading as if every connection had closed.
    const gauges = new Set(kept.map((m) => m.metric));
    return { ...withMeasurements(batch, kept), gaugesReplaced: batch.gaugesReplaced.filter((g) => gauges.has(g)) };
  }

  processLogs(batch: LogBatch): LogBatch {
    if (!this.refusing || batch.records.length === 0) return batch;
    this.refusedRecords += batch.records.length;
    return withRecords(batch, []);
  }
}

export const memoryLimiterProcessorFactory: ProcessorFactory<MemoryLimiterConfig> = {
  kind: 'processor',
  type: 'memory_limiter',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: describeSchema(memoryLimiterSchema),
  defaultConfig: () => validateObject({ limit_percentage: 80 }, '', memoryLimiterSchema),
  validate,
  create: (config, ctx) => new MemoryLimiterProcessor(ctx.id, config),
};
