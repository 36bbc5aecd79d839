/**
 * The kernel side of the ebpf_tcp receiver: loads bpf/flowtel_tcp.bpf.o,
 * checks what this kernel has, attaches, and gives typed access to its ring
 * buffer, iterator and maps. Nothing stays attached after close().
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { BpfObject, RingBufferReader, bumpMemlockRlimit, numPossibleCpus, vmlinuxHasType } from '../../native/bpf';
import { CONN_RECORD_SIZE, UDP_KEY_SIZE, UDP_VALUE_SIZE, decodeConnRecords, decodeUdpFlow, writeComm, type ConnRecord, type UdpFlowRecord } from '../../flows/records';
import { listNetworkNamespaces } from '../../flows/netns';
import type { StartSweep, WalkGeneration } from '../../flows/tcp-tracker';
import { missingBpfCapabilities } from '../../util/capabilities';
import { encodeKernelFilter, type KernelFilter } from './kernel-filter';
import { bpfObjectPath, cgroup2Mount } from '../../util/paths';

/** Errors a person can act on: what is missing and what to do. */
export class ProbeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProbeError';
  }
}

export interface TcpProbeOptions {
  trackUdp: boolean;
  ringBufferBytes: number;
  udpMaxFlows: number;
  /** Wake the reader every N records (it also polls every maxLatencyMs). */
  wakeupBatch: number;
  maxLatencyMs: number;
  /** tracepoints to treat as absent (for tests of degraded kernels and for users who want them off). */
  disabledHooks: readonly string[];
  /** What the kernel filters out by itself (see kernel-filter.ts). */
  filter?: KernelFilter;
  /** Open connections handed over per read() of a collection's walk (default 32768: 4.75 MiB of kernel memory). */
  snapshotChunk?: number;
  /** Short records of idle connections per read() (default 262144: 4 MiB of kernel memory). */
  aliveChunk?: number;
  /** The walk program to load; default: `direct` where the kernel has bpf_rdonly_cast (6.2+), else `compat` (tests load each). */
  walker?: 'direct' | 'compat';
}

/** A tp_btf program, the tracepoint it needs, and what is lost without it. */
interface Hook {
  program: string;
  tracepoint: string;
  required: boolean;
  lost: string;
}

const HOOKS: readonly Hook[] = [
  { program: 'handle_set_state', tracepoint: 'inet_sock_set_state', required: true, lost: 'TCP connection tracking' },
  // Handles the state changes the kernel skipped for handle_set_state (recursion on a CPU): see bpf/flowtel_tcp.bpf.c.
  { program: 'set_state_spare', tracepoint: 'inet_sock_set_state', required: true, lost: 'state changes that interrupt another one on the same CPU' },
  { program: 'handle_send_reset', tracepoint: 'tcp_send_reset', required: false, lost: 'reset-sent close reasons' },
  { program: 'handle_receive_reset', tracepoint: 'tcp_receive_reset', required: false, lost: 'reset-received close reasons (resets still counted from the socket error)' },
];

/** The two builds of the open-connection walk: the same walk, the first reading an idle socket's counters with plain loads (bpf_rdonly_cast, 6.2+). */
const WALKERS = { direct: 'dump_tracked', compat: 'dump_tracked_compat' } as const;

/** walk_params' one key; and the walk a caller with no generation gets: every record full. */
const WALK_PARAMS_KEY = Buffer.alloc(4);
const FULL_WALK: WalkGeneration = { gen: 0, acked: 0 };

export const DROP_REASONS = ['ringbuf_full', 'storage_alloc_failed', 'udp_map_full', 'listener_map_full'] as const;
const COUNTER_EVENTS = 4;
const COUNTER_FILTERED = 5;
const COUNTER_RECURSION_RECOVERED = 6;

export interface KernelCounters {
  dropped: Record<(typeof DROP_REASONS)[number], number>;
  events: number;
  /** Connections the in-kernel filter excluded. */
  filtered: number;
  /** State changes the kernel skipped for handle_set_state (recursion) that set_state_spare handled. */
  recursionRecovered: number;
}

export function checkPrerequisites(): void {
  const missing = missingBpfCapabilities();
  if (missing.length > 0) {
    throw new ProbeError(
      `missing capabilit${missing.length > 1 ? 'ies' : 'y'} ${missing.map((c) => `CAP_${c}`).join(', ')}: ` +
        'run flowtel as root, or grant them (setcap cap_bpf,cap_perfmon,cap_net_admin+ep on node, or securityContext.capabilities.add in Kubernetes)',
    );
  }
  if (!existsSync('/sys/kernel/btf/vmlinux')) {
    throw new ProbeError('/sys/kernel/btf/vmlinux not found: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF=y is required for CO-RE eBPF)');
  }
}

export class TcpProbes {
  private readonly obj: BpfObject;
  private reader?: RingBufferReader;
  private closed = false;
  readonly disabled: string[] = [];
  readonly cgroupPath?: string;
  /** The open-connection walk loaded (WALKERS): direct where the kernel has bpf_rdonly_cast, else compat. */
  private walker: (typeof WALKERS)[keyof typeof WALKERS] = WALKERS.direct;

