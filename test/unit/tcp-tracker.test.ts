/**
 * The delta logic of TcpConnectionTracker on synthetic kernel records (the
 * kernel tests check it against real sockets; these pin the edge cases).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { TcpConnectionTracker, closeFailureType, connectFailureType, type StartSweep } from '../../src/flows/tcp-tracker';
import { ALIVE_RECORD_SIZE, CONN_RECORD_OFFSETS, CONN_RECORD_SIZE, ConnDirection, ConnEventKind, ConnFlags, encodeConnRecord, writeOwner, type ConnRecord } from '../../src/flows/records';
import type { Measurement, MeasurementBatch } from '../../src/pipeline/measurements';
import { connRecord } from '../helpers/conn-record';

let nextCookie = 1;

/** An open connection as a walk sees it (the shared test record, made a snapshot with an RTT). */
function rec(over: Partial<ConnRecord> = {}): ConnRecord {
  return connRecord({ cookie: nextCookie, srttUs: 100, rttvarUs: 10, kind: ConnEventKind.Snapshot, state: 1, oldState: 0, ...over });
}

/** Records packed as the kernel writes them (a ring-buffer batch or a walk chunk). */
function pack(recs: ConnRecord[]): Buffer {
  const buf = Buffer.alloc(recs.length * CONN_RECORD_SIZE);
  recs.forEach((r, i) => encodeConnRecord(r, buf, i * CONN_RECORD_SIZE));
  return buf;
}

/** A measurement's values: a histogram's samples, or its one value. */
function values(m: Measurement): number[] {
  return m.samples ? Array.from(m.samples) : [m.value];
}

function sum(batch: MeasurementBatch, metric: string): number {
  return batch.measurements.filter((m: Measurement) => m.metric === metric).reduce((s, m) => s + values(m).reduce((a, v) => a + v, 0), 0);
}

test('deltas per interval; a close mid-interval adds its last delta once', () => {
  const t = new TcpConnectionTracker();
  t.onSnapshot([]); // primed, nothing open
  const cookie = nextCookie++;
  t.onSnapshot([rec({ cookie, connectUs: 250, bytesSent: 1000, bytesReceived: 10, segsOut: 5, segsIn: 4 })]);
  let b = t.collect(0);
  assert.equal(sum(b, 'tcp_bytes_sent'), 1000);
  assert.equal(sum(b, 'tcp_bytes_received'), 10);
  assert.equal(sum(b, 'tcp_connections_opened'), 1);
  assert.equal(sum(b, 'tcp_connect_latency_us'), 250);
  assert.equal(sum(b, 'tcp_connections'), 1);

  // Closes with 1500 sent (500 new), of which 200 were retransmitted bytes; the peer's FIN counted in bytes_received.
  t.onEvent(rec({ cookie, kind: ConnEventKind.Close, bytesSent: 1700, bytesRetrans: 200, bytesReceived: 11, flags: ConnFlags.FinReceived, totalRetrans: 3, segsOut: 9, segsIn: 6 }));
  // The next walk no longer has it (the kernel leaves out a socket whose close record is written).
  t.onSnapshot([]);
  b = t.collect(1);
  assert.equal(sum(b, 'tcp_bytes_sent'), 500);
  assert.equal(sum(b, 'tcp_bytes_received'), 0);
  assert.equal(sum(b, 'tcp_retransmits'), 3);
  assert.equal(sum(b, 'tcp_connections_closed'), 1);
  assert.equal(sum(b, 'tcp_connections'), 0);
  assert.equal(t.stats.staleRemoved, 0);
});

test('counters never go backwards', () => {
  const t = new TcpConnectionTracker();
  t.onSnapshot([]);
  const cookie = nextCookie++;
  t.onSnapshot([rec({ cookie, bytesSent: 100 })]);
  t.collect(0);
  t.onSnapshot([rec({ cookie, bytesSent: 90 })]);
  assert.equal(sum(t.collect(1), 'tcp_bytes_sent'), 0);
  t.onSnapshot([rec({ cookie, bytesSent: 150 })]);
  assert.equal(sum(t.collect(2), 'tcp_bytes_sent'), 50);
});

