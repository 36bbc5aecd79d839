/**
 * Semantic validation of a loaded config against the registered component
 * factories, after the OpenTelemetry Collector: every problem is collected and
 * reported at once (ConfigValidationError), unused components are warnings.
 */
import type { ComponentKind } from '../pipeline/component';
import { LOG_LEVELS, type LogLevel } from '../util/log';
import { parseHostPort } from '../exporters/endpoint';
import { DEFAULT_METRICS_LEVEL, METRICS_LEVELS, type MetricsLevel } from '../telemetry/levels';
import { IssueCollector } from './errors';
import { HTTP_SERVER_AUTH_OPTION, HTTP_SERVER_TLS_OPTION, checkHttpServerSecurity, type HttpServerAuthConfig, type HttpServerTlsConfig } from '../util/http-server';
import { childPath } from './location';
import {
  COMPONENT_SECTIONS,
  parseComponentId,
  resolveRegistry,
  SECTION_KIND,
  type AnyComponentFactory,
  type ComponentSection,
  type RegistryInput,
} from './registry';
import { validateObject, describeValue, type Schema } from './schema';
import { didYouMean } from './suggest';
import { isConfigMap, type ConfigMap, type ConfigValue, type RawConfig } from './types';

export interface ValidatedComponent {
  /** `type[/name]` as written. */
  readonly id: string;
  readonly type: string;
  readonly name?: string;
  readonly kind: ComponentKind;
  readonly factory: AnyComponentFactory;
  /** The factory's validated config (what `factory.validate` returned). */
  readonly config: unknown;
}

export type PipelineSignal = 'metrics' | 'logs';

export interface ValidatedPipeline {
  /** `metrics` or `metrics/name`. */
  readonly id: string;
  readonly signal: PipelineSignal;
  readonly receivers: readonly string[];
  readonly processors: readonly string[];
  readonly exporters: readonly string[];
}

export interface ServiceConfig {
  /** Extensions to run, in start order (stopped in reverse, after the pipelines). */
  readonly extensions: readonly string[];
  readonly telemetry: {
    readonly logs: { readonly level: LogLevel };
    /** The agent's own metrics (src/telemetry/self-telemetry.ts). */
    readonly metrics: { readonly level: MetricsLevel; readonly address?: string; readonly tls?: HttpServerTlsConfig; readonly auth?: HttpServerAuthConfig };
  };
}

export interface ValidatedConfig {
  readonly receivers: ReadonlyMap<string, ValidatedComponent>;
  readonly processors: ReadonlyMap<string, ValidatedComponent>;
  readonly exporters: ReadonlyMap<string, ValidatedComponent>;
  readonly extensions: ReadonlyMap<string, ValidatedComponent>;
  readonly pipelines: readonly ValidatedPipeline[];
  readonly service: ServiceConfig;
  /** Non-fatal: unused components, unset env variables. */
  readonly warnings: readonly string[];
}

const TOP_LEVEL_KEYS = ['receivers', 'processors', 'exporters', 'extensions', 'service'] as const;
const SERVICE_KEYS = ['pipelines', 'telemetry', 'extensions'] as const;
const PIPELINE_KEYS = ['receivers', 'processors', 'exporters'] as const;
const SUPPORTED_SIGNALS: readonly PipelineSignal[] = ['metrics', 'logs'];
const KNOWN_SIGNALS: readonly string[] = ['metrics', 'traces', 'logs', 'profiles'];

