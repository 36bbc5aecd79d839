/**
 * `cloud_services`: what a remote address is — a cloud provider's service
 * (from the provider's published IP ranges) or else its network scope.
 *
 * From the files in `files` (AWS ip-ranges.json, Google cloud.json/goog.json,
 * Azure Service Tags; the format is recognized from the content, see
 * ./ip-ranges.ts), the longest prefix containing the remote address gives
 * `destination.cloud.provider`, `destination.cloud.region` and
 * `destination.cloud.service` (S3, DYNAMODB, AzureStorage, ...; none for a
 * catch-all range such as AWS's `AMAZON`). Provider and region are not
 * overwritten when a processor before set them (the subnet table of `zone`, if it runs first).
 *
 * With `scope: true`, `destination.network.scope` is `cloud` for an address in
 * a provider range and otherwise its address class (./scope.ts): `external`
 * for a public address, `private`, `loopback`, `link_local`, `multicast`,
 * `broadcast`.
 *
 * The address is the one the flow really reached: `destination.translated.address`
 * (from `nat`) when present, else `destination.address`. The files are read
 * at start (a file that cannot be read or is in none of the formats stops the
 * start with an error naming it) and read again when they change on disk
 * (checked every `reload_interval`); a reload that fails keeps the ranges
 * already loaded and logs why.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../../config/schema';
import type { MetricsProcessor, ProcessorFactory } from '../../pipeline/component';
import { relabeled, type AttributeValue, type FlowAttributes, type Measurement, type MeasurementBatch } from '../../pipeline/measurements';
import { parseIp } from '../../util/ip';
import type { LogBatch } from '../../pipeline/logs';
import { isFlow, withMeasurements } from '../common';
import { enrichLogRecords } from './logs';
import { mergeRanges, parseRanges, type CloudRange } from './ip-ranges';
import { PrefixTable } from './prefix-table';
import { addressScope, type NetworkScope } from './scope';

export const SCOPE_ATTRIBUTE = 'destination.network.scope';

const cloudServicesSchema = {
  files: {
    type: 'string[]',
    default: [],
    description:
      'Provider IP-range files: AWS ip-ranges.json, Google cloud.json (or goog.json), Azure ServiceTags_Public_*.json, in their published formats (recognized from the content). Download them yourself (flowtel never fetches anything); tens of thousands of prefixes are fine.',
  },
  scope: {
    type: 'boolean',
    default: true,
    description: 'Set destination.network.scope: cloud (in a provider range), external (other public addresses), private, loopback, link_local, multicast or broadcast.',
  },
  reload_interval: {
    type: 'duration',
    default: '1h',
    description: 'How often to check whether the files changed on disk (their size and modification time) and read them again.',
  },
} as const satisfies Schema;

export type CloudServicesConfig = SchemaValue<typeof cloudServicesSchema>;

export function validateCloudServicesConfig(raw: unknown, path: string): CloudServicesConfig {
  return validateObject(raw, path, cloudServicesSchema);
}

interface LoadedRanges {
  readonly table: PrefixTable<CloudRange>;
  /** file → `size:mtime` when read. */
  readonly stamps: ReadonlyMap<string, string>;
  readonly skipped: number;
}

/** Read and merge the files into one table. Throws an Error naming the file that failed. */
export async function loadRangeFiles(files: readonly string[]): Promise<LoadedRanges> {
  const table = new PrefixTable<CloudRange>();
  const stamps = new Map<string, string>();
  let skipped = 0;
  for (const file of files) {
    let content: string;
    try {
      stamps.set(file, await stampOf(file));
      content = await readFile(file, 'utf8');
    } catch (e) {
      throw new Error(`cannot read IP-range file ${file}: ${(e as Error).message}`);
    }
    const parsed = parseRanges(content, file);
    for (const { cidr, range } of parsed.entries) table.set(cidr, range, mergeRanges);
    skipped += parsed.skipped;
  }
  return { table, stamps, skipped };
}

async function stampOf(file: string): Promise<string> {
  const s = await stat(file);
  return `${s.size}:${s.mtimeMs}`;
}

interface Enriched {
  readonly generation: number;
  readonly attributes: FlowAttributes;
}

export class CloudServicesProcessor implements MetricsProcessor {
  private ranges: LoadedRanges = { table: new PrefixTable(), stamps: new Map(), skipped: 0 };
  private generation = 0;
  private readonly enriched = new WeakMap<FlowAttributes, Enriched>();
  private timer?: NodeJS.Timeout;
  private reloading = false;