  private constructor(obj: BpfObject, cgroupPath: string | undefined) {
    this.obj = obj;
    this.cgroupPath = cgroupPath;
  }

  static open(opts: TcpProbeOptions, logger: Logger): TcpProbes {
    checkPrerequisites();
    const file = bpfObjectPath('flowtel_tcp');
    if (!existsSync(file)) throw new ProbeError(`${file} not found: build the eBPF programs first (npm run build)`);
    bumpMemlockRlimit();
    const obj = new BpfObject(file);
    let cgroupPath: string | undefined;
    let trackUdp = opts.trackUdp;
    if (trackUdp) {
      cgroupPath = cgroup2Mount(readFileSync('/proc/mounts', 'utf8'));
      if (!cgroupPath) {
        logger.warn('no cgroup v2 hierarchy mounted (see /proc/mounts): UDP byte counting disabled');
        trackUdp = false;
      }
    }
    const probes = new TcpProbes(obj, trackUdp ? cgroupPath : undefined);
    try {
      const attachList = ['dump_tcp'];
      for (const h of HOOKS) {
        const off = opts.disabledHooks.includes(h.tracepoint);
        if (!off && vmlinuxHasType(`btf_trace_${h.tracepoint}`, 'typedef')) {
          attachList.push(h.program);
          continue;
        }
        const why = off ? 'disabled by configuration' : 'not found on this kernel';
        if (h.required) throw new ProbeError(`tracepoint ${h.tracepoint} ${why}: ${h.lost} is impossible`);
        obj.setAutoload(h.program, false);
        probes.disabled.push(h.tracepoint);
        logger.warn({ tracepoint: h.tracepoint }, `tracepoint ${h.tracepoint} ${why}: ${h.lost} disabled`);
      }
      const direct = (opts.walker ?? (vmlinuxHasType('bpf_rdonly_cast', 'func') ? 'direct' : 'compat')) === 'direct';
      probes.walker = direct ? WALKERS.direct : WALKERS.compat;
      obj.setAutoload(direct ? WALKERS.compat : WALKERS.direct, false);
      const udpPrograms = ['udp_egress', 'udp_ingress', 'udp_sock_create'];
      if (!trackUdp) for (const p of udpPrograms) obj.setAutoload(p, false);
      // struct flowtel_tcp_options (bpf/flowtel_tcp.h)
      const filter = opts.filter ? encodeKernelFilter(opts.filter) : undefined;
      const o = Buffer.alloc(12);
      o.writeUInt32LE(Math.max(1, opts.wakeupBatch), 0);
      o.writeUInt8(trackUdp ? 1 : 0, 4);
      o.writeUInt8(filter && filter.entries.length > 0 ? 1 : 0, 5);
      o.writeUInt8(filter?.includePorts ? 1 : 0, 6);
      o.writeUInt8(filter?.includeCidrs ? 1 : 0, 7);
      o.writeUInt8(filter?.includeComms ? 1 : 0, 8);
      obj.setGlobal('options', o);
      obj.setMapMaxEntries('conn_events', opts.ringBufferBytes);
      obj.setMapMaxEntries('udp_flows', opts.udpMaxFlows);
      if (opts.snapshotChunk !== undefined) obj.setMapMaxEntries('snapshot_chunk', opts.snapshotChunk);
      if (opts.aliveChunk !== undefined) obj.setMapMaxEntries('alive_chunk', opts.aliveChunk);
      obj.load();
      for (const e of filter?.entries ?? []) obj.mapUpdate(e.map, e.key, e.value);
      for (const prog of attachList) obj.attach(prog);
      obj.attachIter(probes.walker, 'sock_infos');
      if (trackUdp && cgroupPath) for (const p of udpPrograms) obj.attachCgroup(p, cgroupPath);
    } catch (e) {
      obj.close();
      throw e;
    }
    return probes;
  }

  /** Start delivering ring-buffer records (close, failed) in kernel order: packed flowtel_conn records, a batch at a time. */
  startEvents(onBatch: (batch: Buffer) => void, opts: Pick<TcpProbeOptions, 'maxLatencyMs'> & { maxBatchRecords?: number }): void {
    this.reader = new RingBufferReader(this.obj, 'conn_events', CONN_RECORD_SIZE, onBatch, {
      maxBatchRecords: opts.maxBatchRecords ?? 4096,
      maxLatencyMs: opts.maxLatencyMs,
    });
  }

  /** Resolves once every event written so far has been delivered. */
  async flushEvents(): Promise<void> {
    if (this.reader) await this.reader.flush();
  }

  /** Every open TCP connection we hold state for, in every network namespace (full records). */
  snapshot(): ConnRecord[] {
    this.setWalk(FULL_WALK);
    return decodeConnRecords(this.obj.drainIterator(this.walker, 'snapshot_chunk', 'snapshot_count'));
  }

