/**
 * Turns kernel TCP records (ring-buffer events and iter/tcp snapshots) into
 * per-interval measurements.
 *
 * Per connection (socket cookie) it keeps the last counters it reported, so
 * that every interval reports the delta since then: counters never go
 * backwards, and a connection that closes mid-interval contributes its last
 * delta exactly once (from its close record). Deltas of connections with the
 * same flow attributes are summed before they leave, so a pool of connections
 * to one server is one series.
 */
import { constants as osConstants } from 'node:os';
import type { FlowAttributes, Measurement, MeasurementBatch } from '../pipeline/measurements';
import { formatAddress, isLoopback, TCP_STATE_NAMES } from './addresses';
import { ConnDirection, ConnEventKind, ConnFlags, type ConnRecord } from './records';

const ERRNO = osConstants.errno;
const ERRNO_NAMES = new Map<number, string>(Object.entries(ERRNO).map(([name, n]) => [n, name]));

export interface TcpTrackerOptions {
  /** Keep the client's ephemeral port as an attribute (high cardinality). Default false. */
  includeEphemeralPorts?: boolean;
  /** Keep a TcpConnectionEvent per failed (and/or closed) connection, for takeEvents(). */
  events?: { failures: boolean; closed: boolean };
}

/**
 * One connection that failed or closed, for a log record. At most one per
 * connection: a failed connection attempt (refused, timeout, reset during
 * the handshake) or an established connection that ended with a reset or a
 * timeout is `failed` (when failures are wanted; else, with closed wanted, a
 * `closed` one carrying error.type); any other end is `closed`.
 */
export interface TcpConnectionEvent {
  readonly kind: 'failed' | 'closed';
  /** Kernel time of the event (bpf_ktime_get_ns, CLOCK_MONOTONIC). */
  readonly tsNs: bigint;
  /** The flow's attributes plus both ports when known (a record is one connection: the client port costs nothing here). */
  readonly attributes: FlowAttributes;
  /** refused, timeout, reset, … (failures). */
  readonly errorType?: string;
  /** TCP state just before the close (network.connection.state values), if known. */
  readonly stateBefore?: string;
  /** Payload bytes over the connection's life (close of a connection the agent saw established). */
  readonly bytesSent?: number;
  readonly bytesReceived?: number;
  readonly retransmits?: number;
  /** Smoothed RTT at close, µs (0: not measured). */
  readonly srttUs?: number;
  /** From ESTABLISHED to the close, when the agent saw both. */
  readonly durationNs?: bigint;
}

export interface TcpTrackerStats {
  /** Connections whose close event never came: counted as closed when they left the socket walk. */
  staleRemoved: number;
  /** Snapshot records ignored because the connection's close was already counted. */
  closedRaces: number;
  tracked: number;
}

interface Counters {
  sent: number;
  received: number;
  segsOut: number;
  segsIn: number;
  retrans: number;
}

interface Tracked extends Counters {
  attrs: FlowAttributes;
  key: string;
  seenGen: number;
  rttGen: number;
  /** Kernel time of its open event, when seen. */
  openedNs?: bigint;
  /** Local and remote port of the record it was first seen in (the kernel clears the local port at close). */
  sport: number;
  dport: number;
}

interface FlowTotals extends Counters {
  attrs: FlowAttributes;
  opened: number;
  closed: number;
}

const ZERO: Counters = { sent: 0, received: 0, segsOut: 0, segsIn: 0, retrans: 0 };

/** The kernel's counters, adjusted to payload bytes (see bpf/flowtel_tcp.h). */
export function countersOf(rec: ConnRecord): Counters {
  return {
    // bytes_sent includes retransmitted payload; bytes_retrans is exactly that part.
    sent: Math.max(0, rec.bytesSent - rec.bytesRetrans),
    // bytes_received counts the peer's FIN as one byte of sequence space.
    received: Math.max(0, rec.bytesReceived - (rec.flags & ConnFlags.FinReceived ? 1 : 0)),
    segsOut: rec.segsOut,
    segsIn: rec.segsIn,
    retrans: rec.totalRetrans,
  };
}

