/**
 * `nat`: the address a client dialled and the address it really reached.
 *
 * For a flow whose destination was rewritten by destination NAT (a Kubernetes
 * service's ClusterIP, a docker published port, an nftables/iptables DNAT),
 * the kernel's connection-tracking table knows the backend: the processor
 * reads it (./conntrack/watcher.ts: netlink dumps and NEW events, in every
 * network namespace) and adds `destination.translated.address` and
 * `destination.translated.port` to the flow, whose `destination.address` /
 * `destination.port` stay what the client dialled. Processors after it
 * (`zone`, `cloud_services`, `k8s`) then name the real backend.
 *
 * Only the client's side of a connection is translated (the flow with a
 * `destination.port`). UDP flows are counted per packet, and a datagram
 * leaving the host already has the backend's address (the DNAT happened
 * before the count): for those the processor puts the dialled address back
 * into `destination.address` / `destination.port` and the backend into
 * `destination.translated.*`, so UDP flows read like TCP's. A flow that aggregates several connections (the
 * receiver's default, without the client port) gets a translation only when
 * all of them reached the same backend; with `include_ephemeral_ports: true`
 * on the receiver every connection is its own flow and gets its own backend.
 *
 * Source NAT the same way: a flow whose connection left through a masquerade
 * (a pod's connection to the outside leaving with its node's address, a
 * container behind the docker bridge) gets `source.translated.address` and,
 * when the flow is one connection (it has `source.port`),
 * `source.translated.port`: the reply tuple's destination in conntrack.
 * Not done: a UDP flow whose source NAT happens in its own socket's network
 * namespace is counted after the translation and shows the translated source
 * already; it gets nothing.
 * Needs CAP_NET_ADMIN (conntrack netlink) and, for other namespaces, CAP_SYS_ADMIN.
 */
import type { Logger } from 'pino';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../../config/schema';
import type { MetricsProcessor, ProcessorFactory } from '../../pipeline/component';
import { relabeled, type FlowAttributes, type Measurement, type MeasurementBatch } from '../../pipeline/measurements';
import type { LogBatch } from '../../pipeline/logs';
import { isFlow, withMeasurements } from '../common';
import { enrichLogRecords } from './logs';
import type { SourceTranslation, Translation } from './conntrack/table';
import { ConntrackWatcher, type WatcherCounters } from './conntrack/watcher';
import { NAT_CONNTRACK_ENTRIES, NAT_ERRORS } from './metrics';

export const TRANSLATED_ADDRESS = 'destination.translated.address';
export const TRANSLATED_PORT = 'destination.translated.port';
export const SOURCE_TRANSLATED_ADDRESS = 'source.translated.address';
export const SOURCE_TRANSLATED_PORT = 'source.translated.port';

const PROTOCOLS: Readonly<Record<string, number>> = { tcp: 6, udp: 17 };

const natSchema = {
  all_network_namespaces: {
    type: 'boolean',
    default: true,
    description: "Read the conntrack table of every network namespace (containers' DNAT happens in the host's, rules inside a container in its own); false: only the agent's.",
  },
  refresh_interval: {
    type: 'duration',
    default: '60s',
    description: 'How often to dump the conntrack tables again (finding new network namespaces and forgetting entries that are gone). New connections are learned at once from conntrack events.',
  },
  poll_interval: {
    type: 'duration',
    default: '250ms',
    description: 'How often to read queued conntrack events (they are also read before each batch).',
  },
  event_buffer_size: {
    type: 'number',
    default: 4 * 1024 * 1024,
    min: 65_536,
    integer: true,
    description: 'Receive buffer of each event socket, in bytes. When it overflows, events are lost (flowtel_nat_errors reason=events_lost) and the namespace is dumped again.',
  },
  max_entries: {
    type: 'number',
    default: 262_144,
    min: 1,
    integer: true,
    description: 'Most NAT connections (destination or source NAT) remembered; beyond it new ones get no translation.',
  },
} as const satisfies Schema;

export type NatConfig = SchemaValue<typeof natSchema>;

export function validateNatConfig(raw: unknown, path: string): NatConfig {
  return validateObject(raw, path, natSchema);
}

interface Enriched {
  readonly version: number;
  readonly attributes: FlowAttributes;
}

/** Watchers by config, shared by the pipelines that list the same `nat`. */
const watchers = new Map<string, { watcher: ConntrackWatcher; users: number; starting: Promise<void> | undefined }>();

export class NatProcessor implements MetricsProcessor {
  readonly watcher: ConntrackWatcher;
  private readonly enriched = new WeakMap<FlowAttributes, Enriched>();
  private readonly reported: WatcherCounters = { dumpEntries: 0, eventEntries: 0, eventsLost: 0, dumpFailed: 0, socketFailed: 0, malformed: 0 };
  /** Flows whose connections went to several backends (no translation given). */
  ambiguous = 0;

  private readonly key: string;
  private started = false;

  constructor(
    readonly id: string,
    readonly config: NatConfig,
    logger?: Logger,
  ) {
    // Pipelines listing the same `nat` share one watcher (one set of sockets, one table).
    this.key = JSON.stringify(config);
    let shared = watchers.get(this.key);
    if (!shared) {
      shared = {
        watcher: new ConntrackWatcher({
          allNamespaces: config.all_network_namespaces,
          refreshMs: config.refresh_interval,
          pollMs: config.poll_interval,
          eventBufferBytes: config.event_buffer_size,
          maxEntries: config.max_entries,
          logger,
        }),
        users: 0,
        starting: undefined,
      };
      watchers.set(this.key, shared);
    }
    this.watcher = shared.watcher;
  }

