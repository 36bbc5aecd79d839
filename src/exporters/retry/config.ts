/**
 * `retry_on_failure` and `sending_queue`, with the names and defaults of the
 * Collector's exporterhelper, as option schemas the push exporters embed.
 */
import type { ObjectOption, Schema, SchemaValue } from '../../config/schema';
import { ConfigError } from '../../pipeline/component';
import type { BackoffSettings } from './backoff';

const RETRY_ON_FAILURE_SCHEMA = {
  enabled: {
    type: 'boolean',
    default: true,
    description: 'Retry exports that failed with a retryable error (gRPC UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED, CANCELLED, OUT_OF_RANGE, DATA_LOSS; HTTP 429, 502, 503, 504; network errors). Other errors drop the batch at once.',
  },
  initial_interval: { type: 'duration', default: '5s', description: 'Wait before the first retry.' },
  max_interval: { type: 'duration', default: '30s', description: 'Longest wait between two retries.' },
  max_elapsed_time: {
    type: 'duration',
    default: '300s',
    minMs: 0,
    description: 'Give a batch up (counted as failed) when retrying it would go on longer than this since its first attempt; 0: retry without limit.',
  },
  multiplier: { type: 'number', default: 1.5, min: 1, description: 'Each wait is the previous one times this (up to max_interval).' },
  randomization_factor: {
    type: 'number',
    default: 0.5,
    min: 0,
    max: 1,
    description: 'Jitter: each wait is picked at random within ±this fraction of the computed interval.',
  },
} as const satisfies Schema;

const SENDING_QUEUE_SCHEMA = {
  enabled: {
    type: 'boolean',
    default: true,
    description: 'Queue batches in memory so that a slow or down backend never blocks collection. false: each collection waits for its export, retries included.',
  },
  num_consumers: { type: 'number', integer: true, min: 1, max: 1000, default: 10, description: 'Exports in flight at once while draining the queue (one while the backend is failing). 1 keeps strict order.' },
  queue_size: {
    type: 'number',
    integer: true,
    min: 1,
    default: 1000,
    description: 'Most batches (one per collection) held, waiting or in flight; when full, a new batch is rejected and counted as dropped.',
  },
} as const satisfies Schema;

export const RETRY_ON_FAILURE_OPTION = {
  type: 'object',
  description: 'Retries with exponential backoff, as the Collector\'s exporterhelper.',
  schema: RETRY_ON_FAILURE_SCHEMA,
} as const satisfies ObjectOption;

export const SENDING_QUEUE_OPTION = {
  type: 'object',
  description: 'The in-memory queue between collection and export, as the Collector\'s exporterhelper.',
  schema: SENDING_QUEUE_SCHEMA,
} as const satisfies ObjectOption;

export type RetryOnFailureConfig = SchemaValue<typeof RETRY_ON_FAILURE_SCHEMA>;
export type SendingQueueConfig = SchemaValue<typeof SENDING_QUEUE_SCHEMA>;

export interface RetrySettings extends BackoffSettings {
  readonly enabled: boolean;
  /** 0: no limit. */
  readonly maxElapsedMs: number;
}

export interface QueueSettings {
  readonly enabled: boolean;
  readonly numConsumers: number;
  readonly queueSize: number;
}

/** Cross-option checks; `path` is the exporter's (`exporters.otlp`). */
export function checkRetryOnFailure(config: RetryOnFailureConfig, path: string): ConfigError[] {
  if (config.max_interval < config.initial_interval) {
    return [new ConfigError(`${path}.retry_on_failure.max_interval`, `must be at least initial_interval (${config.initial_interval}ms), got ${config.max_interval}ms`)];
  }
  return [];
}

export function retrySettings(config: RetryOnFailureConfig): RetrySettings {
  return {
    enabled: config.enabled,
    initialIntervalMs: config.initial_interval,
    maxIntervalMs: config.max_interval,
    maxElapsedMs: config.max_elapsed_time,
    multiplier: config.multiplier,
    randomizationFactor: config.randomization_factor,
  };
}

export function queueSettings(config: SendingQueueConfig): QueueSettings {
  return { enabled: config.enabled, numConsumers: config.num_consumers, queueSize: config.queue_size };
}