test('connections open before the agent: the first walk is a baseline, not traffic', () => {
  const t = new TcpConnectionTracker();
  const cookie = nextCookie++;
  t.onSnapshot([rec({ cookie, bytesSent: 1e9, flags: ConnFlags.PreExisting })]);
  let b = t.collect(0);
  assert.equal(sum(b, 'tcp_bytes_sent'), 0);
  assert.equal(sum(b, 'tcp_connections'), 1);
  assert.equal(sum(b, 'tcp_connections_opened'), 0);
  t.onSnapshot([rec({ cookie, bytesSent: 1e9 + 5, flags: ConnFlags.PreExisting })]);
  b = t.collect(1);
  assert.equal(sum(b, 'tcp_bytes_sent'), 5);
});

test('a connection opened since the agent attached is counted from zero when a walk first sees it', () => {
  const t = new TcpConnectionTracker();
  t.onSnapshot([]);
  const cookie = nextCookie++;
  t.onSnapshot([rec({ cookie, bytesSent: 300, connectUs: 40 })]);
  const b = t.collect(0);
  assert.equal(sum(b, 'tcp_bytes_sent'), 300);
  assert.equal(sum(b, 'tcp_connections_opened'), 1);
  assert.equal(sum(b, 'tcp_connect_latency_us'), 40);
  // Seen again: neither opened nor its latency counted twice.
  t.onSnapshot([rec({ cookie, bytesSent: 300, connectUs: 40 })]);
  const again = t.collect(1);
  assert.equal(sum(again, 'tcp_connections_opened'), 0);
  assert.equal(sum(again, 'tcp_connect_latency_us'), 0);
});

test('the first walk: connections the kernel flags as older than the agent are a baseline, the others are new', () => {
  const t = new TcpConnectionTracker();
  t.onSnapshot([rec({ cookie: nextCookie++, bytesSent: 1e6, flags: ConnFlags.PreExisting }), rec({ cookie: nextCookie++, bytesSent: 7 })]);
  const b = t.collect(0);
  assert.equal(sum(b, 'tcp_connections'), 2);
  assert.equal(sum(b, 'tcp_connections_opened'), 1);
  assert.equal(sum(b, 'tcp_bytes_sent'), 7);
});

test('a connection that vanished without a close event is counted as closed after two walks', () => {
  const t = new TcpConnectionTracker();
  t.onSnapshot([]);
  const cookie = nextCookie++;
  t.onEvent(rec({ cookie, kind: ConnEventKind.Open }));
  assert.equal(sum(t.collect(0), 'tcp_connections_opened'), 1);
  t.onSnapshot([]);
  assert.equal(sum(t.collect(1), 'tcp_connections_closed'), 0);
  assert.equal(t.stats.tracked, 1, 'one walk may just have raced the open');
  t.onSnapshot([]);
  assert.equal(t.stats.staleRemoved, 1);
  assert.equal(t.stats.tracked, 0);
  assert.equal(sum(t.collect(2), 'tcp_connections_closed'), 1, 'its socket is gone: it closed');
  t.onSnapshot([]);
  assert.equal(sum(t.collect(3), 'tcp_connections_closed'), 0, 'once');
});

test('same flow attributes: connections of a pool are one series', () => {
  const t = new TcpConnectionTracker();
  t.onSnapshot([]);
  const a = nextCookie++;
  const b = nextCookie++;
  t.onSnapshot([rec({ cookie: a, sport: 40001, bytesSent: 10 }), rec({ cookie: b, sport: 40002, bytesSent: 20 })]);
  const batch = t.collect(0);
  const sent = batch.measurements.filter((m) => m.metric === 'tcp_bytes_sent');
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.value, 30);
  assert.equal(sent[0]!.attributes['destination.port'], 443);
  assert.equal(sent[0]!.attributes['source.port'], undefined);
  const opts = new TcpConnectionTracker({ includeEphemeralPorts: true });
  opts.onSnapshot([]);
  opts.onSnapshot([rec({ cookie: nextCookie++, sport: 40001, bytesSent: 10 }), rec({ cookie: nextCookie++, sport: 40002, bytesSent: 20 })]);
  assert.equal(opts.collect(0).measurements.filter((m) => m.metric === 'tcp_bytes_sent').length, 2);
});

