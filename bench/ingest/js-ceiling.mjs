// The JavaScript side of the kernel → JS ingest path, alone, on one core:
// batches of packed flowtel_conn records (the layout of bpf/flowtel_tcp.h, as
// the ring buffer hands them over, CONN_RECORD_SIZE bytes each, 4096 per batch
// like the receiver's reader) of short connections — an open and a close
// record per connection, client side, one server — go through
//   decode:  decodeConnRecords (dist/src/flows/records.js)
//   track:   + TcpConnectionTracker.onEvent (dist/src/flows/tcp-tracker.js)
//   export:  + once a second tracker.collect() into an InstrumentSink on an
//            OpenTelemetry MeterProvider with a reader collecting each second
// for SECONDS each, and prints one JSON line per stage: records, CPU seconds
// of this process (user + system), records per CPU-second and per wall second.
//   node bench/ingest/js-ceiling.mjs [SECONDS]
// FLOWTEL_ROOT: the build to measure (default: this work tree).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.env.FLOWTEL_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(root, 'package.json'));
const { decodeConnRecords, CONN_RECORD_SIZE } = require(join(root, 'dist/src/flows/records.js'));
const { TcpConnectionTracker } = require(join(root, 'dist/src/flows/tcp-tracker.js'));
const { InstrumentSink } = require(join(root, 'dist/src/pipeline/instrument-sink.js'));
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');

const SECONDS = Number(process.argv[2] ?? 3);
const PER_BATCH = 4096;

/** A batch of PER_BATCH records: open, close, open, close, ... of PER_BATCH/2 connections. */
function makeBatch() {
  const buf = Buffer.alloc(PER_BATCH * CONN_RECORD_SIZE);
  for (let i = 0; i < PER_BATCH; i++) {
    const o = i * CONN_RECORD_SIZE;
    const close = i % 2 === 1;
    buf.writeBigUInt64LE(BigInt(i >> 1) + 1n, o); // cookie (patched per batch)
    buf.writeBigUInt64LE(1_000_000_000n + BigInt(i) * 1000n, o + 8); // ts
    if (close) {
      buf.writeUInt32LE(100, o + 16); // bytes sent
      buf.writeUInt32LE(100, o + 24); // bytes acked
      buf.writeUInt32LE(1000, o + 32); // bytes received
      buf.writeUInt32LE(5, o + 56); // segs out
      buf.writeUInt32LE(5, o + 60); // segs in
      buf.writeUInt32LE(80, o + 68); // srtt
      buf.writeUInt32LE(40, o + 72); // rttvar
    }
    buf.writeUInt32LE(60, o + 76); // connect µs
    buf.writeUInt32LE(4242, o + 80); // pid
    buf.writeUInt32LE(4026531840, o + 84); // netns
    buf.writeUInt16LE(2, o + 92); // AF_INET
    buf.writeUInt16LE(20000 + (i >> 1), o + 94); // sport (ephemeral)
    buf.writeUInt16LE(9090, o + 96); // dport
    buf[o + 98] = close ? 2 : 1; // kind: Close / Open
    buf[o + 99] = 1; // direction: outgoing
    buf[o + 100] = close ? 7 : 1; // state: CLOSE / ESTABLISHED
    buf[o + 101] = close ? 8 : 2; // old state
    buf[o + 102] = close ? 0x04 | 0x10 : 0x04; // Established (+ FinReceived)
    buf.writeUInt32LE(0x0100000a, o + 104); // saddr 10.0.0.1
    buf.writeUInt32LE(0x0200000a, o + 120); // daddr 10.0.0.2
    buf.write('churn', o + 136, 'latin1');
  }
  return buf;
}

class ManualReader extends MetricReader {
  onForceFlush() {
    return Promise.resolve();
  }
  onShutdown() {
    return Promise.resolve();
  }
}

async function stage(name) {
  const batch = makeBatch();
  const tracker = new TcpConnectionTracker({ includeEphemeralPorts: false });
  const reader = new ManualReader();
  const provider = new MeterProvider({ readers: [reader] });
  const sink = new InstrumentSink(provider.getMeter('bench'));
  tracker.onSnapshot([]); // the agent's first walk (the baseline) comes before any event
  let cookie = 1n;
  let records = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let lastCollect = t0;
  const end = t0 + BigInt(Math.round(SECONDS * 1e9));
  for (;;) {
    const now = process.hrtime.bigint();
    if (now >= end) break;
    for (let i = 0; i < PER_BATCH; i += 2) {
      batch.writeBigUInt64LE(cookie, i * CONN_RECORD_SIZE);
      batch.writeBigUInt64LE(cookie, (i + 1) * CONN_RECORD_SIZE);
      cookie++;
    }
    const recs = decodeConnRecords(batch);
    if (name !== 'decode') for (const r of recs) tracker.onEvent(r);
    records += recs.length;
    if (name === 'export' && now - lastCollect >= 1_000_000_000n) {
      lastCollect = now;
      tracker.onSnapshot([]);
      sink.consume({ ...tracker.collect(Date.now()), source: 'bench' });
      await reader.collect();
    }
    // Let timers and GC run as they would in the agent.
    if ((records / PER_BATCH) % 16 === 0) await new Promise((r) => setImmediate(r));
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(cpu0);
  const cpu = (c.user + c.system) / 1e6;
  await provider.shutdown();
  return { stage: name, records, cpu_s: Number(cpu.toFixed(3)), wall_s: Number(wall.toFixed(3)), per_cpu_s: Math.round(records / cpu), per_wall_s: Math.round(records / wall) };
}

for (const s of ['decode', 'track', 'export']) process.stdout.write(`${JSON.stringify(await stage(s))}\n`);
