/**
 * `zone`: the availability zone of both ends of every flow, whether the flow
 * crosses zones, and what the crossing costs.
 *
 * Local end (`source.cloud.availability_zone`, `source.cloud.region`): the
 * flow's own `source.cloud.*` if a processor before set it, else the host's
 * `cloud.availability_zone` / `cloud.region` (set by the `cloud` processor,
 * or by `attributes`), else the zone of `source.address` from the registered
 * sources (src/processors/netenrich/zone-source.ts: the `k8s` processor) and
 * then the subnet table.
 * Remote end (`destination.cloud.*`): the flow's own `destination.cloud.availability_zone`
 * if set, else the zone of the address the flow really reached
 * (`destination.translated.address` from `nat`, else `destination.address`)
 * from the registered sources, then the subnet table. A loopback flow
 * (`flow.direction = local`) has the local zone at both ends.
 *
 * When both zones are known, `network.cross_az` is true or false. For
 * cross-zone flows the byte counters (`tcp_bytes_sent`/`_received`,
 * `udp_bytes_sent`/`_received`) are also counted into `network_cross_az_bytes`
 * and `network_cross_az_cost_usd`, with `network.io.direction` (transmit =
 * sent by the local end) and the attributes in `cross_az.attributes`, summed
 * per attribute set within a batch.
 *
 * Cost: cloud providers bill inter-zone traffic in each direction (AWS: 0.01
 * USD per GB out of one zone and 0.01 per GB into the other). Each agent
 * counts what its own host sends and receives, so summing the cost over every
 * host of a fleet counts each byte twice — once as the sender's transmit, once
 * as the receiver's receive — which is how it is billed. The counters are
 * payload bytes (TCP/UDP payload); bills count whole packets, so the bill is
 * higher by the header overhead (a few percent for bulk transfers).
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../config/errors';
import { childPath } from '../../config/location';
import { describeSchema, type Schema, type SchemaValue } from '../../config/schema';
import { isConfigMap } from '../../config/types';
import type { MetricsProcessor, OptionDoc, ProcessorFactory } from '../../pipeline/component';
import { relabeled, type AttributeValue, type FlowAttributes, type Measurement, type MeasurementBatch } from '../../pipeline/measurements';
import type { LogBatch } from '../../pipeline/logs';
import { attributeKey, BoundedCache, isFlow, throwIfErrors, validateWithExtras, withMeasurements } from '../common';
import { enrichLogRecords } from './logs';
import { CROSS_AZ_BYTES, CROSS_AZ_COST } from './metrics';
import { SubnetTable, validateSubnets, type SubnetEntry } from './subnet-table';
import { zoneSources, type AddressZone, type ZoneSourceRegistry } from './zone-source';

export const CROSS_AZ_ATTRIBUTE = 'network.cross_az';
export const IO_DIRECTION_ATTRIBUTE = 'network.io.direction';

/** Which byte counters count into network_cross_az_bytes, and in which direction. */
const BYTE_METRICS: ReadonlyMap<string, 'transmit' | 'receive'> = new Map([
  ['tcp_bytes_sent', 'transmit'],
  ['tcp_bytes_received', 'receive'],
  ['udp_bytes_sent', 'transmit'],
  ['udp_bytes_received', 'receive'],
] as const);

export const DEFAULT_CROSS_AZ_ATTRIBUTES: readonly string[] = [
  'source.cloud.availability_zone',
  'destination.cloud.availability_zone',
  'source.cloud.region',
  'destination.cloud.region',
  'network.transport',
  'source.port',
  'destination.port',
  'process.executable.name',
  'source.k8s.namespace.name',
  'source.k8s.service.name',
  'source.k8s.deployment.name',
  'destination.k8s.namespace.name',
  'destination.k8s.service.name',
  'destination.k8s.deployment.name',
  'destination.cloud.service',
  'destination.domain',
];

const zoneSchema = {
  subnets_file: {
    type: 'string',
    description:
      'A YAML or JSON file with more subnet entries (a list of {cidr, availability_zone, region, vpc, provider}, as in subnets), read at start. Entries in subnets win over the file for the same CIDR.',
  },
  cross_az: {
    type: 'object',
    description: 'The cross-zone traffic metrics.',
    schema: {
      metrics: {
        type: 'boolean',
        default: true,
        description: 'Count the bytes of cross-zone flows into network_cross_az_bytes and network_cross_az_cost_usd.',
      },
      price_per_gb: {
        type: 'number',
        default: 0.01,
        min: 0,
        description: 'USD per GB in each direction (AWS and GCP list 0.01 for traffic between zones of a region; Azure varies). Each host counts what it sends and what it receives.',
      },
      bytes_per_gb: {
        type: 'number',
        default: 1_073_741_824,
        min: 1,
        integer: true,
        description: 'Bytes in the GB the price is for: 2^30 (the GiB cloud bills use) by default; 1000000000 for decimal gigabytes.',
      },
      attributes: {
        type: 'string[]',
        default: [...DEFAULT_CROSS_AZ_ATTRIBUTES],
        description:
          'Attributes of a flow the cross-zone metrics keep (those a flow has); network.io.direction is always added. The default keeps zones, regions, ports, the process, the Kubernetes namespace/service/deployment of both ends, the cloud service and the domain: one query answers which pair costs most.',
      },
    },
  },
} as const satisfies Schema;

