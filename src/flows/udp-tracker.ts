/**
 * UDP flows: the kernel counts payload bytes and datagrams per (socket, local
 * end, remote end) in a hash map; each collection reads it whole and reports
 * the deltas since the last read. Entries idle for `idleCollections` reads are
 * deleted from the map so that it does not fill up.
 */
import { readFileSync } from 'node:fs';
import type { FlowAttributes, Measurement } from '../pipeline/measurements';
import { formatAddress, isLoopback } from './addresses';
import type { UdpFlowRecord } from './records';
import { attributesKey } from './tcp-tracker';

export interface PortRange {
  low: number;
  high: number;
}

/** The kernel's ephemeral port range (net.ipv4.ip_local_port_range). */
export function ephemeralPortRange(): PortRange {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high) return { low, high };
  } catch {
    /* not Linux, or no procfs: the kernel default */
  }
  return { low: 32768, high: 60999 };
}

interface Last {
  bytesSent: number;
  bytesReceived: number;
  datagramsSent: number;
  datagramsReceived: number;
  lastNs: bigint;
  idle: number;
}

export interface UdpTrackerOptions {
  includeEphemeralPorts?: boolean;
  idleCollections?: number;
  ephemeral?: PortRange;
}

export class UdpFlowTracker {
  private readonly last = new Map<string, Last>();
  private readonly ephemeral: PortRange;
  private readonly idleCollections: number;

  constructor(private readonly options: UdpTrackerOptions = {}) {
    this.ephemeral = options.ephemeral ?? ephemeralPortRange();
    this.idleCollections = options.idleCollections ?? 3;
  }

  /**
   * One read of the whole map. Returns the measurements and the keys of flows
   * idle long enough to delete from the kernel map.
   */
  onDump(flows: readonly UdpFlowRecord[]): { measurements: Measurement[]; expired: Buffer[] } {
    const sums = new Map<string, { attrs: FlowAttributes; v: [number, number, number, number] }>();
    const expired: Buffer[] = [];
    const seen = new Set<string>();
    for (const f of flows) {
      const id = f.key.toString('latin1');
      seen.add(id);
      const prev = this.last.get(id);
      const d: [number, number, number, number] = [
        f.bytesSent - (prev?.bytesSent ?? 0),
        f.bytesReceived - (prev?.bytesReceived ?? 0),
        f.datagramsSent - (prev?.datagramsSent ?? 0),
        f.datagramsReceived - (prev?.datagramsReceived ?? 0),
      ];
      const idle = prev && prev.lastNs === f.lastNs ? prev.idle + 1 : 0;
      this.last.set(id, {
        bytesSent: f.bytesSent,
        bytesReceived: f.bytesReceived,
        datagramsSent: f.datagramsSent,
        datagramsReceived: f.datagramsReceived,
        lastNs: f.lastNs,
        idle,
      });
      if (idle >= this.idleCollections) {
        expired.push(Buffer.from(f.key));
        this.last.delete(id);
      }
      if (d.every((x) => x <= 0)) continue;
      const attrs = this.attributesOf(f);
      const key = attributesKey(attrs);
      const s = sums.get(key);
      if (s) for (let i = 0; i < 4; i++) s.v[i]! += Math.max(0, d[i]!);
      else sums.set(key, { attrs, v: d.map((x) => Math.max(0, x)) as [number, number, number, number] });
    }
    // Entries deleted behind our back (map recreated): forget them.
    for (const id of this.last.keys()) if (!seen.has(id)) this.last.delete(id);

    const names = ['udp_bytes_sent', 'udp_bytes_received', 'udp_datagrams_sent', 'udp_datagrams_received'];
    const measurements: Measurement[] = [];
    for (const { attrs, v } of sums.values()) {
      for (let i = 0; i < 4; i++) if (v[i]! > 0) measurements.push({ metric: names[i]!, value: v[i]!, attributes: attrs });
    }
    return { measurements, expired };
  }

  private isEphemeral(port: number): boolean {
    return port >= this.ephemeral.low && port <= this.ephemeral.high;
  }

  private attributesOf(f: UdpFlowRecord): FlowAttributes {
    const local = formatAddress(f.family, f.laddr);
    const remote = formatAddress(f.family, f.raddr);
    // UDP has no handshake: the side whose port is ephemeral is the client;
    // when both or neither are, the side that sent the first datagram seen.
    const localEph = this.isEphemeral(f.lport);
    const remoteEph = this.isEphemeral(f.rport);
    const incoming = localEph === remoteEph ? !f.egressFirst : remoteEph;
    const attrs: FlowAttributes = {
      'network.transport': 'udp',
      'network.type': local.type,
      'source.address': local.address,
      'destination.address': remote.address,
      'flow.direction': isLoopback(remote) ? 'local' : incoming ? 'incoming' : 'outgoing',
    };
    if (incoming || this.options.includeEphemeralPorts) attrs['source.port'] = f.lport;
    if (!incoming || this.options.includeEphemeralPorts) attrs['destination.port'] = f.rport;
    if (f.pid) {
      attrs['process.pid'] = f.pid;
      if (f.comm) attrs['process.executable.name'] = f.comm;
    }
    return attrs;
  }
}
