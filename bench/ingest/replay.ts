/**
 * User-space ingest cost of the TCP path, without the kernel: packed
 * flowtel_conn records of a connection-per-request workload (each connection
 * seen from both ends over loopback: client open, server open, client close,
 * server close) are decoded, tracked, collected once per simulated second and
 * recorded into a MeterProvider whose reader collects like an exporter would.
 *
 *   node dist/bench/ingest/replay.js [connections_per_second=10000] [seconds=20]
 *
 * Prints µs of CPU per record and per connection, and heap/RSS.
 */
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ManualReader } from './manual-reader';
import { decodeConnRecords, CONN_RECORD_SIZE, ConnEventKind, ConnDirection, AF_INET } from '../../src/flows/records';
import { TcpConnectionTracker } from '../../src/flows/tcp-tracker';
import { InstrumentSink } from '../../src/pipeline/instrument-sink';
import { FlowMetrics } from '../../src/pipeline/flow-metrics';

const perSecond = Number(process.argv[2] ?? 10_000);
const seconds = Number(process.argv[3] ?? 20);
const BATCH = 64;

function record(buf: Buffer, off: number, o: { cookie: bigint; kind: number; dir: number; sport: number; dport: number; pid: number; comm: string; bytes: number; ts: bigint }): void {
  buf.fill(0, off, off + CONN_RECORD_SIZE);
  buf.writeBigUInt64LE(o.cookie, off);
  buf.writeBigUInt64LE(o.ts, off + 8);
  if (o.kind === ConnEventKind.Close) {
    buf.writeUInt32LE(o.bytes, off + 16); // bytes_sent
    buf.writeUInt32LE(o.bytes, off + 24); // bytes_acked
    buf.writeUInt32LE(o.bytes + 1, off + 32); // bytes_received (+FIN)
    buf.writeUInt32LE(6, off + 56);
    buf.writeUInt32LE(6, off + 60);
    buf.writeUInt32LE(40, off + 68); // srtt
    buf.writeUInt32LE(20, off + 72);
    buf[off + 102] = 0x04 | 0x10;
  }
  if (o.kind === ConnEventKind.Open && o.dir === ConnDirection.Outgoing) buf.writeUInt32LE(30, off + 76);
  buf.writeUInt32LE(o.pid, off + 80);
  buf.writeUInt32LE(4026531840, off + 84);
  buf.writeUInt16LE(AF_INET, off + 92);
  buf.writeUInt16LE(o.sport, off + 94);
  buf.writeUInt16LE(o.dport, off + 96);
  buf[off + 98] = o.kind;
  buf[off + 99] = o.dir;
  buf[off + 100] = o.kind === ConnEventKind.Close ? 7 : 1;
  buf.set([127, 0, 0, 1], off + 104);
  buf.set([127, 0, 0, 1], off + 120);
  buf.write(o.comm, off + 136, 'latin1');
}

/** One simulated second of traffic as ring-buffer batches. */
function second(s: number): Buffer[] {
  const out: Buffer[] = [];
  let buf = Buffer.alloc(BATCH * CONN_RECORD_SIZE);
  let n = 0;
  const push = (o: Parameters<typeof record>[2]): void => {
    record(buf, n * CONN_RECORD_SIZE, o);
    if (++n === BATCH) {
      out.push(buf);
      buf = Buffer.alloc(BATCH * CONN_RECORD_SIZE);
      n = 0;
    }
  };
  for (let i = 0; i < perSecond; i++) {
    const c = BigInt(s * perSecond + i) * 2n + 1n;
    const port = 32768 + ((s * perSecond + i) % 28000);
    const ts = BigInt(s) * 1_000_000_000n + BigInt(i) * 1000n;
    push({ cookie: c, kind: ConnEventKind.Open, dir: ConnDirection.Outgoing, sport: port, dport: 8080, pid: 100, comm: 'wrk', bytes: 0, ts });
    push({ cookie: c + 1n, kind: ConnEventKind.Open, dir: ConnDirection.Incoming, sport: 8080, dport: port, pid: 200, comm: 'nginx', bytes: 0, ts });
    push({ cookie: c, kind: ConnEventKind.Close, dir: ConnDirection.Outgoing, sport: port, dport: 8080, pid: 100, comm: 'wrk', bytes: 90, ts: ts + 500n });
    push({ cookie: c + 1n, kind: ConnEventKind.Close, dir: ConnDirection.Incoming, sport: 8080, dport: port, pid: 200, comm: 'nginx', bytes: 850, ts: ts + 600n });
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
    for (const b of traffic[s % traffic.length]!) {
      const recs = decodeConnRecords(b);
      records += recs.length;
      for (const r of recs) tracker.onEvent(r);
    }
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
