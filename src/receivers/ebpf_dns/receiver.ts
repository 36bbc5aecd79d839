/**
 * The ebpf_dns receiver: every DNS query and response the host sends or
 * receives, captured by a BPF socket filter on AF_PACKET sockets (see
 * probes.ts), decoded and correlated in src/dns/, and sent down the
 * pipelines every collection_interval as dns_* metrics.
 *
 * Each answered or timed-out query is also a DnsTransaction
 * (src/dns/transaction.ts): `onTransaction` subscribes to them, and in a
 * logs pipeline each becomes one OTLP log record (`log_records`, logs.ts),
 * sent after each captured batch and each collection (timeouts).
 * A/AAAA answers fill `nameCache` (address → name), which the receiver
 * provides to the service's DomainNames (ReceiverContext.domains) while it
 * runs: flows of ebpf_tcp get destination.domain from it.
 *
 * Queries are attributed to the process that sent them (process_attribution,
 * see probes.ts): the owner of the client socket is looked up in the kernel's
 * dns_owners map when the query is parsed.
 */
import type { Logger } from 'pino';
import type { MetricsReceiver } from '../../pipeline/component';
import type { LogConsumer, LogRecordData } from '../../pipeline/logs';
import type { DomainNames } from '../../pipeline/domain-names';
import type { Measurement, MeasurementConsumer } from '../../pipeline/measurements';
import { forEachPacket } from '../../native/packet-socket';
import { DnsEngine, type MalformedReason } from '../../dns/engine';
import { DnsNameCache } from '../../dns/name-cache';
import type { DnsTransaction } from '../../dns/transaction';
import type { EbpfDnsConfig } from './config';
import { DnsMetrics } from './metrics';
import { dnsTransactionRecord, nameHasher, type DnsLogOptions } from './logs';
import { DnsCapture, type DnsCaptureCounters } from './probes';

interface Cumulative {
  capture: DnsCaptureCounters;
  malformed: Partial<Record<MalformedReason, number>>;
  duplicates: number;
  unmatched: number;
  overflow: number;
  tcpGaps: number;
  tcpEvicted: number;
}

export class EbpfDnsReceiver implements MetricsReceiver {
  /** Address → name, from the A/AAAA answers seen (see DnsNameCache). */
  readonly nameCache: DnsNameCache;
  readonly engine: DnsEngine;
  private readonly metrics: DnsMetrics;
  private readonly listeners = new Set<(t: DnsTransaction) => void>();
  private capture?: DnsCapture;
  private timer?: NodeJS.Timeout;
  private collecting?: Promise<void>;
  private last?: Cumulative;
  private collections = 0;
  /** Log records made since the last send. */
  private pendingLogs: LogRecordData[] = [];
  private readonly logOptions: DnsLogOptions;
  private readonly hashName?: (name: string) => string;
  /** Log records sent (log_records). */
  logRecords = 0;
  private stopProviding?: () => void;

  constructor(
    readonly id: string,
    private readonly config: EbpfDnsConfig,
    private readonly next: MeasurementConsumer,
    private readonly logger: Logger,
    private readonly logs?: LogConsumer,
    private readonly domains?: DomainNames,
  ) {
    const lr = config.log_records;
    this.logOptions = { answers: lr.answers, hashNames: lr.hash_names, ...(lr.hash_key === undefined ? {} : { hashKey: lr.hash_key }) };
    if (lr.hash_names) this.hashName = nameHasher(lr.hash_key);
    this.nameCache = new DnsNameCache({ maxEntries: config.name_cache_size, minTtlMs: config.name_cache_min_ttl });
    this.metrics = new DnsMetrics(config.top_names, (t) => this.emitTransaction(t));
    this.engine = new DnsEngine(
      {
        timeoutMs: config.query_timeout,
        maxInflight: config.max_inflight,
        maxTcpFlows: config.max_tcp_flows,
        tcp: config.tcp,
        nameCache: config.name_cache_size > 0 ? this.nameCache : undefined,
        // Several capture sockets (namespaces, or one per interface) can see one packet, each read by its own
        // thread: remember copies for seconds. One socket sees its copies in order: the match window is enough.
        dedupKeepMs: config.network_namespaces.length > 1 || config.include_interfaces.length > 0 || config.exclude_interfaces.length > 0 ? 5000 : 500,
        owners: config.process_attribution ? { lookup: (proto, version, buf, off, port, tsUs) => this.capture?.owners.lookup(proto, version, buf, off, port, tsUs) } : undefined,
      },
      this.metrics,
    );
  }

