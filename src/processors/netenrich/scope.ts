/**
 * The network scope of an address (`destination.network.scope`), from its
 * address class:
 *
 * | scope | IPv4 | IPv6 |
 * |---|---|---|
 * | `loopback` | 127.0.0.0/8 | ::1 |
 * | `link_local` | 169.254.0.0/16 | fe80::/10 |
 * | `multicast` | 224.0.0.0/4 | ff00::/8 |
 * | `broadcast` | 255.255.255.255 | |
 * | `private` | 10/8, 172.16/12, 192.168/16, 100.64/10 (shared CGNAT space), 0/8 | fc00::/7 (unique local), :: |
 * | `external` | everything else: a public address | everything else |
 *
 * The `cloud_services` processor says `cloud` instead of `external` for a
 * public address inside a provider's published ranges.
 */
import { parseCidr, type IpAddress } from '../../util/ip';
import { PrefixTable } from './prefix-table';

export type NetworkScope = 'loopback' | 'link_local' | 'multicast' | 'broadcast' | 'private' | 'cloud' | 'external';

const CLASSES = new PrefixTable<NetworkScope>();
for (const [cidr, scope] of [
  ['127.0.0.0/8', 'loopback'],
  ['::1/128', 'loopback'],
  ['169.254.0.0/16', 'link_local'],
  ['fe80::/10', 'link_local'],
  ['224.0.0.0/4', 'multicast'],
  ['ff00::/8', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['10.0.0.0/8', 'private'],
  ['172.16.0.0/12', 'private'],
  ['192.168.0.0/16', 'private'],
  ['100.64.0.0/10', 'private'],
  ['0.0.0.0/8', 'private'],
  ['fc00::/7', 'private'],
  ['::/128', 'private'],
] as const) {
  CLASSES.set(parseCidr(cidr), scope);
}

/** The scope of an address by its class alone: `external` for any public address. */
export function addressScope(address: IpAddress): NetworkScope {
  return CLASSES.lookup(address) ?? 'external';
}
