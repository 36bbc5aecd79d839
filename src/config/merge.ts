/**
 * Merging config sources, later over earlier: maps are merged key by key,
 * anything else (scalars, lists) is replaced. A `null` over a map keeps the
 * map (`debug:` with no settings means "this component, default settings",
 * not "forget what an earlier file said").
 */
import { childPath, forgetSubtree, type LocationIndex, type SourceLocation } from './location';
import { isConfigMap, type ConfigMap, type ConfigValue } from './types';

export interface LocatedConfig {
  data: ConfigMap;
  locations: LocationIndex;
}

export function mergeConfigs(base: LocatedConfig, over: { data: ConfigMap; locations: ReadonlyMap<string, SourceLocation> }): LocatedConfig {
  const locations: LocationIndex = new Map(base.locations);
  const data = mergeMaps(base.data, over.data, '', locations, over.locations);
  return { data, locations };
}

function mergeMaps(
  base: ConfigMap,
  over: ConfigMap,
  path: string,
  locations: LocationIndex,
  overLocations: ReadonlyMap<string, SourceLocation>,
): ConfigMap {
  const out: ConfigMap = { ...base };
  for (const [key, overValue] of Object.entries(over)) {
    const keyPath = childPath(path, key);
    const baseValue = base[key];
    const keyLocation = overLocations.get(keyPath);
    if (isConfigMap(baseValue) && (isConfigMap(overValue) || overValue === null)) {
      if (keyLocation && !locations.has(keyPath)) locations.set(keyPath, keyLocation);
      out[key] = overValue === null ? baseValue : mergeMaps(baseValue, overValue, keyPath, locations, overLocations);
      continue;
    }
    forgetSubtree(locations, keyPath);
    copySubtree(overLocations, keyPath, locations);
    out[key] = cloneValue(overValue);
  }
  return out;
}

function copySubtree(from: ReadonlyMap<string, SourceLocation>, path: string, to: LocationIndex): void {
  for (const [key, location] of from) {
    if (key === path || key.startsWith(`${path}.`) || key.startsWith(`${path}[`)) to.set(key, location);
  }
}

function cloneValue(value: ConfigValue): ConfigValue {
  if (Array.isArray(value)) return value.map(cloneValue);
  if (isConfigMap(value)) {
    const out: ConfigMap = {};
    for (const [k, v] of Object.entries(value)) out[k] = cloneValue(v);
    return out;
  }
  return value;
}