test('incoming connections keep the server port as source.port; loopback is local; IPv4-mapped IPv6 is IPv4', () => {
  const t = new TcpConnectionTracker();
  t.onSnapshot([]);
  const saddr = Buffer.alloc(16);
  saddr.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]);
  const daddr = Buffer.from(saddr);
  t.onSnapshot([rec({ cookie: nextCookie++, family: 10, saddr, daddr, sport: 8080, dport: 51000, direction: ConnDirection.Incoming, bytesSent: 1 })]);
  const [m] = t.collect(0).measurements.filter((x) => x.metric === 'tcp_bytes_sent');
  assert.equal(m!.attributes['source.port'], 8080);
  assert.equal(m!.attributes['destination.port'], undefined);
  assert.equal(m!.attributes['flow.direction'], 'local');
  assert.equal(m!.attributes['network.type'], 'ipv4');
  assert.equal(m!.attributes['source.address'], '127.0.0.1');
});

test('failure classification', () => {
  assert.equal(connectFailureType(111), 'refused');
  assert.equal(connectFailureType(110), 'timeout');
  assert.equal(connectFailureType(104), 'reset');
  assert.equal(connectFailureType(0), 'aborted');
  assert.equal(connectFailureType(113), 'EHOSTUNREACH');
  assert.equal(closeFailureType(rec({ flags: ConnFlags.RstReceived })), 'reset');
  assert.equal(closeFailureType(rec({ err: 110 })), 'timeout');
  assert.equal(closeFailureType(rec({})), undefined);
  assert.equal(closeFailureType(rec({ flags: ConnFlags.RstSent })), undefined);

  const t = new TcpConnectionTracker();
  t.onSnapshot([]);
  t.onEvent(rec({ cookie: nextCookie++, kind: ConnEventKind.Failed, err: 111, state: 7, oldState: 2 }));
  const b = t.collect(0);
  const f = b.measurements.filter((m) => m.metric === 'tcp_connection_failures');
  assert.equal(f.length, 1);
  assert.equal(f[0]!.attributes['error.type'], 'refused');
  assert.equal(sum(b, 'tcp_connections_opened'), 0);
});

test('200k open connections in one walk: the batch is built without a RangeError (no spread of huge arrays)', () => {
  const t = new TcpConnectionTracker({ includeEphemeralPorts: true });
  t.onSnapshot([]);
  const recs: ConnRecord[] = [];
  for (let i = 0; i < 200_000; i++) recs.push(rec({ cookie: nextCookie++, sport: 1024 + (i % 60000), dport: 443 + Math.floor(i / 60000), bytesSent: 1 }));
  t.onSnapshot(recs);
  const b = t.collect(0);
  assert.equal(sum(b, 'tcp_connections'), 200_000);
  assert.equal(sum(b, 'tcp_bytes_sent'), 200_000);
});

