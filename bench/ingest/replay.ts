/**
 * User-space ingest cost of the TCP path, without the kernel: packed
 * flowtel_conn records of a connection-per-request workload (each connection
 * seen from both ends over loopback: client open, server open, client close,
 * server close) are read in place, tracked, collected once per simulated second and
 * recorded into a MeterProvider whose reader collects like an exporter would.
 *
 *   node dist/bench/ingest/replay.js [connections_per_second=10000] [seconds=20]
 *
 * Prints µs of CPU per record and per connection, and heap/RSS.
 */
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ManualReader } from './manual-reader';
import { encodeConnRecord, CONN_RECORD_SIZE, ConnEventKind, ConnDirection, ConnFlags, AF_INET, type ConnRecord } from '../../src/flows/records';
import { TcpConnectionTracker } from '../../src/flows/tcp-tracker';
import { InstrumentSink } from '../../src/pipeline/instrument-sink';
import { FlowMetrics } from '../../src/pipeline/flow-metrics';

const perSecond = Number(process.argv[2] ?? 10_000);
const seconds = Number(process.argv[3] ?? 20);
const BATCH = 64;

const LOOPBACK = Buffer.from([127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

/** The open or close record of one end of a connection-per-request exchange. */
function record(o: { kind: ConnEventKind; cookie: number; dir: ConnDirection; sport: number; dport: number; pid: number; comm: string; bytes: number; ts: bigint }): ConnRecord {
  const close = o.kind === ConnEventKind.Close;
  return {
    cookie: o.cookie,
    tsNs: o.ts,
    establishedNs: close ? o.ts - 400n : o.ts,
    bytesSent: o.bytes,
    bytesReceived: close ? o.bytes + 1 : 0, // + the peer's FIN
    bytesRetrans: 0,
    ino: 0,
    segsOut: close ? 6 : 2,
    segsIn: close ? 6 : 1,
    totalRetrans: 0,
    srttUs: 40,
    rttvarUs: 20,
    connectUs: o.dir === ConnDirection.Outgoing ? 30 : 0,
    pid: o.pid,
    netns: 4026531840,
    err: 0,
    family: AF_INET,
    sport: o.sport,
    dport: o.dport,
    kind: o.kind,
    direction: o.dir,
    state: close ? 7 : 1,
    oldState: close ? (o.dir === ConnDirection.Outgoing ? 5 : 9) : o.dir === ConnDirection.Outgoing ? 2 : 3,
    flags: ConnFlags.Established | (close ? ConnFlags.FinReceived : 0),
    saddr: LOOPBACK,
    daddr: LOOPBACK,
    comm: o.comm,
  };
}

/** One simulated second of traffic as ring-buffer batches. */
function second(s: number): Buffer[] {
  const out: Buffer[] = [];
  let buf = Buffer.alloc(BATCH * CONN_RECORD_SIZE);
  let n = 0;
  const push = (rec: ConnRecord): void => {
    encodeConnRecord(rec, buf, n * CONN_RECORD_SIZE);
    if (++n === BATCH) {
      out.push(buf);
      buf = Buffer.alloc(BATCH * CONN_RECORD_SIZE);
      n = 0;
    }
  };
  for (let i = 0; i < perSecond; i++) {
    const c = (s * perSecond + i) * 2 + 1;
    const port = 32768 + ((s * perSecond + i) % 28000);
    const ts = BigInt(s) * 1_000_000_000n + BigInt(i) * 1000n;
    const client = { cookie: c, dir: ConnDirection.Outgoing, sport: port, dport: 8080, pid: 100, comm: 'wrk' };
    const server = { cookie: c + 1, dir: ConnDirection.Incoming, sport: 8080, dport: port, pid: 200, comm: 'nginx' };
    push(record({ ...client, kind: ConnEventKind.Open, bytes: 0, ts }));
    push(record({ ...server, kind: ConnEventKind.Open, bytes: 0, ts }));
    push(record({ ...client, kind: ConnEventKind.Close, bytes: 90, ts: ts + 500n }));
    push(record({ ...server, kind: ConnEventKind.Close, bytes: 850, ts: ts + 600n }));
  }
  if (n > 0) out.push(buf.subarray(0, n * CONN_RECORD_SIZE));
  return out;
}

async function main(): Promise<void> {
  // As the service wires an exporter: counters and histograms kept by flowtel unless SDK_HISTOGRAMS=1.
  const sdkHistograms = process.env.SDK_HISTOGRAMS === '1';
  const histograms = new FlowMetrics({ cardinalityLimit: 100_000 });
  const reader = new ManualReader(sdkHistograms ? [] : [histograms]);
  histograms.bind(reader);
  const provider = new MeterProvider({ readers: [reader] });
  const sink = new InstrumentSink(provider.getMeter('flowtel'), sdkHistograms ? undefined : histograms);
  const tracker = new TcpConnectionTracker();
  const traffic = Array.from({ length: 4 }, (_, s) => second(s));
  let records = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let s = 0; s < seconds; s++) {
    for (const b of traffic[s % traffic.length]!) records += tracker.onEventBatch(b);
    tracker.onSnapshot([]);
    sink.consume({ ...tracker.collect(Date.now()), source: 'ebpf_tcp' });
    await reader.collect();
  }
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuUs = cpu.user + cpu.system;
  const mem = process.memoryUsage();
  const line = {
    records,
    connections: perSecond * seconds,
    cpu_us_per_record: +(cpuUs / records).toFixed(2),
    cpu_us_per_connection: +(cpuUs / (perSecond * seconds)).toFixed(2),
    wall_us_per_record: +(wallUs / records).toFixed(2),
    cpu_share_at_rate: +((cpuUs / seconds) / 1e6).toFixed(3),
    heap_mb: +(mem.heapUsed / 2 ** 20).toFixed(1),
    rss_mb: +(mem.rss / 2 ** 20).toFixed(1),
  };
  console.log(JSON.stringify(line));
  await provider.shutdown();
}

void main();
