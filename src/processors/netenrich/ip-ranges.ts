/**
 * Cloud providers' published IP ranges, in their own file formats:
 *
 * - AWS `ip-ranges.json` (https://ip-ranges.amazonaws.com/ip-ranges.json):
 *   `{ prefixes: [{ ip_prefix, region, service, network_border_group }],
 *      ipv6_prefixes: [{ ipv6_prefix, region, service, ... }] }`. A prefix is
 *   listed once per service, always also as the catch-all `AMAZON`.
 * - Google Cloud `cloud.json` (https://www.gstatic.com/ipranges/cloud.json):
 *   `{ prefixes: [{ ipv4Prefix | ipv6Prefix, service, scope }] }`, scope being
 *   a region or `global`. `goog.json` (Google's other addresses) has no
 *   service or scope and is read too (service `Google`).
 * - Azure Service Tags (`ServiceTags_Public_YYYYMMDD.json` from the Microsoft
 *   download center): `{ values: [{ name, properties: { region, systemService,
 *   addressPrefixes: [...] } }] }`. A prefix is in its service's global tag
 *   (`AzureStorage`), its regional tag (`Storage.EastUS`), and the catch-all
 *   `AzureCloud` / `AzureCloud.eastus`.
 *
 * Several entries for one prefix merge into one: the specific service wins
 * over a catch-all (`S3` over `AMAZON`, `AzureStorage` over `AzureCloud`),
 * the first specific one in file order when there are several, and a region
 * wins over none.
 */
import { parseCidr, type Cidr } from '../../util/ip';

export type RangeFormat = 'aws' | 'gcp' | 'azure';

export interface CloudRange {
  /** `cloud.provider`: aws, gcp, azure. */
  readonly provider: RangeFormat;
  /** `cloud.service`: `S3`, `DYNAMODB`, `Google Cloud`, `AzureStorage`; absent for a catch-all range. */
  readonly service?: string;
  /** `cloud.region`: `us-east-1`, `europe-west1`, `eastus`. */
  readonly region?: string;
}

export interface ParsedRanges {
  readonly format: RangeFormat;
  readonly entries: ReadonlyArray<{ readonly cidr: Cidr; readonly range: CloudRange }>;
  /** Prefixes that did not parse (skipped, counted). */
  readonly skipped: number;
}

const GENERIC_SERVICES = new Set(['AMAZON', 'AzureCloud']);

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** Which format a parsed file is in, or undefined. */
export function detectRangeFormat(doc: unknown): RangeFormat | undefined {
  if (!isObject(doc)) return undefined;
  if (Array.isArray(doc.values)) return 'azure';
  const prefixes = doc.prefixes;
  if (Array.isArray(prefixes)) {
    const first = prefixes.find(isObject);
    if (first && ('ip_prefix' in first || 'ipv6_prefix' in first)) return 'aws';
    if (first && ('ipv4Prefix' in first || 'ipv6Prefix' in first)) return 'gcp';
    if (Array.isArray(doc.ipv6_prefixes) || 'syncToken' in doc && 'createDate' in doc) return 'aws';
  }
  return undefined;
}

/** Parse a provider file's text. Throws an Error saying what is wrong when the file is not one of the formats. */
export function parseRanges(json: string, source: string, format?: RangeFormat): ParsedRanges {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (e) {
    throw new Error(`${source}: not JSON: ${(e as Error).message}`);
  }
  const f = format ?? detectRangeFormat(doc);
  if (f === undefined) {
    throw new Error(`${source}: not an AWS ip-ranges.json (prefixes[].ip_prefix), Google cloud.json (prefixes[].ipv4Prefix) or Azure Service Tags (values[].properties.addressPrefixes) file`);
  }
  const entries: Array<{ cidr: Cidr; range: CloudRange }> = [];
  let skipped = 0;
  const add = (prefix: unknown, range: CloudRange): void => {
    if (typeof prefix !== 'string') {
      skipped++;
      return;
    }
    try {
      entries.push({ cidr: parseCidr(prefix), range });
    } catch {
      skipped++;
    }
  };
  const d = doc as Json;
  if (f === 'aws') {
    for (const [list, key] of [
      [d.prefixes, 'ip_prefix'],
      [d.ipv6_prefixes, 'ipv6_prefix'],
    ] as const) {
      if (!Array.isArray(list)) continue;
      for (const p of list) {
        if (!isObject(p)) {
          skipped++;
          continue;
        }
        const service = text(p.service);
        const region = text(p.region);
        add(p[key], { provider: 'aws', ...(service && !GENERIC_SERVICES.has(service) ? { service } : {}), ...(region && region !== 'GLOBAL' ? { region } : {}) });
      }
    }
  } else if (f === 'gcp') {
    if (!Array.isArray(d.prefixes)) throw new Error(`${source}: prefixes is not a list`);
    for (const p of d.prefixes) {
      if (!isObject(p)) {
        skipped++;
        continue;
      }
      const service = text(p.service) ?? 'Google';
      const scope = text(p.scope);
      add(p.ipv4Prefix ?? p.ipv6Prefix, { provider: 'gcp', service, ...(scope && scope !== 'global' ? { region: scope } : {}) });
    }
  } else {
    if (!Array.isArray(d.values)) throw new Error(`${source}: values is not a list`);
    for (const tag of d.values) {
      if (!isObject(tag) || !isObject(tag.properties)) {
        skipped++;
        continue;
      }
      const props = tag.properties;
      const name = text(tag.name) ?? '';
      const base = name.split('.')[0] ?? '';
      const service = text(props.systemService) ?? (GENERIC_SERVICES.has(base) || base === '' ? undefined : base);
      const region = text(props.region);
      const range: CloudRange = { provider: 'azure', ...(service && !GENERIC_SERVICES.has(service) ? { service } : {}), ...(region ? { region } : {}) };
      if (!Array.isArray(props.addressPrefixes)) continue;
      for (const prefix of props.addressPrefixes) add(prefix, range);
    }
  }
  return { format: f, entries, skipped };
}

/** The merge for two entries of one prefix (see the module comment). */
export function mergeRanges(old: CloudRange, added: CloudRange): CloudRange {
  const service = old.service ?? added.service;
  const region = old.region ?? added.region;
  if (service === old.service && region === old.region) return old;
  return { provider: old.provider, ...(service !== undefined ? { service } : {}), ...(region !== undefined ? { region } : {}) };
}