test('open and close records; a close whose open record was lost is counted from the close alone; one open before the agent is not opened', () => {
  const t = new TcpConnectionTracker();
  t.onSnapshot([]);
  const both = nextCookie++;
  t.onEvent(rec({ cookie: both, kind: ConnEventKind.Open, connectUs: 55, segsOut: 2, segsIn: 1 }));
  t.onEvent(rec({ cookie: both, kind: ConnEventKind.Close, bytesSent: 3, segsOut: 4, segsIn: 3 }));
  let b = t.collect(0);
  assert.equal(sum(b, 'tcp_connections_opened'), 1);
  assert.equal(sum(b, 'tcp_connections_closed'), 1);
  assert.equal(sum(b, 'tcp_segments_sent'), 4);
  assert.equal(sum(b, 'tcp_connect_latency_us'), 55);

  const short = nextCookie++;
  t.onEvent(rec({ cookie: short, kind: ConnEventKind.Close, bytesSent: 10, bytesReceived: 21, flags: ConnFlags.FinReceived, segsOut: 4, segsIn: 5, connectUs: 70, srttUs: 90 }));
  const older = nextCookie++;
  t.onEvent(rec({ cookie: older, kind: ConnEventKind.Close, flags: ConnFlags.PreExisting, bytesSent: 10 }));
  b = t.collect(1);
  assert.equal(sum(b, 'tcp_connections_closed'), 2);
  assert.equal(sum(b, 'tcp_connections_opened'), 1);
  assert.equal(sum(b, 'tcp_bytes_sent'), 10, 'the older one has no baseline: its bytes are not ours');
  assert.equal(sum(b, 'tcp_bytes_received'), 20);
  assert.equal(sum(b, 'tcp_segments_sent'), 4);
  assert.equal(sum(b, 'tcp_segments_received'), 5);
  assert.equal(sum(b, 'tcp_connect_latency_us'), 70);
  assert.equal(sum(b, 'tcp_rtt_us'), 90);
  assert.equal(t.stats.tracked, 0, 'never tracked');

  // Seen in a walk before its open record was read, then closed: opened once, closed once, bytes once.
  const seen = nextCookie++;
  t.onSnapshot([rec({ cookie: seen, bytesSent: 5, connectUs: 30 })]);
  t.onEvent(rec({ cookie: seen, kind: ConnEventKind.Open, connectUs: 30 }));
  t.onEvent(rec({ cookie: seen, kind: ConnEventKind.Close, bytesSent: 8, connectUs: 30 }));
  b = t.collect(2);
  assert.equal(sum(b, 'tcp_connections_opened'), 1);
  assert.equal(sum(b, 'tcp_connections_closed'), 1);
  assert.equal(sum(b, 'tcp_bytes_sent'), 8);
  assert.equal(sum(b, 'tcp_connect_latency_us'), 30);

  // Seen only in walks (its records lost): closed when it leaves the walks.
  const ghost = nextCookie++;
  t.onSnapshot([rec({ cookie: ghost, bytesSent: 5 })]);
  b = t.collect(3);
  t.onSnapshot([]);
  b.measurements.push(...t.collect(4).measurements);
  t.onSnapshot([]);
  b.measurements.push(...t.collect(5).measurements);
  assert.equal(sum(b, 'tcp_connections_opened'), 1);
  assert.equal(sum(b, 'tcp_connections_closed'), 1);

  // Only its open record came (the kernel never reported its close, and it lived less than a walk): closed when the walks do not find it.
  const vanished = nextCookie++;
  t.onEvent(rec({ cookie: vanished, kind: ConnEventKind.Open }));
  t.onSnapshot([]);
  b = t.collect(6);
  assert.equal(sum(b, 'tcp_connections_opened'), 1);
  assert.equal(sum(b, 'tcp_connections_closed'), 0, 'one walk may have raced the open');
  t.onSnapshot([]);
  assert.equal(sum(t.collect(7), 'tcp_connections_closed'), 0, 'nor the next: not seen in two walks yet');
  t.onSnapshot([]);
  assert.equal(sum(t.collect(8), 'tcp_connections_closed'), 1);
  assert.equal(sum(t.collect(9), 'tcp_connections_closed'), 0, 'once');
});

test('packed ring-buffer batches are read in place, with the same result as decoded records', () => {
  // Two batches of packed flowtel_conn records as the kernel writes them: 3 short connections of one flow, 1 of another (IPv4-mapped: the same flow as IPv4).
  const mapped = Buffer.alloc(16);
  mapped.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]);
  const mappedPeer = Buffer.alloc(16);
  mappedPeer.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2]);
  const recs = [
    rec({ cookie: nextCookie++, kind: ConnEventKind.Close, sport: 40001, bytesSent: 1 }),
    rec({ cookie: nextCookie++, kind: ConnEventKind.Close, sport: 40002, bytesSent: 2 }),
    rec({ cookie: nextCookie++, kind: ConnEventKind.Close, family: 10, saddr: mapped, daddr: mappedPeer, sport: 40003, bytesSent: 4 }),
    rec({ cookie: nextCookie++, kind: ConnEventKind.Close, sport: 40004, bytesSent: 8, comm: 'wget' }),
  ];
  const packed = new TcpConnectionTracker();
  assert.equal(packed.onEventBatch(pack(recs.slice(0, 2))) + packed.onEventBatch(pack(recs.slice(2))), 4);
  const decoded = new TcpConnectionTracker();
  for (const r of recs) decoded.onEvent(r);
  const bySeries = (b: MeasurementBatch): string[] =>
    b.measurements.filter((m) => m.metric === 'tcp_bytes_sent').map((m) => `${m.attributes['process.executable.name']}=${m.value}`).sort();
  assert.deepEqual(bySeries(packed.collect(0)), ['curl=7', 'wget=8']);
  assert.deepEqual(bySeries(decoded.collect(0)), ['curl=7', 'wget=8']);
});

