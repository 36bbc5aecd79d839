/**
 * The logs pipeline in a Service: a receiver's ctx.logs fans out to the logs
 * pipelines that list it, through their processors (attributes, filter) to
 * the exporters' logs sides (otlp over gRPC to the test receiver, file as
 * OTLP JSON lines); the resource is the metrics'; the otlp logs side queues
 * and retries like the metrics; a SIGHUP-style reload keeps the receiver and
 * retargets its logs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, test } from 'node:test';
import { loadConfigFromTexts, validateConfig, ConfigValidationError, type ValidatedConfig } from '../../src/config';
import { exporterFactories } from '../../src/exporters';
import { processorFactories } from '../../src/processors';
import type { ComponentFactory, MetricsReceiver, ReceiverContext } from '../../src/pipeline/component';
import { Severity, type LogRecordData } from '../../src/pipeline/logs';
import { Service } from '../../src/pipeline/service';
import { silentLogger } from '../../src/util/log';
import { decodeExportLogsServiceRequestJson } from '../helpers/otlp-proto';
import { flattenLogRecords, flattenMetrics, resourceAttributes, startOtlpReceiver, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const stoppers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stoppers.splice(0).reverse()) await s().catch(() => undefined);
});

const record = (port: number, body = `conn to ${port}`): LogRecordData => ({
  timeMs: 1_700_000_000_000 + port,
  severityNumber: Severity.WARN,
  severityText: 'WARN',
  body,
  eventName: 'flowtel.test.event',
  attributes: { 'network.transport': 'tcp', 'destination.address': '10.0.0.2', 'destination.port': port },
});

/** Receivers made by the fake factory, by id (the latest instance). */
const made = new Map<string, FakeReceiver>();
let created = 0;

class FakeReceiver implements MetricsReceiver {
  constructor(
    readonly id: string,
    readonly ctx: ReceiverContext,
  ) {
    made.set(id, this);
    created++;
  }
  async start(): Promise<void> {}
  async collect(): Promise<void> {
    this.ctx.next.consume({ timeMs: Date.now(), measurements: [{ metric: 'tcp_bytes_sent', value: 7, attributes: { 'destination.port': 1 } }], gaugesReplaced: [], source: this.id });
  }
  emit(...records: LogRecordData[]): void {
    this.ctx.logs?.consumeLogs({ records, source: this.id });
  }
  async shutdown(): Promise<void> {}
}

const fakeFactory: ComponentFactory<unknown, MetricsReceiver, ReceiverContext> = {
  kind: 'receiver',
  type: 'fake',
  stability: 'development',
  signals: ['metrics', 'logs'],
  options: [],
  defaultConfig: () => ({}),
  validate: (raw) => raw ?? {},
  create: (_c, ctx) => new FakeReceiver(ctx.id, ctx),
};
const metricsOnlyFactory: ComponentFactory<unknown, MetricsReceiver, ReceiverContext> = { ...fakeFactory, type: 'metricsonly', signals: undefined };

function config(text: string): ValidatedConfig {
  return validateConfig(loadConfigFromTexts([{ source: 't.yaml', text }], [], { env: {} }), [
    fakeFactory,
    metricsOnlyFactory,
    ...Object.values(exporterFactories),
    ...Object.values(processorFactories),
  ] as never[]);
}

async function run(text: string): Promise<Service> {
  const service = Service.build(config(text), silentLogger());
  await service.start();
  stoppers.push(() => service.shutdown());
  return service;
}

async function otlpReceiver(): Promise<OtlpTestReceiver> {
  const r = await startOtlpReceiver();
  stoppers.push(() => r.close());
  return r;
}

const otlp = (r: OtlpTestReceiver, extra = ''): string => `{ endpoint: "http://${r.endpoint}", export_interval: 1h${extra} }`;

test('receiver → processors → otlp: records arrive once, processed, with the metrics\' resource; metrics pipelines untouched', async () => {
  const r = await otlpReceiver();
  const service = await run(`
receivers: { fake: {}, fake/2: {} }
processors:
  attributes: { actions: [{ key: team, value: net, action: insert }] }
  filter: { exclude: { ports: [22] } }
exporters:
  otlp: ${otlp(r)}
service:
  pipelines:
    metrics: { receivers: [fake], exporters: [otlp] }
    logs: { receivers: [fake, fake/2], processors: [attributes, filter], exporters: [otlp] }
`);
  const fake = made.get('fake')!;
  assert.equal(fake.ctx.logs?.active, true);
  fake.emit(record(443), record(22));
  made.get('fake/2')!.emit(record(8080));
  const logs = await r.waitForLogs((reqs) => flattenLogRecords(reqs).length >= 2);
  await fake.collect();
  await service.shutdown();
  const flat = flattenLogRecords(r.logRequests);
  assert.deepEqual(flat.map((x) => x.attributes['destination.port']).sort(), [443, 8080], 'port 22 filtered out, nothing twice');
  const first = flat.find((x) => x.attributes['destination.port'] === 443)!;
  assert.equal(first.attributes.team, 'net');
  assert.equal(first.eventName, 'flowtel.test.event');
  assert.equal(first.severityNumber, 13);
  assert.equal(first.timeUnixNano, 1_700_000_000_443_000_000n);
  assert.ok(logs.length >= 1);
  // The metrics of the same exporter carry the same resource.
  const metricsReq = r.requests.find((q) => flattenMetrics([q]).some((m) => m.name === 'tcp_bytes_sent'));
  assert.ok(metricsReq, 'the metrics pipeline still works');
  assert.deepEqual(flat[0]!.resource, resourceAttributes(metricsReq));
  assert.equal(flat[0]!.resource['service.name'], 'flowtel');
  assert.equal(flattenMetrics(r.requests).some((m) => m.name.startsWith('flowtel.test')), false);
});