/** error.type of a connection attempt that never established. */
export function connectFailureType(err: number): string {
  if (err === ERRNO.ECONNREFUSED) return 'refused';
  if (err === ERRNO.ETIMEDOUT) return 'timeout';
  if (err === ERRNO.ECONNRESET) return 'reset';
  if (err === 0) return 'aborted';
  return ERRNO_NAMES.get(err) ?? `errno_${err}`;
}

/** error.type of an established connection that ended badly, or undefined if it closed normally. */
export function closeFailureType(rec: ConnRecord): string | undefined {
  if (rec.flags & ConnFlags.RstReceived || rec.err === ERRNO.ECONNRESET) return 'reset';
  if (rec.err === ERRNO.ETIMEDOUT) return 'timeout';
  if (rec.err === 0 || rec.err === ERRNO.EPIPE) return undefined;
  return ERRNO_NAMES.get(rec.err) ?? `errno_${rec.err}`;
}

export class TcpConnectionTracker {
  private readonly conns = new Map<bigint, Tracked>();
  private readonly recentlyClosed = new Map<bigint, number>();
  private readonly listeningPorts = new Set<string>();
  private readonly flows = new Map<string, FlowTotals>();
  private readonly samples: Measurement[] = [];
  private openGauge: Measurement[] = [];
  private events: TcpConnectionEvent[] = [];
  private gen = 1;
  private primed = false;
  readonly stats: TcpTrackerStats = { staleRemoved: 0, closedRaces: 0, tracked: 0 };

  constructor(private readonly options: TcpTrackerOptions = {}) {}

  /** Ring-buffer events (open, close, failed), in the order the kernel wrote them. */
  onEvent(rec: ConnRecord): void {
    switch (rec.kind) {
      case ConnEventKind.Open:
        return this.onOpen(rec);
      case ConnEventKind.Close:
        return this.onClose(rec);
      case ConnEventKind.Failed:
        return this.onFailed(rec);
      default:
        return;
    }
  }

  /**
   * An iter/tcp walk. The first one (at start) only sets the baseline of
   * connections that were already open: their earlier traffic is not ours to
   * report, but they count in tcp_connections from the first interval.
   */
  onSnapshot(recs: readonly ConnRecord[]): void {
    for (const rec of recs) {
      if (rec.kind === ConnEventKind.Listener) this.listeningPorts.add(`${rec.netns}:${rec.sport}`);
    }
    const gauge = new Map<string, { attrs: FlowAttributes; n: number }>();
    for (const rec of recs) {
      if (rec.kind !== ConnEventKind.Snapshot) continue;
      if (this.recentlyClosed.has(rec.cookie)) {
        this.stats.closedRaces++;
        continue;
      }
      let t = this.conns.get(rec.cookie);
      const now = countersOf(rec);
      if (!t) {
        // Already open at start: baseline now. Opened later without an open
        // event (lost): everything it counted is new.
        const preExisting = !this.primed || (rec.flags & ConnFlags.PreExisting) !== 0;
        t = this.track(rec, preExisting ? now : ZERO);
      }
      this.addDelta(t, now);
      t.seenGen = this.gen;
      this.sampleRtt(t, rec);
      const state = TCP_STATE_NAMES[rec.state] ?? String(rec.state);
      const gkey = `${t.key}|${state}`;
      const g = gauge.get(gkey);
      if (g) g.n++;
      else gauge.set(gkey, { attrs: { ...t.attrs, 'network.connection.state': state }, n: 1 });
    }
    this.openGauge = [...gauge.values()].map((g) => ({ metric: 'tcp_connections', value: g.n, attributes: g.attrs }));
    // A connection neither seen in two walks nor closed lost its close event
    // (the kernel skips a tracing program that fires while it already runs
    // on that CPU). Its socket is gone, so it did close: count it, with the
    // counters it had at its last walk (what came after is lost).
    for (const [cookie, t] of this.conns) {
      if (t.seenGen < this.gen - 1) {
        this.conns.delete(cookie);
        this.flow(t).closed++;
        this.stats.staleRemoved++;
      }
    }
    this.primed = true;
    this.stats.tracked = this.conns.size;
  }

  /** The connection events since the last call (options.events), in kernel order. */
  takeEvents(): TcpConnectionEvent[] {
    if (this.events.length === 0) return [];
    const out = this.events;
    this.events = [];
    return out;
  }