test('a close flagged pre-existing after the start-up sweep, in a namespace it walked or one new since, was opened unseen: counted opened, with its bytes', () => {
  const t = new TcpConnectionTracker();
  t.onSnapshot([]);
  t.setStartSweep({ endNs: 1_000n, walked: new Set([11]), listed: new Set([11, 12]) });
  const closeOf = (netns: number, tsNs: bigint): ConnRecord =>
    rec({ cookie: nextCookie++, kind: ConnEventKind.Close, flags: ConnFlags.PreExisting, netns, tsNs, bytesSent: 100, segsOut: 3 });
  t.onEvent(closeOf(11, 2_000n)); // walked at start, closed after: opened since
  t.onEvent(closeOf(13, 2_000n)); // a namespace that did not exist at start
  t.onEvent(closeOf(12, 2_000n)); // listed but not walked (no CAP_SYS_ADMIN): may be older than the agent
  t.onEvent(closeOf(11, 500n)); // closed while the sweep ran: may have been missed by it
  const b = t.collect(0);
  assert.equal(sum(b, 'tcp_connections_closed'), 4);
  assert.equal(sum(b, 'tcp_connections_opened'), 2);
  assert.equal(sum(b, 'tcp_bytes_sent'), 200);
  assert.equal(sum(b, 'tcp_segments_sent'), 6);
  assert.equal(t.stats.opensUnseen, 2);
});

test('a packed walk hands its new connections to prepare as packed copies: owners written into them are reported; its listener records tell incoming from outgoing', () => {
  const t = new TcpConnectionTracker();
  const known = nextCookie++;
  t.onEvent(rec({ cookie: known, kind: ConnEventKind.Open, comm: 'curl' }));
  const pre = { kind: ConnEventKind.Snapshot, flags: ConnFlags.PreExisting, direction: ConnDirection.Unknown, pid: 0, comm: '', netns: 3 };
  const chunks = [
    pack([rec({ ...pre, cookie: 0, kind: ConnEventKind.Listener, sport: 8080, state: 10 }), rec({ ...pre, cookie: nextCookie++, sport: 8080, dport: 51000, ino: 700 })]),
    pack([rec({ cookie: known, comm: 'curl', bytesSent: 5 }), rec({ ...pre, cookie: nextCookie++, sport: 52000, dport: 443, ino: 701 })]),
  ];
  const given: number[] = [];
  const w = t.beginPackedWalk((fresh) => {
    for (const buf of fresh) {
      for (let i = 0; i < buf.length / CONN_RECORD_SIZE; i++) {
        const ino = Number(buf.readBigUInt64LE(i * CONN_RECORD_SIZE + CONN_RECORD_OFFSETS.ino));
        given.push(ino);
        writeOwner(buf, i, ino === 700 ? { pid: 10, comm: 'nginx' } : { pid: 11, comm: 'python3' });
      }
    }
  });
  for (const c of chunks) w.chunk(c);
  chunks.forEach((c) => c.fill(0xff)); // not read after chunk()
  w.end();
  assert.deepEqual(given, [700, 701]); // the listener and the tracked connection are not "new connections"
  const open = t.collect(0).measurements.filter((m) => m.metric === 'tcp_connections');
  const seen = open.map((m) => `${m.attributes['process.executable.name']}/${m.attributes['process.pid']}/${m.attributes['flow.direction']}`).sort();
  assert.deepEqual(seen, ['curl/42/outgoing', 'nginx/10/incoming', 'python3/11/outgoing']);
});

test('the tracker keeps only what it needs of the start-up sweep: the sweep\'s records (130k at 65k connections) are not held for its lifetime', async () => {
  // Reachable garbage collection: the usual way to get gc() without starting node with --expose-gc.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const t = new TcpConnectionTracker();
  let records: ConnRecord[] | undefined = [rec({ cookie: nextCookie++, kind: ConnEventKind.Snapshot })];
  const held = new WeakRef(records);
  t.onSnapshot(records);
  t.setStartSweep({ records, endNs: 1_000n, walked: new Set([11]), listed: new Set([11]) } as StartSweep);
  records = undefined;
  // WeakRef targets are kept until the end of the current job: collect in a later one.
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  assert.equal(held.deref(), undefined);
});

