/**
 * The ebpf_tcp receiver: TCP and UDP flows of the whole host, from the kernel.
 *
 * Every collection_interval it (1) waits until the ring buffer has handed
 * over every open/close/failed event written so far, (2) walks the open TCP
 * sockets with iter/tcp, (3) reads the UDP flow map, and sends the deltas
 * since the last collection down its pipelines as one batch.
 *
 * In a logs pipeline it also sends a log record per failed (and, if asked,
 * closed) connection as the events arrive (`connection_events`, events.ts).
 *
 * When an ebpf_dns receiver of the same service provides names
 * (ReceiverContext.domains), flows get destination.domain at collection
 * time (src/flows/domain-annotator.ts).
 */
import type { Logger } from 'pino';
import { TcpConnectionTracker } from '../../flows/tcp-tracker';
import { UdpFlowTracker } from '../../flows/udp-tracker';
import { CONN_RECORD_SIZE, ConnEventKind, ConnRecordCursor, writeOwner } from '../../flows/records';
import { findSocketOwners } from '../../flows/socket-owners';
import { ListenerOwners, type SocketOwner } from '../../flows/listener-owners';
import type { Measurement, MeasurementConsumer } from '../../pipeline/measurements';
import { DROP_REASONS, TcpProbes, type KernelCounters } from './probes';
import type { EbpfTcpConfig } from './config';
import type { KernelFilter } from './kernel-filter';
import { kernelFilterCriteria, type FilterPushdown } from '../../processors/filter';
import type { LogConsumer } from '../../pipeline/logs';
import { connectionEventRecord, KtimeClock } from './events';
import { appendAll } from '../../util/arrays';
import { BurstGc } from '../../util/burst-gc';
import type { DomainNameLookup } from '../../pipeline/domain-names';
import { FlowDomainAnnotator } from '../../flows/domain-annotator';

/** A socket whose owner /proc did not show (gone, or another user's). */
const NO_OWNER: SocketOwner = { pid: 0, comm: '' };

export interface ReceiverStats {
  eventRecords: number;
  snapshotRecords: number;
  /** Connections the in-kernel filter excluded (never reported). */
  kernelFiltered: number;
  /** Log records sent (connection_events). */
  logRecords: number;
  collections: number;
  lastCollectionUs: number;
}

export class EbpfTcpReceiver {
  private probes?: TcpProbes;
  private timer?: NodeJS.Timeout;
  private readonly tcp: TcpConnectionTracker;
  private readonly udp: UdpFlowTracker;
  private lastKernel?: KernelCounters;
  private reportedSnapshotRecords = 0;
  private reportedAliveRecords = 0;
  private lastRecursionMisses = 0;
  private reportedRecovered = { close: 0, open: 0, failure: 0 };
  private collecting?: Promise<void>;
  /** Ring-buffer batches that came during a walk (copies), read once it is over. */
  private heldEvents?: Buffer[];
  readonly stats: ReceiverStats = { eventRecords: 0, snapshotRecords: 0, kernelFiltered: 0, logRecords: 0, collections: 0, lastCollectionUs: 0 };
  private readonly clock = new KtimeClock();
  private readonly domains?: FlowDomainAnnotator;

  constructor(
    readonly id: string,
    private readonly config: EbpfTcpConfig,
    private readonly next: MeasurementConsumer,
    private readonly logger: Logger,
    private readonly filter?: FilterPushdown,
    private readonly logs?: LogConsumer,
    private readonly names?: DomainNameLookup,
  ) {
    if (names) this.domains = new FlowDomainAnnotator(names);
    const ev = config.connection_events;
    this.tcp = new TcpConnectionTracker({
      includeEphemeralPorts: config.include_ephemeral_ports,
      ...(logs && (ev.failures || ev.closed) ? { events: { failures: ev.failures, closed: ev.closed } } : {}),
    });
    this.udp = new UdpFlowTracker({ includeEphemeralPorts: config.include_ephemeral_ports });
  }

  /** Kernel tracepoints that are absent or disabled (their metrics are off). */
  get disabledHooks(): readonly string[] {
    return this.probes?.disabled ?? [];
  }

