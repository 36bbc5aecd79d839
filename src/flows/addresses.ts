import { formatIp, isV4Mapped } from '../util/ip';
import { AF_INET, AF_INET6 } from './records';

export interface Endpoint {
  /** Printable address; IPv4-mapped IPv6 addresses are shown as IPv4. */
  address: string;
  /** 'ipv4' or 'ipv6' (network.type), after unmapping. */
  type: 'ipv4' | 'ipv6';
}

/** A kernel address (16 bytes, IPv4 in the first 4) as text. */
export function formatAddress(family: number, a: Buffer): Endpoint {
  if (family === AF_INET) return { address: `${a[0]}.${a[1]}.${a[2]}.${a[3]}`, type: 'ipv4' };
  if (family === AF_INET6 && isV4Mapped(a)) return { address: `${a[12]}.${a[13]}.${a[14]}.${a[15]}`, type: 'ipv4' };
  return { address: formatIp({ family: 6, bytes: a.subarray(0, 16) }), type: 'ipv6' };
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