  /** Everything measured since the last call, as one batch. */
  collect(timeMs: number): MeasurementBatch {
    const out: Measurement[] = this.samples.splice(0);
    for (const f of this.flows.values()) {
      const a = f.attrs;
      if (f.sent) out.push({ metric: 'tcp_bytes_sent', value: f.sent, attributes: a });
      if (f.received) out.push({ metric: 'tcp_bytes_received', value: f.received, attributes: a });
      if (f.segsOut) out.push({ metric: 'tcp_segments_sent', value: f.segsOut, attributes: a });
      if (f.segsIn) out.push({ metric: 'tcp_segments_received', value: f.segsIn, attributes: a });
      if (f.retrans) out.push({ metric: 'tcp_retransmits', value: f.retrans, attributes: a });
      if (f.opened) out.push({ metric: 'tcp_connections_opened', value: f.opened, attributes: a });
      if (f.closed) out.push({ metric: 'tcp_connections_closed', value: f.closed, attributes: a });
    }
    this.flows.clear();
    out.push(...this.openGauge);
    for (const [cookie, g] of this.recentlyClosed) if (g < this.gen - 2) this.recentlyClosed.delete(cookie);
    this.gen++;
    return { timeMs, measurements: out, gaugesReplaced: ['tcp_connections'] };
  }

  private onOpen(rec: ConnRecord): void {
    let t = this.conns.get(rec.cookie);
    if (!t) t = this.track(rec, ZERO);
    t.seenGen = this.gen;
    t.openedNs = rec.tsNs;
    this.addDelta(t, countersOf(rec));
    this.flow(t).opened++;
    if (rec.direction === ConnDirection.Outgoing && rec.connectUs > 0) {
      this.samples.push({ metric: 'tcp_connect_latency_us', value: rec.connectUs, attributes: t.attrs });
    }
  }

  private onClose(rec: ConnRecord): void {
    let t = this.conns.get(rec.cookie);
    if (!t) {
      // Unknown connection: if it was open before the agent started and
      // closed before the first walk, its baseline is unknown: count the
      // close, not its bytes. Otherwise its open event was lost: all is new.
      const preExisting = (rec.flags & ConnFlags.PreExisting) !== 0;
      t = this.track(rec, preExisting ? countersOf(rec) : ZERO);
    }
    this.addDelta(t, countersOf(rec));
    this.sampleRtt(t, rec);
    this.flow(t).closed++;
    const failure = closeFailureType(rec);
    if (failure) this.samples.push({ metric: 'tcp_connection_failures', value: 1, attributes: { ...t.attrs, 'error.type': failure } });
    const want = this.options.events;
    if (want && ((failure && want.failures) || want.closed)) {
      const c = countersOf(rec);
      this.events.push({
        kind: failure && want.failures ? 'failed' : 'closed',
        tsNs: rec.tsNs,
        attributes: this.eventAttributes(t.attrs, rec, t),
        ...(failure ? { errorType: failure } : {}),
        ...this.stateBefore(rec),
        bytesSent: c.sent,
        bytesReceived: c.received,
        retransmits: c.retrans,
        srttUs: rec.srttUs,
        ...(t.openedNs !== undefined && rec.tsNs >= t.openedNs ? { durationNs: rec.tsNs - t.openedNs } : {}),
      });
    }
    this.conns.delete(rec.cookie);
    this.recentlyClosed.set(rec.cookie, this.gen);
  }

  private onFailed(rec: ConnRecord): void {
    const t = this.conns.get(rec.cookie);
    const attrs = t ? t.attrs : this.attributesOf(rec);
    const errorType = connectFailureType(rec.err);
    this.samples.push({ metric: 'tcp_connection_failures', value: 1, attributes: { ...attrs, 'error.type': errorType } });
    if (this.options.events?.failures) {
      this.events.push({ kind: 'failed', tsNs: rec.tsNs, attributes: this.eventAttributes(attrs, rec, t), errorType, ...this.stateBefore(rec) });
    }
    this.conns.delete(rec.cookie);
    this.recentlyClosed.set(rec.cookie, this.gen);
  }

  /**
   * The flow's attributes and both ports. By the time a socket reaches
   * TCP_CLOSE the kernel has released its local port (inet_put_port clears
   * inet_num): a connection seen open keeps the ports of that record; a
   * failed connect has none to give, and then source.port is left out.
   */
  private eventAttributes(attrs: FlowAttributes, rec: ConnRecord, t?: Tracked): FlowAttributes {
    const out: FlowAttributes = { ...attrs };
    const sport = t?.sport || rec.sport;
    const dport = t?.dport || rec.dport;
    if (sport) out['source.port'] = sport;
    else delete out['source.port'];
    if (dport) out['destination.port'] = dport;
    return out;
  }

