/**
 * `filter`: keep or drop flows by port, address, process, direction,
 * transport and interface.
 *
 * A flow (a measurement with flow attributes) is kept when it matches every
 * criterion listed under `include` and none listed under `exclude`:
 *
 * - `include` narrows: each criterion it lists must match (AND across
 *   criteria); within one criterion any listed value may match (OR).
 * - `exclude` removes: each criterion it lists stands on its own; a flow that
 *   matches any of them is dropped. `exclude: { ports: [22], processes: [sshd] }`
 *   drops everything on port 22 and everything sshd does.
 *
 * Put differently: kept ⇔ (∀ include criteria: match) ∧ (∀ exclude criteria: no match).
 * A flow that lacks the attribute a criterion looks at does not match it (so
 * `include.processes` drops flows with no process, `exclude.processes` keeps
 * them) — except `interfaces`, which judges only flows that carry
 * `network.interface.name`. Measurements with no flow attributes (the agent's
 * `flowtel_*` self-telemetry) always pass. An empty list is no criterion.
 */
import { withRecords, type LogBatch } from '../pipeline/logs';
import { ConfigError } from '../config/errors';
import { childPath } from '../config/location';
import { describeSchema, type Schema, type SchemaValue } from '../config/schema';
import { didYouMean } from '../config/suggest';
import type { MetricsProcessor, OptionDoc, ProcessorFactory } from '../pipeline/component';
import { valueCount, type FlowAttributes, type Measurement, type MeasurementBatch } from '../pipeline/measurements';
import { BoundedCache, collectValidate, compileGlobs, globMinLength, isFlow, StatelessLifecycle, throwIfErrors, withMeasurements } from './common';
import { cidrContains, parseCidr, parseIp, type Cidr, type IpAddress } from '../util/ip';

export const DIRECTIONS = ['outgoing', 'incoming', 'local'] as const;
export const TRANSPORTS = ['tcp', 'udp'] as const;
/** The kernel's comm is at most 15 characters (TASK_COMM_LEN 16 with the NUL). */
const COMM_MAX = 15;

function criteriaSchema(verb: 'include' | 'exclude') {
  const lead = verb === 'include' ? 'Keep only flows whose' : 'Drop flows whose';
  return {
    ports: {
      type: 'string[]',
      default: [],
      description: `${lead} server port (source.port or destination.port, whichever the flow has; both when include_ephemeral_ports is on) is one of these: a port (443) or an inclusive range ("8000-8100"), 1–65535.`,
    },
    cidrs: {
      type: 'string[]',
      default: [],
      description: `${lead} remote address (destination.address) is in one of these IPv4 or IPv6 CIDRs ("10.0.0.0/8", "fd00::/8"; a bare address is a /32 or /128). IPv4-mapped IPv6 addresses count as IPv4; a CIDR matches only its own family.`,
    },
    source_cidrs: {
      type: 'string[]',
      default: [],
      description: `${lead} local address (source.address) is in one of these CIDRs (same syntax as cidrs).`,
    },
    processes: {
      type: 'string[]',
      default: [],
      description: `${lead} process.executable.name (the kernel's comm, at most 15 characters) matches one of these globs ("nginx", "postgres*"; * any characters, ? one). Flows without a process never match.`,
    },
    directions: {
      type: 'string[]',
      default: [],
      description: `${lead} flow.direction is one of these: outgoing, incoming, local.`,
    },
    transports: {
      type: 'string[]',
      default: [],
      description: `${lead} network.transport is one of these: tcp, udp.`,
    },
    interfaces: {
      type: 'string[]',
      default: [],
      description: `${lead} network.interface.name matches one of these globs ("eth*"). Judges only flows that carry that attribute; flows without it are neither kept nor dropped by this criterion (flows do not carry it yet).`,
    },
  } as const satisfies Schema;
}

export const filterSchema = {
  include: {
    type: 'object',
    description: 'A flow is kept when it matches every criterion listed here (within one criterion, any of its values) and none listed under exclude. No criteria: every flow is a candidate. Measurements without flow attributes (flowtel_* self-telemetry) always pass.',
    schema: criteriaSchema('include'),
  },
  exclude: {
    type: 'object',
    description: 'Criteria that each drop a flow on their own (not all together): a flow matching any one of them is dropped, even if include keeps it.',
    schema: criteriaSchema('exclude'),
  },
} as const satisfies Schema;

type RawFilterConfig = SchemaValue<typeof filterSchema>;

/** An inclusive port range. */
export type PortRange = readonly [number, number];