const TELEMETRY_SCHEMA = {
  logs: {
    type: 'object',
    description: "The agent's own logs (JSON on stderr).",
    schema: {
      level: {
        type: 'enum',
        values: LOG_LEVELS,
        default: 'info',
        description: 'Minimum log level; FLOWTEL_LOG_LEVEL overrides it.',
      },
    },
  },
  metrics: {
    type: 'object',
    description: "The agent's own metrics (flowtel_*): served by every prometheus exporter of the pipelines, and at address if set.",
    schema: {
      level: {
        type: 'enum',
        values: METRICS_LEVELS,
        default: DEFAULT_METRICS_LEVEL,
        description: 'none: no self-telemetry (the receivers\' flowtel_* measurements are dropped too); basic: process, receiver and exporter counters; normal: also event-loop delay and collection failures; detailed: more event-loop quantiles.',
      },
      address: {
        type: 'string',
        check: (value: string) => {
          const parsed = parseHostPort(value);
          return typeof parsed === 'string' ? parsed : undefined;
        },
        description: 'host:port of a Prometheus endpoint (/metrics) that serves only self-telemetry, like the Collector\'s :8888. Unset: none.',
      },
      tls: HTTP_SERVER_TLS_OPTION,
      auth: HTTP_SERVER_AUTH_OPTION,
    },
  },
} as const satisfies Schema;

/**
 * Validate `raw` against the factories in `registry`. Returns the typed config
 * or throws ConfigValidationError listing every problem found.
 */
export function validateConfig(raw: RawConfig, registry: RegistryInput): ValidatedConfig {
  const factories = resolveRegistry(registry);
  const issues = new IssueCollector(raw.locations);
  const data = raw.data;

  for (const key of Object.keys(data)) {
    if ((TOP_LEVEL_KEYS as readonly string[]).includes(key)) continue;
    const hint = key === 'connectors' ? ' (flowtel has no connectors)' : didYouMean(key, TOP_LEVEL_KEYS);
    issues.add(key, `unknown top-level key "${key}"${hint} (expected ${TOP_LEVEL_KEYS.join(', ')})`);
  }

  const components = {} as Record<ComponentSection, Map<string, ValidatedComponent>>;
  // Ids written in each section, valid or not: a pipeline that references a
  // component whose own config is broken should not get a second error.
  const defined = {} as Record<ComponentSection, string[]>;
  for (const section of COMPONENT_SECTIONS) {
    defined[section] = Object.keys(sectionMap(data[section], section));
    components[section] = validateSection(section, data[section], factories[section], issues);
  }

  const service = sectionMap(data.service, 'service', issues);
  for (const key of Object.keys(service)) {
    if (!(SERVICE_KEYS as readonly string[]).includes(key)) {
      issues.add(childPath('service', key), `unknown key "${key}"${didYouMean(key, SERVICE_KEYS)} (expected ${SERVICE_KEYS.join(', ')})`);
    }
  }

  let telemetry: ServiceConfig['telemetry'] = { logs: { level: 'info' }, metrics: { level: DEFAULT_METRICS_LEVEL } };
  const telemetryWarnings: string[] = [];
  try {
    telemetry = validateObject(service.telemetry, 'service.telemetry', TELEMETRY_SCHEMA);
    const m = telemetry.metrics;
    if (m.tls && m.auth) for (const e of checkHttpServerSecurity(m.tls, m.auth, 'service.telemetry.metrics')) issues.addError(e, 'service.telemetry.metrics');
    if (telemetry.metrics.level === 'none' && telemetry.metrics.address !== undefined) {
      telemetryWarnings.push('service.telemetry.metrics.address: ignored, level is none (no self-telemetry is served)');
    }
  } catch (error) {
    issues.addError(error, 'service.telemetry');
  }

  const serviceExtensions = referenceList(service.extensions, 'service.extensions', 'extensions', defined.extensions, issues);
  const pipelines = validatePipelines(service.pipelines, defined, issues, components);
  checkExporterResources(pipelines, components.processors, issues);

  issues.throwIfAny();

  const warnings = [...raw.warnings, ...telemetryWarnings, ...unusedComponentWarnings(components, pipelines, serviceExtensions)];
  return {
    receivers: components.receivers,
    processors: components.processors,
    exporters: components.exporters,
    extensions: components.extensions,
    pipelines,
    service: { extensions: serviceExtensions, telemetry },
    warnings,
  };
}

function sectionMap(value: ConfigValue | undefined, path: string, issues?: IssueCollector): ConfigMap {
  if (value === undefined || value === null) return {};
  if (isConfigMap(value)) return value;
  issues?.add(path, `expected a map, got ${describeValue(value)}`);
  return {};
}