  constructor(
    readonly id: string,
    readonly config: CloudServicesConfig,
    private readonly logger?: Logger,
  ) {}

  /** Prefixes loaded (distinct), and entries skipped because they did not parse. */
  get counts(): { prefixes: number; skipped: number } {
    return { prefixes: this.ranges.table.size, skipped: this.ranges.skipped };
  }

  async start(): Promise<void> {
    if (this.config.files.length === 0) return;
    try {
      this.ranges = await loadRangeFiles(this.config.files);
    } catch (e) {
      throw new Error(`${this.id}: ${(e as Error).message}`);
    }
    this.generation++;
    this.logger?.info({ prefixes: this.ranges.table.size, skipped: this.ranges.skipped, files: this.config.files }, `${this.id}: loaded provider IP ranges`);
    this.timer = setInterval(() => void this.reloadIfChanged(), this.config.reload_interval);
    this.timer.unref();
  }

  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Read the files again if any changed on disk; true if the table was replaced. */
  async reloadIfChanged(): Promise<boolean> {
    if (this.reloading) return false;
    this.reloading = true;
    try {
      let changed = false;
      for (const file of this.config.files) {
        const now = await stampOf(file).catch(() => 'missing');
        if (now !== this.ranges.stamps.get(file)) changed = true;
      }
      if (!changed) return false;
      this.ranges = await loadRangeFiles(this.config.files);
      this.generation++;
      this.logger?.info({ prefixes: this.ranges.table.size }, `${this.id}: provider IP ranges changed on disk: reloaded`);
      return true;
    } catch (e) {
      this.logger?.warn({ err: e }, `${this.id}: reloading provider IP ranges failed; keeping the ranges loaded before`);
      return false;
    } finally {
      this.reloading = false;
    }
  }

  /** What the processor says about one address (for tests and tools). */
  classify(address: string): { range?: CloudRange; scope?: NetworkScope } {
    const ip = parseIp(address);
    if (!ip) return {};
    const range = this.ranges.table.lookup(ip);
    const byClass = addressScope(ip);
    const scope = range !== undefined && byClass === 'external' ? 'cloud' : byClass;
    return range ? { range, scope } : { scope };
  }

  process(batch: MeasurementBatch): MeasurementBatch {
    const out: Measurement[] = batch.measurements.map((m) => {
      if (!isFlow(m.attributes)) return m;
      let e = this.enriched.get(m.attributes);
      if (e === undefined || e.generation !== this.generation) {
        e = { generation: this.generation, attributes: this.enrich(m.attributes) };
        this.enriched.set(m.attributes, e);
      }
      return e.attributes === m.attributes ? m : relabeled(m, e.attributes);
    });
    return withMeasurements(batch, out);
  }

  /** In a logs pipeline: the same attributes on connection records. */
  processLogs(batch: LogBatch): LogBatch {
    return enrichLogRecords(batch, (a) => this.enrich(a));
  }

  private enrich(a: FlowAttributes): FlowAttributes {
    const translated = a['destination.translated.address'];
    const destination = a['destination.address'];
    const address = typeof translated === 'string' ? translated : typeof destination === 'string' ? destination : undefined;
    if (address === undefined) return a;
    const { range, scope } = this.classify(address);
    const added: Record<string, AttributeValue> = {};
    if (range) {
      if (a['destination.cloud.provider'] === undefined) added['destination.cloud.provider'] = range.provider;
      if (range.region !== undefined && a['destination.cloud.region'] === undefined) added['destination.cloud.region'] = range.region;
      if (range.service !== undefined) added['destination.cloud.service'] = range.service;
    }
    if (this.config.scope && scope !== undefined) added[SCOPE_ATTRIBUTE] = scope;
    return Object.keys(added).length === 0 ? a : { ...a, ...added };
  }
}

export const cloudServicesProcessorFactory: ProcessorFactory<CloudServicesConfig> = {
  kind: 'processor',
  type: 'cloud_services',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: describeSchema(cloudServicesSchema),
  defaultConfig: () => validateCloudServicesConfig(undefined, ''),
  validate: validateCloudServicesConfig,
  create: (config, ctx) => new CloudServicesProcessor(ctx.id, config, ctx.logger),
};
