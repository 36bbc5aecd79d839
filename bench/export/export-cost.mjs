// EXPORT_INTERVALS (default 4) collection intervals of SERIES series, each
// recorded and then exported through flowtel's otlp exporter
// (src/exporters/otlp.ts: OTLP/gRPC, here without queue and retries so the
// call returns with the outcome) to a local receiver in a child process
// (bench/export/receiver.mjs, default 4 MiB maximum message).
//   FLOWTEL_ROOT=$PWD node --expose-gc bench/export/export-cost.mjs SERIES
// Series: SERIES/4 flows × (tcp_bytes_sent, tcp_bytes_received,
// tcp_connections_opened, tcp_rtt_us histogram), attributes as the ebpf_tcp
// receiver sets them, one object per flow kept across intervals. Prints one
// JSON line: for the first interval (every series new) at the top level and
// for the later ones under `steady` (medians; maxima of heap and delay): CPU
// ms (user + system of this process) of the record and of the collect +
// serialize + send, its wall ms, heap before and the largest seen during the
// export (sampled every 5 ms), event-loop delay p99 and max during the
// export; then the serialized request size and what the receiver got over
// all intervals (requests, bytes, data points) — or the export's failure.
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = process.env.FLOWTEL_ROOT ?? join(here, '..', '..');
const require = createRequire(join(root, 'package.json'));
const { otlpExporterFactory } = require(join(root, 'dist/src/exporters/otlp.js'));
const { InstrumentSink } = require(join(root, 'dist/src/pipeline/instrument-sink.js'));
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
const { ProtobufMetricsSerializer } = require('@opentelemetry/otlp-transformer');
const { DEFAULT_CARDINALITY_LIMIT } = require(join(root, 'dist/src/pipeline/service.js'));
const { buildResource } = require(join(root, 'dist/src/telemetry/resource.js'));
// Counters and histograms kept by flowtel and collected by the exporter's reader (src/pipeline/flow-metrics.ts).
const { FlowMetrics } = require(join(root, 'dist/src/pipeline/flow-metrics.js'));
const pino = require('pino');

const SERIES = Number(process.argv[2] ?? 1000);
/** Collections: the first creates the series, the others are the steady state. */
const INTERVALS = Math.max(2, Number(process.env.EXPORT_INTERVALS ?? 4));
const LIMIT = 4 * 1024 * 1024;

