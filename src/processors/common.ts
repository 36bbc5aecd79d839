/**
 * What the processors share: which attributes make a measurement a network
 * flow, canonical attribute-set keys, glob patterns, and config-validation
 * helpers for the parts the declarative schema (src/config/schema.ts) cannot
 * express (lists of maps, cross-option rules).
 */
import { ConfigError, ConfigErrorList, toConfigErrors } from '../config/errors';
import { childPath } from '../config/location';
import { validateObject, type Schema, type SchemaValue } from '../config/schema';
import { didYouMean } from '../config/suggest';
import { isConfigMap } from '../config/types';
import type { MeasurementBatch } from '../pipeline/measurements';
import type { FlowAttributes } from '../pipeline/measurements';

/**
 * Attributes that only network flows carry (docs/metrics.md). A measurement
 * with none of them (the agent's own `flowtel_*` metrics, which carry
 * `receiver`, `kind`, `reason`) is not a flow: filter, sampling and aggregate
 * pass it through untouched.
 */
export const FLOW_ATTRIBUTES: readonly string[] = [
  'source.address',
  'source.port',
  'destination.address',
  'destination.port',
  'network.transport',
  'network.type',
  'flow.direction',
  'process.pid',
  'process.executable.name',
  'network.interface.name',
];

export function isFlow(attributes: FlowAttributes): boolean {
  for (const key of FLOW_ATTRIBUTES) if (attributes[key] !== undefined) return true;
  return false;
}

/** A new batch with other measurements and the same time and replaced-gauge list. */
export function withMeasurements(batch: MeasurementBatch, measurements: MeasurementBatch['measurements']): MeasurementBatch {
  return { ...batch, measurements, gaugesReplaced: [...batch.gaugesReplaced] };
}

export { attributeKey } from '../pipeline/measurements';

/** A Map that forgets everything once it holds `limit` entries: a cache for hot lookups. */
export class BoundedCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly limit = 65_536) {}
  get(key: K): V | undefined {
    return this.map.get(key);
  }
  has(key: K): boolean {
    return this.map.has(key);
  }
  set(key: K, value: V): void {
    if (this.map.size >= this.limit) this.map.clear();
    this.map.set(key, value);
  }
}

/**
 * Shell-style globs: `*` any run of characters (also none), `?` exactly one;
 * everything else literal and case-sensitive. One RegExp for a whole list.
 */
export function compileGlobs(patterns: readonly string[]): RegExp {
  const parts = patterns.map((p) =>
    [...p].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&'))).join(''),
  );
  return new RegExp(`^(?:${parts.join('|')})$`, 's');
}

/** The fewest characters a glob can match. */
export function globMinLength(pattern: string): number {
  return [...pattern].filter((c) => c !== '*').length;
}

/** Throw the collected errors: one ConfigError, or a ConfigErrorList for several. */
export function throwIfErrors(errors: readonly ConfigError[], path: string): void {
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new ConfigErrorList(path, errors);
}

/**
 * validateObject for a map that also has options outside the schema (lists
 * of maps, values of any scalar type): those are returned raw in `extras` for
 * the caller to check, and an unknown key is reported with a suggestion drawn
 * from both. Errors are appended to `errors`, not thrown; `config` is
 * undefined when the schema part failed.
 */
export function validateWithExtras<S extends Schema>(
  raw: unknown,
  path: string,
  schema: S,
  extraKeys: readonly string[],
  errors: ConfigError[],
): { config: SchemaValue<S> | undefined; extras: Record<string, unknown> } {
  const extras: Record<string, unknown> = {};
  let schemaPart: unknown = raw;
  if (isConfigMap(raw)) {
    const known = [...Object.keys(schema), ...extraKeys];
    const rest: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(raw)) {
      if (extraKeys.includes(key)) extras[key] = value;
      else if (Object.prototype.hasOwnProperty.call(schema, key)) rest[key] = value;
      else errors.push(new ConfigError(childPath(path, key), `unknown option "${key}"${didYouMean(key, known)} (known options: ${known.join(', ')})`));
    }
    schemaPart = rest;
  }
  try {
    return { config: validateObject(schemaPart, path, schema), extras };
  } catch (error) {
    errors.push(...toConfigErrors(error, path));
    return { config: undefined, extras };
  }
}

/** validateObject, but errors go to `errors`. */
export function collectValidate<S extends Schema>(raw: unknown, path: string, schema: S, errors: ConfigError[]): SchemaValue<S> | undefined {
  try {
    return validateObject(raw, path, schema);
  } catch (error) {
    errors.push(...toConfigErrors(error, path));
    return undefined;
  }
}

/** Start and shutdown for processors that hold no resources. */
export abstract class StatelessLifecycle {
  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}
}
