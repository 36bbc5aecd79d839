/**
 * The part of a filter that the kernel applies itself (bpf/flowtel_tcp.bpf.c
 * filter_pass): flows it excludes are never reported, so filtered traffic
 * costs one decision per connection and nothing in userspace.
 *
 * Semantics, the same as the filter processor's: a flow is dropped when any
 * exclude entry matches it, or when a criterion has include entries and none
 * matches. Ports are the server's port, CIDRs the remote address, processes
 * exact command names (globs stay in userspace).
 */
import { parseCidr } from '../../util/ip';

export interface KernelFilter {
  ports: { include: readonly number[]; exclude: readonly number[] };
  cidrs: { include: readonly string[]; exclude: readonly string[] };
  processes: { include: readonly string[]; exclude: readonly string[] };
}

export const FILTER_INCLUDE = 1;
export const FILTER_EXCLUDE = 2;
export const MAX_FILTER_PORTS = 4096;

export interface FilterMapEntry {
  map: 'filter_ports' | 'filter_cidr4' | 'filter_cidr6' | 'filter_comms';
  key: Buffer;
  value: Buffer;
}

function cidrKey(cidr: string): { map: 'filter_cidr4' | 'filter_cidr6'; key: Buffer } {
  const c = parseCidr(cidr);
  // struct flowtel_lpm4 / flowtel_lpm6: prefix length, then the address.
  const key = Buffer.alloc(4 + c.bytes.length);
  key.writeUInt32LE(c.prefixLength, 0);
  key.set(c.bytes, 4);
  return { map: c.family === 4 ? 'filter_cidr4' : 'filter_cidr6', key };
}

/** The map entries that encode `f`, and which criteria have include entries. */
export function encodeKernelFilter(f: KernelFilter): { entries: FilterMapEntry[]; includePorts: boolean; includeCidrs: boolean; includeComms: boolean } {
  const entries: FilterMapEntry[] = [];
  const action = (a: number): Buffer => Buffer.from([a]);
  const add = (list: readonly number[], a: number): void => {
    for (const p of list) {
      const key = Buffer.alloc(2);
      key.writeUInt16LE(p, 0);
      entries.push({ map: 'filter_ports', key, value: action(a) });
    }
  };
  // Exclude wins over include for the same key: written last.
  add(f.ports.include, FILTER_INCLUDE);
  add(f.ports.exclude, FILTER_EXCLUDE);
  for (const [list, a] of [[f.cidrs.include, FILTER_INCLUDE], [f.cidrs.exclude, FILTER_EXCLUDE]] as const) {
    for (const c of list) entries.push({ ...cidrKey(c), value: action(a) });
  }
  for (const [list, a] of [[f.processes.include, FILTER_INCLUDE], [f.processes.exclude, FILTER_EXCLUDE]] as const) {
    for (const name of list) {
      const key = Buffer.alloc(16);
      key.write(name.slice(0, 15), 'latin1');
      entries.push({ map: 'filter_comms', key, value: action(a) });
    }
  }
  return { entries, includePorts: f.ports.include.length > 0, includeCidrs: f.cidrs.include.length > 0, includeComms: f.processes.include.length > 0 };
}
