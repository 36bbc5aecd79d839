/**
 * The user's subnet table: CIDR → availability zone / region / VPC / provider,
 * looked up by longest prefix (a /24 inside a /16 wins).
 */
import { ConfigError } from '../../config/errors';
import { childPath } from '../../config/location';
import { isConfigMap } from '../../config/types';
import { parseCidr } from '../../util/ip';
import { PrefixTable } from './prefix-table';
import type { AddressZone, AddressZoneSource } from './zone-source';

export interface SubnetEntry {
  readonly cidr: string;
  readonly availability_zone?: string;
  readonly region?: string;
  readonly vpc?: string;
  readonly provider?: string;
}

const ENTRY_KEYS = ['cidr', 'availability_zone', 'region', 'vpc', 'provider'] as const;

/** Check a `subnets` list (each item a map with `cidr` and at least one of the others). Errors are appended. */
export function validateSubnets(raw: unknown, path: string, errors: ConfigError[]): SubnetEntry[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    errors.push(new ConfigError(path, 'must be a list of {cidr, availability_zone, region, vpc, provider}'));
    return [];
  }
  const out: SubnetEntry[] = [];
  raw.forEach((item: unknown, i) => {
    const p = childPath(path, String(i));
    if (!isConfigMap(item)) {
      errors.push(new ConfigError(p, 'must be a map with cidr and availability_zone/region/vpc/provider'));
      return;
    }
    const entry: Record<string, string> = {};
    let bad = false;
    for (const [k, v] of Object.entries(item)) {
      if (!(ENTRY_KEYS as readonly string[]).includes(k)) {
        errors.push(new ConfigError(childPath(p, k), `unknown option "${k}" (known options: ${ENTRY_KEYS.join(', ')})`));
        bad = true;
        continue;
      }
      if (v === null || v === undefined) continue;
      if (typeof v !== 'string' && typeof v !== 'number') {
        errors.push(new ConfigError(childPath(p, k), 'must be a string'));
        bad = true;
        continue;
      }
      entry[k] = String(v);
    }
    if (entry.cidr === undefined) {
      if (!bad) errors.push(new ConfigError(childPath(p, 'cidr'), 'is required'));
      return;
    }
    try {
      entry.cidr = parseCidr(entry.cidr).text;
    } catch (e) {
      errors.push(new ConfigError(childPath(p, 'cidr'), (e as Error).message));
      return;
    }
    if (entry.availability_zone === undefined && entry.region === undefined && entry.vpc === undefined && entry.provider === undefined) {
      errors.push(new ConfigError(p, 'names no availability_zone, region, vpc or provider'));
      return;
    }
    if (!bad) out.push(entry as unknown as SubnetEntry);
  });
  return out;
}

export class SubnetTable implements AddressZoneSource {
  readonly name = 'subnets';
  private readonly table = new PrefixTable<AddressZone>();

  constructor(entries: readonly SubnetEntry[]) {
    for (const e of entries) {
      const zone: AddressZone = {
        ...(e.availability_zone !== undefined ? { availabilityZone: e.availability_zone } : {}),
        ...(e.region !== undefined ? { region: e.region } : {}),
        ...(e.vpc !== undefined ? { vpc: e.vpc } : {}),
        ...(e.provider !== undefined ? { provider: e.provider } : {}),
      };
      this.table.set(parseCidr(e.cidr), zone);
    }
  }

  get size(): number {
    return this.table.size;
  }

  zoneOf(address: string): AddressZone | undefined {
    return this.table.lookupText(address);
  }
}
