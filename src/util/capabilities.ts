/** Linux capabilities of this process, from /proc/self/status. */
import { readFileSync } from 'node:fs';

export const CAP = { NET_ADMIN: 12, NET_RAW: 13, SYS_ADMIN: 21, SYS_RESOURCE: 24, PERFMON: 38, BPF: 39 } as const;
export type CapName = keyof typeof CAP;

export function effectiveCapabilities(statusText?: string): bigint {
  const text = statusText ?? readFileSync('/proc/self/status', 'utf8');
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(text);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function hasCapability(caps: bigint, cap: CapName): boolean {
  return ((caps >> BigInt(CAP[cap])) & 1n) === 1n;
}

/**
 * The capabilities the eBPF receivers need that this process lacks.
 * CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON (kernels before 5.8).
 */
export function missingBpfCapabilities(caps = effectiveCapabilities()): CapName[] {
  const admin = hasCapability(caps, 'SYS_ADMIN');
  const missing: CapName[] = [];
  if (!admin && !hasCapability(caps, 'BPF')) missing.push('BPF');
  if (!admin && !hasCapability(caps, 'PERFMON')) missing.push('PERFMON');
  if (!hasCapability(caps, 'NET_ADMIN')) missing.push('NET_ADMIN');
  return missing;
}

/** What the ebpf_dns receiver needs on top: its packet sockets (AF_PACKET) need CAP_NET_RAW. */
export function missingDnsCapabilities(caps = effectiveCapabilities()): CapName[] {
  return hasCapability(caps, 'NET_RAW') ? [] : ['NET_RAW'];
}
