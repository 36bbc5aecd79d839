/**
 * Which component types exist, per kind. The Collector keeps one factory map
 * per kind (a receiver and an exporter may both be called `otlp`), and so do we.
 */
import type { ComponentFactory, ComponentKind } from '../pipeline/component';

/** Any factory, config and instance types erased (methods are bivariant, so typed factories fit). */
export type AnyComponentFactory = ComponentFactory<unknown, unknown>;

/** type → factory, as a Map or a plain object (`{ otlp: otlpExporterFactory }`). */
export type FactoryMap = ReadonlyMap<string, AnyComponentFactory> | Readonly<Record<string, AnyComponentFactory>>;

export type ComponentSection = 'receivers' | 'processors' | 'exporters' | 'extensions';

export const SECTION_KIND: Readonly<Record<ComponentSection, ComponentKind>> = {
  receivers: 'receiver',
  processors: 'processor',
  exporters: 'exporter',
  extensions: 'extension',
};

export const COMPONENT_SECTIONS: readonly ComponentSection[] = ['receivers', 'processors', 'exporters', 'extensions'];

export interface ComponentRegistry {
  readonly receivers?: FactoryMap;
  readonly processors?: FactoryMap;
  readonly exporters?: FactoryMap;
  readonly extensions?: FactoryMap;
}

/**
 * What validateConfig accepts: a per-kind registry, a flat `type → factory`
 * Map (grouped by each factory's `kind`), or a list of factories.
 */
export type RegistryInput = ComponentRegistry | ReadonlyMap<string, AnyComponentFactory> | readonly AnyComponentFactory[];

export type ResolvedRegistry = Readonly<Record<ComponentSection, ReadonlyMap<string, AnyComponentFactory>>>;

const SECTION_OF_KIND: Readonly<Record<ComponentKind, ComponentSection>> = {
  receiver: 'receivers',
  processor: 'processors',
  exporter: 'exporters',
  extension: 'extensions',
};

/** Group factories by kind. Throws on two factories of the same kind and type. */
export function createRegistry(factories: Iterable<AnyComponentFactory>): ResolvedRegistry {
  const sections: Record<ComponentSection, Map<string, AnyComponentFactory>> = {
    receivers: new Map(),
    processors: new Map(),
    exporters: new Map(),
    extensions: new Map(),
  };
  for (const factory of factories) {
    const section = sections[SECTION_OF_KIND[factory.kind]];
    if (section.has(factory.type)) throw new Error(`two ${factory.kind} factories for type "${factory.type}"`);
    section.set(factory.type, factory);
  }
  return sections;
}

export function resolveRegistry(input: RegistryInput): ResolvedRegistry {
  if (Array.isArray(input)) return createRegistry(input as readonly AnyComponentFactory[]);
  if (input instanceof Map) return createRegistry((input as ReadonlyMap<string, AnyComponentFactory>).values());
  const registry = input as ComponentRegistry;
  const out = {} as Record<ComponentSection, ReadonlyMap<string, AnyComponentFactory>>;
  for (const section of COMPONENT_SECTIONS) out[section] = toMap(registry[section]);
  return out;
}

function toMap(factories: FactoryMap | undefined): ReadonlyMap<string, AnyComponentFactory> {
  if (factories === undefined) return new Map();
  if (factories instanceof Map) return factories as ReadonlyMap<string, AnyComponentFactory>;
  return new Map(Object.entries(factories as Readonly<Record<string, AnyComponentFactory>>));
}

const TYPE_PATTERN = /^[a-zA-Z][a-zA-Z0-9_]*$/;

export interface ComponentId {
  readonly type: string;
  readonly name?: string;
}

/** Parse `type[/name]`; returns an error message for a malformed id. */
export function parseComponentId(id: string): ComponentId | string {
  const slash = id.indexOf('/');
  const type = slash < 0 ? id : id.slice(0, slash);
  if (!TYPE_PATTERN.test(type)) {
    return `invalid component id "${id}": the type must start with a letter and contain only letters, digits and _`;
  }
  if (slash < 0) return { type };
  const name = id.slice(slash + 1);
  if (name === '' || /\s/.test(name)) return `invalid component id "${id}": the name after "/" must be non-empty and contain no spaces`;
  return { type, name };
}
