/**
 * The kernel side of the ebpf_dns receiver: bpf/flowtel_dns.bpf.o's socket
 * filter on AF_PACKET sockets, one per network namespace (or one per chosen
 * interface when interface globs are set), read through TPACKET_V3 rings.
 */
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { BpfObject, bumpMemlockRlimit, numPossibleCpus } from '../../native/bpf';
import { PacketSocket } from '../../native/packet-socket';
import { compileGlobs } from '../../processors/common';
import { bpfObjectPath } from '../../util/paths';
import { checkPrerequisites, ProbeError } from '../ebpf_tcp/probes';

const BLOCK_SIZE = 256 * 1024;
const PROGRAM = 'dns_filter';
/** enum flowtel_dns_counter (bpf/flowtel_dns.h) */
const CTR_PASSED = 0;
const CTR_FRAGMENT = 1;

export interface DnsCaptureOptions {
  ports: readonly number[];
  snapLength: number;
  /** Paths of network namespaces; empty: the agent's own. */
  namespaces: readonly string[];
  includeInterfaces: readonly string[];
  excludeInterfaces: readonly string[];
  ringBytes: number;
  retireMs?: number;
}

export interface DnsCaptureCounters {
  /** Packets the filter passed (PACKET_STATISTICS tp_packets, all sockets, closed ones included). */
  packets: number;
  /** Of those, lost because a ring was full (tp_drops). */
  drops: number;
  /** Non-first IP fragments the filter dropped (their DNS message is incomplete). */
  fragments: number;
}

interface OpenSocket {
  ns: string;
  ifindex: number;
  ifname: string;
  sock: PacketSocket;
}

export class DnsCapture {
  private readonly sockets = new Map<string, OpenSocket>();
  private readonly include?: RegExp;
  private readonly exclude?: RegExp;
  private closedPackets = 0;
  private closedDrops = 0;
  private closed = false;

  private constructor(
    private readonly obj: BpfObject,
    private readonly opts: DnsCaptureOptions,
    private readonly onBatch: (batch: Buffer, count: number) => void,
    private readonly logger: Logger,
  ) {
    if (opts.includeInterfaces.length > 0) this.include = compileGlobs(opts.includeInterfaces);
    if (opts.excludeInterfaces.length > 0) this.exclude = compileGlobs(opts.excludeInterfaces);
  }

  static open(opts: DnsCaptureOptions, onBatch: (batch: Buffer, count: number) => void, logger: Logger): DnsCapture {
    checkPrerequisites();
    const file = bpfObjectPath('flowtel_dns');
    if (!existsSync(file)) throw new ProbeError(`${file} not found: build the eBPF programs first (npm run build)`);
    bumpMemlockRlimit();
    const obj = new BpfObject(file);
    const cap = new DnsCapture(obj, opts, onBatch, logger);
    try {
      // struct flowtel_dns_options (bpf/flowtel_dns.h)
      const o = Buffer.alloc(8);
      o.writeUInt32LE(opts.snapLength, 0);
      o.writeUInt8(1, 4);
      obj.setGlobal('options', o);
      obj.load();
      for (const port of opts.ports) {
        const k = Buffer.alloc(2);
        k.writeUInt16LE(port, 0);
        obj.mapUpdate('dns_ports', k, Buffer.from([1]));
      }
      cap.refresh();
      if (cap.sockets.size === 0) logger.warn({ include: opts.includeInterfaces, exclude: opts.excludeInterfaces }, 'ebpf_dns: no interface matches: nothing is captured until one appears');
    } catch (e) {
      cap.close();
      throw e;
    }
    return cap;
  }

  private get globs(): boolean {
    return !!(this.include || this.exclude);
  }

  /**
   * Open sockets that should exist and close those that should not (an
   * interface that went away). Without interface globs there is one socket
   * per namespace, bound to no interface, and nothing to refresh.
   */
  refresh(): void {
    const namespaces = this.opts.namespaces.length > 0 ? this.opts.namespaces : [''];
    const want = new Map<string, { ns: string; ifindex: number; ifname: string }>();
    for (const ns of namespaces) {
      if (!this.globs) {
        want.set(`${ns}|0`, { ns, ifindex: 0, ifname: '*' });
        continue;
      }
      let ifs: { index: number; name: string }[];
      try {
        ifs = PacketSocket.interfaces(ns || undefined);
      } catch (e) {
        this.logger.warn({ err: e, netns: ns }, 'ebpf_dns: cannot list the interfaces of a network namespace');
        continue;
      }
      for (const i of ifs) {
        if (this.include && !this.include.test(i.name)) continue;
        if (this.exclude && this.exclude.test(i.name)) continue;
        want.set(`${ns}|${i.index}`, { ns, ifindex: i.index, ifname: i.name });
      }
    }
    for (const [k, s] of this.sockets) {
      const w = want.get(k);
      if (w && w.ifname === s.ifname) continue;
      this.retire(k, s);
    }
    for (const [k, w] of want) {
      if (this.sockets.has(k)) continue;
      const sock = new PacketSocket(this.obj, PROGRAM, this.onBatch, {
        netnsPath: w.ns || undefined,
        ifindex: w.ifindex,
        blockSize: BLOCK_SIZE,
        blockCount: Math.max(2, Math.floor(this.opts.ringBytes / BLOCK_SIZE)),
        retireMs: this.opts.retireMs ?? 20,
        onError: (e) => this.logger.error({ err: e, netns: w.ns || 'own', interface: w.ifname }, 'ebpf_dns: capture socket failed'),
      });
      this.sockets.set(k, { ns: w.ns, ifindex: w.ifindex, ifname: w.ifname, sock });
      this.logger.debug({ netns: w.ns || 'own', interface: w.ifname }, 'ebpf_dns: capturing');
    }
  }

  private retire(key: string, s: OpenSocket): void {
    const st = s.sock.stats();
    s.sock.stop();
    const after = s.sock.stats();
    this.closedPackets += Math.max(st.kernelPackets, after.kernelPackets);
    this.closedDrops += Math.max(st.kernelDrops, after.kernelDrops);
    this.sockets.delete(key);
  }

  get socketCount(): number {
    return this.sockets.size;
  }

  /** Resolves once every packet captured before the call has been handed to onBatch. */
  async flush(): Promise<void> {
    await Promise.all([...this.sockets.values()].map((s) => s.sock.flush()));
  }

  counters(): DnsCaptureCounters {
    let packets = this.closedPackets;
    let drops = this.closedDrops;
    for (const s of this.sockets.values()) {
      const st = s.sock.stats();
      packets += st.kernelPackets;
      drops += st.kernelDrops;
    }
    return { packets, drops, fragments: this.kernelCounter(CTR_FRAGMENT) };
  }

  /** Packets the filter passed, summed over CPUs (the kernel's view, for tests). */
  passed(): number {
    return this.kernelCounter(CTR_PASSED);
  }

  private kernelCounter(idx: number): number {
    if (this.closed) return 0;
    const key = Buffer.alloc(4);
    key.writeUInt32LE(idx, 0);
    const v = this.obj.mapLookup('dns_counters', key);
    if (!v) return 0;
    let total = 0;
    const ncpu = numPossibleCpus();
    for (let c = 0; c < ncpu && (c + 1) * 8 <= v.length; c++) total += Number(v.readBigUInt64LE(c * 8));
    return total;
  }

  close(): void {
    if (this.closed) return;
    for (const [k, s] of this.sockets) this.retire(k, s);
    this.closed = true;
    this.obj.close();
  }
}