/** One side (include or exclude) of a validated filter. Absent: not a criterion. */
export interface FilterCriteria {
  readonly ports?: readonly PortRange[];
  readonly cidrs?: readonly Cidr[];
  readonly sourceCidrs?: readonly Cidr[];
  readonly processes?: readonly string[];
  readonly directions?: readonly string[];
  readonly transports?: readonly string[];
  readonly interfaces?: readonly string[];
}

export interface FilterConfig {
  readonly include: FilterCriteria;
  readonly exclude: FilterCriteria;
}

/** A CIDR as plain data for a kernel map (LPM trie key: prefix length + network bytes). */
export interface PushdownCidr {
  readonly family: 4 | 6;
  readonly prefixLength: number;
  /** Canonical text, `10.0.0.0/8`. */
  readonly cidr: string;
  /** Network address bytes, network order (4 or 16). */
  readonly bytes: number[];
}

/**
 * The filter's criteria as plain data, for a kernel-side filter. Semantics are
 * the processor's: a flow is kept iff it matches every `include*` list that is
 * present (any value within a list) and no `exclude*` list (each list on its
 * own). Ports are inclusive [from, to] ranges matched against the server port;
 * `*Cidrs` are the remote end (destination.address), `*SourceCidrs` the local
 * end; processes and interfaces are globs (`*`, `?`) on comm / interface name.
 * IPv4 CIDRs also cover IPv4-mapped IPv6 addresses.
 */
export interface FilterPushdown {
  includePorts?: [number, number][];
  excludePorts?: [number, number][];
  includeCidrs?: PushdownCidr[];
  excludeCidrs?: PushdownCidr[];
  includeSourceCidrs?: PushdownCidr[];
  excludeSourceCidrs?: PushdownCidr[];
  includeProcesses?: string[];
  excludeProcesses?: string[];
  includeDirections?: string[];
  excludeDirections?: string[];
  includeTransports?: string[];
  excludeTransports?: string[];
  includeInterfaces?: string[];
  excludeInterfaces?: string[];
}

/**
 * The part of a pushdown a kernel filter of exact ports, destination CIDRs and
 * exact command names can apply without changing results: the shape of
 * `KernelFilter` in src/receivers/ebpf_tcp/kernel-filter.ts. An include list
 * is taken whole or not at all (a partial include would drop flows the
 * processor keeps): not when it has globs or more ports than fit. An exclude
 * list may be cut to what fits (the processor still drops the rest). Criteria
 * the kernel does not know (source_cidrs, directions, transports, interfaces)
 * stay in userspace only. The processor must still run after it.
 */
export function kernelFilterCriteria(
  p: FilterPushdown,
  maxPorts = 4096,
): {
  ports: { include: number[]; exclude: number[] };
  cidrs: { include: string[]; exclude: string[] };
  processes: { include: string[]; exclude: string[] };
} {
  const expand = (ranges: readonly (readonly [number, number])[] | undefined, budget: number): number[] | undefined => {
    const out = new Set<number>();
    for (const [from, to] of ranges ?? []) {
      for (let port = from; port <= to; port++) {
        if (out.size >= budget) return undefined;
        out.add(port);
      }
    }
    return [...out];
  };
  const includePorts = expand(p.includePorts, maxPorts) ?? [];
  const excludePorts: number[] = [];
  for (const [from, to] of p.excludePorts ?? []) {
    for (let port = from; port <= to && includePorts.length + excludePorts.length < maxPorts; port++) excludePorts.push(port);
  }
  const literal = (name: string): boolean => !name.includes('*') && !name.includes('?');
  const includeProcesses = p.includeProcesses?.every(literal) ? [...p.includeProcesses] : [];
  return {
    ports: { include: includePorts, exclude: excludePorts },
    cidrs: { include: (p.includeCidrs ?? []).map((c) => c.cidr), exclude: (p.excludeCidrs ?? []).map((c) => c.cidr) },
    processes: { include: includeProcesses, exclude: (p.excludeProcesses ?? []).filter(literal) },
  };
}

export function parsePortRange(text: string): PortRange {
  const trimmed = text.trim();
  const m = /^([0-9]+)(?:\s*-\s*([0-9]+))?$/.exec(trimmed);
  if (!m) throw new Error(`invalid port or port range "${text}": expected a port (443) or a range ("8000-8100")`);
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  for (const p of [from, to]) {
    if (p < 1 || p > 65535) throw new Error(`invalid port ${m[2] === undefined ? '' : 'range '}"${text}": ports are 1–65535`);
  }
  if (from > to) throw new Error(`invalid port range "${text}": the start (${from}) is greater than the end (${to}); did you mean "${to}-${from}"?`);
  return [from, to];
}