test('a receiver in no logs pipeline gets an inactive ctx.logs; a processor without logs support is rejected in a logs pipeline', async () => {
  const r = await otlpReceiver();
  await run(`
receivers: { fake: {} }
exporters: { otlp: ${otlp(r)} }
service: { pipelines: { metrics: { receivers: [fake], exporters: [otlp] } } }
`);
  assert.equal(made.get('fake')!.ctx.logs?.active, false);
  made.get('fake')!.emit(record(1));
  assert.throws(
    () => config(`
receivers: { fake: {}, metricsonly: {} }
processors: { sampling: { sampling_rate: 2 } }
exporters: { otlp: {}, prometheus: { endpoint: "127.0.0.1:9999" } }
service: { pipelines: { logs: { receivers: [fake, metricsonly], processors: [sampling], exporters: [otlp, prometheus] } } }
`),
    (e: unknown) => {
      assert.ok(e instanceof ConfigValidationError);
      const text = String(e.message);
      assert.match(text, /receiver "metricsonly" \(metricsonly\) cannot be in a logs pipeline/);
      assert.match(text, /processor "sampling" \(sampling\) cannot be in a logs pipeline/);
      assert.match(text, /exporter "prometheus" \(prometheus\) cannot be in a logs pipeline/);
      return true;
    },
  );
});

test('reload: the receiver is kept and its logs follow the new pipelines (none, then another exporter)', async () => {
  const [a, b] = [await otlpReceiver(), await otlpReceiver()];
  const text = (logs: string): string => `
receivers: { fake: {} }
exporters: { otlp/a: ${otlp(a)}, otlp/b: ${otlp(b)} }
service:
  pipelines:
    metrics: { receivers: [fake], exporters: [otlp/a] }
${logs}
`;
  const service = await run(text('    logs: { receivers: [fake], exporters: [otlp/a] }'));
  const before = created;
  const fake = made.get('fake')!;
  fake.emit(record(1));
  await a.waitForLogs((q) => flattenLogRecords(q).length === 1);

  await service.reload(config(text('')));
  assert.equal(made.get('fake'), fake, 'same receiver instance');
  assert.equal(fake.ctx.logs?.active, false, 'no logs pipeline any more');
  fake.emit(record(2));

  await service.reload(config(text('    logs/b: { receivers: [fake], exporters: [otlp/b] }')));
  assert.equal(created, before, 'never re-created');
  assert.equal(fake.ctx.logs?.active, true);
  fake.emit(record(3));
  await b.waitForLogs((q) => flattenLogRecords(q).length === 1);
  await service.shutdown();
  assert.deepEqual(flattenLogRecords(a.logRequests).map((x) => x.attributes['destination.port']), [1]);
  assert.deepEqual(flattenLogRecords(b.logRequests).map((x) => x.attributes['destination.port']), [3]);
});

test('otlp logs: queued and retried like metrics — a backend that fails twice gets every record exactly once', async () => {
  const r = await otlpReceiver();
  r.setBehavior('unavailable', { times: 2 });
  const service = await run(`
receivers: { fake: {} }
exporters:
  otlp: ${otlp(r, ', retry_on_failure: { initial_interval: 50ms, max_interval: 100ms }')}
service: { pipelines: { logs: { receivers: [fake], exporters: [otlp] } } }
`);
  const fake = made.get('fake')!;
  fake.emit(record(1), record(2));
  fake.emit(record(3));
  await r.waitForLogs((q) => flattenLogRecords(q).length >= 3, 10_000);
  const logsSide = service.exporter('otlp')!.logs as unknown as { sent: number; failed: number; retries: number };
  assert.equal(r.rejected, 2);
  assert.ok(logsSide.retries >= 2);
  assert.equal(logsSide.failed, 0);
  await service.shutdown();
  assert.deepEqual(flattenLogRecords(r.logRequests).map((x) => x.attributes['destination.port']).sort(), [1, 2, 3]);
});

test('otlp logs: records still buffered at shutdown are sent', async () => {
  const r = await otlpReceiver();
  const service = await run(`
receivers: { fake: {} }
exporters: { otlp: ${otlp(r)} }
service: { pipelines: { logs: { receivers: [fake], exporters: [otlp] } } }
`);
  made.get('fake')!.emit(record(9));
  await service.shutdown();
  assert.deepEqual(flattenLogRecords(r.logRequests).map((x) => x.attributes['destination.port']), [9]);
});

test('file: one OTLP JSON ExportLogsServiceRequest line per batch, beside the metrics lines', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'flowtel-logs-'));
  stoppers.push(async () => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'out.json');
  const service = await run(`
receivers: { fake: {} }
exporters: { file: { path: "${file}", export_interval: 1h } }
service:
  pipelines:
    metrics: { receivers: [fake], exporters: [file] }
    logs: { receivers: [fake], exporters: [file] }
`);
  const fake = made.get('fake')!;
  fake.emit(record(1), record(2));
  fake.emit(record(3, 'third'));
  await fake.collect();
  await service.shutdown();
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const logLines = lines.filter((l) => 'resourceLogs' in l);
  assert.equal(logLines.length, 2);
  assert.equal(lines.filter((l) => 'resourceMetrics' in l).length, 1);
  const flat = flattenLogRecords(logLines.map(decodeExportLogsServiceRequestJson));
  assert.deepEqual(flat.map((x) => x.attributes['destination.port']), [1, 2, 3]);
  assert.equal(flat[2]!.body, 'third');
  assert.equal(flat[2]!.eventName, 'flowtel.test.event');
  assert.equal(flat[2]!.severityNumber, 13);
  assert.equal(flat[0]!.resource['service.name'], 'flowtel');
});
