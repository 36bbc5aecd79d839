/**
 * `aggregate`: fewer attributes, fewer series.
 *
 * - `group_by: [a, b]` keeps only those attributes; `drop: [c, d]` removes
 *   those. One of the two (neither: attributes stay as they are, and only the
 *   merging and the cardinality limit apply).
 * - Within a batch, counters and gauges whose reduced attribute sets are equal
 *   are summed into one measurement (a gauge sum: e.g. `tcp_connections` per
 *   destination port). Histogram samples pass unchanged under the reduced
 *   attributes (the SDK histogram aggregates them).
 * - `cardinality_limit` caps the distinct attribute sets per metric. Sets are
 *   remembered across batches (a set seen before keeps its identity); a new
 *   set once a metric has `cardinality_limit` of them goes to one overflow
 *   series with the attributes `{ "otel.metric.overflow": true }`, as the
 *   OpenTelemetry SDK does. The memory is never cleared: when the flows on a
 *   host change completely, restart the agent or raise the limit. 0: no limit.
 * - Measurements with no flow attributes (self-telemetry) pass unchanged.
 */
import { ConfigError } from '../config/errors';
import { describeSchema, type Schema, type SchemaValue } from '../config/schema';
import type { MetricsProcessor, ProcessorFactory } from '../pipeline/component';
import { valueCount, relabeled, type FlowAttributes, type Measurement, type MeasurementBatch } from '../pipeline/measurements';
import { METRICS } from '../metrics/definitions';
import { attributeKey, collectValidate, isFlow, StatelessLifecycle, throwIfErrors, withMeasurements } from './common';

export const OVERFLOW_ATTRIBUTE = 'otel.metric.overflow';
export const DEFAULT_AGGREGATE_CARDINALITY_LIMIT = 10_000;
const OVERFLOW_ATTRIBUTES: FlowAttributes = Object.freeze({ [OVERFLOW_ATTRIBUTE]: true });
const OVERFLOW_KEY = attributeKey(OVERFLOW_ATTRIBUTES);

export const aggregateSchema = {
  group_by: {
    type: 'string[]',
    description:
      'Keep only these attributes (e.g. destination.port, process.executable.name); counters and gauges with equal remaining attributes are summed, histogram samples keep their values. An empty list sums everything into one series per metric. Not with drop. Neither: only equal sets are merged and the cardinality limit applies. Self-telemetry passes unchanged.',
  },
  drop: {
    type: 'string[]',
    description: 'Remove these attributes (e.g. process.pid, source.address) and sum what becomes equal, as group_by does. Not with group_by.',
  },
  cardinality_limit: {
    type: 'number',
    default: DEFAULT_AGGREGATE_CARDINALITY_LIMIT,
    min: 0,
    integer: true,
    description:
      'Most distinct attribute sets per metric, remembered across batches; new sets beyond it go to one overflow series with the attribute otel.metric.overflow=true. 0: no limit.',
  },
} as const satisfies Schema;

export type AggregateConfig = SchemaValue<typeof aggregateSchema>;

export function validateAggregateConfig(raw: unknown, path: string): AggregateConfig {
  const errors: ConfigError[] = [];
  const v = collectValidate(raw, path, aggregateSchema, errors);
  if (v && v.group_by !== undefined && v.drop !== undefined) {
    errors.push(
      new ConfigError(path, 'group_by and drop cannot be used together: group_by keeps only the attributes it lists, drop removes the ones it lists; use one'),
    );
  }
  throwIfErrors(errors, path);
  return v as AggregateConfig;
}

export const aggregateOptions = describeSchema(aggregateSchema);

export class AggregateProcessor extends StatelessLifecycle implements MetricsProcessor {
  private readonly groupBy?: readonly string[];
  private readonly drop?: ReadonlySet<string>;
  /** metric → attribute-set keys it has (the overflow series not included). */
  private readonly seen = new Map<string, Set<string>>();
  private readonly overflowed = new Map<string, number>();
  /** Input attribute object → reduced attributes and their key (see common.ts on identity caches). */
  private readonly reduced = new WeakMap<FlowAttributes, { attributes: FlowAttributes; key: string }>();

  constructor(
    readonly id: string,
    readonly config: AggregateConfig,
  ) {
    super();
    if (config.group_by !== undefined) this.groupBy = [...new Set(config.group_by)];
    else if (config.drop !== undefined) this.drop = new Set(config.drop);
  }

  /** Measurements sent to the overflow series since creation, per metric. */
  overflowCounts(): Record<string, number> {
    return Object.fromEntries(this.overflowed);
  }

  /** Measurements sent to the overflow series since creation, all metrics. */
  get overflowedMeasurements(): number {
    let total = 0;
    for (const n of this.overflowed.values()) total += n;
    return total;
  }

  /** Distinct attribute sets remembered for `metric` (the overflow series not included; 0 without a limit, which remembers nothing). */
  cardinality(metric: string): number {
    return this.seen.get(metric)?.size ?? 0;
  }

  process(batch: MeasurementBatch): MeasurementBatch {
    const out: Measurement[] = [];
    /** metric → key → index in `out` of the running sum. */
    const sums = new Map<string, Map<string, number>>();
    for (const m of batch.measurements) {
      if (!isFlow(m.attributes)) {
        out.push(m);
        continue;
      }
      let r = this.reduced.get(m.attributes);
      if (r === undefined) {
        const attributes = this.reduce(m.attributes);
        r = { attributes, key: attributeKey(attributes) };
        this.reduced.set(m.attributes, r);
      }
      let { attributes, key } = r;
      if (!this.admit(m.metric, key)) {
        this.overflowed.set(m.metric, (this.overflowed.get(m.metric) ?? 0) + valueCount(m));
        attributes = OVERFLOW_ATTRIBUTES;
        key = OVERFLOW_KEY;
      }
      const kind = METRICS.get(m.metric)?.kind;
      if (kind === 'counter' || kind === 'gauge') {
        let perMetric = sums.get(m.metric);
        if (!perMetric) {
          perMetric = new Map();
          sums.set(m.metric, perMetric);
        }
        const index = perMetric.get(key);
        if (index !== undefined) {
          const prev = out[index] as Measurement;
          out[index] = { metric: prev.metric, value: prev.value + m.value, attributes: prev.attributes };
          continue;
        }
        perMetric.set(key, out.length);
      }
      out.push(relabeled(m, attributes));
    }
    return withMeasurements(batch, out);
  }

  private reduce(attributes: FlowAttributes): FlowAttributes {
    const out: FlowAttributes = {};
    if (this.groupBy) {
      for (const k of this.groupBy) {
        const v = attributes[k];
        if (v !== undefined) out[k] = v;
      }
      return out;
    }
    for (const [k, v] of Object.entries(attributes)) if (!this.drop?.has(k)) out[k] = v;
    return out;
  }

  /** Whether the set `key` of `metric` is within the limit (and remember it if new). */
  private admit(metric: string, key: string): boolean {
    const limit = this.config.cardinality_limit;
    if (limit === 0) return true;
    let keys = this.seen.get(metric);
    if (!keys) {
      keys = new Set();
      this.seen.set(metric, keys);
    }
    if (keys.has(key)) return true;
    if (keys.size >= limit) return false;
    keys.add(key);
    return true;
  }
}

export const aggregateProcessorFactory: ProcessorFactory<AggregateConfig> = {
  kind: 'processor',
  type: 'aggregate',
  stability: 'alpha',
  options: aggregateOptions,
  defaultConfig: () => validateAggregateConfig(undefined, ''),
  validate: validateAggregateConfig,
  create: (config, ctx) => new AggregateProcessor(ctx.id, config),
};