const child = fork(join(here, 'receiver.mjs'), [], { env: { ...process.env, FLOWTEL_ROOT: root }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
let got = { requests: 0, bytes: 0, points: 0, largest: 0 };
const port = await new Promise((resolve) => {
  child.on('message', (m) => {
    if (m.port) resolve(m.port);
    else got = { ...m, largest: Math.max(got.largest, m.largest) };
  });
});

// Wired as src/pipeline/service.ts wires an exporter.
const histograms = new FlowMetrics({ cardinalityLimit: DEFAULT_CARDINALITY_LIMIT });
const ctx = { id: 'otlp', logger: pino({ level: 'silent' }), ...(histograms ? { metricProducers: [histograms] } : {}) };
const config = otlpExporterFactory.validate(
  { endpoint: `http://127.0.0.1:${port}`, timeout: '60s', export_interval: '1h', sending_queue: { enabled: false }, retry_on_failure: { enabled: false } },
  'exporters.otlp',
);
const exporter = otlpExporterFactory.create(config, ctx);
class ManualReader extends MetricReader {
  constructor() {
    super(histograms ? { metricProducers: [histograms] } : {});
  }
  onForceFlush() {
    return Promise.resolve();
  }
  onShutdown() {
    return Promise.resolve();
  }
}
histograms?.bind(exporter.reader);
const sizer = new ManualReader();
// As the agent builds it (src/pipeline/service.ts): its resource, its cardinality limit per metric.
const provider = new MeterProvider({
  resource: buildResource({}),
  readers: [exporter.reader, sizer],
  views: [{ instrumentName: '*', aggregationCardinalityLimit: DEFAULT_CARDINALITY_LIMIT }],
});
await exporter.start();
const sink = new InstrumentSink(provider.getMeter('flowtel'), histograms);

const flows = Math.max(1, Math.round(SERIES / 4));
// One attribute object per flow, kept across collections (as the receivers keep them).
const flowAttributes = [];
for (let i = 0; i < flows; i++) {
  flowAttributes.push({
    'source.address': '10.1.0.1',
    'destination.address': `10.${2 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
    'destination.port': 443,
    'network.transport': 'tcp',
    'network.type': 'ipv4',
    'flow.direction': 'outgoing',
    'process.pid': 4242,
    'process.executable.name': 'curl',
  });
}
const cpuMs = (c) => Number(((c.user + c.system) / 1000).toFixed(1));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

/** One collection interval: the flows' deltas recorded, then exported. */
async function interval(n) {
  const measurements = [];
  for (let i = 0; i < flows; i++) {
    const attributes = flowAttributes[i];
    measurements.push(
      { metric: 'tcp_bytes_sent', value: 1000 + i + n, attributes },
      { metric: 'tcp_bytes_received', value: 50000 + i + n, attributes },
      { metric: 'tcp_connections_opened', value: 1, attributes },
      { metric: 'tcp_rtt_us', value: 100 + ((i + n) % 5000), attributes },
    );
  }
  const r0 = process.cpuUsage();
  sink.consume({ measurements, gaugesReplaced: [], source: 'bench' });
  const record = cpuMs(process.cpuUsage(r0));

  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let heapPeak = heapBefore;
  const sampler = setInterval(() => {
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  }, 5);
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const failedBefore = exporter.failed + exporter.dropped;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let error = null;
  try {
    await exporter.reader.forceFlush();
  } catch (e) {
    error = String(e?.message ?? e);
  }
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const exportCpu = cpuMs(process.cpuUsage(c0));
  eld.disable();
  clearInterval(sampler);
  heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  return {
    record_cpu_ms: record,
    cpu_ms: exportCpu,
    wall_ms: Number(wallMs.toFixed(1)),
    heap_before_mb: Number((heapBefore / 1048576).toFixed(1)),
    heap_peak_mb: Number((heapPeak / 1048576).toFixed(1)),
    eld_p99_ms: Number((eld.percentile(99) / 1e6).toFixed(1)),
    eld_max_ms: Number((eld.max / 1e6).toFixed(1)),
    failed_batches: exporter.failed + exporter.dropped - failedBefore,
    error,
  };
}

// The first interval creates every series; the next ones update them (the agent's every interval after its first).
const intervals = [];
for (let n = 0; n < INTERVALS; n++) intervals.push(await interval(n));
const first = intervals[0];
const steady = intervals.slice(1);

// What one request holding everything would weigh.
const { resourceMetrics } = await sizer.collect();
const payload = ProtobufMetricsSerializer.serializeRequest(resourceMetrics).length;
let points = 0;
for (const sm of resourceMetrics.scopeMetrics) for (const m of sm.metrics) points += m.dataPoints.length;

// The receiver's count arrives over IPC after its reply.
const failed = intervals.reduce((n, i) => n + i.failed_batches, 0);
for (let i = 0; i < 100 && got.points < points * INTERVALS && failed === 0; i++) await new Promise((r) => setTimeout(r, 20));
const received = { ...got };
await provider.shutdown().catch(() => {});
await exporter.shutdown().catch(() => {});
// Wait for the receiver to exit: left behind, it would be reparented and
// counted as another process's CPU by the bench's load check.
const exited = new Promise((resolve) => child.once('exit', resolve));
child.disconnect();
const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
await exited;
clearTimeout(kill);

process.stdout.write(
  `${JSON.stringify({
    series: points,
    intervals: INTERVALS,
    // The first interval (every series new) as the fields of one export…
    ...first,
    // …and the intervals after it (series already kept): medians.
    steady: {
      record_cpu_ms: median(steady.map((i) => i.record_cpu_ms)),
      cpu_ms: median(steady.map((i) => i.cpu_ms)),
      wall_ms: median(steady.map((i) => i.wall_ms)),
      heap_peak_mb: Math.max(...steady.map((i) => i.heap_peak_mb)),
      eld_p99_ms: Math.max(...steady.map((i) => i.eld_p99_ms)),
      eld_max_ms: Math.max(...steady.map((i) => i.eld_max_ms)),
    },
    payload_bytes: payload,
    over_limit: payload > LIMIT,
    failed_batches: failed,
    error: intervals.find((i) => i.error)?.error ?? null,
    // Summed over all intervals: each exports every series (cumulative temporality).
    received,
  })}\n`,
);
process.exit(0);
