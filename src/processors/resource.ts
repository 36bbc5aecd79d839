/**
 * `resource`: the Collector's resource processor — insert, update, upsert,
 * delete, hash, extract and convert actions (./actions.ts) on the resource
 * attributes (service.name, host.name, host.id, os.*, what
 * OTEL_RESOURCE_ATTRIBUTES adds, …) of what the pipeline's exporters send,
 * metrics and log records alike.
 *
 * The resource is not part of flowtel's batches: it belongs to each exporter
 * (src/pipeline/pipeline-resource.ts). The service applies the actions of
 * the resource processors of an exporter's pipelines to that exporter's
 * resource, and validation requires every pipeline that lists an exporter to
 * have the same resource processors. Batches pass this processor unchanged.
 *
 * Options: `attributes` (the Collector's name for the list of actions) and,
 * as for the attributes processor, `hash_key` for keyed hashes.
 */
import type { Attributes } from '@opentelemetry/api';
import { ConfigError } from '../config/errors';
import { childPath } from '../config/location';
import { describeSchema, type Schema } from '../config/schema';
import { isConfigMap } from '../config/types';
import type { MetricsProcessor, OptionDoc, ProcessorFactory } from '../pipeline/component';
import type { LogBatch, LogsProcessor } from '../pipeline/logs';
import type { FlowAttributes, MeasurementBatch } from '../pipeline/measurements';
import type { ResourceTransformer } from '../pipeline/pipeline-resource';
import { ActionList, actionOptionDocs, validateActions, type AttributeAction } from './actions';
import { StatelessLifecycle, throwIfErrors, validateWithExtras } from './common';

const resourceSchema = {
  hash_key: {
    type: 'string',
    description: 'Key for the hash action: HMAC-SHA256 with this key instead of plain SHA-256 (e.g. to hash host.name). Use ${env:...} rather than writing it in the file.',
  },
} as const satisfies Schema;

export interface ResourceProcessorConfig {
  /** The actions, under the Collector's option name `attributes`. */
  readonly attributes: readonly AttributeAction[];
  readonly hash_key?: string;
}

function validateResourceConfig(raw: unknown, path: string): ResourceProcessorConfig {
  const errors: ConfigError[] = [];
  const { config, extras } = validateWithExtras(raw, path, resourceSchema, ['attributes'], errors);
  const attributes = raw !== undefined && raw !== null && !isConfigMap(raw) ? [] : validateActions(extras.attributes, childPath(path, 'attributes'), errors);
  throwIfErrors(errors, path);
  return config?.hash_key === undefined ? { attributes } : { attributes, hash_key: config.hash_key };
}

const resourceOptions: readonly OptionDoc[] = [
  ...actionOptionDocs('attributes', 'resource attributes', 'of what the exporters of the pipeline send (metrics and log records); an exporter listed by several pipelines needs the same resource processors in each'),
  ...describeSchema(resourceSchema),
];

export class ResourceProcessor extends StatelessLifecycle implements MetricsProcessor, LogsProcessor, ResourceTransformer {
  private readonly actions: ActionList;

  constructor(
    readonly id: string,
    readonly config: ResourceProcessorConfig,
  ) {
    super();
    this.actions = new ActionList(config.attributes, config.hash_key);
  }

  /** The resource attributes after the actions (values that are not string, number or boolean are left to the actions as they are). */
  transformResource(attributes: Attributes): Attributes {
    return this.actions.apply(attributes as FlowAttributes) as Attributes;
  }

  /** Batches carry no resource: they pass unchanged (the service applies transformResource to the exporters' resource). */
  process(batch: MeasurementBatch): MeasurementBatch {
    return batch;
  }

  processLogs(batch: LogBatch): LogBatch {
    return batch;
  }
}

export const resourceProcessorFactory: ProcessorFactory<ResourceProcessorConfig, ResourceProcessor> = {
  kind: 'processor',
  type: 'resource',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  setsResource: true,
  options: resourceOptions,
  defaultConfig: () => ({ attributes: [] }),
  validate: validateResourceConfig,
  create: (config, ctx) => new ResourceProcessor(ctx.id, config),
};
