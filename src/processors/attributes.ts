/**
 * `attributes`: the Collector's attributes processor for flow attributes —
 * insert, update, upsert, delete, hash, extract and convert actions applied in
 * order to every measurement's attributes (see ./actions.ts for each action).
 * It acts on every measurement, self-telemetry included, as the Collector's
 * does. Attribute maps are copied when an action changes them, never edited.
 *
 * Hashing addresses: an unkeyed SHA-256 of an IPv4 address is reversed by
 * hashing all 2^32 addresses (minutes on a laptop). When the point is that
 * addresses must not leave the host, set `hash_key` (e.g. `${env:FLOWTEL_HASH_KEY}`)
 * so hashes are HMAC-SHA256 and cannot be recomputed without the key; every
 * agent that should produce the same hashes needs the same key.
 */
import { ConfigError } from '../config/errors';
import { describeSchema, type Schema } from '../config/schema';
import type { MetricsProcessor, OptionDoc, ProcessorFactory } from '../pipeline/component';
import { relabeled, type FlowAttributes, type Measurement, type MeasurementBatch } from '../pipeline/measurements';
import { withRecords, type LogBatch, type LogRecordData } from '../pipeline/logs';
import { childPath } from '../config/location';
import { isConfigMap } from '../config/types';
import { ActionList, actionOptionDocs, validateActions, type AttributeAction } from './actions';
import { StatelessLifecycle, throwIfErrors, validateWithExtras, withMeasurements } from './common';

const attributesSchema = {
  hash_key: {
    type: 'string',
    sensitive: true,
    description:
      'Key for the hash action: hashes become HMAC-SHA256 with this key instead of plain SHA-256, so that hashed addresses cannot be reversed by hashing every address. Use ${env:...} rather than writing it in the file.',
  },
} as const satisfies Schema;

export interface AttributesConfig {
  readonly actions: readonly AttributeAction[];
  readonly hash_key?: string;
}

export function validateAttributesConfig(raw: unknown, path: string): AttributesConfig {
  const errors: ConfigError[] = [];
  const { config, extras } = validateWithExtras(raw, path, attributesSchema, ['actions'], errors);
  // A config that is not a map at all already has its error; do not add "actions missing" to it.
  const actions = raw !== undefined && raw !== null && !isConfigMap(raw) ? [] : validateActions(extras.actions, childPath(path, 'actions'), errors);
  throwIfErrors(errors, path);
  return config?.hash_key === undefined ? { actions } : { actions, hash_key: config.hash_key };
}

export const attributesOptions: readonly OptionDoc[] = [...actionOptionDocs('actions', 'attributes'), ...describeSchema(attributesSchema)];

export class AttributesProcessor extends StatelessLifecycle implements MetricsProcessor {
  private readonly actions: ActionList;
  /** Input attribute object → output (see common.ts on identity caches). */
  private readonly outputs = new WeakMap<FlowAttributes, FlowAttributes>();

  constructor(
    readonly id: string,
    readonly config: AttributesConfig,
  ) {
    super();
    this.actions = new ActionList(config.actions, config.hash_key);
  }

  process(batch: MeasurementBatch): MeasurementBatch {
    const out: Measurement[] = batch.measurements.map((m) => {
      let attributes = this.outputs.get(m.attributes);
      if (attributes === undefined) {
        attributes = this.actions.apply(m.attributes);
        this.outputs.set(m.attributes, attributes);
      }
      return attributes === m.attributes ? m : relabeled(m, attributes);
    });
    return withMeasurements(batch, out);
  }

  /** A logs pipeline: the same actions on each log record's attributes. */
  processLogs(batch: LogBatch): LogBatch {
    let changed = false;
    const out: LogRecordData[] = batch.records.map((r) => {
      const attributes = this.actions.apply(r.attributes);
      if (attributes === r.attributes) return r;
      changed = true;
      return { ...r, attributes };
    });
    return changed ? withRecords(batch, out) : batch;
  }
}

export const attributesProcessorFactory: ProcessorFactory<AttributesConfig> = {
  kind: 'processor',
  type: 'attributes',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: attributesOptions,
  // No actions is not a valid config (validate says so); the default is the empty list.
  defaultConfig: () => ({ actions: [] }),
  validate: validateAttributesConfig,
  create: (config, ctx) => new AttributesProcessor(ctx.id, config),
};