function compileCriteria(raw: RawFilterConfig['include'], path: string, errors: ConfigError[]): FilterCriteria {
  const listPath = (option: string, i: number): string => childPath(childPath(path, option), i);
  const each = <T>(option: keyof typeof raw, parse: (text: string, i: number) => T | undefined): T[] | undefined => {
    const values = raw[option];
    if (values.length === 0) return undefined;
    const out: T[] = [];
    values.forEach((text, i) => {
      try {
        const v = parse(text, i);
        if (v !== undefined) out.push(v);
      } catch (error) {
        errors.push(new ConfigError(listPath(option, i), error instanceof Error ? error.message : String(error)));
      }
    });
    return out;
  };
  const oneOf = (option: 'directions' | 'transports', allowed: readonly string[]) =>
    each(option, (text) => {
      const value = text.trim().toLowerCase();
      if (allowed.includes(value)) return value;
      throw new Error(`unknown ${option.slice(0, -1)} "${text}"${didYouMean(text, allowed)} (one of: ${allowed.join(', ')})`);
    });
  const globs = (option: 'processes' | 'interfaces') =>
    each(option, (text) => {
      if (text === '') throw new Error('an empty pattern matches nothing');
      if (option === 'processes' && globMinLength(text) > COMM_MAX) {
        const cut = [...text].slice(0, COMM_MAX).join('');
        throw new Error(
          `"${text}" can never match: process.executable.name is the kernel's comm, at most ${COMM_MAX} characters; use "${cut}" or "${cut}*"`,
        );
      }
      return text;
    });
  const criteria: { -readonly [K in keyof FilterCriteria]: FilterCriteria[K] } = {
    ports: each('ports', (text) => parsePortRange(text)),
    cidrs: each('cidrs', (text) => parseCidr(text)),
    sourceCidrs: each('source_cidrs', (text) => parseCidr(text)),
    processes: globs('processes'),
    directions: oneOf('directions', DIRECTIONS),
    transports: oneOf('transports', TRANSPORTS),
    interfaces: globs('interfaces'),
  };
  for (const key of Object.keys(criteria) as (keyof FilterCriteria)[]) if (criteria[key] === undefined) delete criteria[key];
  return criteria;
}

export function validateFilterConfig(raw: unknown, path: string): FilterConfig {
  const errors: ConfigError[] = [];
  const v = collectValidate(raw, path, filterSchema, errors);
  throwIfErrors(errors, path);
  const config = v as RawFilterConfig;
  const include = compileCriteria(config.include, childPath(path, 'include'), errors);
  const exclude = compileCriteria(config.exclude, childPath(path, 'exclude'), errors);
  throwIfErrors(errors, path);
  return { include, exclude };
}

export const filterOptions: readonly OptionDoc[] = describeSchema(filterSchema);

interface CompiledSide {
  readonly ports?: readonly PortRange[];
  readonly cidrs?: readonly Cidr[];
  readonly sourceCidrs?: readonly Cidr[];
  readonly processes?: RegExp;
  readonly directions?: ReadonlySet<string>;
  readonly transports?: ReadonlySet<string>;
  readonly interfaces?: RegExp;
}

function compileSide(c: FilterCriteria): CompiledSide {
  return {
    ...(c.ports ? { ports: c.ports } : {}),
    ...(c.cidrs ? { cidrs: c.cidrs } : {}),
    ...(c.sourceCidrs ? { sourceCidrs: c.sourceCidrs } : {}),
    ...(c.processes ? { processes: compileGlobs(c.processes) } : {}),
    ...(c.directions ? { directions: new Set(c.directions) } : {}),
    ...(c.transports ? { transports: new Set(c.transports) } : {}),
    ...(c.interfaces ? { interfaces: compileGlobs(c.interfaces) } : {}),
  };
}

function toPort(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^[0-9]+$/.test(value)) return Number(value);
  return undefined;
}

function portsMatch(ranges: readonly PortRange[], attributes: FlowAttributes): boolean {
  for (const key of ['source.port', 'destination.port']) {
    const port = toPort(attributes[key]);
    if (port === undefined) continue;
    for (const [from, to] of ranges) if (port >= from && port <= to) return true;
  }
  return false;
}

function toPushdownCidr(c: Cidr): PushdownCidr {
  return { family: c.family, prefixLength: c.prefixLength, cidr: c.text, bytes: Array.from(c.bytes) };
}

export class FilterProcessor extends StatelessLifecycle implements MetricsProcessor {
  private readonly include: CompiledSide;
  private readonly exclude: CompiledSide;
  private readonly addresses = new BoundedCache<string, IpAddress | null>();
  /** Decision per attribute object (see common.ts on identity caches). */
  private readonly decisions = new WeakMap<FlowAttributes, boolean>();
  private passedCount = 0;
  private droppedCount = 0;