  /**
   * The same walk as the kernel hands it over: packed flowtel_conn records,
   * a chunk at a time (each Buffer is valid only during its call), on later
   * turns of the event loop while the kernel walks on (a native thread).
   * With a generation (see WalkGeneration), connections idle since their
   * last full record come as struct flowtel_alive records in `alive`, each
   * with its place among the chunk's full records. Resolves to the number
   * of records, short ones included.
   */
  walkOpenConnections(onChunk: (chunk: Buffer, alive?: Buffer) => void, walk: WalkGeneration = FULL_WALK): Promise<number> {
    this.setWalk(walk);
    return this.obj.walkIteratorChunks(this.walker, 'snapshot_chunk', 'snapshot_count', onChunk, 'alive_chunk');
  }

  /** What dump_tracked's next walk is (struct flowtel_walk_params, bpf/flowtel_tcp.h). */
  private setWalk(walk: WalkGeneration): void {
    const params = Buffer.alloc(8);
    params.writeUInt32LE(walk.gen, 0);
    params.writeUInt32LE(walk.acked, 4);
    this.obj.mapUpdate('walk_params', WALK_PARAMS_KEY, params);
  }

  /**
   * Sockets that were open before we attached, in every network namespace:
   * iter/tcp walks the namespace it is opened in, so it is opened in each.
   * They get per-socket state, so snapshot() finds them from then on.
   * Listeners come back too (their owners teach the kernel who accepts).
   */
  sweepExisting(logger: Logger): { records: Buffer[] } & StartSweep {
    /** Packed flowtel_conn records, one buffer per namespace: no object per socket (130k at 65k connections). */
    const out: Buffer[] = [];
    const walked = new Set<number>();
    const listed = new Set<number>();
    // The agent's own namespace is walked where it runs: no setns(), which needs CAP_SYS_ADMIN.
    let own: number | undefined;
    try {
      own = statSync('/proc/self/ns/net').ino;
    } catch {
      /* no procfs: every namespace by path */
    }
    const denied: string[] = [];
    for (const [ino, nsPath] of listNetworkNamespaces()) {
      listed.add(ino);
      try {
        out.push(ino === own ? this.obj.readIterator('dump_tcp') : this.obj.readIterator('dump_tcp', nsPath));
        walked.add(ino);
      } catch (e) {
        if ((e as { code?: unknown }).code === 'EPERM') denied.push(nsPath);
        else logger.warn({ err: e, netns: ino, path: nsPath }, 'cannot walk the sockets of a network namespace: its connections from before the agent started are not seen until they close');
      }
    }
    if (denied.length > 0) {
      // Expected without CAP_SYS_ADMIN (entering another namespace needs it): one line, not one per namespace.
      logger.warn(
        { namespaces: denied.length, examples: denied.slice(0, 3) },
        `cannot enter ${denied.length} other network namespace(s) without CAP_SYS_ADMIN: their connections from before the agent started are counted only from their close; new connections everywhere are tracked as usual`,
      );
    }
    return { records: out, walked, listed, endNs: process.hrtime.bigint() };
  }

  udpFlows(): UdpFlowRecord[] {
    if (!this.cgroupPath) return [];
    const { keys, values, count } = this.obj.mapDump('udp_flows');
    const vsize = values.length / Math.max(1, count);
    if (count > 0 && (keys.length !== count * UDP_KEY_SIZE || vsize !== UDP_VALUE_SIZE)) {
      throw new Error(`udp_flows layout mismatch: key ${keys.length / count} value ${vsize}`);
    }
    const out: UdpFlowRecord[] = [];
    for (let i = 0; i < count; i++) out.push(decodeUdpFlow(keys, values, i));
    return out;
  }

  deleteUdpFlows(keys: readonly Buffer[]): void {
    for (const k of keys) this.obj.mapDelete('udp_flows', k);
  }

  /** Teach the kernel who owns a listener that was open before we attached. */
  setListenerOwner(netns: number, port: number, pid: number, comm: string): void {
    const key = Buffer.alloc(8);
    key.writeUInt32LE(netns, 0);
    key.writeUInt16LE(port, 4);
    const value = Buffer.alloc(24);
    value.writeUInt32LE(pid, 0);
    writeComm(value, 8, comm);
    this.obj.mapUpdate('listeners', key, value);
  }

  kernelCounters(): KernelCounters {
    const ncpu = numPossibleCpus();
    const sum = (idx: number): number => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(idx, 0);
      const v = this.obj.mapLookup('counters', key);
      if (!v) return 0;
      let total = 0;
      for (let c = 0; c < ncpu && (c + 1) * 8 <= v.length; c++) total += Number(v.readBigUInt64LE(c * 8));
      return total;
    };
    const dropped = Object.fromEntries(DROP_REASONS.map((r, i) => [r, sum(i)])) as KernelCounters['dropped'];
    return { dropped, events: sum(COUNTER_EVENTS), filtered: sum(COUNTER_FILTERED), recursionRecovered: sum(COUNTER_RECURSION_RECOVERED) };
  }

  programStats(): { name: string; runTimeNs: number; runCnt: number; recursionMisses: number }[] {
    return this.obj.programStats();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    this.obj.close();
  }
}