  async start(): Promise<void> {
    const probes = TcpProbes.open(
      {
        trackUdp: this.config.udp,
        ringBufferBytes: this.config.ring_buffer_size,
        udpMaxFlows: this.config.max_udp_flows,
        wakeupBatch: this.config.wakeup_batch,
        maxLatencyMs: 50,
        disabledHooks: this.config.disabled_hooks,
        filter: this.kernelFilter(),
      },
      this.logger,
    );
    this.probes = probes;
    try {
      probes.startEvents((batch) => this.onEvents(batch), { maxLatencyMs: 50 });
      // Connections already open: baseline now, so the open-connection gauge
      // is right from the first interval and old traffic is not counted as new.
      const { records, ...sweep } = probes.sweepExisting(this.logger);
      this.resolveOwners(records);
      for (const buf of records) this.stats.snapshotRecords += buf.length / CONN_RECORD_SIZE;
      await probes.flushEvents();
      const walk = this.tcp.beginPackedWalk();
      for (const buf of records) walk.chunk(buf);
      walk.end();
      this.tcp.setStartSweep(sweep);
      this.udp.onDump(probes.udpFlows());
      this.lastKernel = probes.kernelCounters();
    } catch (e) {
      probes.close();
      this.probes = undefined;
      throw e;
    }
    this.timer = setInterval(() => void this.collect().catch((e: unknown) => this.logger.error({ err: e }, 'collection failed')), this.config.collection_interval);
    this.timer.unref();
    this.logger.info({ receiver: this.id, interval_ms: this.config.collection_interval, disabled_hooks: probes.disabled, udp: !!probes.cgroupPath }, 'ebpf_tcp receiver started');
  }

  /** What the kernel can drop by itself of the pipelines' common filter. */
  private kernelFilter(): KernelFilter | undefined {
    if (!this.filter) return undefined;
    const f = kernelFilterCriteria(this.filter);
    // With ephemeral ports as attributes the filter matches either port; the
    // kernel only knows the server's: an include list would drop too much.
    if (this.config.include_ephemeral_ports) f.ports.include = [];
    this.logger.info({ filter: f }, 'filter pushed down into the kernel');
    return f;
  }

  /** Collect now (also what the timer does). Concurrent calls share one collection. */
  collect(): Promise<void> {
    if (!this.collecting) {
      this.collecting = this.collectOnce().finally(() => {
        this.collecting = undefined;
      });
    }
    return this.collecting;
  }

  private async collectOnce(): Promise<void> {
    const probes = this.probes;
    if (!probes) return;
    const t0 = process.hrtime.bigint();
    this.clock.refresh();
    // DNS answers captured before now are read before flows are labelled with them.
    await Promise.all([probes.flushEvents(), this.names?.active ? this.names.settle() : undefined]);
    const walk = this.tcp.beginPackedWalk((fresh) => this.resolveOwners(fresh));
    let sockets: number;
    // The kernel walks on a thread while its chunks are read here; ring-buffer
    // records that come meanwhile wait until the walk is over, so a close is
    // never read before a walk record of its socket taken earlier.
    this.heldEvents = [];
    try {
      sockets = await probes.walkOpenConnections((chunk, alive) => walk.chunk(chunk, alive), walk.generation);
    } catch (e) {
      walk.abort();
      this.releaseHeldEvents();
      throw e;
    }
    walk.end();
    this.stats.snapshotRecords += sockets;
    if (this.tcp.stats.aliveUnknown > this.aliveUnknownLogged) {
      this.aliveUnknownLogged = this.tcp.stats.aliveUnknown;
      this.logger.warn({ receiver: this.id, records: this.tcp.stats.aliveUnknown }, 'ebpf_tcp: the socket walk sent short records of connections the tracker does not know; the next walk sends full ones');
    }
    // Every record written before the kernel knew those listeners' owners has been read (the flush above).
    this.earlyListenerOwners = undefined;
    this.releaseHeldEvents();
    const batch = this.tcp.collect(Date.now());
    const udp = this.udp.onDump(probes.udpFlows());
    probes.deleteUdpFlows(udp.expired);
    appendAll(batch.measurements, udp.measurements);
    this.domains?.annotate(batch.measurements);
    appendAll(batch.measurements, this.selfTelemetry(probes));
    const us = Number((process.hrtime.bigint() - t0) / 1000n);
    batch.measurements.push({ metric: 'flowtel_collection_duration_us', value: us, attributes: { receiver: this.id } });
    this.stats.collections++;
    this.stats.lastCollectionUs = us;
    this.warnIfSlow(us, sockets);
    this.next.consume({ ...batch, gaugesReplaced: [...batch.gaugesReplaced, 'flowtel_tracked_connections'], source: this.id });
    // After a burst (the start-up sweep, tens of thousands of connections opened or closed at once): see src/util/burst-gc.ts.
    if (this.burstGc.observe(this.tcp.stats.tracked)) this.logger.debug({ tracked: this.tcp.stats.tracked }, 'full garbage collection after a burst of connections');
  }