  constructor(
    readonly id: string,
    readonly config: FilterConfig,
  ) {
    super();
    this.include = compileSide(config.include);
    this.exclude = compileSide(config.exclude);
  }

  /** Measurements passed and dropped since creation (self-telemetry included in passed). */
  get counters(): { passed: number; dropped: number } {
    return { passed: this.passedCount, dropped: this.droppedCount };
  }

  process(batch: MeasurementBatch): MeasurementBatch {
    const out: Measurement[] = [];
    for (const m of batch.measurements) {
      let keep = this.decisions.get(m.attributes);
      if (keep === undefined) {
        keep = this.keeps(m.attributes);
        this.decisions.set(m.attributes, keep);
      }
      if (keep) {
        out.push(m);
        this.passedCount += valueCount(m);
      } else {
        this.droppedCount += valueCount(m);
      }
    }
    return withMeasurements(batch, out);
  }

  /** A logs pipeline: log records are kept or dropped by their attributes, as measurements are. */
  processLogs(batch: LogBatch): LogBatch {
    const out = batch.records.filter((r) => this.keeps(r.attributes));
    this.passedCount += out.length;
    this.droppedCount += batch.records.length - out.length;
    return out.length === batch.records.length ? batch : withRecords(batch, out);
  }

  /** Whether a measurement with these attributes passes. */
  keeps(attributes: FlowAttributes): boolean {
    if (!isFlow(attributes)) return true;
    return !this.anyVerdict(this.include, attributes, false) && !this.anyVerdict(this.exclude, attributes, true);
  }

  kernelPushdown(): FilterPushdown {
    const out: FilterPushdown = {};
    const { include: inc, exclude: exc } = this.config;
    if (inc.ports) out.includePorts = inc.ports.map(([a, b]) => [a, b]);
    if (exc.ports) out.excludePorts = exc.ports.map(([a, b]) => [a, b]);
    if (inc.cidrs) out.includeCidrs = inc.cidrs.map(toPushdownCidr);
    if (exc.cidrs) out.excludeCidrs = exc.cidrs.map(toPushdownCidr);
    if (inc.sourceCidrs) out.includeSourceCidrs = inc.sourceCidrs.map(toPushdownCidr);
    if (exc.sourceCidrs) out.excludeSourceCidrs = exc.sourceCidrs.map(toPushdownCidr);
    if (inc.processes) out.includeProcesses = [...inc.processes];
    if (exc.processes) out.excludeProcesses = [...exc.processes];
    if (inc.directions) out.includeDirections = [...inc.directions];
    if (exc.directions) out.excludeDirections = [...exc.directions];
    if (inc.transports) out.includeTransports = [...inc.transports];
    if (exc.transports) out.excludeTransports = [...exc.transports];
    if (inc.interfaces) out.includeInterfaces = [...inc.interfaces];
    if (exc.interfaces) out.excludeInterfaces = [...exc.interfaces];
    return out;
  }

  /** Whether any criterion of `side` gives `verdict` (criteria that do not apply give none). */
  private anyVerdict(side: CompiledSide, a: FlowAttributes, verdict: boolean): boolean {
    if (side.transports && side.transports.has(String(a['network.transport'] ?? '')) === verdict) return true;
    if (side.directions && side.directions.has(String(a['flow.direction'] ?? '')) === verdict) return true;
    if (side.ports && portsMatch(side.ports, a) === verdict) return true;
    if (side.cidrs && this.inCidrs(side.cidrs, a['destination.address']) === verdict) return true;
    if (side.sourceCidrs && this.inCidrs(side.sourceCidrs, a['source.address']) === verdict) return true;
    if (side.processes) {
      const name = a['process.executable.name'];
      if ((typeof name === 'string' && side.processes.test(name)) === verdict) return true;
    }
    if (side.interfaces) {
      const name = a['network.interface.name'];
      if (name !== undefined && side.interfaces.test(String(name)) === verdict) return true;
    }
    return false;
  }

  private inCidrs(cidrs: readonly Cidr[], value: unknown): boolean {
    if (typeof value !== 'string') return false;
    let address = this.addresses.get(value);
    if (address === undefined) {
      address = parseIp(value) ?? null;
      this.addresses.set(value, address);
    }
    if (address === null) return false;
    for (const c of cidrs) if (cidrContains(c, address)) return true;
    return false;
  }
}

export const filterProcessorFactory: ProcessorFactory<FilterConfig> = {
  kind: 'processor',
  type: 'filter',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: filterOptions,
  defaultConfig: () => validateFilterConfig(undefined, ''),
  validate: validateFilterConfig,
  create: (config, ctx) => new FilterProcessor(ctx.id, config),
};