test('packed walks read in the order of the last one count the same as walks in any order, with sockets new, closed and gone in between', () => {
  // A small deterministic PRNG: the same walks every run.
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const walkPacked = (t: TcpConnectionTracker, recs: ConnRecord[], chunk: number): void => {
    const w = t.beginPackedWalk();
    for (let i = 0; i < recs.length; i += chunk) w.chunk(pack(recs.slice(i, i + chunk)));
    w.end();
  };
  const totals = (b: MeasurementBatch): string[] =>
    b.measurements
      .filter((m) => ['tcp_bytes_sent', 'tcp_bytes_received', 'tcp_connections', 'tcp_connections_opened', 'tcp_connections_closed'].includes(m.metric))
      .map((m) => `${m.metric}:${m.attributes['destination.port']}=${m.value}`)
      .sort();
  // The kernel's order: new sockets at the head, closed ones leave, the rest keep their order.
  let open: { r: ConnRecord }[] = [];
  const inOrder = new TcpConnectionTracker();
  const shuffled = new TcpConnectionTracker();
  const decoded = new TcpConnectionTracker();
  const trackers = [inOrder, shuffled, decoded];
  for (let round = 0; round < 12; round++) {
    // Some connections close with a close event, some vanish (no event), some open.
    const closes: ConnRecord[] = [];
    open = open.filter(({ r }) => {
      const x = rand(10);
      if (x === 0) closes.push({ ...r, kind: ConnEventKind.Close, bytesSent: r.bytesSent + 5 });
      return x > 1;
    });
    const fresh = 5 + rand(40);
    for (let k = 0; k < fresh; k++) {
      open.unshift({ r: rec({ cookie: nextCookie++, dport: 8000 + rand(4), sport: 30000 + rand(20000), bytesSent: 0, bytesReceived: 0, segsOut: 1, segsIn: 1 }) });
    }
    for (const o of open) o.r = { ...o.r, bytesSent: o.r.bytesSent + rand(1000), bytesReceived: o.r.bytesReceived + rand(3), segsOut: o.r.segsOut + 1, segsIn: o.r.segsIn + 1 };
    for (const t of trackers) for (const c of closes) t.onEvent(c);
    const walk = open.map((o) => o.r);
    walkPacked(inOrder, walk, 1 + rand(64));
    const mixed = [...walk];
    for (let i = mixed.length - 1; i > 0; i--) {
      const j = rand(i + 1);
      [mixed[i], mixed[j]] = [mixed[j]!, mixed[i]!];
    }
    walkPacked(shuffled, mixed, 7);
    decoded.onSnapshot(walk);
    const want = totals(decoded.collect(round));
    assert.ok(want.length > 0);
    assert.deepEqual(totals(inOrder.collect(round)), want, `round ${round}: in the kernel's order`);
    assert.deepEqual(totals(shuffled.collect(round)), want, `round ${round}: shuffled`);
  }
});

