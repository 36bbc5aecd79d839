/**
 * Turns kernel TCP records (ring-buffer open and close records, socket walks) into
 * per-interval measurements.
 *
 * Per connection (socket cookie) it keeps the last counters it reported, so
 * that every interval reports the delta since then: counters never go
 * backwards, and a connection that closes mid-interval contributes its last
 * delta exactly once (from its close record). Deltas of connections with the
 * same flow attributes are summed before they leave, so a pool of connections
 * to one server is one series.
 *
 * A connection is counted opened by its open record, or — when that was
 * lost — by the first walk that sees it or by its close record. A close of a
 * connection that was never tracked (its open record lost) goes straight
 * into its flow's totals. A connection that leaves the walks without a close
 * record is counted closed then.
 *
 * A walk never holds a socket whose close (or failed) record is written: the
 * kernel side skips it (dump_tracked in bpf/flowtel_tcp.bpf.c). And a walk is
 * read and handed over in one go, with no ring-buffer record handled in
 * between. So a socket a walk brings that is not tracked is new to the
 * tracker (opened since the ring was last read, or its open record lost),
 * never one whose close was counted already.
 */
import { constants as osConstants } from 'node:os';
import type { FlowAttributes, Measurement, MeasurementBatch } from '../pipeline/measurements';
import { formatAddress, isLoopback, TCP_STATE_NAMES } from './addresses';
import { ALIVE_RECORD_OFFSETS, ALIVE_RECORD_SIZE, CONN_RECORD_SIZE, ConnDirection, ConnEventKind, ConnFlags, ConnRecordCursor, type ConnRecord } from './records';
import { FlowSignature, SignatureTable } from './flow-signature';
import { appendAll } from '../util/arrays';

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

/**
 * Which walk this is, and the last one the tracker read to its end: the
 * kernel sends a connection that is unchanged since its full record in an
 * acknowledged walk as a short Alive record (struct flowtel_walk_params).
 */
export interface WalkGeneration {
  readonly gen: number;
  readonly acked: number;
}

export interface TcpTrackerStats {
  /** Connections whose close event never came: counted as closed when they left the socket walk. */
  staleRemoved: number;
  /** Connections whose opening the kernel ran no program for: counted as opened at their close. */
  opensUnseen: number;
  /**
   * Connects a walk saw in SYN_SENT that then left the walks with no record
   * of how they ended: counted as failures of error.type `unknown`.
   */
  failuresUnseen: number;
  /** Alive records read (walk records of connections idle since their last full one). */
  aliveRecords: number;
  /** Alive records of connections the tracker did not know (should not happen): the next walk was asked to be full. */
  aliveUnknown: number;
  tracked: number;
}

/**
 * What the start-up sweep covered. A socket that closes with no per-socket
 * state comes flagged pre-existing (the kernel cannot tell): if it closed
 * after the sweep, in a namespace the sweep walked (every socket there got
 * state) or in one that did not exist then, it was opened since, and its
 * opening changes went unseen.
 */
export interface StartSweep {
  /** CLOCK_MONOTONIC ns (the kernel's bpf_ktime_get_ns) when the sweep ended. */
  endNs: bigint;
  /** Network namespaces (inode) whose sockets the sweep walked. */
  walked: ReadonlySet<number>;
  /** Every network namespace found at start, walked or not. */
  listed: ReadonlySet<number>;
}

interface Counters {
  sent: number;
  received: number;
  segsOut: number;
  segsIn: number;
  retrans: number;
}

/**
 * One flow: the attribute set a connection is reported under, interned so
 * that every connection of the flow (a pool, or a stream of short
 * connections to one server) shares one attribute object and one set of
 * totals. Processors and exporters see the same object every interval.
 */