  private readonly burstGc = new BurstGc();
  private aliveUnknownLogged = 0;
  private lastSlowWarningMs = 0;
  /**
   * A collection longer than collection_interval means the next one starts at
   * once and the agent is busy all the time: say so (at most once a minute),
   * with what it took, since the flowtel_collection_duration_us histogram may
   * not get scraped meanwhile.
   */
  private warnIfSlow(us: number, sockets: number): void {
    const ms = us / 1000;
    if (ms <= this.config.collection_interval) return;
    const now = Date.now();
    if (now - this.lastSlowWarningMs < 60_000) return;
    this.lastSlowWarningMs = now;
    this.logger.warn(
      { receiver: this.id, duration_ms: Math.round(ms), interval_ms: this.config.collection_interval, sockets, tracked: this.tcp.stats.tracked },
      'ebpf_tcp: a collection took longer than collection_interval',
    );
  }

  private onEvents(batch: Buffer): void {
    if (this.heldEvents) {
      this.heldEvents.push(Buffer.from(batch)); // the reader's buffer is reused after this call
      return;
    }
    this.earlyListenerOwners?.fill(batch);
    this.stats.eventRecords += this.tcp.onEventBatch(batch);
    this.sendConnectionEvents();
  }

  private releaseHeldEvents(): void {
    const held = this.heldEvents;
    this.heldEvents = undefined;
    for (const b of held ?? []) this.onEvents(b);
  }

  /** The connection events of the records just handled, as log records (dropped when no logs pipeline listens). */
  private sendConnectionEvents(): void {
    const events = this.tcp.takeEvents();
    if (events.length === 0 || !this.logs || this.logs.active === false) return;
    const domains = this.domains;
    const records = events.map((e) => connectionEventRecord(domains ? { ...e, attributes: domains.attributesFor(e.attributes) } : e, this.clock));
    this.stats.logRecords += records.length;
    try {
      this.logs.consumeLogs({ records, source: this.id });
    } catch (e) {
      this.logger.error({ err: e }, 'ebpf_tcp: sending log records failed');
    }
  }

  private selfTelemetry(probes: TcpProbes): Measurement[] {
    const now = probes.kernelCounters();
    const prev = this.lastKernel;
    this.lastKernel = now;
    const out: Measurement[] = [];
    const attrs = { receiver: this.id };
    for (const reason of DROP_REASONS) {
      const d = now.dropped[reason] - (prev?.dropped[reason] ?? 0);
      if (d > 0) out.push({ metric: 'flowtel_ebpf_dropped', value: d, attributes: { ...attrs, reason } });
    }
    // Runs the kernel skipped because the program was already running on
    // that CPU (a softirq close interrupting a process-context one). Those of
    // handle_set_state are handled by set_state_spare, except when it was
    // running too (recursionRecovered counts what it handled); a skipped run
    // of set_state_spare itself is one handle_set_state ran. What is left is
    // lost; the walk still finds the ends of connections it saw open.
    let misses = -now.recursionRecovered;
    for (const p of probes.programStats()) if (p.name !== 'set_state_spare') misses += p.recursionMisses;
    const missed = misses - this.lastRecursionMisses;
    this.lastRecursionMisses = misses;
    if (missed > 0) out.push({ metric: 'flowtel_ebpf_dropped', value: missed, attributes: { ...attrs, reason: 'program_recursion' } });
    this.stats.kernelFiltered = now.filtered;
    const filtered = now.filtered - (prev?.filtered ?? 0);
    if (filtered > 0) out.push({ metric: 'flowtel_ebpf_filtered', value: filtered, attributes: attrs });
    const ev = now.events - (prev?.events ?? 0);
    if (ev > 0) out.push({ metric: 'flowtel_ebpf_records', value: ev, attributes: { ...attrs, kind: 'event' } });
    // Walk records: full ones, and the short ones of connections idle since their last full record.
    const alive = this.tcp.stats.aliveRecords - this.reportedAliveRecords;
    const snap = this.stats.snapshotRecords - this.reportedSnapshotRecords - alive;
    this.reportedSnapshotRecords = this.stats.snapshotRecords;
    this.reportedAliveRecords = this.tcp.stats.aliveRecords;
    if (snap > 0) out.push({ metric: 'flowtel_ebpf_records', value: snap, attributes: { ...attrs, kind: 'snapshot' } });
    if (alive > 0) out.push({ metric: 'flowtel_ebpf_records', value: alive, attributes: { ...attrs, kind: 'alive' } });
    // Connection changes no program ran for, made up in user space: a close
    // from the walks (the socket is gone), an opening at its close.
    const { staleRemoved, opensUnseen, failuresUnseen } = this.tcp.stats;
    const made = this.reportedRecovered;
    if (staleRemoved > made.close) out.push({ metric: 'flowtel_ebpf_recovered', value: staleRemoved - made.close, attributes: { ...attrs, reason: 'close_unseen' } });
    if (opensUnseen > made.open) out.push({ metric: 'flowtel_ebpf_recovered', value: opensUnseen - made.open, attributes: { ...attrs, reason: 'open_unseen' } });
    if (failuresUnseen > made.failure) out.push({ metric: 'flowtel_ebpf_recovered', value: failuresUnseen - made.failure, attributes: { ...attrs, reason: 'failure_unseen' } });
    this.reportedRecovered = { close: staleRemoved, open: opensUnseen, failure: failuresUnseen };
    out.push({ metric: 'flowtel_tracked_connections', value: this.tcp.stats.tracked, attributes: attrs });
    return out;
  }

