/**
 * Longest-prefix match over IPv4 and IPv6 CIDRs, for tables of tens of
 * thousands of prefixes (cloud provider IP ranges, subnet tables).
 *
 * One hash table per prefix length in use (Waldvogel's "binary search on
 * prefix lengths" without the binary search): a lookup masks the address to
 * each length present, longest first, and probes that length's Map. IPv4 keys
 * are the masked address as an unsigned 32-bit number; IPv6 keys are the
 * masked bytes as a latin1 string. A real table uses a few dozen distinct
 * lengths, so a lookup is at most that many Map probes, and memory is one Map
 * entry per prefix.
 */
import { parseIp, type Cidr, type IpAddress } from '../../util/ip';

export class PrefixTable<V> {
  /** prefix length → (masked key → value), for each family. */
  private readonly v4 = new Map<number, Map<number, V>>();
  private readonly v6 = new Map<number, Map<string, V>>();
  private v4Lengths: number[] = [];
  private v6Lengths: number[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /**
   * Put `value` at `cidr`. When the exact prefix is already there, `merge`
   * decides what stays (default: the new value replaces the old).
   */
  set(cidr: Cidr, value: V, merge?: (old: V, added: V) => V): void {
    if (cidr.family === 4) {
      let byKey = this.v4.get(cidr.prefixLength);
      if (!byKey) {
        byKey = new Map();
        this.v4.set(cidr.prefixLength, byKey);
        this.v4Lengths = [...this.v4.keys()].sort((a, b) => b - a);
      }
      const key = v4Key(cidr.bytes, cidr.prefixLength);
      const old = byKey.get(key);
      if (old === undefined) this.count++;
      byKey.set(key, old !== undefined && merge ? merge(old, value) : value);
    } else {
      let byKey = this.v6.get(cidr.prefixLength);
      if (!byKey) {
        byKey = new Map();
        this.v6.set(cidr.prefixLength, byKey);
        this.v6Lengths = [...this.v6.keys()].sort((a, b) => b - a);
      }
      const key = v6Key(cidr.bytes, cidr.prefixLength);
      const old = byKey.get(key);
      if (old === undefined) this.count++;
      byKey.set(key, old !== undefined && merge ? merge(old, value) : value);
    }
  }

  /** The value of the longest prefix that contains `address`. */
  lookup(address: IpAddress): V | undefined {
    if (address.family === 4) {
      const b = address.bytes;
      const whole = (((b[0] as number) << 24) | ((b[1] as number) << 16) | ((b[2] as number) << 8) | (b[3] as number)) >>> 0;
      for (const length of this.v4Lengths) {
        const key = length === 0 ? 0 : (whole & (0xffffffff << (32 - length))) >>> 0;
        const hit = this.v4.get(length)!.get(key);
        if (hit !== undefined) return hit;
      }
      return undefined;
    }
    for (const length of this.v6Lengths) {
      const hit = this.v6.get(length)!.get(v6Key(address.bytes, length));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** lookup() for an address as text; undefined for text that is not an address. */
  lookupText(address: string): V | undefined {
    const ip = parseIp(address);
    return ip ? this.lookup(ip) : undefined;
  }
}

function v4Key(bytes: Uint8Array, length: number): number {
  const whole = (((bytes[0] as number) << 24) | ((bytes[1] as number) << 16) | ((bytes[2] as number) << 8) | (bytes[3] as number)) >>> 0;
  return length === 0 ? 0 : (whole & (0xffffffff << (32 - length))) >>> 0;
}

function v6Key(bytes: Uint8Array, length: number): string {
  const full = length >> 3;
  let key = '';
  for (let i = 0; i < full; i++) key += String.fromCharCode(bytes[i] as number);
  const rest = length & 7;
  if (rest) key += String.fromCharCode((bytes[full] as number) & ((0xff << (8 - rest)) & 0xff));
  return key;
}