function validateSection(
  section: ComponentSection,
  value: ConfigValue | undefined,
  factories: ReadonlyMap<string, AnyComponentFactory>,
  issues: IssueCollector,
): Map<string, ValidatedComponent> {
  const out = new Map<string, ValidatedComponent>();
  const kind = SECTION_KIND[section];
  for (const [id, componentConfig] of Object.entries(sectionMap(value, section, issues))) {
    const path = childPath(section, id);
    const parsed = parseComponentId(id);
    if (typeof parsed === 'string') {
      issues.add(path, parsed);
      continue;
    }
    const factory = factories.get(parsed.type);
    if (!factory) {
      const known = [...factories.keys()].sort();
      const knownText = known.length > 0 ? `known ${kind} types: ${known.join(', ')}` : `no ${kind} types are available`;
      issues.add(path, `unknown ${kind} type "${parsed.type}"${didYouMean(parsed.type, known)} (${knownText})`);
      continue;
    }
    try {
      const config = factory.validate(componentConfig, path);
      out.set(id, {
        id,
        type: parsed.type,
        ...(parsed.name === undefined ? {} : { name: parsed.name }),
        kind,
        factory,
        config,
      });
    } catch (error) {
      issues.addError(error, path);
    }
  }
  return out;
}

/** A list of component ids that must be defined in `section`. */
function referenceList(
  value: ConfigValue | undefined,
  path: string,
  section: ComponentSection,
  definedIds: readonly string[],
  issues: IssueCollector,
): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    issues.add(path, `expected a list of ${section} ids, got ${describeValue(value)}`);
    return [];
  }
  const out: string[] = [];
  value.forEach((item, index) => {
    const itemPath = childPath(path, index);
    if (typeof item !== 'string') {
      issues.add(itemPath, `expected a component id, got ${describeValue(item)}`);
      return;
    }
    if (out.includes(item)) {
      issues.add(itemPath, `"${item}" is listed more than once`);
      return;
    }
    if (!definedIds.includes(item)) {
      const kind = SECTION_KIND[section];
      const definedText = definedIds.length > 0 ? `defined ${section}: ${definedIds.join(', ')}` : `no ${section} are defined`;
      issues.add(itemPath, `${kind} "${item}" is not defined under ${section}:${didYouMean(item, definedIds)} (${definedText})`);
    }
    out.push(item);
  });
  return out;
}

function validatePipelines(
  value: ConfigValue | undefined,
  defined: Readonly<Record<ComponentSection, readonly string[]>>,
  issues: IssueCollector,
  components?: Readonly<Record<ComponentSection, ReadonlyMap<string, ValidatedComponent>>>,
): ValidatedPipeline[] {
  const pipelinesPath = 'service.pipelines';
  if (value === undefined || value === null) {
    issues.add('service', 'no pipelines: define at least one under service.pipelines (e.g. metrics: {receivers: [...], exporters: [...]})');
    return [];
  }
  const pipelines = sectionMap(value, pipelinesPath, issues);
  const out: ValidatedPipeline[] = [];
  if (isConfigMap(value) && Object.keys(pipelines).length === 0) issues.add(pipelinesPath, 'no pipelines are defined');
  for (const [id, pipelineValue] of Object.entries(pipelines)) {
    const path = childPath(pipelinesPath, id);
    const slash = id.indexOf('/');
    const signal = slash < 0 ? id : id.slice(0, slash);
    if (!(SUPPORTED_SIGNALS as readonly string[]).includes(signal)) {
      const reason = KNOWN_SIGNALS.includes(signal)
        ? `flowtel produces metrics and logs; "${signal}" pipelines are not supported`
        : `unknown pipeline signal "${signal}"${didYouMean(signal, SUPPORTED_SIGNALS)} (pipeline ids are metrics, logs, or metrics/<name>, logs/<name>)`;
      issues.add(path, reason);
      continue;
    }
    if (slash >= 0 && id.length === slash + 1) {
      issues.add(path, `invalid pipeline id "${id}": the name after "/" is empty`);
      continue;
    }
    const pipeline = sectionMap(pipelineValue, path, issues);
    for (const key of Object.keys(pipeline)) {
      if (!(PIPELINE_KEYS as readonly string[]).includes(key)) {
        issues.add(childPath(path, key), `unknown key "${key}"${didYouMean(key, PIPELINE_KEYS)} (expected ${PIPELINE_KEYS.join(', ')})`);
      }
    }
    const receivers = referenceList(pipeline.receivers, childPath(path, 'receivers'), 'receivers', defined.receivers, issues);
    const processors = referenceList(pipeline.processors, childPath(path, 'processors'), 'processors', defined.processors, issues);
    const exporters = referenceList(pipeline.exporters, childPath(path, 'exporters'), 'exporters', defined.exporters, issues);
    if (receivers.length === 0) issues.add(path, 'pipeline has no receivers');
    if (exporters.length === 0) issues.add(path, 'pipeline has no exporters');
    const sig = signal as PipelineSignal;
    for (const [section, ids] of [['receivers', receivers], ['processors', processors], ['exporters', exporters]] as const) {
      ids.forEach((cid, i) => {
        const factory = components?.[section].get(cid)?.factory;
        if (factory && !(factory.signals ?? ['metrics']).includes(sig)) {
          const can = (factory.signals ?? ['metrics']).join(', ');
          issues.add(`${childPath(path, section)}[${i}]`, `${SECTION_KIND[section]} "${cid}" (${factory.type}) cannot be in a ${sig} pipeline (it supports: ${can})`);
        }
      });
    }
    out.push({ id, signal: sig, receivers, processors, exporters });
  }
  return out;
}