test('short records of idle connections (since their full record in a walk read whole), placed among the full ones, count as full records would; the generation handshake', () => {
  // A model of dump_tracked: per socket, the generation and counters of its last full record.
  let seed = 777;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 16) % n;
  };
  const kernel = new Map<number, { gen: number; segs: string; state: number }>();
  /** One walk in chunks of up to 4 full and 3 short records, as dump_tracked writes them. */
  const walkOf = (t: TcpConnectionTracker, recs: ConnRecord[]): number => {
    const w = t.beginPackedWalk();
    const { gen, acked } = w.generation;
    let alive = 0;
    let full: ConnRecord[] = [];
    let shorts: Buffer[] = [];
    const flush = (): void => {
      w.chunk(pack(full), Buffer.concat(shorts));
      full = [];
      shorts = [];
    };
    for (const r of recs) {
      const k = kernel.get(r.cookie);
      const segs = `${r.segsOut}/${r.segsIn}`;
      if (gen && k && k.gen && k.gen <= acked && k.segs === segs && k.state === r.state) {
        if (shorts.length === 3) flush();
        const a = Buffer.alloc(ALIVE_RECORD_SIZE);
        a.writeUInt32LE(r.cookie % 2 ** 32, 0);
        a.writeUInt32LE(Math.floor(r.cookie / 2 ** 32), 4);
        a.writeUInt32LE(full.length, 8);
        a[12] = r.state;
        shorts.push(a);
        alive++;
        continue;
      }
      if (full.length === 4) flush();
      kernel.set(r.cookie, { gen, segs, state: r.state });
      full.push(r);
    }
    flush();
    w.end();
    return alive;
  };
  const totals = (b: MeasurementBatch): string[] =>
    b.measurements
      .filter((m) => ['tcp_bytes_sent', 'tcp_bytes_received', 'tcp_segments_sent', 'tcp_connections', 'tcp_connections_opened', 'tcp_connections_closed', 'tcp_rtt_us'].includes(m.metric))
      .map((m) => `${m.metric}:${m.attributes['destination.port']}:${m.attributes['network.connection.state'] ?? ''}=${values(m).join(',')}`)
      .sort();
  const withAlive = new TcpConnectionTracker();
  const full = new TcpConnectionTracker();
  let open: ConnRecord[] = [];
  let aliveSeen = 0;
  for (let round = 0; round < 10; round++) {
    open = open.filter(() => rand(8) > 0); // some vanish (no close record): counted closed after two walks either way
    for (let k = rand(6); k > 0; k--) open.push(rec({ cookie: nextCookie++, dport: 9000 + rand(3), bytesSent: 0, bytesReceived: 0, segsOut: 1, segsIn: 1 }));
    // Most stay idle; a few send, and one in a while moves to CLOSE_WAIT with nothing else changed.
    open = open.map((r) => (rand(4) === 0 ? { ...r, bytesSent: r.bytesSent + 100, segsOut: r.segsOut + 1, srttUs: r.srttUs + 1 } : rand(15) === 0 ? { ...r, state: 8 } : r));
    aliveSeen += walkOf(withAlive, open);
    full.onSnapshot(open);
    assert.deepEqual(totals(withAlive.collect(round)), totals(full.collect(round)), `round ${round}`);
  }
  assert.ok(aliveSeen > 20, `the model sent Alive records (${aliveSeen})`);
  assert.equal(withAlive.stats.aliveUnknown, 0);

  // The handshake: a walk read whole is acknowledged to the next; an aborted one is not.
  const t = new TcpConnectionTracker();
  const g1 = t.beginPackedWalk();
  g1.end();
  const g2 = t.beginPackedWalk();
  assert.deepEqual(g2.generation, { gen: g1.generation.gen + 1, acked: g1.generation.gen });
  g2.abort();
  const g3 = t.beginPackedWalk();
  assert.equal(g3.generation.acked, 0, 'after an aborted walk: every record full');
  // A short record of a connection the tracker does not know: counted, not in the gauge, and the next walk is full.
  const stray = Buffer.alloc(ALIVE_RECORD_SIZE);
  stray.writeUInt32LE(nextCookie++, 0);
  stray[12] = 1;
  g3.chunk(pack([]), stray);
  g3.end();
  assert.equal(t.stats.aliveUnknown, 1);
  assert.equal(sum(t.collect(1), 'tcp_connections'), 0);
  assert.equal(t.beginPackedWalk().generation.acked, 0);
});

