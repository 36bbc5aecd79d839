/**
 * IPv4 and IPv6 addresses and CIDR prefixes, without dependencies.
 *
 * - IPv4: dotted quad, four decimal parts 0–255. A part with a leading zero
 *   (`010`) is rejected: some tools read it as octal, others as decimal.
 * - IPv6: RFC 4291 text forms: eight groups of 1–4 hex digits, at most one
 *   `::`, an optional dotted-quad tail (`::ffff:10.0.0.1`), and a zone
 *   (`fe80::1%eth0`) which is ignored for matching.
 * - IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, `::ffff:0a00:0001`) are
 *   IPv4 addresses, as the agent reports them; a CIDR inside `::ffff:0:0/96`
 *   is the IPv4 CIDR it maps (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).
 * - A CIDR of one family matches only addresses of that family: `::/0` does
 *   not match IPv4 addresses (list `0.0.0.0/0` too for everything).
 */

export type IpFamily = 4 | 6;

export interface IpAddress {
  readonly family: IpFamily;
  /** 4 bytes for IPv4, 16 for IPv6, network order. */
  readonly bytes: Uint8Array;
}

export interface Cidr {
  readonly family: IpFamily;
  /** The network address (host bits zero), 4 or 16 bytes. */
  readonly bytes: Uint8Array;
  readonly prefixLength: number;
  /** Canonical text: `10.0.0.0/8`, `fd00::/8`. */
  readonly text: string;
}

const DECIMAL_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] as string;
    if (!DECIMAL_OCTET.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    bytes[i] = n;
  }
  return bytes;
}

/** 16 bytes, or undefined. A zone (`%eth0`) must already be removed. */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const words: number[][] = [];
  for (let h = 0; h < halves.length; h++) {
    const half = halves[h] as string;
    const out: number[] = [];
    if (half !== '') {
      const groups = half.split(':');
      for (let g = 0; g < groups.length; g++) {
        const group = groups[g] as string;
        const isLast = h === halves.length - 1 && g === groups.length - 1;
        if (group.includes('.')) {
          if (!isLast) return undefined;
          const v4 = parseIPv4(group);
          if (!v4) return undefined;
          out.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
        } else {
          if (!HEX_GROUP.test(group)) return undefined;
          out.push(parseInt(group, 16));
        }
      }
    }
    words.push(out);
  }
  const head = words[0] as number[];
  let all: number[];
  if (words.length === 1) {
    if (head.length !== 8) return undefined;
    all = head;
  } else {
    const tail = words[1] as number[];
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  }
  const bytes = new Uint8Array(16);
  all.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  return bytes;
}

export function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** An address as an attribute or a config carries it; IPv4-mapped IPv6 comes back as IPv4. */
export function parseIp(text: string): IpAddress | undefined {
  const trimmed = text.trim();
  const v4 = parseIPv4(trimmed);
  if (v4) return { family: 4, bytes: v4 };
  const zone = trimmed.indexOf('%');
  const v6 = parseIPv6(zone >= 0 ? trimmed.slice(0, zone) : trimmed);
  if (!v6) return undefined;
  if (isV4Mapped(v6)) return { family: 4, bytes: v6.slice(12) };
  return { family: 6, bytes: v6 };
}

export function formatIp(address: IpAddress): string {
  const b = address.bytes;
  if (address.family === 4) return Array.from(b).join('.');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[i] as number) << 8) | (b[i + 1] as number));
  // RFC 5952: compress the longest run of two or more zero groups (the first if tied).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

function maskBytes(bytes: Uint8Array, prefixLength: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefixLength - 8 * i));
    out[i] = bits === 0 ? 0 : (bytes[i] as number) & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/**
 * `10.0.0.0/8`, `fd00::/8`, or one address (`10.1.2.3` is `10.1.2.3/32`).
 * Throws an Error whose message says what is wrong: a CIDR with host bits set
 * (`10.1.2.3/8`) is refused with the network it probably means.
 */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addressText = slash >= 0 ? trimmed.slice(0, slash) : trimmed;
  if (addressText.includes('%')) throw new Error(`invalid CIDR "${text}": a zone (%...) is not allowed`);
  const v4 = parseIPv4(addressText);
  const v6 = v4 ? undefined : parseIPv6(addressText);
  if (!v4 && !v6) throw new Error(`invalid CIDR "${text}": "${addressText}" is not an IPv4 or IPv6 address`);
  const maxPrefix = v4 ? 32 : 128;
  let prefixLength = maxPrefix;
  if (slash >= 0) {
    const prefixText = trimmed.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) {
      throw new Error(`invalid CIDR "${text}": the prefix length must be a number from 0 to ${maxPrefix}`);
    }
    prefixLength = Number(prefixText);
  }
  let family: IpFamily = v4 ? 4 : 6;
  let bytes = (v4 ?? v6) as Uint8Array;
  let canonicalAs = '';
  if (v6 && isV4Mapped(v6) && prefixLength >= 96) {
    family = 4;
    bytes = v6.slice(12);
    prefixLength -= 96;
    canonicalAs = ' (an IPv4-mapped prefix)';
  }
  const network = maskBytes(bytes, prefixLength);
  const netText = `${formatIp({ family, bytes: network })}/${prefixLength}`;
  if (!network.every((b, i) => b === bytes[i])) {
    throw new Error(`invalid CIDR "${text}": host bits are set after the /${slash >= 0 ? trimmed.slice(slash + 1) : prefixLength} prefix${canonicalAs}; did you mean "${netText}"?`);
  }
  return { family, bytes: network, prefixLength, text: netText };
}

export function cidrContains(cidr: Cidr, address: IpAddress): boolean {
  if (cidr.family !== address.family) return false;
  const full = cidr.prefixLength >> 3;
  for (let i = 0; i < full; i++) if (cidr.bytes[i] !== address.bytes[i]) return false;
  const rest = cidr.prefixLength & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((address.bytes[full] as number) & mask) === cidr.bytes[full];
}