  async start(): Promise<void> {
    const shared = watchers.get(this.key);
    if (!shared || shared.watcher !== this.watcher || this.started) return;
    shared.users++;
    this.started = true;
    if (shared.users === 1) shared.starting = this.watcher.start();
    try {
      await shared.starting;
    } catch (e) {
      shared.users--;
      this.started = false;
      if (shared.users === 0) watchers.delete(this.key);
      throw e;
    }
  }

  async shutdown(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    const shared = watchers.get(this.key);
    if (!shared || shared.watcher !== this.watcher) return;
    if (--shared.users === 0) {
      this.watcher.stop();
      watchers.delete(this.key);
    }
  }

  process(batch: MeasurementBatch): MeasurementBatch {
    this.watcher.poll();
    const version = this.watcher.table.version;
    const out: Measurement[] = batch.measurements.map((m) => {
      if (!isFlow(m.attributes)) return m;
      let e = this.enriched.get(m.attributes);
      if (e === undefined || e.version !== version) {
        e = { version, attributes: this.enrich(m.attributes) };
        this.enriched.set(m.attributes, e);
      }
      return e.attributes === m.attributes ? m : relabeled(m, e.attributes);
    });
    out.push(...this.selfTelemetry(batch.timeMs));
    return withMeasurements(batch, out);
  }

  /** In a logs pipeline: connection records get the backend too (they carry both ports: exact). */
  processLogs(batch: LogBatch): LogBatch {
    this.watcher.poll();
    return enrichLogRecords(batch, (a) => this.enrich(a));
  }

  private enrich(a: FlowAttributes): FlowAttributes {
    if (a[TRANSLATED_ADDRESS] !== undefined || a[SOURCE_TRANSLATED_ADDRESS] !== undefined) return a;
    const proto = PROTOCOLS[String(a['network.transport'])];
    const src = a['source.address'];
    const dst = a['destination.address'];
    const dport = a['destination.port'];
    const sport = a['source.port'];
    if (proto === undefined || typeof src !== 'string' || typeof dst !== 'string' || typeof dport !== 'number') return a;
    const clientPort = typeof sport === 'number' ? sport : undefined;
    const dnat = this.destinationNat(proto, src, dst, dport, clientPort);
    // conntrack's original tuple has the destination dialled: the source is looked up with it.
    const dialled = dnat?.dialled ?? { address: dst, port: dport };
    const snat = this.sourceNat(proto, src, dialled.address, dialled.port, clientPort);
    if (!dnat && !snat) return a;
    return {
      ...a,
      ...(dnat ? { 'destination.address': dnat.dialled?.address ?? dst, 'destination.port': dnat.dialled?.port ?? dport, [TRANSLATED_ADDRESS]: dnat.backend.address, [TRANSLATED_PORT]: dnat.backend.port } : {}),
      ...(snat ? { [SOURCE_TRANSLATED_ADDRESS]: snat.address, ...(snat.port !== undefined ? { [SOURCE_TRANSLATED_PORT]: snat.port } : {}) } : {}),
    };
  }

  /** The backend of a DNATed flow and, for a UDP flow that shows the backend, what was dialled. */
  private destinationNat(proto: number, src: string, dst: string, dport: number, clientPort: number | undefined): { backend: Translation; dialled?: Translation } | undefined {
    const t = this.watcher.table.lookup(proto, src, dst, dport, clientPort);
    if (t === 'ambiguous') {
      this.ambiguous++;
      return undefined;
    }
    if (t !== undefined) return { backend: t };
    // UDP is counted per packet, after the DNAT on the way out: the flow shows
    // the backend. Put back what was dialled, so that it reads like TCP's.
    if (proto !== PROTOCOLS.udp) return undefined;
    const o = this.watcher.table.lookupOriginal(proto, src, dst, dport, clientPort);
    if (o === 'ambiguous') {
      this.ambiguous++;
      return undefined;
    }
    if (o === undefined) return undefined;
    return { backend: { address: dst, port: dport }, dialled: o };
  }

  /** The address (and, for one connection, the port) the flow's source was translated to. */
  private sourceNat(proto: number, src: string, dst: string, dport: number, clientPort: number | undefined): SourceTranslation | undefined {
    const s = this.watcher.table.lookupSource(proto, src, dst, dport, clientPort);
    if (s === 'ambiguous') {
      this.ambiguous++;
      return undefined;
    }
    return s;
  }

  /** Counter deltas since the last batch. */
  private selfTelemetry(_timeMs: number): Measurement[] {
    const c = this.watcher.counters;
    const out: Measurement[] = [];
    const delta = (key: keyof WatcherCounters): number => {
      const d = c[key] - this.reported[key];
      this.reported[key] = c[key];
      return d;
    };
    const processor = this.id;
    const entries: Array<[keyof WatcherCounters, string]> = [
      ['dumpEntries', 'dump'],
      ['eventEntries', 'event'],
    ];
    for (const [key, source] of entries) {
      const d = delta(key);
      if (d > 0) out.push({ metric: NAT_CONNTRACK_ENTRIES, value: d, attributes: { processor, source } });
    }
    const errors: Array<[keyof WatcherCounters, string]> = [
      ['eventsLost', 'events_lost'],
      ['dumpFailed', 'dump_failed'],
      ['socketFailed', 'socket_failed'],
      ['malformed', 'malformed'],
    ];
    for (const [key, reason] of errors) {
      const d = delta(key);
      if (d > 0) out.push({ metric: NAT_ERRORS, value: d, attributes: { processor, reason } });
    }
    return out;
  }
}

export const natProcessorFactory: ProcessorFactory<NatConfig> = {
  kind: 'processor',
  type: 'nat',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: describeSchema(natSchema),
  defaultConfig: () => validateNatConfig(undefined, ''),
  validate: validateNatConfig,
  create: (config, ctx) => new NatProcessor(ctx.id, config, ctx.logger),
};