interface Flow extends Counters {
  readonly attrs: FlowAttributes;
  opened: number;
  closed: number;
  /** Connections tracked under this flow (it is forgotten at a collection when none is left). */
  conns: number;
  /** Collection generation in which the totals were last changed. */
  dirtyGen: number;
  /** attrs + network.connection.state, and the walk's count, per TCP state (tcp_connections). */
  byState?: Map<number, StateCount>;
  /** attrs + error.type, per error (tcp_connection_failures). */
  byError?: Map<string, FlowAttributes>;
  /**
   * Histogram samples since the last collection, as plain numbers: RTT, RTT
   * variance, connect latency. Each array goes out whole at the collection,
   * as one measurement's `samples` (the flow starts a new one): an object per
   * sample lived through the collection's scavenges into V8's old
   * generation, most of the heap's growth under connection churn.
   */
  rtt?: number[];
  rttVar?: number[];
  connectUs?: number[];
}

/** One tcp_connections series of a flow: its attributes, and how many connections the walk `walk` found in that state. */
interface StateCount {
  readonly attrs: FlowAttributes;
  n: number;
  walk: number;
}

interface Tracked extends Counters {
  flow: Flow;
  /** The state it was last counted in by a walk, and that state's series (-1, undefined: not yet). */
  countedState: number;
  stateCount: StateCount | undefined;
  /** Its index in the last packed walk (walkOrder), or -1: not in it, or no longer tracked. */
  walkPos: number;
  /**
   * First seen by a walk while connecting (SYN_SENT): not counted as opened
   * until it is known to have established (its open record, a walk that sees
   * it established, or its close); a failed connect never opened.
   */
  openPending: boolean;
  seenGen: number;
  rttGen: number;
  /** Local and remote port of the record it was first seen in (a failed connect has no local port yet). */
  sport: number;
  dport: number;
}

/** include/net/tcp_states.h */
const TCP_SYN_SENT = 2;

const ZERO: Counters = { sent: 0, received: 0, segsOut: 0, segsIn: 0, retrans: 0 };

/** Payload bytes sent: bytes_sent includes retransmitted payload; bytes_retrans is exactly that part. */
const payloadSent = (rec: ConnRecord): number => Math.max(0, rec.bytesSent - rec.bytesRetrans);
/** Payload bytes received: bytes_received counts the peer's FIN as one byte of sequence space. */
const payloadReceived = (rec: ConnRecord): number => Math.max(0, rec.bytesReceived - (rec.flags & ConnFlags.FinReceived ? 1 : 0));

