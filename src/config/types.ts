/** Plain data shapes of a parsed (not yet validated) config. */
import type { SourceLocation } from './location';

export type ConfigScalar = string | number | boolean | null;
export type ConfigValue = ConfigScalar | ConfigValue[] | ConfigMap;
export interface ConfigMap {
  [key: string]: ConfigValue;
}

export function isConfigMap(value: unknown): value is ConfigMap {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The result of loading config sources: merged data plus where each value was written. */
export interface RawConfig {
  readonly data: ConfigMap;
  /** Formatted path (`exporters.otlp.endpoint`) → location of the key that set it. */
  readonly locations: ReadonlyMap<string, SourceLocation>;
  /** Names of the sources merged, in order. */
  readonly sources: readonly string[];
  /** Non-fatal problems, e.g. `${env:X}` with X unset. */
  readonly warnings: readonly string[];
}
