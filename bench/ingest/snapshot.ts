/**
 * User-space cost of one collection with many open connections, without the
 * kernel: a walk's packed flowtel_conn snapshot records (N connections, both
 * ends on this host, as in the concurrency suite: 8 client addresses to one
 * server port) are decoded, tracked and collected, the measurements recorded
 * into FlowMetrics and read by a MetricReader as an exporter would, once per
 * simulated collection, with counters moving on every connection — or, with
 * `idle`, none moving: every connection comes as the kernel's short record
 * (struct flowtel_alive) after one full walk.
 *
 *   node dist/bench/ingest/snapshot.js [connections=65000] [collections=10] [idle]
 *
 * Prints ms of CPU per collection, µs per socket, and heap/RSS after.
 */
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ManualReader } from './manual-reader';
import { decodeConnRecords, ALIVE_RECORD_OFFSETS, ALIVE_RECORD_SIZE, CONN_RECORD_SIZE, ConnEventKind, ConnDirection, AF_INET } from '../../src/flows/records';
import { TcpConnectionTracker } from '../../src/flows/tcp-tracker';
import { InstrumentSink } from '../../src/pipeline/instrument-sink';
import { FlowMetrics } from '../../src/pipeline/flow-metrics';

const connections = Number(process.argv[2] ?? 65_000);
const collections = Number(process.argv[3] ?? 10);
const SOURCES = 8;
const idle = process.argv[4] === 'idle';

/** Every connection's two ends as short records (idle, ESTABLISHED), in the order of walk(). */
function aliveWalk(): Buffer {
  const buf = Buffer.alloc(connections * 2 * ALIVE_RECORD_SIZE);
  for (let k = 0; k < connections * 2; k++) {
    buf.writeBigUInt64LE(BigInt(k + 1), k * ALIVE_RECORD_SIZE + ALIVE_RECORD_OFFSETS.cookie);
    buf[k * ALIVE_RECORD_SIZE + ALIVE_RECORD_OFFSETS.state] = 1;
  }
  return buf;
}

/** The walk of collection `round`: every connection's two ends, counters grown by `round`. */
function walk(round: number): Buffer {
  const buf = Buffer.alloc(connections * 2 * CONN_RECORD_SIZE);
  for (let i = 0; i < connections; i++) {
    const src = [10, 93, 0, 11 + (i % SOURCES)];
    const port = 32768 + Math.floor(i / SOURCES);
    for (let end = 0; end < 2; end++) {
      const off = (i * 2 + end) * CONN_RECORD_SIZE;
      const client = end === 0;
      buf.writeBigUInt64LE(BigInt(i * 2 + end + 1), off);
      buf.writeBigUInt64LE(BigInt(round) * 1_000_000_000n, off + 8);
      const bytes = 100 * (round + 1);
      buf.writeUInt32LE(bytes, off + 16); // bytes_sent
      buf.writeUInt32LE(bytes + 1, off + 32); // bytes_received
      buf.writeUInt32LE(round + 2, off + 56); // segs
      buf.writeUInt32LE(round + 2, off + 60);
      buf.writeUInt32LE(40 + (i % 50), off + 68); // srtt
      buf.writeUInt32LE(20, off + 72);
      buf.writeUInt32LE(client ? 100 + (i % 4) : 200, off + 80);
      buf.writeUInt32LE(4026531840, off + 84);
      buf.writeUInt16LE(AF_INET, off + 92);
      buf.writeUInt16LE(client ? port : 9000, off + 94);
      buf.writeUInt16LE(client ? 9000 : port, off + 96);
      buf[off + 98] = ConnEventKind.Snapshot;
      buf[off + 99] = client ? ConnDirection.Outgoing : ConnDirection.Incoming;
      buf[off + 100] = 1; // ESTABLISHED
      buf[off + 102] = 0x04;
      buf.set(client ? src : [10, 93, 0, 2], off + 104);
      buf.set(client ? [10, 93, 0, 2] : src, off + 120);
      buf.write(client ? 'hold-client' : 'hold-server', off + 136, 'latin1');
    }
  }
  return buf;
}

async function main(): Promise<void> {
  const metrics = new FlowMetrics({ cardinalityLimit: 100_000 });
  const reader = new ManualReader([metrics]);
  metrics.bind(reader);
  const provider = new MeterProvider({ readers: [reader] });
  const sink = new InstrumentSink(provider.getMeter('flowtel'), metrics);
  const tracker = new TcpConnectionTracker();
  const walks = [walk(0), walk(1), walk(2)];
  // The first walk is the baseline (connections open before the agent); then one per collection.
  tracker.onSnapshot(decodeConnRecords(walks[0]!));
  tracker.collect(Date.now());
  const CHUNK = 32768 * CONN_RECORD_SIZE;
  const shorts = idle ? aliveWalk() : undefined;
  if (idle) {
    // One full packed walk first: the short records of the next ones refer to it.
    const first = tracker.beginPackedWalk();
    for (let off = 0; off < walks[1]!.length; off += CHUNK) first.chunk(walks[1]!.subarray(off, off + CHUNK));
    first.end();
    tracker.collect(Date.now());
  }
  const phases = { track: 0, collect: 0, record: 0, export: 0 };
  const cpu0 = process.cpuUsage();
  for (let c = 0; c < collections; c++) {
    let t = performance.now();
    const lap = (k: keyof typeof phases): void => {
      const now = performance.now();
      phases[k] += now - t;
      t = now;
    };
    // As the kernel hands a walk over: chunks of 32768 records, or (idle) one read() of short records.
    const walk = tracker.beginPackedWalk();
    if (shorts) {
      walk.chunk(Buffer.alloc(0), shorts);
    } else {
      const all = walks[1 + (c % 2)]!;
      for (let off = 0; off < all.length; off += CHUNK) walk.chunk(all.subarray(off, off + CHUNK));
    }
    walk.end();
    lap('track');
    const batch = tracker.collect(Date.now());
    lap('collect');
    sink.consume({ ...batch, source: 'ebpf_tcp' });
    lap('record');
    await reader.collect();
    lap('export');
  }
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const mem = process.memoryUsage();
  // With --expose-gc: what the tracker and metrics keep (the walks' buffers are outside the heap).
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const retainedMb = gc ? +(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1) : undefined;
  const per = (ms: number): number => +(ms / collections).toFixed(1);
  console.log(
    JSON.stringify({
      connections,
      sockets: connections * 2,
      cpu_ms_per_collection: per(cpuMs),
      us_per_socket: +((cpuMs * 1000) / collections / (connections * 2)).toFixed(2),
      wall_ms_per_collection: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, per(v)])),
      heap_mb: +(mem.heapUsed / 2 ** 20).toFixed(1),
      ...(retainedMb === undefined ? {} : { heap_retained_mb: retainedMb, tracked: tracker.stats.tracked }),
      rss_mb: +(mem.rss / 2 ** 20).toFixed(1),
    }),
  );
  await provider.shutdown();
}

void main();