/**
 * An exporter sends one resource (src/pipeline/pipeline-resource.ts): every
 * pipeline that lists it must have the same resource processors (same
 * configs, same order).
 */
function checkExporterResources(
  pipelines: readonly ValidatedPipeline[],
  processors: ReadonlyMap<string, ValidatedComponent>,
  issues: IssueCollector,
): void {
  const resourceIds = (p: ValidatedPipeline): string[] => p.processors.filter((id) => processors.get(id)?.factory.setsResource === true);
  const key = (p: ValidatedPipeline): string => JSON.stringify(resourceIds(p).map((id) => processors.get(id)?.config));
  const describe = (p: ValidatedPipeline): string => {
    const ids = resourceIds(p);
    return `${p.id} (${ids.length > 0 ? `resource processors: ${ids.join(', ')}` : 'no resource processor'})`;
  };
  const seen = new Map<string, ValidatedPipeline>();
  for (const p of pipelines) {
    p.exporters.forEach((exporter, i) => {
      const first = seen.get(exporter);
      if (!first) {
        seen.set(exporter, p);
        return;
      }
      if (key(first) === key(p)) return;
      issues.add(
        `${childPath(childPath('service.pipelines', p.id), 'exporters')}[${i}]`,
        `exporter "${exporter}" is listed by pipelines ${describe(first)} and ${describe(p)}: an exporter sends one resource, so every pipeline that lists it needs the same resource processors; give each its own exporter id (e.g. ${exporter.split('/')[0]}/${p.id.replace('/', '_')})`,
      );
    });
  }
}

function unusedComponentWarnings(
  components: Readonly<Record<ComponentSection, ReadonlyMap<string, ValidatedComponent>>>,
  pipelines: readonly ValidatedPipeline[],
  serviceExtensions: readonly string[],
): string[] {
  const warnings: string[] = [];
  for (const section of ['receivers', 'processors', 'exporters'] as const) {
    const used = new Set(pipelines.flatMap((p) => p[section]));
    for (const id of components[section].keys()) {
      if (!used.has(id)) warnings.push(`${section}.${id}: ${SECTION_KIND[section]} "${id}" is defined but not used in any pipeline`);
    }
  }
  for (const id of components.extensions.keys()) {
    if (!serviceExtensions.includes(id)) {
      warnings.push(`extensions.${id}: extension "${id}" is defined but not listed in service.extensions`);
    }
  }
  return warnings;
}