export type ZoneConfig = SchemaValue<typeof zoneSchema> & { readonly subnets: readonly SubnetEntry[] };

export function validateZoneConfig(raw: unknown, path: string): ZoneConfig {
  const errors: ConfigError[] = [];
  const { config, extras } = validateWithExtras(raw, path, zoneSchema, ['subnets'], errors);
  const subnets = raw !== undefined && raw !== null && !isConfigMap(raw) ? [] : validateSubnets(extras.subnets, childPath(path, 'subnets'), errors);
  throwIfErrors(errors, path);
  return { ...(config as SchemaValue<typeof zoneSchema>), subnets };
}

export const zoneOptions: readonly OptionDoc[] = [
  {
    name: 'subnets',
    type: 'list of {cidr, availability_zone, region, vpc, provider}',
    default: [],
    description:
      'The subnet table: addresses in cidr are in that availability_zone / region / vpc (cloud.vpc.id) / provider. The longest matching prefix wins. Each entry needs a cidr and at least one of the others.',
  },
  ...describeSchema(zoneSchema),
];

interface Enriched {
  readonly generation: number;
  readonly attributes: FlowAttributes;
  readonly crossAz: boolean | undefined;
}

export class ZoneProcessor implements MetricsProcessor {
  private table: SubnetTable;
  private readonly keep: readonly string[];
  private readonly enriched = new WeakMap<FlowAttributes, Enriched>();
  /** Cross-AZ attribute sets by key, so the same set keeps one object across batches. */
  private readonly crossSets = new BoundedCache<string, FlowAttributes>(1 << 16);
  private zoneCache = new BoundedCache<string, AddressZone | null>(1 << 16);
  private cachedGeneration = -1;

  constructor(
    readonly id: string,
    readonly config: ZoneConfig,
    private readonly registry: ZoneSourceRegistry = zoneSources,
  ) {
    this.table = new SubnetTable(config.subnets);
    this.keep = config.cross_az.attributes.filter((a) => a !== IO_DIRECTION_ATTRIBUTE);
  }

  async start(): Promise<void> {
    if (this.config.subnets_file === undefined) return;
    const file = this.config.subnets_file;
    let parsed: unknown;
    try {
      parsed = parseYaml(await readFile(file, 'utf8'));
    } catch (e) {
      throw new Error(`${this.id}: cannot read subnets_file ${file}: ${(e as Error).message}`);
    }
    const errors: ConfigError[] = [];
    const fromFile = validateSubnets(parsed, file, errors);
    if (errors.length > 0) throw new Error(`${this.id}: subnets_file ${file}: ${errors.map((e) => e.message).join('; ')}`);
    // Inline entries last: they win for the same CIDR.
    this.table = new SubnetTable([...fromFile, ...this.config.subnets]);
    this.zoneCache = new BoundedCache(1 << 16);
  }

  async shutdown(): Promise<void> {}

  /** Subnet entries in the table (inline and from the file). */
  get subnetCount(): number {
    return this.table.size;
  }

  /** The registry's generation, with the address cache emptied when it moved. */
  private syncGeneration(): number {
    const generation = this.registry.generation;
    if (generation !== this.cachedGeneration) {
      this.zoneCache = new BoundedCache(1 << 16);
      this.cachedGeneration = generation;
    }
    return generation;
  }

  process(batch: MeasurementBatch): MeasurementBatch {
    const generation = this.syncGeneration();
    const out: Measurement[] = [];
    const cross = new Map<string, { attributes: FlowAttributes; bytes: number }>();
    for (const m of batch.measurements) {
      if (!isFlow(m.attributes)) {
        out.push(m);
        continue;
      }
      let e = this.enriched.get(m.attributes);
      if (e === undefined || e.generation !== generation) {
        e = this.enrich(m.attributes, generation);
        this.enriched.set(m.attributes, e);
      }
      out.push(e.attributes === m.attributes ? m : relabeled(m, e.attributes));
      const direction = BYTE_METRICS.get(m.metric);
      if (e.crossAz === true && direction !== undefined && this.config.cross_az.metrics && m.value > 0) {
        const attributes = this.crossAttributes(e.attributes, direction);
        const key = attributeKey(attributes);
        const sum = cross.get(key);
        if (sum) sum.bytes += m.value;
        else cross.set(key, { attributes, bytes: m.value });
      }
    }
    const { price_per_gb: price, bytes_per_gb: perGb } = this.config.cross_az;
    for (const { attributes, bytes } of cross.values()) {
      out.push({ metric: CROSS_AZ_BYTES, value: bytes, attributes });
      out.push({ metric: CROSS_AZ_COST, value: (bytes * price) / perGb, attributes });
    }
    return withMeasurements(batch, out);
  }

