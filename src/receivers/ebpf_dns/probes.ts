/**
 * The kernel side of the ebpf_dns receiver: bpf/flowtel_dns.bpf.o's socket
 * filter on AF_PACKET sockets, one per network namespace (or one per chosen
 * interface when interface globs are set), read through TPACKET_V3 rings;
 * and, for process attribution, its cgroup programs on the cgroup v2 root
 * that fill the dns_owners map (client socket's address and port → process).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { BpfObject, bumpMemlockRlimit, numPossibleCpus } from '../../native/bpf';
import { PacketSocket } from '../../native/packet-socket';
import { compileGlobs } from '../../processors/common';
import { bpfObjectPath, cgroup2Mount } from '../../util/paths';
import { checkPrerequisites, ProbeError } from '../ebpf_tcp/probes';
import type { QueryOwnerLookup, SocketOwner } from '../../dns/engine';

const BLOCK_SIZE = 256 * 1024;
const PROGRAM = 'dns_filter';
/** enum flowtel_dns_counter (bpf/flowtel_dns.h) */
const CTR_PASSED = 0;
const CTR_FRAGMENT = 1;
const CTR_OWNER_SOCKETS = 2;
const CTR_OWNER_STORAGE_FAIL = 3;
const CTR_OWNER_RECORDS = 4;
/** FLOWTEL_DNS_PORT_BITS */
const PORT_BITS = 8192;
const OWNER_PROGRAMS = ['dns_connect4', 'dns_connect6', 'dns_sendmsg4', 'dns_sendmsg6', 'dns_owner_egress'];
/** struct flowtel_dns_owner_key / flowtel_dns_owner_slot / FLOWTEL_DNS_OWNER_* (bpf/flowtel_dns.h) */
const OWNER_KEY_SIZE = 20;
const OWNER_SETS = 8192;
const OWNER_WAYS = 4;
const SLOT_SIZE = 80;
const SLOT_PID = 8;
const SLOT_TS = 16;
const SLOT_FIRST = 24;
const SLOT_KEY = 40;
const SLOT_COMM = 60;
/**
 * A record is the packet's socket's if the packet was sent after the record's
 * first write (the egress program writes it before the packet reaches any
 * capture; OWNER_CLOCK_SLACK_US covers converting between the two clocks) and
 * at most OWNER_MAX_AGE_US after its latest write (a socket's record is
 * refreshed at least once a second while it sends: an older one belongs to a
 * socket that had the port before).
 */
const OWNER_MAX_AGE_US = 1_500_000;
const OWNER_CLOCK_SLACK_US = 5_000;

/** FNV-1a, 32 bits (owner_hash in bpf/flowtel_dns.bpf.c). */
export function ownerHash(key: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < OWNER_KEY_SIZE; i++) h = Math.imul(h ^ key[i]!, 0x01000193) >>> 0;
  return h;
}

/** CLOCK_REALTIME − CLOCK_MONOTONIC in µs (bpf_ktime_get_ns and process.hrtime are CLOCK_MONOTONIC). */
function monotonicToRealtimeUs(): number {
  return Date.now() * 1000 - Number(process.hrtime.bigint() / 1000n);
}

export interface DnsCaptureOptions {
  ports: readonly number[];
  snapLength: number;
  /** Paths of network namespaces; empty: the agent's own. */
  namespaces: readonly string[];
  includeInterfaces: readonly string[];
  excludeInterfaces: readonly string[];
  ringBytes: number;
  retireMs?: number;
  /** Attach the cgroup programs that record the process behind each DNS client socket. */
  processAttribution?: boolean;
  /** Where to attach them (default: the cgroup v2 mount found in /proc/mounts). */
  cgroupPath?: string;
}