  /**
   * Sockets opened before the agent attached have no owner in the kernel's
   * per-socket state: find it in /proc (once per socket), and teach the kernel
   * the owners of such listeners so their future connections are attributed.
   */
  private readonly owners = new Map<number, SocketOwner>();
  /** Owners of the listeners found at start, until the first collection (src/flows/listener-owners.ts). */
  private earlyListenerOwners?: ListenerOwners;
  /** Packed flowtel_conn records (copies the agent owns) with no owner get theirs, written in place. */
  private resolveOwners(bufs: readonly Buffer[]): void {
    const unknown = new Set<number>();
    for (const buf of bufs) {
      const c = new ConnRecordCursor(buf);
      for (let i = 0, n = buf.length / CONN_RECORD_SIZE; i < n; i++) {
        c.moveTo(i);
        const ino = c.ino;
        if (c.pid === 0 && ino !== 0 && !this.owners.has(ino)) unknown.add(ino);
      }
    }
    if (unknown.size > 0) {
      const found = findSocketOwners(unknown);
      for (const ino of unknown) this.owners.set(ino, found.get(ino) ?? NO_OWNER);
      for (const buf of bufs) {
        const c = new ConnRecordCursor(buf);
        for (let i = 0, n = buf.length / CONN_RECORD_SIZE; i < n; i++) {
          c.moveTo(i);
          if (c.kind !== ConnEventKind.Listener) continue;
          const o = found.get(c.ino);
          if (!o) continue;
          this.probes?.setListenerOwner(c.netns, c.sport, o.pid, o.comm);
          if (this.stats.collections === 0) (this.earlyListenerOwners ??= new ListenerOwners()).set(c.netns, c.sport, o);
        }
      }
    }
    for (const buf of bufs) {
      // Until the first walk is done, incoming connections of the listeners found at start
      // (the kernel did not know their owner yet; one still in the accept queue has no file in /proc).
      this.earlyListenerOwners?.fill(buf);
      const c = new ConnRecordCursor(buf);
      for (let i = 0, n = buf.length / CONN_RECORD_SIZE; i < n; i++) {
        c.moveTo(i);
        const ino = c.ino;
        if (c.pid !== 0 || ino === 0) continue;
        const o = this.owners.get(ino);
        if (o && o.pid) writeOwner(buf, i, o);
      }
    }
    if (this.owners.size > 100_000) this.owners.clear();
  }

  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.probes) return;
    try {
      await this.collect();
    } finally {
      this.probes.close();
      this.probes = undefined;
      this.logger.info({ receiver: this.id }, 'ebpf_tcp receiver stopped: probes detached');
    }
  }
}