  /** Subscribe to every answered or timed-out query; returns the unsubscribe function. */
  onTransaction(listener: (t: DnsTransaction) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emitTransaction(t: DnsTransaction): void {
    if (this.logs && this.config.log_records.enabled && this.logs.active !== false) {
      this.pendingLogs.push(dnsTransactionRecord(t, this.logOptions, this.hashName));
    }
    for (const l of this.listeners) {
      try {
        l(t);
      } catch (e) {
        this.logger.error({ err: e }, 'ebpf_dns: a transaction listener threw');
      }
    }
  }

  /** The receiver's BPF programs while it runs (empty before start and after shutdown). */
  kernelPrograms(): { name: string; id: number; attached: boolean }[] {
    return this.capture?.programs() ?? [];
  }

  /** Capture sockets open (one per namespace, or per matching interface). */
  get socketCount(): number {
    return this.capture?.socketCount ?? 0;
  }

  async start(): Promise<void> {
    const c = this.config;
    this.capture = DnsCapture.open(
      {
        ports: c.portNumbers,
        snapLength: c.snap_length,
        namespaces: c.network_namespaces,
        includeInterfaces: c.include_interfaces,
        excludeInterfaces: c.exclude_interfaces,
        ringBytes: c.ring_buffer_size,
        processAttribution: c.process_attribution,
      },
      (batch, count) => this.onBatch(batch, count),
      this.logger,
    );
    this.last = this.cumulative();
    if (this.domains && c.name_cache_size > 0) {
      this.stopProviding = this.domains.provide({
        lookup: (address) => this.nameCache.lookup(address),
        settle: () => this.capture?.flush() ?? Promise.resolve(),
      });
    }
    this.timer = setInterval(() => void this.collect().catch((e: unknown) => this.logger.error({ err: e }, 'ebpf_dns collection failed')), c.collection_interval);
    this.timer.unref();
    this.logger.info(
      { receiver: this.id, ports: c.portNumbers, sockets: this.capture.socketCount, namespaces: c.network_namespaces, process_attribution: this.capture.ownerCgroup !== undefined },
      'ebpf_dns receiver started',
    );
  }

  private onBatch(batch: Buffer, count: number): void {
    const engine = this.engine;
    forEachPacket(batch, count, (p, buf) => engine.onPacket(buf, p.offset, p.caplen, p.tsUs));
    this.sendLogs();
  }

  private sendLogs(): void {
    if (this.pendingLogs.length === 0) return;
    const records = this.pendingLogs;
    this.pendingLogs = [];
    if (!this.logs) return;
    this.logRecords += records.length;
    try {
      this.logs.consumeLogs({ records, source: this.id });
    } catch (e) {
      this.logger.error({ err: e }, 'ebpf_dns: sending log records failed');
    }
  }

  collect(): Promise<void> {
    if (!this.collecting) {
      this.collecting = this.collectOnce().finally(() => {
        this.collecting = undefined;
      });
    }
    return this.collecting;
  }

  private async collectOnce(): Promise<void> {
    const capture = this.capture;
    if (!capture) return;
    // Every packet captured before this instant is handled once flush()
    // resolves: queries older than the timeout by then have no response.
    const nowUs = Date.now() * 1000;
    await capture.flush();
    this.engine.expire(nowUs);
    capture.refreshClock();
    this.sendLogs();
    this.nameCache.prune();
    const err = this.engine.takeLastError();
    if (err) this.logger.warn({ err }, 'ebpf_dns: unexpected error decoding a packet (counted as malformed, reason internal)');
    const out = this.metrics.collect();
    for (const m of this.selfTelemetry()) out.push(m);
    if (++this.collections % 6 === 0 && (this.config.include_interfaces.length || this.config.exclude_interfaces.length)) capture.refresh();
    this.next.consume({ timeMs: Date.now(), measurements: out, gaugesReplaced: ['flowtel_dns_inflight_queries', 'flowtel_dns_name_cache_entries'], source: this.id });
  }

  private cumulative(): Cumulative {
    const e = this.engine;
    return {
      capture: this.capture?.counters() ?? { packets: 0, drops: 0, fragments: 0, ownerStorageFailures: 0 },
      malformed: { ...e.stats.malformed },
      duplicates: e.stats.duplicates,
      unmatched: e.correlator.stats.unmatched,
      overflow: e.correlator.stats.overflow,
      tcpGaps: e.tcp.stats.gaps,
      tcpEvicted: e.tcp.stats.flowsEvicted,
    };
  }

  private selfTelemetry(): Measurement[] {
    const now = this.cumulative();
    const prev = this.last ?? now;
    this.last = now;
    const receiver = this.id;
    const out: Measurement[] = [];
    const delta = (metric: string, a: number, b: number, extra: Record<string, string> = {}): void => {
      if (a - b > 0) out.push({ metric, value: a - b, attributes: { receiver, ...extra } });
    };
    delta('flowtel_dns_capture_packets', now.capture.packets, prev.capture.packets);
    delta('flowtel_dns_capture_drops', now.capture.drops, prev.capture.drops);
    for (const [reason, n] of Object.entries(now.malformed)) delta('flowtel_dns_malformed', n ?? 0, prev.malformed[reason as MalformedReason] ?? 0, { reason });
    delta('flowtel_dns_dropped', now.overflow, prev.overflow, { reason: 'inflight_full' });
    delta('flowtel_dns_dropped', now.tcpGaps, prev.tcpGaps, { reason: 'tcp_gap' });
    delta('flowtel_dns_dropped', now.tcpEvicted, prev.tcpEvicted, { reason: 'tcp_flows_full' });
    delta('flowtel_dns_dropped', now.capture.fragments, prev.capture.fragments, { reason: 'ip_fragment' });
    delta('flowtel_dns_dropped', now.capture.ownerStorageFailures, prev.capture.ownerStorageFailures, { reason: 'owner_storage' });
    delta('flowtel_dns_duplicates', now.duplicates, prev.duplicates);
    delta('flowtel_dns_unmatched_responses', now.unmatched, prev.unmatched);
    out.push({ metric: 'flowtel_dns_inflight_queries', value: this.engine.correlator.size, attributes: { receiver } });
    out.push({ metric: 'flowtel_dns_name_cache_entries', value: this.nameCache.size, attributes: { receiver } });
    return out;
  }

  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stopProviding?.();
    this.stopProviding = undefined;
    if (!this.capture) return;
    try {
      await this.collect();
    } finally {
      this.capture.close();
      this.capture = undefined;
      this.logger.info({ receiver: this.id }, 'ebpf_dns receiver stopped');
    }
  }
}