export interface DnsCaptureCounters {
  /** Packets the filter passed (PACKET_STATISTICS tp_packets, all sockets, closed ones included). */
  packets: number;
  /** Of those, lost because a ring was full (tp_drops). */
  drops: number;
  /** Non-first IP fragments the filter dropped (their DNS message is incomplete). */
  fragments: number;
  /** Sockets whose socket storage could not be allocated: their queries have no process. */
  ownerStorageFailures: number;
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
  /** The cgroup v2 root the owner programs are attached to (undefined: process attribution off). */
  ownerCgroup?: string;
  private readonly ownerKey = Buffer.alloc(OWNER_KEY_SIZE);
  /** dns_owner_table, mapped read-only. */
  private ownerTable?: Buffer;
  private clockOffsetUs = monotonicToRealtimeUs();

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
      obj.setGlobal('dns_port_bits', portBits(opts.ports));
      let cgroup: string | undefined;
      if (opts.processAttribution) {
        cgroup = opts.cgroupPath ?? cgroup2Mount(readFileSync('/proc/mounts', 'utf8'));
        if (!cgroup) logger.warn('ebpf_dns: no cgroup v2 hierarchy mounted (see /proc/mounts): DNS queries are not attributed to processes');
      }
      if (!cgroup) for (const p of OWNER_PROGRAMS) obj.setAutoload(p, false);
      obj.load();
      if (cgroup) {
        try {
          cap.ownerTable = obj.mapMemory('dns_owner_table');
          for (const p of OWNER_PROGRAMS) obj.attachCgroup(p, cgroup);
          cap.ownerCgroup = cgroup;
        } catch (e) {
          // Capture works without them: DNS is still counted, just not attributed.
          for (const p of OWNER_PROGRAMS) obj.detach(p);
          cap.ownerTable = undefined;
          logger.warn({ err: e, cgroup }, 'ebpf_dns: cannot attach the process attribution programs to the cgroup v2 root: DNS queries are not attributed to processes');
        }
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
    return { packets, drops, fragments: this.kernelCounter(CTR_FRAGMENT), ownerStorageFailures: this.kernelCounter(CTR_OWNER_STORAGE_FAIL) };
  }

  /** The loaded programs (ids, whether attached by a link), for tests and the bench. */
  programs(): { name: string; id: number; attached: boolean }[] {
    if (this.closed) return [];
    return this.obj.programStats().map((p) => ({ name: p.name, id: p.id, attached: p.attached }));
  }

  /** Sockets marked as DNS clients, and owner records written (the kernel's view, for tests and the bench). */
  ownerCounters(): { sockets: number; records: number } {
    return { sockets: this.kernelCounter(CTR_OWNER_SOCKETS), records: this.kernelCounter(CTR_OWNER_RECORDS) };
  }

  /** Re-read the offset between the kernel's monotonic clock and wall-clock time (once per collection). */
  refreshClock(): void {
    this.clockOffsetUs = monotonicToRealtimeUs();
  }

  /**
   * The process that owns (owned) the client socket whose packets leave from
   * `port` at the address in buf[addrOff, +4 or +16), as the cgroup programs
   * recorded it when the socket sent DNS: read in place from the
   * memory-mapped dns_owner_table (no system call). Undefined when process
   * attribution is off or nothing valid was recorded (a query from another
   * host; a socket created before the agent started that never connect()ed
   * or sendto()ed since; a record from a socket that had the port before).
   */
  readonly owners: QueryOwnerLookup = {
    lookup: (proto, version, buf, addrOff, port, tsUs): SocketOwner | undefined => {
      const table = this.ownerTable;
      if (!table || !this.ownerCgroup) return undefined;
      const k = this.ownerKey;
      k.fill(0);
      buf.copy(k, 0, addrOff, addrOff + (version === 4 ? 4 : 16));
      k.writeUInt16LE(port, 16);
      k[18] = proto;
      k[19] = version;
      const set = (ownerHash(k) & (OWNER_SETS - 1)) * OWNER_WAYS * SLOT_SIZE;
      for (let w = 0; w < OWNER_WAYS; w++) {
        const o = set + w * SLOT_SIZE;
        const seq = table.readUInt32LE(o);
        if (seq & 1 || table.compare(k, 0, OWNER_KEY_SIZE, o + SLOT_KEY, o + SLOT_KEY + OWNER_KEY_SIZE) !== 0) continue;
        const pid = table.readUInt32LE(o + SLOT_PID);
        const lastUs = Number(table.readBigUInt64LE(o + SLOT_TS) / 1000n) + this.clockOffsetUs;
        const firstUs = Number(table.readBigUInt64LE(o + SLOT_FIRST) / 1000n) + this.clockOffsetUs;
        let end = table.indexOf(0, o + SLOT_COMM);
        if (end < 0 || end > o + SLOT_COMM + 16) end = o + SLOT_COMM + 16;
        const name = table.toString('utf8', o + SLOT_COMM, end);
        // Written meanwhile: not a whole record.
        if (table.readUInt32LE(o) !== seq) return undefined;
        if (pid === 0 || tsUs < firstUs - OWNER_CLOCK_SLACK_US || tsUs > lastUs + OWNER_MAX_AGE_US) return undefined;
        return { pid, name };
      }
      return undefined;
    },
  };

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

/** The .rodata port set of bpf/flowtel_dns.bpf.c: one bit per port. */
export function portBits(ports: readonly number[]): Buffer {
  const b = Buffer.alloc(PORT_BITS);
  for (const p of ports) b[p >> 3] |= 1 << (p & 7);
  return b;
}