test('a connect a walk sees in SYN_SENT is counted opened only once it is known to have established; one that fails never opened', () => {
  const SYN_SENT = 2;
  const ESTABLISHED = 1;
  const opened = (b: MeasurementBatch): number => sum(b, 'tcp_connections_opened');
  const failures = (b: MeasurementBatch, type: string): number =>
    b.measurements.filter((m) => m.metric === 'tcp_connection_failures' && m.attributes['error.type'] === type).reduce((a, m) => a + m.value, 0);
  const connecting = (cookie: number): ConnRecord =>
    rec({ cookie, state: SYN_SENT, sport: 40100, dport: 443, direction: ConnDirection.Outgoing, bytesSent: 0, bytesReceived: 0, segsOut: 1, segsIn: 0, srttUs: 0 });

  // Failed: refused after the walk saw it connecting.
  const failed = new TcpConnectionTracker();
  const a = nextCookie++;
  failed.onSnapshot([connecting(a)]);
  let b = failed.collect(0);
  assert.equal(opened(b), 0);
  assert.equal(
    b.measurements.filter((m) => m.metric === 'tcp_connections' && m.attributes['network.connection.state'] === 'syn_sent').reduce((x, m) => x + m.value, 0),
    1,
    'it is an open socket, connecting',
  );
  failed.onEvent(rec({ cookie: a, kind: ConnEventKind.Failed, state: 7, err: 111, sport: 0, dport: 443, direction: ConnDirection.Outgoing }));
  b = failed.collect(1);
  assert.equal(opened(b), 0);
  assert.equal(sum(b, 'tcp_connections_closed'), 0);
  assert.equal(failures(b, 'refused'), 1);

  // Established: its open record, with its handshake time, counts it opened (once).
  const est = new TcpConnectionTracker();
  const c = nextCookie++;
  est.onSnapshot([connecting(c)]);
  assert.equal(opened(est.collect(0)), 0);
  est.onEvent(rec({ cookie: c, kind: ConnEventKind.Open, state: ESTABLISHED, sport: 40100, dport: 443, direction: ConnDirection.Outgoing, connectUs: 250, bytesSent: 0, bytesReceived: 0 }));
  est.onSnapshot([rec({ cookie: c, state: ESTABLISHED, sport: 40100, dport: 443, direction: ConnDirection.Outgoing })]);
  b = est.collect(1);
  assert.equal(opened(b), 1);
  assert.deepEqual(b.measurements.filter((m) => m.metric === 'tcp_connect_latency_us').flatMap(values), [250]);

  // Its open record lost: the next walk that sees it established counts it; a close does too.
  const lostOpen = new TcpConnectionTracker();
  const d = nextCookie++;
  const e = nextCookie++;
  lostOpen.onSnapshot([connecting(d), connecting(e)]);
  lostOpen.onSnapshot([rec({ cookie: d, state: ESTABLISHED, sport: 40100, dport: 443, direction: ConnDirection.Outgoing }), connecting(e)]);
  assert.equal(opened(lostOpen.collect(0)), 1);
  lostOpen.onEvent(rec({ cookie: e, kind: ConnEventKind.Close, state: 7, sport: 40101, dport: 443, direction: ConnDirection.Outgoing }));
  b = lostOpen.collect(1);
  assert.equal(opened(b), 1);
  assert.equal(sum(b, 'tcp_connections_closed'), 1);

  // No record of its end at all: gone from two walks, a failure of unknown type, never opened or closed.
  const lost = new TcpConnectionTracker();
  const f = nextCookie++;
  const batches: MeasurementBatch[] = [];
  lost.onSnapshot([connecting(f)]);
  batches.push(lost.collect(0));
  lost.onSnapshot([]);
  batches.push(lost.collect(1));
  lost.onSnapshot([]);
  batches.push(lost.collect(2));
  assert.equal(batches.reduce((x, y) => x + opened(y), 0), 0);
  assert.equal(batches.reduce((x, y) => x + sum(y, 'tcp_connections_closed'), 0), 0);
  assert.equal(batches.reduce((x, y) => x + failures(y, 'unknown'), 0), 1);
  assert.equal(lost.stats.failuresUnseen, 1);
  assert.equal(lost.stats.staleRemoved, 0);
});

test("an interval's histogram samples of a flow go out as one measurement per metric, every sample in it", () => {
  const t = new TcpConnectionTracker();
  t.onSnapshot([]);
  const n = 500;
  const batch: ConnRecord[] = [];
  for (let i = 0; i < n; i++) {
    const cookie = nextCookie++;
    const common = { cookie, sport: 30000 + i, dport: 443, direction: ConnDirection.Outgoing, connectUs: 100 + i };
    batch.push(rec({ ...common, kind: ConnEventKind.Open, state: 1 }));
    batch.push(rec({ ...common, kind: ConnEventKind.Close, state: 7, srttUs: 200 + i, rttvarUs: 20 + (i % 7), bytesSent: 10 }));
  }
  t.onEventBatch(pack(batch));
  const b = t.collect(0);
  for (const [metric, first] of [['tcp_rtt_us', 200], ['tcp_connect_latency_us', 100]] as const) {
    const ms = b.measurements.filter((m) => m.metric === metric);
    assert.equal(ms.length, 1, `${metric}: one measurement for the flow`);
    assert.deepEqual(values(ms[0]!), Array.from({ length: n }, (_, i) => first + i), `${metric}: every connection's sample, in order`);
  }
  const rttVar = b.measurements.filter((m) => m.metric === 'tcp_rtt_var_us');
  assert.deepEqual(rttVar.flatMap(values), Array.from({ length: n }, (_, i) => 20 + (i % 7)));
  assert.equal(sum(b, 'tcp_connections_closed'), n);
  // The next interval starts empty: the samples went out with the measurement.
  assert.equal(t.collect(1).measurements.filter((m) => m.samples).length, 0);
});
