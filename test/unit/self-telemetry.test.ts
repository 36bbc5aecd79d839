/**
 * Self-telemetry: what each level emits, counting the receivers' batches,
 * duck-typed exporter counters, the `service.telemetry.metrics` config, and
 * the Prometheus exporters of a Service serving it (plus the dedicated
 * endpoint at `address`, with only flowtel_*).
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';
import { MetricReader } from '@opentelemetry/sdk-metrics';
import { loadConfigFromTexts, validateConfig, ConfigValidationError } from '../../src/config';
import { exporterFactories } from '../../src/exporters';
import { extensionFactories, startExtensions, type RunningExtensions } from '../../src/extensions';
import type { ComponentFactory, MetricsExporter, MetricsReceiver, ReceiverContext } from '../../src/pipeline/component';
import type { Measurement, MeasurementBatch } from '../../src/pipeline/measurements';
import { Service } from '../../src/pipeline/service';
import { SelfTelemetry, selfTelemetryMetrics } from '../../src/telemetry/self-telemetry';
import { METRICS } from '../../src/metrics/definitions';
import { silentLogger } from '../../src/util/log';
import { freePort } from '../helpers/e2e';

const sample = () => ({ rssBytes: 50e6, heapUsedBytes: 20e6, cpuSeconds: 1.5, uptimeSeconds: 12 });
const view = (receivers: string[], exporters: MetricsExporter[] = []) => ({
  receivers: new Map(receivers.map((id) => [id, { id } as MetricsReceiver])),
  exporters: new Map(exporters.map((e) => [e.id, e])),
});
const batch = (measurements: Measurement[], gaugesReplaced: string[] = []): MeasurementBatch => ({ timeMs: 0, measurements, gaugesReplaced, source: 'ebpf_tcp' });
const names = (ms: Measurement[]): string[] => [...new Set(ms.map((m) => m.metric))].sort();
const value = (ms: Measurement[], metric: string, attrs: Record<string, string> = {}): number | undefined =>
  ms.find((m) => m.metric === metric && Object.entries(attrs).every(([k, v]) => m.attributes[k] === v))?.value;

const stoppers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stoppers.splice(0).reverse()) await s().catch(() => undefined);
});

test('every self-telemetry metric is defined, and the levels add up', () => {
  for (const name of selfTelemetryMetrics('detailed')) assert.ok(METRICS.has(name), name);
  assert.deepEqual(selfTelemetryMetrics('none'), []);
  const basic = selfTelemetryMetrics('basic');
  const normal = selfTelemetryMetrics('normal');
  assert.ok(basic.includes('flowtel_process_memory_rss') && basic.includes('flowtel_receiver_accepted_measurements'));
  assert.ok(!basic.includes('flowtel_event_loop_delay'));
  assert.ok(basic.every((n) => normal.includes(n)) && normal.includes('flowtel_event_loop_delay'));
  assert.deepEqual(selfTelemetryMetrics('detailed'), normal);
});

test('basic: process numbers and accepted measurements per receiver; batches pass unchanged', () => {
  const t = new SelfTelemetry({ level: 'basic', logger: silentLogger(), sampleProcess: sample });
  t.serviceChanged(view(['ebpf_tcp', 'netstat']));
  const b = batch([
    { metric: 'tcp_bytes_sent', value: 10, attributes: {} },
    { metric: 'flowtel_ebpf_records', value: 2, attributes: { receiver: 'ebpf_tcp' } },
  ]);
  assert.equal(t.receiverBatch('ebpf_tcp', b), b);
  t.receiverBatch('ebpf_tcp', batch([{ metric: 'tcp_bytes_sent', value: 1, attributes: {} }]));
  const ms = t.collect();
  assert.deepEqual(names(ms), [
    'flowtel_process_cpu_seconds',
    'flowtel_process_heap_used',
    'flowtel_process_memory_rss',
    'flowtel_process_uptime',
    'flowtel_receiver_accepted_measurements',
  ]);
  assert.equal(value(ms, 'flowtel_process_memory_rss'), 50e6);
  assert.equal(value(ms, 'flowtel_process_cpu_seconds'), 1.5);
  assert.equal(value(ms, 'flowtel_receiver_accepted_measurements', { receiver: 'ebpf_tcp' }), 3);
  assert.equal(value(ms, 'flowtel_receiver_accepted_measurements', { receiver: 'netstat' }), 0);
});

test('none: nothing, and the receivers\' flowtel_* measurements are taken out of their batches', () => {
  const t = new SelfTelemetry({ level: 'none', address: '127.0.0.1:1', logger: silentLogger(), sampleProcess: sample });
  t.serviceChanged(view(['ebpf_tcp']));
  assert.equal(t.url, undefined, 'no endpoint at level none');
  const out = t.receiverBatch(
    'ebpf_tcp',
    batch(
      [
        { metric: 'tcp_bytes_sent', value: 10, attributes: {} },
        { metric: 'flowtel_tracked_connections', value: 2, attributes: {} },
      ],
      ['tcp_connections', 'flowtel_tracked_connections'],
    ),
  );
  assert.deepEqual(out.measurements.map((m) => m.metric), ['tcp_bytes_sent']);
  assert.deepEqual(out.gaugesReplaced, ['tcp_connections']);
  assert.deepEqual(t.collect(), []);
  const plain = batch([{ metric: 'tcp_bytes_sent', value: 1, attributes: {} }]);
  assert.equal(t.receiverBatch('ebpf_tcp', plain), plain, 'a batch without flowtel_* is passed as it is');
});

test('normal and detailed: event-loop delay quantiles once started, failed collections', async () => {
  const normal = new SelfTelemetry({ level: 'normal', logger: silentLogger(), sampleProcess: sample, receiverFailures: (id) => (id === 'netstat' ? 2 : 0) });
  const detailed = new SelfTelemetry({ level: 'detailed', logger: silentLogger(), sampleProcess: sample });
  normal.serviceChanged(view(['netstat']));
  await normal.start();
  await detailed.start();
  stoppers.push(() => normal.shutdown(), () => detailed.shutdown());
  await new Promise((r) => setTimeout(r, 100));
  const ms = normal.collect();
  assert.deepEqual(ms.filter((m) => m.metric === 'flowtel_event_loop_delay').map((m) => m.attributes.quantile), ['0.5', '0.99']);
  for (const m of ms.filter((x) => x.metric === 'flowtel_event_loop_delay')) assert.ok(m.value >= 0 && m.value < 1, `delay ${m.value} s`);
  assert.equal(value(ms, 'flowtel_receiver_failed_collections', { receiver: 'netstat' }), 2);
  assert.deepEqual(detailed.collect().filter((m) => m.metric === 'flowtel_event_loop_delay').map((m) => m.attributes.quantile), ['0.5', '0.9', '0.99', '1']);
});

test('exporter counters are read duck-typed, only those an exporter has', () => {
  const reader = {} as MetricReader;
  const otlp = { id: 'otlp', reader, exportSuccesses: 5, exportFailures: 2, start: async () => undefined, shutdown: async () => undefined };
  const queued = {
    id: 'otlp/queued',
    reader,
    sent: 100,
    failed: 3,
    dropped: 1,
    retries: 4,
    queueSize: () => 7,
    start: async () => undefined,
    shutdown: async () => undefined,
  };
  const prom = { id: 'prometheus', reader, start: async () => undefined, shutdown: async () => undefined };
  const t = new SelfTelemetry({ level: 'basic', logger: silentLogger(), sampleProcess: sample });
  t.serviceChanged(view([], [otlp, queued, prom]));
  const ms = t.collect().filter((m) => m.metric.startsWith('flowtel_exporter_'));
  const got = ms.map((m) => `${m.attributes.exporter} ${m.metric} ${m.value}`).sort();
  assert.deepEqual(got, [
    'otlp flowtel_exporter_send_failed_requests 2',
    'otlp flowtel_exporter_sent_requests 5',
    'otlp/queued flowtel_exporter_dropped_batches 1',
    'otlp/queued flowtel_exporter_queue_size 7',
    'otlp/queued flowtel_exporter_retries 4',
    'otlp/queued flowtel_exporter_send_failed_batches 3',
    'otlp/queued flowtel_exporter_sent_batches 100',
  ]);
});

test('service.telemetry.metrics: defaults, level values, address checked, address with level none is a warning', () => {
  const base = 'receivers: { netstat: {} }\nexporters: { debug: {} }\n';
  const pipelines = '  pipelines:\n    metrics: { receivers: [netstat], exporters: [debug] }\n';
  const factories = [...Object.values(exporterFactories), ...Object.values(extensionFactories), netstatFactory()] as never[];
  const load = (service: string) => validateConfig(loadConfigFromTexts([{ source: 't.yaml', text: `${base}service:\n${service}${pipelines}` }], [], { env: {} }), factories);
  const plain = { tls: { min_version: '1.2' }, auth: { basic: {} } };
  assert.deepEqual(load('').service.telemetry.metrics, { level: 'normal', ...plain });
  assert.deepEqual(load('  telemetry: { metrics: { level: Detailed, address: ":8888" } }\n').service.telemetry.metrics, { level: 'detailed', address: ':8888', ...plain });
  assert.throws(
    () => load('  telemetry: { metrics: { address: ":8888", tls: { cert_file: /x.pem } } }\n'),
    (e: unknown) => e instanceof ConfigValidationError && /service\.telemetry\.metrics\.tls/.test(e.message) && /key_file/.test(e.message),
  );
  assert.throws(
    () => load('  telemetry: { metrics: { level: verbose } }\n'),
    (e: unknown) => e instanceof ConfigValidationError && /service\.telemetry\.metrics\.level: expected one of "none", "basic", "normal", "detailed"/.test(e.message),
  );
  assert.throws(
    () => load('  telemetry: { metrics: { address: localhost } }\n'),
    (e: unknown) => e instanceof ConfigValidationError && /service\.telemetry\.metrics\.address: expected host:port/.test(e.message),
  );
  assert.throws(
    () => load('  telemetry: { metrics: { readers: [] } }\n'),
    (e: unknown) => e instanceof ConfigValidationError && /service\.telemetry\.metrics\.readers: unknown option "readers"/.test(e.message),
  );
  const none = load('  telemetry: { metrics: { level: none, address: "127.0.0.1:8888" } }\n');
  assert.ok(none.warnings.some((w) => /service\.telemetry\.metrics\.address: ignored, level is none/.test(w)), none.warnings.join('\n'));
});

function netstatFactory(): ComponentFactory<unknown, unknown> {
  return { kind: 'receiver', type: 'netstat', stability: 'alpha', options: [], defaultConfig: () => ({}), validate: () => ({}), create: () => ({}) };
}

/** A receiver that sends one batch per collect(), with flow and flowtel_* measurements. */
class BatchReceiver implements MetricsReceiver {
  constructor(
    readonly id: string,
    private readonly ctx: ReceiverContext,
  ) {}
  async start(): Promise<void> {}
  async collect(): Promise<void> {
    this.ctx.next.consume({
      timeMs: Date.now(),
      measurements: [
        { metric: 'tcp_bytes_sent', value: 100, attributes: { 'destination.port': 443 } },
        { metric: 'flowtel_ebpf_records', value: 3, attributes: { receiver: this.id, kind: 'event' } },
        { metric: 'flowtel_tracked_connections', value: 9, attributes: { receiver: this.id } },
      ],
      gaugesReplaced: ['flowtel_tracked_connections'],
      source: this.id,
    });
  }
  async shutdown(): Promise<void> {}
}