/** The kernel's counters, adjusted to payload bytes (see bpf/flowtel_tcp.h). */
export function countersOf(rec: ConnRecord): Counters {
  return { sent: payloadSent(rec), received: payloadReceived(rec), segsOut: rec.segsOut, segsIn: rec.segsIn, retrans: rec.totalRetrans };
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

/** The connections of one walk in its order, with their cookies; reused from walk to walk (see TcpConnectionTracker.walkOrder). */
class WalkOrder {
  /** Entries past `length` are undefined: nothing is kept alive by a walk that is over. */
  readonly conns: (Tracked | undefined)[] = [];
  /** Unboxed (a cookie is a double; an object field would box it). */
  cookies = new Float64Array(1024);
  length = 0;

  set(i: number, t: Tracked | undefined, cookie: number): void {
    if (i >= this.cookies.length) {
      const grown = new Float64Array(this.cookies.length * 2);
      grown.set(this.cookies);
      this.cookies = grown;
    }
    this.conns[i] = t;
    this.cookies[i] = cookie;
  }

  /** The walk wrote `n` entries: the rest, from an earlier and longer walk, are let go. */
  truncate(n: number): void {
    for (let i = n; i < this.conns.length; i++) this.conns[i] = undefined;
    this.length = n;
  }
}

export class TcpConnectionTracker {
  private readonly conns = new Map<number, Tracked>();
  /**
   * The connections of the last packed walk, in the order the kernel walked
   * them. The kernel walks its per-socket storage in the same order every
   * time (new sockets go in at the head of a bucket, closed ones leave), so
   * the next walk mostly finds each record's connection at the next index
   * here: a sequential read instead of a lookup in a map of every
   * connection, which was most of the JavaScript side of a walk of 100k
   * sockets (two cache misses a lookup). An entry is trusted only when its
   * walkPos still says it is there (a connection no longer tracked has -1).
   * Two of them, swapped per walk and written over in place: arrays built
   * anew each walk are large objects that only a full collection frees (at
   * 400k sockets, ~10 MB a walk, and V8 let the heap grow by hundreds of MB
   * before collecting them).
   */
  private walkOrder = new WalkOrder();
  private spareWalkOrder = new WalkOrder();
  private readonly listeningPorts = new Set<string>();
  /** Interned flows; kept while a connection is tracked under them or they have totals to report. */
  private readonly flows = new SignatureTable<Flow>();
  private readonly sig = new FlowSignature();
  private readonly samples: Measurement[] = [];
  private openGauge: Measurement[] = [];
  private events: TcpConnectionEvent[] = [];
  private gen = 1;
  readonly stats: TcpTrackerStats = { staleRemoved: 0, opensUnseen: 0, failuresUnseen: 0, aliveRecords: 0, aliveUnknown: 0, tracked: 0 };
  /** The last packed walk begun, and the last one read to its end (0: none, or a full walk is wanted). */
  private walkGen = 0;
  private ackedGen = 0;
  /** Walks begun, packed or not (tells one walk's tcp_connections counts from the last one's). */
  private walkSeq = 0;
  private startSweep?: StartSweep;

  constructor(private readonly options: TcpTrackerOptions = {}) {}

  /** Packed ring-buffer records, as the kernel wrote them (read in place: no object per record). Returns how many. */
  onEventBatch(buf: Buffer): number {
    const n = Math.floor(buf.length / CONN_RECORD_SIZE);
    const cursor = new ConnRecordCursor(buf);
    for (let i = 0; i < n; i++) this.onEvent(cursor.moveTo(i));
    return n;
  }

  /** One ring-buffer record (open, close or failed), in the order the kernel wrote them. The object may be reused after the call. */
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

  /** After the start-up sweep's records went to a walk: what it covered. */
  setStartSweep(sweep: StartSweep): void {
    // Only these three: the caller's object may carry the sweep's records too, which must not live as long as the tracker.
    this.startSweep = { endNs: sweep.endNs, walked: sweep.walked, listed: sweep.listed };
  }

  /** A close flagged pre-existing that cannot be: see StartSweep. */
  private openedSinceStart(rec: ConnRecord): boolean {
    const s = this.startSweep;
    return s !== undefined && rec.tsNs > s.endNs && (s.walked.has(rec.netns) || !s.listed.has(rec.netns));
  }

  /**
   * A walk, whole. Connections the kernel flags as established before the
   * agent attached get a baseline: their earlier traffic is not ours to
   * report, but they count in tcp_connections from the first interval.
   */
  onSnapshot(recs: readonly ConnRecord[]): void {
    for (const rec of recs) {
      if (rec.kind === ConnEventKind.Listener) this.listeningPorts.add(`${rec.netns}:${rec.sport}`);
    }
    const walk = this.beginWalk();
    for (const rec of recs) walk.add(rec);
    walk.end();
  }

  /**
   * A walk handed over in parts (packed flowtel_conn records, as the kernel
   * writes them): `chunk()` for each part, then `end()` — or `abort()` if
   * the walk failed half way (then nothing is concluded from what it missed).
   * Connections tracked already are read in place, with no object per
   * socket; the others are copied out, still packed (one buffer per chunk),
   * and tracked at `end()`, after `prepare` had them all at once (e.g. to
   * find, in one pass over /proc, owners the kernel did not know, and write
   * them into the copies). A chunk's buffer is not used after `chunk()`
   * returns. No object is made per record: a start-up sweep of 130k sockets
   * would otherwise leave ~100 MB of promoted garbage for V8 to find later.
   * `generation` goes to the kernel with the walk (see WalkGeneration):
   * connections idle since the last walk that was read to its `end()` come
   * as short records (struct flowtel_alive) in a chunk's `alive` buffer,
   * each placed among the chunk's full records where the kernel walked it,
   * and count as seen and in their state.
   */
  beginPackedWalk(prepare?: (fresh: readonly Buffer[]) => void): { generation: WalkGeneration; chunk(buf: Buffer, alive?: Buffer): void; end(): void; abort(): void } {
    const walk = this.beginWalk();
    const generation: WalkGeneration = { gen: ++this.walkGen, acked: this.ackedGen };
    /** Copies of the records of connections not tracked yet, one buffer per chunk that had any. */
    const fresh: Buffer[] = [];
    /** Where each of them goes in `order` once it is tracked, in the order of `fresh`. */
    const freshAt: number[] = [];
    const prev = this.walkOrder;
    const prevConns = prev.conns;
    const prevCookies = prev.cookies;
    const prevLength = prev.length;
    const order = this.spareWalkOrder;
    let n = 0; // entries of `order` written
    let next = 0; // the index in `prev` where the next record's connection is expected
    /** The tracked connection of a walk record, if any: at the next index of the last walk's order, or looked up. */
    const locate = (cookie: number): Tracked | undefined => {
      let t = next < prevLength ? prevConns[next] : undefined;
      if (t !== undefined && prevCookies[next] === cookie && t.walkPos === next) next++;
      else {
        // A socket new since, or one gone: look it up, and go on from where it was.
        t = this.conns.get(cookie);
        if (t !== undefined && t.walkPos >= 0 && t.walkPos < prevLength && prevConns[t.walkPos] === t) next = t.walkPos + 1;
      }
      return t;
    };
    /** The k-th short record (struct flowtel_alive) of `bytes`, read through its 32-bit `words`. */
    const aliveRecord = (bytes: Uint8Array, words: Uint32Array, k: number): void => {
      const w = (k * ALIVE_RECORD_SIZE + ALIVE_RECORD_OFFSETS.cookie) >>> 2;
      const cookie = words[w]! + words[w + 1]! * 2 ** 32;
      const t = locate(cookie);
      if (t) {
        t.walkPos = n;
        order.set(n++, t, cookie);
      }
      walk.alive(cookie, bytes[k * ALIVE_RECORD_SIZE + ALIVE_RECORD_OFFSETS.state]!, t);
    };
    return {
      chunk: (buf: Buffer, alive?: Buffer): void => {
        const records = Math.floor(buf.length / CONN_RECORD_SIZE);
        const cursor = new ConnRecordCursor(buf);
        /** Indexes in this chunk of the records to copy out. */
        const copy: number[] = [];
        // The short records go in among the full ones where the kernel walked them (their `before`).
        const shorts = alive ? Math.floor(alive.length / ALIVE_RECORD_SIZE) : 0;
        // Read as 32-bit words: the native copy is aligned; anything else (a test's Buffer) is copied to be.
        const bytes = !alive || alive.byteOffset % 4 === 0 ? alive : new Uint8Array(alive);
        const words = bytes ? new Uint32Array(bytes.buffer, bytes.byteOffset, shorts * (ALIVE_RECORD_SIZE >>> 2)) : new Uint32Array(0);
        const BEFORE = ALIVE_RECORD_OFFSETS.before >>> 2;
        let k = 0;
        for (let i = 0; i < records; i++) {
          while (k < shorts && words[k * (ALIVE_RECORD_SIZE >>> 2) + BEFORE]! <= i) aliveRecord(bytes!, words, k++);
          cursor.moveTo(i);
          const kind = cursor.kind;
          if (kind !== ConnEventKind.Snapshot) {
            if (kind === ConnEventKind.Listener) this.listeningPorts.add(`${cursor.netns}:${cursor.sport}`);
            continue;
          }
          const cookie = cursor.cookie;
          const t = locate(cookie);
          if (t) {
            t.walkPos = n;
            order.set(n++, t, cookie);
            walk.add(cursor, t);
          } else {
            copy.push(i);
            freshAt.push(n);
            order.set(n++, undefined, cookie); // filled at end()
          }
        }
        while (k < shorts) aliveRecord(bytes!, words, k++);
        if (copy.length === 0) return;
        const out = Buffer.allocUnsafeSlow(copy.length * CONN_RECORD_SIZE);
        for (let k = 0; k < copy.length; k++) buf.copy(out, k * CONN_RECORD_SIZE, copy[k]! * CONN_RECORD_SIZE, (copy[k]! + 1) * CONN_RECORD_SIZE);
        fresh.push(out);
      },
      end: (): void => {
        if (prepare && fresh.length > 0) prepare(fresh);
        let k = 0;
        for (const buf of fresh) {
          const cursor = new ConnRecordCursor(buf);
          const records = buf.length / CONN_RECORD_SIZE;
          for (let i = 0; i < records; i++, k++) {
            walk.add(cursor.moveTo(i));
            const t = this.conns.get(cursor.cookie);
            if (t) (t.walkPos = freshAt[k]!), (order.conns[freshAt[k]!] = t);
          }
        }
        order.truncate(n);
        this.walkOrder = order;
        this.spareWalkOrder = prev;
        walk.end();
        // Read whole: its full records are what the next walk's Alive ones refer to (unless one referred to nothing).
        this.ackedGen = walk.aliveUnknown ? 0 : generation.gen;
      },
      generation,
      abort: (): void => {
        // Its full records may not all have been read: the next walk says everything again.
        this.ackedGen = 0;
      },
    };
  }

  /** One walk: add() each record (the object may be reused after the call), then end(). */
  private beginWalk(): {
    add(rec: ConnRecord, tracked?: Tracked): void;
    alive(cookie: number, state: number, tracked?: Tracked): void;
    end(): void;
    readonly aliveUnknown: boolean;
  } {
    const walkId = ++this.walkSeq;
    /** The series this walk counted into, in the order first counted. */
    const counted: StateCount[] = [];
    const count = (t: Tracked, state: number): void => {
      let c = t.stateCount;
      if (c === undefined || t.countedState !== state) {
        c = this.stateCount(t.flow, state);
        t.stateCount = c;
        t.countedState = state;
      }
      if (c.walk !== walkId) {
        c.walk = walkId;
        c.n = 0;
        counted.push(c);
      }
      c.n++;
    };
    let aliveUnknown = false;
    /** Tracked connections this walk found (each socket comes once a walk). */
    let seen = 0;
    /** A short record: unchanged since its last full record, still open, in this state. */
    const alive = (cookie: number, state: number, tracked?: Tracked): void => {
      this.stats.aliveRecords++;
      const t = tracked ?? this.conns.get(cookie);
      if (t) {
        t.seenGen = this.gen;
        seen++;
        count(t, state);
      } else {
        // The kernel took it for one whose full record was read: it was not. Say everything again next walk.
        aliveUnknown = true;
        this.stats.aliveUnknown++;
      }
    };
    /** `tracked`: the record's connection, when the caller looked it up already. */
    const add = (rec: ConnRecord, tracked?: Tracked): void => {
      if (rec.kind !== ConnEventKind.Snapshot) return;
      let t = tracked ?? this.conns.get(rec.cookie);
      if (!t) {
        if (rec.flags & ConnFlags.PreExisting) {
          // Open before the agent attached: baseline now.
          t = this.track(rec, countersOf(rec));
        } else {
          // Opened since (its open record lost, or not read yet): everything it counted is new.
          t = this.track(rec, ZERO);
          if (rec.state === TCP_SYN_SENT) t.openPending = true;
          else this.opened(t.flow, rec);
        }
      } else if (rec.state !== TCP_SYN_SENT) {
        this.establishedSince(t, rec); // its open record lost
      }
      const active = this.addDelta(t, rec);
      t.seenGen = this.gen;
      seen++;
      // An idle connection's RTT does not change: sampled again, it would
      // weigh the histogram toward idle connections (and cost a sample per
      // idle socket per collection).
      if (active || t.rttGen === 0) this.sampleRtt(t, rec);
      count(t, rec.state);
    };
    const end = (): void => {
      this.openGauge = [];
      for (const c of counted) this.openGauge.push({ metric: 'tcp_connections', value: c.n, attributes: c.attrs });
      // A connection neither seen in two walks nor closed lost its close event
      // (the kernel skips a tracing program that fires while it already runs
      // on that CPU, and some kernels skip them in some tasks' context). Its
      // socket is gone, so it did close: count it, with the counters it had
      // at its last walk (what came after is lost). When the walk found every
      // tracked connection, none can be (the loop is ~3 ms at 130k).
      if (seen < this.conns.size) {
        for (const [cookie, t] of this.conns) {
          if (t.seenGen < this.gen - 1) {
            this.untrack(cookie, t);
            if (t.openPending) {
              // Last seen connecting, and no record of its end: its connect failed, how is lost.
              this.samples.push({ metric: 'tcp_connection_failures', value: 1, attributes: this.errorAttributes(t.flow, 'unknown') });
              this.touch(t.flow);
              this.stats.failuresUnseen++;
              continue;
            }
            this.touch(t.flow).closed++;
            this.stats.staleRemoved++;
          }
        }
      }
      this.stats.tracked = this.conns.size;
    };
    return {
      add,
      alive,
      end,
      get aliveUnknown() {
        return aliveUnknown;
      },
    };
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
    this.flows.sweep((f) => {
      if (f.dirtyGen === this.gen) {
        const a = f.attrs;
        if (f.sent) out.push({ metric: 'tcp_bytes_sent', value: f.sent, attributes: a });
        if (f.received) out.push({ metric: 'tcp_bytes_received', value: f.received, attributes: a });
        if (f.segsOut) out.push({ metric: 'tcp_segments_sent', value: f.segsOut, attributes: a });
        if (f.segsIn) out.push({ metric: 'tcp_segments_received', value: f.segsIn, attributes: a });
        if (f.retrans) out.push({ metric: 'tcp_retransmits', value: f.retrans, attributes: a });
        if (f.opened) out.push({ metric: 'tcp_connections_opened', value: f.opened, attributes: a });
        if (f.closed) out.push({ metric: 'tcp_connections_closed', value: f.closed, attributes: a });
        f.sent = f.received = f.segsOut = f.segsIn = f.retrans = f.opened = f.closed = 0;
        if (f.rtt) out.push({ metric: 'tcp_rtt_us', value: 0, attributes: a, samples: f.rtt });
        if (f.rttVar) out.push({ metric: 'tcp_rtt_var_us', value: 0, attributes: a, samples: f.rttVar });
        if (f.connectUs) out.push({ metric: 'tcp_connect_latency_us', value: 0, attributes: a, samples: f.connectUs });
        f.rtt = f.rttVar = f.connectUs = undefined;
      }
      return f.conns > 0;
    });
    appendAll(out, this.openGauge);
    this.gen++;
    return { timeMs, measurements: out, gaugesReplaced: ['tcp_connections'] };
  }

  /** A connection counted opened (by its open record, a walk, or a close that came with neither): its connect latency too. */
  private opened(flow: Flow, rec: ConnRecord): void {
    this.touch(flow).opened++;
    if (rec.direction === ConnDirection.Outgoing && rec.connectUs > 0) {
      (flow.connectUs ??= []).push(rec.connectUs);
    }
  }

  /** A connection a walk saw connecting (openPending) is known to have established: counted opened now. */
  private establishedSince(t: Tracked, rec: ConnRecord): void {
    if (!t.openPending) return;
    t.openPending = false;
    this.opened(t.flow, rec);
  }

  private onOpen(rec: ConnRecord): void {
    const seen = this.conns.get(rec.cookie);
    if (seen) {
      // A walk saw it first: counted then, or now if it was connecting then.
      this.establishedSince(seen, rec);
      return;
    }
    const t = this.track(rec, ZERO);
    this.opened(t.flow, rec);
    this.addDelta(t, rec);
  }

  private onClose(rec: ConnRecord): void {
    const t = this.conns.get(rec.cookie);
    let flow: Flow;
    if (t) {
      flow = t.flow;
      this.establishedSince(t, rec); // a close: it did establish
      this.addDelta(t, rec);
      this.sampleRtt(t, rec);
      this.untrack(rec.cookie, t);
    } else {
      flow = this.flowOf(rec);
      // Neither its open record nor a walk came. Open before the agent
      // attached and closed before the first walk: its baseline is unknown,
      // count the close, not its bytes. Otherwise its open record was lost
      // (or its opening changes unseen: see StartSweep): all of it is new,
      // straight into the flow's totals.
      let isNew = (rec.flags & ConnFlags.PreExisting) === 0;
      if (!isNew && this.openedSinceStart(rec)) {
        isNew = true;
        this.stats.opensUnseen++;
      }
      if (isNew) {
        this.opened(flow, rec);
        const f = this.touch(flow);
        f.sent += payloadSent(rec);
        f.received += payloadReceived(rec);
        f.segsOut += rec.segsOut;
        f.segsIn += rec.segsIn;
        f.retrans += rec.totalRetrans;
        if (rec.srttUs > 0) this.pushRtt(flow, rec);
      }
    }
    this.touch(flow).closed++;
    const failure = closeFailureType(rec);
    if (failure) this.samples.push({ metric: 'tcp_connection_failures', value: 1, attributes: this.errorAttributes(flow, failure) });
    const want = this.options.events;
    if (want && ((failure && want.failures) || want.closed)) {
      const establishedNs = rec.establishedNs;
      const tsNs = rec.tsNs;
      this.events.push({
        kind: failure && want.failures ? 'failed' : 'closed',
        tsNs,
        attributes: this.eventAttributes(flow.attrs, rec, t),
        ...(failure ? { errorType: failure } : {}),
        ...this.stateBefore(rec),
        bytesSent: payloadSent(rec),
        bytesReceived: payloadReceived(rec),
        retransmits: rec.totalRetrans,
        srttUs: rec.srttUs,
        ...(establishedNs > 0n && tsNs >= establishedNs ? { durationNs: tsNs - establishedNs } : {}),
      });
    }
  }

  private onFailed(rec: ConnRecord): void {
    const t = this.conns.get(rec.cookie);
    const flow = t ? t.flow : this.flowOf(rec);
    const errorType = connectFailureType(rec.err);
    this.samples.push({ metric: 'tcp_connection_failures', value: 1, attributes: this.errorAttributes(flow, errorType) });
    if (this.options.events?.failures) {
      this.events.push({ kind: 'failed', tsNs: rec.tsNs, attributes: this.eventAttributes(flow.attrs, rec, t), errorType, ...this.stateBefore(rec) });
    }
    if (t) this.untrack(rec.cookie, t);
  }

  /**
   * The flow's attributes and both ports. By the time a socket reaches
   * TCP_CLOSE the kernel has released its local port (inet_put_port clears
   * inet_num); the kernel side puts back the one it kept at ESTABLISHED. A
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

  private stateCount(flow: Flow, state: number): StateCount {
    flow.byState ??= new Map();
    let c = flow.byState.get(state);
    if (!c) {
      c = { attrs: { ...flow.attrs, 'network.connection.state': TCP_STATE_NAMES[state] ?? String(state) }, n: 0, walk: 0 };
      flow.byState.set(state, c);
    }
    return c;
  }

  private errorAttributes(flow: Flow, errorType: string): FlowAttributes {
    flow.byError ??= new Map();
    let a = flow.byError.get(errorType);
    if (!a) {
      a = { ...flow.attrs, 'error.type': errorType };
      flow.byError.set(errorType, a);
    }
    return a;
  }

  private track(rec: ConnRecord, baseline: Counters): Tracked {
    const flow = this.flowOf(rec);
    flow.conns++;
    const t: Tracked = {
      flow,
      countedState: -1,
      stateCount: undefined,
      walkPos: -1,
      openPending: false,
      sent: baseline.sent,
      received: baseline.received,
      segsOut: baseline.segsOut,
      segsIn: baseline.segsIn,
      retrans: baseline.retrans,
      seenGen: this.gen,
      rttGen: 0,
      sport: rec.sport,
      dport: rec.dport,
    };
    this.conns.set(rec.cookie, t);
    return t;
  }

  private untrack(cookie: number, t: Tracked): void {
    if (this.conns.delete(cookie)) t.flow.conns--;
    t.walkPos = -1;
  }

  /** The flow's totals, marked as changed in this interval. */
  private touch(f: Flow): Flow {
    f.dirtyGen = this.gen;
    return f;
  }

  /** Adds what the connection counted since its last record; true if it sent or received segments meanwhile. */
  private addDelta(t: Tracked, rec: ConnRecord): boolean {
    // Counters never go backwards: a smaller reading (FIN adjustment, a raced
    // read) leaves the last reported value in place.
    const f = t.flow;
    let active = false;
    let d = payloadSent(rec) - t.sent;
    if (d > 0) (f.sent += d), (t.sent += d), (f.dirtyGen = this.gen);
    d = payloadReceived(rec) - t.received;
    if (d > 0) (f.received += d), (t.received += d), (f.dirtyGen = this.gen);
    d = rec.segsOut - t.segsOut;
    if (d > 0) (f.segsOut += d), (t.segsOut += d), (f.dirtyGen = this.gen), (active = true);
    d = rec.segsIn - t.segsIn;
    if (d > 0) (f.segsIn += d), (t.segsIn += d), (f.dirtyGen = this.gen), (active = true);
    d = rec.totalRetrans - t.retrans;
    if (d > 0) (f.retrans += d), (t.retrans += d), (f.dirtyGen = this.gen);
    return active;
  }

  private sampleRtt(t: Tracked, rec: ConnRecord): void {
    if (rec.srttUs <= 0 || t.rttGen === this.gen) return;
    t.rttGen = this.gen;
    this.pushRtt(t.flow, rec);
  }

  private pushRtt(flow: Flow, rec: ConnRecord): void {
    (flow.rtt ??= []).push(rec.srttUs);
    (flow.rttVar ??= []).push(rec.rttvarUs);
    this.touch(flow);
  }

  private directionOf(rec: ConnRecord): ConnDirection {
    if (rec.direction !== ConnDirection.Unknown) return rec.direction;
    return this.listeningPorts.has(`${rec.netns}:${rec.sport}`) ? ConnDirection.Incoming : ConnDirection.Outgoing;
  }

  /** The interned flow of a record: looked up by its signature (flow-signature.ts); attributes are built only when new. */
  private flowOf(rec: ConnRecord): Flow {
    const dir = this.directionOf(rec);
    const all = this.options.includeEphemeralPorts === true;
    const sport = dir === ConnDirection.Incoming || all ? rec.sport : -1;
    const dport = dir === ConnDirection.Outgoing || all ? rec.dport : -1;
    const sig = this.sig.fill(rec, dir, sport, dport);
    let f = this.flows.get(sig);
    if (!f) {
      f = { ...ZERO, attrs: this.attributesOf(rec, dir, sport, dport), opened: 0, closed: 0, conns: 0, dirtyGen: 0, rtt: undefined, rttVar: undefined, connectUs: undefined };
      this.flows.add(sig, f);
    }
    return f;
  }

  /** Flow attributes, seen from this host: source = local end, destination = remote end. */
  private attributesOf(rec: ConnRecord, dir: ConnDirection, sport: number, dport: number): FlowAttributes {
    const local = formatAddress(rec.family, rec.saddr);
    const remote = formatAddress(rec.family, rec.daddr);
    const attrs: FlowAttributes = {
      'network.transport': 'tcp',
      'network.type': local.type,
      'source.address': local.address,
      'destination.address': remote.address,
      'flow.direction': isLoopback(remote) ? 'local' : dir === ConnDirection.Incoming ? 'incoming' : 'outgoing',
    };
    // Only the server's port is kept: the client's ephemeral port would make
    // every connection of a pool its own series.
    if (sport >= 0) attrs['source.port'] = sport;
    if (dport >= 0) attrs['destination.port'] = dport;
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