  /** In a logs pipeline: zones and network.cross_az on connection records (the cross-AZ metrics come from metrics pipelines). */
  processLogs(batch: LogBatch): LogBatch {
    const generation = this.syncGeneration();
    return enrichLogRecords(batch, (a) => this.enrich(a, generation).attributes);
  }

  /** The zone of an address from the registered sources, then the subnet table. */
  zoneOf(address: string): AddressZone | undefined {
    const cached = this.zoneCache.get(address);
    if (cached !== undefined) return cached ?? undefined;
    const z = this.registry.zoneOf(address) ?? this.table.zoneOf(address);
    this.zoneCache.set(address, z ?? null);
    return z;
  }

  private enrich(a: FlowAttributes, generation: number): Enriched {
    const added: Record<string, AttributeValue> = {};
    // The local end.
    let localZone = str(a['source.cloud.availability_zone']);
    let localRegion = str(a['source.cloud.region']);
    if (localZone === undefined && localRegion === undefined) {
      localZone = str(a['cloud.availability_zone']);
      localRegion = str(a['cloud.region']);
      let local: AddressZone | undefined;
      if (localZone === undefined && localRegion === undefined) {
        const address = str(a['source.address']);
        local = address !== undefined ? this.zoneOf(address) : undefined;
        localZone = local?.availabilityZone;
        localRegion = local?.region;
      }
      setIf(added, 'source.cloud.availability_zone', localZone);
      setIf(added, 'source.cloud.region', localRegion);
      if (local) {
        setIf(added, 'source.cloud.vpc.id', local.vpc, a);
        setIf(added, 'source.cloud.provider', local.provider, a);
      }
    }
    // The remote end.
    let remoteZone = str(a['destination.cloud.availability_zone']);
    if (remoteZone === undefined) {
      let remote: AddressZone | undefined;
      if (a['flow.direction'] === 'local') {
        remote = { ...(localZone !== undefined ? { availabilityZone: localZone } : {}), ...(localRegion !== undefined ? { region: localRegion } : {}) };
      } else {
        const address = str(a['destination.translated.address']) ?? str(a['destination.address']);
        remote = address !== undefined ? this.zoneOf(address) : undefined;
      }
      if (remote) {
        remoteZone = remote.availabilityZone;
        setIf(added, 'destination.cloud.availability_zone', remote.availabilityZone);
        setIf(added, 'destination.cloud.region', remote.region, a);
        setIf(added, 'destination.cloud.vpc.id', remote.vpc, a);
        setIf(added, 'destination.cloud.provider', remote.provider, a);
      }
    }
    let crossAz: boolean | undefined;
    if (localZone !== undefined && remoteZone !== undefined) {
      crossAz = localZone !== remoteZone;
      added[CROSS_AZ_ATTRIBUTE] = crossAz;
    }
    const attributes = Object.keys(added).length === 0 ? a : { ...a, ...added };
    return { generation, attributes, crossAz };
  }

  private crossAttributes(a: FlowAttributes, direction: 'transmit' | 'receive'): FlowAttributes {
    const picked: Record<string, AttributeValue> = {};
    for (const k of this.keep) {
      const v = a[k];
      if (v !== undefined) picked[k] = v;
    }
    picked[IO_DIRECTION_ATTRIBUTE] = direction;
    const key = attributeKey(picked);
    const known = this.crossSets.get(key);
    if (known) return known;
    this.crossSets.set(key, picked);
    return picked;
  }
}

function str(v: AttributeValue | undefined): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** added[key] = value when value is set (and `original` does not have key already). */
function setIf(added: Record<string, AttributeValue>, key: string, value: string | undefined, original?: FlowAttributes): void {
  if (value === undefined) return;
  if (original && original[key] !== undefined) return;
  added[key] = value;
}

export const zoneProcessorFactory: ProcessorFactory<ZoneConfig> = {
  kind: 'processor',
  type: 'zone',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: zoneOptions,
  defaultConfig: () => validateZoneConfig(undefined, ''),
  validate: validateZoneConfig,
  create: (config, ctx) => new ZoneProcessor(ctx.id, config),
};
