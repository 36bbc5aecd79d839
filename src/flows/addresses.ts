import { AF_INET, AF_INET6 } from './records';

export interface Endpoint {
  /** Printable address; IPv4-mapped IPv6 addresses are shown as IPv4. */
  address: string;
  /** 'ipv4' or 'ipv6' (network.type), after unmapping. */
  type: 'ipv4' | 'ipv6';
}

function isV4Mapped(a: Buffer): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

function formatV6(a: Buffer): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(a.readUInt16BE(i));
  // RFC 5952: compress the longest run (≥2) of zero words.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function formatAddress(family: number, a: Buffer): Endpoint {
  if (family === AF_INET) return { address: `${a[0]}.${a[1]}.${a[2]}.${a[3]}`, type: 'ipv4' };
  if (family === AF_INET6 && isV4Mapped(a)) return { address: `${a[12]}.${a[13]}.${a[14]}.${a[15]}`, type: 'ipv4' };
  return { address: formatV6(a), type: 'ipv6' };
}

export function isLoopback(ep: Endpoint): boolean {
  return ep.type === 'ipv4' ? ep.address.startsWith('127.') : ep.address === '::1';
}

/** TCP states as the kernel numbers them, named as network.connection.state values. */
export const TCP_STATE_NAMES: Readonly<Record<number, string>> = {
  1: 'established',
  2: 'syn_sent',
  3: 'syn_received',
  4: 'fin_wait_1',
  5: 'fin_wait_2',
  6: 'time_wait',
  7: 'closed',
  8: 'close_wait',
  9: 'last_ack',
  10: 'listen',
  11: 'closing',
  12: 'syn_received',
};
