/**
 * Longest-prefix match over IPv4 and IPv6 CIDRs, for tables of tens of
 * thousands of prefixes (cloud provider IP ranges, subnet tables).
 *
 * One hash table per prefix length in use (Waldvogel's "binary search on
 * prefix lengths" without the binary search): a lookup masks the address to
 * each length present, longest first, and probes that length's Map. IPv4 keys
 * are the prefix's bits as a number (`address >>> (32 - length)`, a small
 * integer V8 hashes fast); IPv6 keys are the prefix's hex digits (the last
 * one masked), cut from one hex string made per lookup. A real table uses a
 * few dozen distinct lengths, so a lookup is at most that many Map probes,
 * and memory is one Map entry per prefix. bench/ranges.mjs measures it.
 */
import { parseIp, type Cidr, type IpAddress } from '../../util/ip';

export class PrefixTable<V> {
  /** prefix length → (masked key → value), for each family. */
  private readonly v4 = new Map<number, Map<number, V>>();
  private readonly v6 = new Map<number, Map<string, V>>();
  /** The same maps as [length, map], longest first: what a lookup walks. */
  private v4Order: Array<readonly [number, Map<number, V>]> = [];
  private v6Order: Array<readonly [number, Map<string, V>]> = [];
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
        this.v4Order = [...this.v4.entries()].sort((a, b) => b[0] - a[0]);
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
        this.v6Order = [...this.v6.entries()].sort((a, b) => b[0] - a[0]);
      }
      const key = v6Key(hexOf(cidr.bytes), cidr.prefixLength);
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
      const order = this.v4Order;
      for (let i = 0; i < order.length; i++) {
        const [length, byKey] = order[i]!;
        const hit = byKey.get(length === 0 ? 0 : whole >>> (32 - length));
        if (hit !== undefined) return hit;
      }
      return undefined;
    }
    const hex = hexOf(address.bytes);
    const order = this.v6Order;
    for (let i = 0; i < order.length; i++) {
      const [length, byKey] = order[i]!;
      const hit = byKey.get(v6Key(hex, length));
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

/** The first `length` bits as a number: below 2^30 (a V8 small integer) up to /30. */
function v4Key(bytes: Uint8Array, length: number): number {
  if (length === 0) return 0;
  const whole = (((bytes[0] as number) << 24) | ((bytes[1] as number) << 16) | ((bytes[2] as number) << 8) | (bytes[3] as number)) >>> 0;
  return whole >>> (32 - length);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hexOf(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < 16; i++) out += HEX[bytes[i] as number];
  return out;
}

/** The hex digits of the first `length` bits, the last digit masked when `length` is not a multiple of 4. */
function v6Key(hex: string, length: number): string {
  const digits = length >> 2;
  const rest = length & 3;
  if (rest === 0) return hex.slice(0, digits);
  const last = parseInt(hex[digits] as string, 16) & ((0xf << (4 - rest)) & 0xf);
  return hex.slice(0, digits) + last.toString(16);
}
