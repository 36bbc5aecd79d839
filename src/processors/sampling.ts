/**
 * `sampling`: keep 1 in `sampling_rate` connections, consistently.
 *
 * The decision is a hash of the connection's identity: its attribute set
 * without the attributes listed in `ignore_attributes` (by default the
 * metric-specific `network.connection.state` and `error.type`) and without
 * `sampling.rate`. The metric name is not part of it, so every metric of a
 * connection is kept or dropped together, in every batch, on every host with
 * the same `hash_seed`. With the receiver's default aggregation a "connection"
 * here is a flow series (every connection from one process to one server
 * port is one identity); with `include_ephemeral_ports: true` it is one TCP
 * connection.
 *
 * Kept measurements get the attribute `sampling.rate = N` (multiplied into
 * an existing one when samplers are chained). Counters and gauges are scaled
 * by N in the agent, so sums over series are unbiased estimates of the
 * unsampled totals. Histogram samples are kept once, unscaled: multiply
 * histogram counts (and sums) by `sampling.rate` at query time.
 * Measurements with no flow attributes (self-telemetry) pass unchanged.
 * `sampling_rate: 1` passes everything unchanged, without the attribute.
 */
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../config/schema';
import type { MetricsProcessor, ProcessorFactory } from '../pipeline/component';
import { valueCount, relabeled, type FlowAttributes, type Measurement, type MeasurementBatch } from '../pipeline/measurements';
import { METRICS } from '../metrics/definitions';
import { attributeKey, BoundedCache, isFlow, StatelessLifecycle, withMeasurements } from './common';
import { hashUnit } from './hash';

export const SAMPLING_RATE_ATTRIBUTE = 'sampling.rate';

export const samplingSchema = {
  sampling_rate: {
    type: 'number',
    default: 1,
    min: 1,
    max: 1_000_000,
    integer: true,
    description:
      "Keep 1 in N connections, decided by a hash of the connection's attributes, so a connection is always in or always out (with the receiver's default aggregation a connection is a flow series; with include_ephemeral_ports, one TCP connection). Kept measurements get sampling.rate = N; counters and gauges are multiplied by N; histogram samples are kept once, so multiply histogram counts by sampling.rate when querying. 1 keeps everything unchanged.",
  },
  hash_seed: {
    type: 'number',
    default: 0,
    min: 0,
    max: 4_294_967_295,
    integer: true,
    description: 'Seed of the connection hash (FNV-1a 64 with a finalizer). Agents with the same seed sample the same connections; a different seed samples a different, independent subset.',
  },
  ignore_attributes: {
    type: 'string[]',
    default: ['network.connection.state', 'error.type'],
    description: 'Attributes that are not part of a connection\'s identity (metric-specific ones), so a connection\'s metrics are sampled together. sampling.rate is always ignored.',
  },
} as const satisfies Schema;

export type SamplingConfig = SchemaValue<typeof samplingSchema>;

export function validateSamplingConfig(raw: unknown, path: string): SamplingConfig {
  return validateObject(raw, path, samplingSchema);
}

export const samplingOptions = describeSchema(samplingSchema);

export class SamplingProcessor extends StatelessLifecycle implements MetricsProcessor {
  private readonly ignore: ReadonlySet<string>;
  private readonly decisions = new BoundedCache<string, boolean>(1 << 17);
  /** Input attribute object → its kept output attributes, or null when dropped (see common.ts on identity caches). */
  private readonly outputs = new WeakMap<FlowAttributes, FlowAttributes | null>();
  private keptCount = 0;
  private droppedCount = 0;

  constructor(
    readonly id: string,
    readonly config: SamplingConfig,
  ) {
    super();
    this.ignore = new Set([...config.ignore_attributes, SAMPLING_RATE_ATTRIBUTE]);
  }

  /** Flow measurements kept and dropped since creation. */
  get counters(): { kept: number; dropped: number } {
    return { kept: this.keptCount, dropped: this.droppedCount };
  }

  /** Whether the connection these attributes belong to is sampled in. */
  keeps(attributes: FlowAttributes): boolean {
    const rate = this.config.sampling_rate;
    if (rate === 1) return true;
    const key = attributeKey(attributes, this.ignore);
    let keep = this.decisions.get(key);
    if (keep === undefined) {
      keep = hashUnit(key, this.config.hash_seed) * rate < 1;
      this.decisions.set(key, keep);
    }
    return keep;
  }

  process(batch: MeasurementBatch): MeasurementBatch {
    const rate = this.config.sampling_rate;
    if (rate === 1) return withMeasurements(batch, [...batch.measurements]);
    const out: Measurement[] = [];
    for (const m of batch.measurements) {
      if (!isFlow(m.attributes)) {
        out.push(m);
        continue;
      }
      let attributes = this.outputs.get(m.attributes);
      if (attributes === undefined) {
        attributes = this.keeps(m.attributes) ? this.tagged(m.attributes) : null;
        this.outputs.set(m.attributes, attributes);
      }
      if (attributes === null) {
        this.droppedCount += valueCount(m);
        continue;
      }
      this.keptCount += valueCount(m);
      const kind = METRICS.get(m.metric)?.kind;
      const scaled = kind === 'counter' || kind === 'gauge';
      out.push(relabeled(m, attributes, scaled ? m.value * rate : m.value));
    }
    return withMeasurements(batch, out);
  }

  private tagged(attributes: FlowAttributes): FlowAttributes {
    const rate = this.config.sampling_rate;
    const previous = attributes[SAMPLING_RATE_ATTRIBUTE];
    const totalRate = typeof previous === 'number' && previous > 0 ? previous * rate : rate;
    return { ...attributes, [SAMPLING_RATE_ATTRIBUTE]: totalRate };
  }
}

export const samplingProcessorFactory: ProcessorFactory<SamplingConfig> = {
  kind: 'processor',
  type: 'sampling',
  stability: 'alpha',
  options: samplingOptions,
  defaultConfig: () => validateSamplingConfig(undefined, ''),
  validate: validateSamplingConfig,
  create: (config, ctx) => new SamplingProcessor(ctx.id, config),
};