test('a Service: prometheus exporters serve self-telemetry, the address endpoint serves only flowtel_*', async () => {
  const [promPort, selfPort] = [await freePort(), await freePort()];
  const receiverFactory: ComponentFactory<unknown, MetricsReceiver, ReceiverContext> = {
    kind: 'receiver',
    type: 'batches',
    stability: 'development',
    options: [],
    defaultConfig: () => ({}),
    validate: () => ({}),
    create: (_c, ctx) => new BatchReceiver(ctx.id, ctx),
  };
  const config = validateConfig(
    loadConfigFromTexts(
      [
        {
          source: 't.yaml',
          text: `
receivers: { batches: {} }
exporters:
  prometheus: { endpoint: "127.0.0.1:${promPort}" }
  debug: { export_interval: 1h, output: stderr }
service:
  telemetry: { metrics: { address: "127.0.0.1:${selfPort}" } }
  pipelines:
    metrics: { receivers: [batches], exporters: [prometheus, debug] }
`,
        },
      ],
      [],
      { env: {} },
    ),
    [receiverFactory, ...Object.values(exporterFactories)] as never[],
  );
  const service = Service.build(config, silentLogger());
  let ext: RunningExtensions | undefined;
  stoppers.push(async () => {
    await service.shutdown();
    await ext?.shutdown();
  });
  ext = await startExtensions(config, service, silentLogger());
  await service.start();
  assert.deepEqual([...ext.telemetry.servedBy], ['prometheus'], 'only the pull exporter gets the instruments');
  await service.collect();
  await service.collect();
  await new Promise((r) => setTimeout(r, 100)); // event-loop delay samples (10 ms resolution)

  const scrape = async (url: string): Promise<string> => {
    const r = await fetch(url);
    assert.equal(r.status, 200);
    return r.text();
  };
  const metric = (text: string, name: string): number[] =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
      .map((l) => Number(l.split(' ').pop()));

  const prom = await scrape(`http://127.0.0.1:${promPort}/metrics`);
  assert.ok(metric(prom, 'flowtel_process_memory_rss')[0]! > 0, prom);
  assert.deepEqual(metric(prom, 'flowtel_receiver_accepted_measurements_total'), [6]);
  assert.equal(metric(prom, 'flowtel_event_loop_delay').length, 2);
  assert.ok(metric(prom, 'tcp_bytes_sent_total').length > 0, 'the flow metrics are still there');

  const own = await scrape(ext.telemetry.url!);
  assert.equal(ext.telemetry.url, `http://127.0.0.1:${selfPort}/metrics`);
  const served = new Set(own.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{ ]/)[0]));
  assert.ok(!served.has('tcp_bytes_sent_total'), 'no flow metrics on the self-telemetry endpoint');
  for (const n of served) assert.ok(n!.startsWith('flowtel_') || n === 'target_info', `unexpected ${n} on the self-telemetry endpoint`);
  assert.deepEqual(metric(own, 'flowtel_ebpf_records_total'), [6], 'the receivers\' own counters pass through');
  assert.deepEqual(metric(own, 'flowtel_tracked_connections'), [9]);
  assert.deepEqual(metric(own, 'flowtel_receiver_accepted_measurements_total'), [6]);
  assert.ok(metric(own, 'flowtel_process_cpu_seconds_total')[0]! > 0);

  await service.shutdown();
  await ext.shutdown();
  await assert.rejects(fetch(ext.telemetry.url!), 'the self-telemetry endpoint is closed');
});

test('the self-telemetry endpoint cannot listen: the start fails naming the option', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as AddressInfo).port;
  try {
    const t = new SelfTelemetry({ level: 'basic', address: `127.0.0.1:${port}`, logger: silentLogger() });
    await assert.rejects(t.start(), /self-telemetry: cannot listen on 127\.0\.0\.1:\d+: the port is already in use; set service\.telemetry\.metrics\.address/);
    await t.shutdown();
  } finally {
    blocker.close();
  }
});