  private stateBefore(rec: ConnRecord): { stateBefore?: string } {
    const name = rec.oldState ? TCP_STATE_NAMES[rec.oldState] : undefined;
    return name ? { stateBefore: name } : {};
  }

  private track(rec: ConnRecord, baseline: Counters): Tracked {
    const attrs = this.attributesOf(rec);
    const t: Tracked = { ...baseline, attrs, key: attributesKey(attrs), seenGen: this.gen, rttGen: 0, sport: rec.sport, dport: rec.dport };
    this.conns.set(rec.cookie, t);
    return t;
  }

  private flow(t: Tracked): FlowTotals {
    let f = this.flows.get(t.key);
    if (!f) {
      f = { ...ZERO, attrs: t.attrs, opened: 0, closed: 0 };
      this.flows.set(t.key, f);
    }
    return f;
  }

  private addDelta(t: Tracked, now: Counters): void {
    const d = {
      sent: now.sent - t.sent,
      received: now.received - t.received,
      segsOut: now.segsOut - t.segsOut,
      segsIn: now.segsIn - t.segsIn,
      retrans: now.retrans - t.retrans,
    };
    if (d.sent <= 0 && d.received <= 0 && d.segsOut <= 0 && d.segsIn <= 0 && d.retrans <= 0) return;
    const f = this.flow(t);
    // Counters never go backwards: a smaller reading (FIN adjustment, a raced
    // read) leaves the last reported value in place.
    if (d.sent > 0) (f.sent += d.sent), (t.sent = now.sent);
    if (d.received > 0) (f.received += d.received), (t.received = now.received);
    if (d.segsOut > 0) (f.segsOut += d.segsOut), (t.segsOut = now.segsOut);
    if (d.segsIn > 0) (f.segsIn += d.segsIn), (t.segsIn = now.segsIn);
    if (d.retrans > 0) (f.retrans += d.retrans), (t.retrans = now.retrans);
  }

  private sampleRtt(t: Tracked, rec: ConnRecord): void {
    if (rec.srttUs <= 0 || t.rttGen === this.gen) return;
    t.rttGen = this.gen;
    this.samples.push({ metric: 'tcp_rtt_us', value: rec.srttUs, attributes: t.attrs });
    this.samples.push({ metric: 'tcp_rtt_var_us', value: rec.rttvarUs, attributes: t.attrs });
  }

  /** Flow attributes, seen from this host: source = local end, destination = remote end. */
  private attributesOf(rec: ConnRecord): FlowAttributes {
    const local = formatAddress(rec.family, rec.saddr);
    const remote = formatAddress(rec.family, rec.daddr);
    let dir = rec.direction;
    if (dir === ConnDirection.Unknown) {
      dir = this.listeningPorts.has(`${rec.netns}:${rec.sport}`) ? ConnDirection.Incoming : ConnDirection.Outgoing;
    }
    const attrs: FlowAttributes = {
      'network.transport': 'tcp',
      'network.type': local.type,
      'source.address': local.address,
      'destination.address': remote.address,
      'flow.direction': isLoopback(remote) ? 'local' : dir === ConnDirection.Incoming ? 'incoming' : 'outgoing',
    };
    // Only the server's port is kept: the client's ephemeral port would make
    // every connection of a pool its own series.
    if (dir === ConnDirection.Incoming || this.options.includeEphemeralPorts) attrs['source.port'] = rec.sport;
    if (dir === ConnDirection.Outgoing || this.options.includeEphemeralPorts) attrs['destination.port'] = rec.dport;
    if (rec.pid) {
      attrs['process.pid'] = rec.pid;
      if (rec.comm) attrs['process.executable.name'] = rec.comm;
    }
    return attrs;
  }
}

/** A stable key for an attribute set (keys in insertion order are fixed by attributesOf). */
export function attributesKey(attrs: FlowAttributes): string {
  let s = '';
  for (const k in attrs) s += `${k}=${String(attrs[k])}\u0001`;
  return s;
}
