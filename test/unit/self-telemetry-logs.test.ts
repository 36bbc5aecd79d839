/**
 * Self-telemetry of logs pipelines, counted in a running Service: records
 * accepted per receiver, refused (memory_limiter) and dropped (filter) on the
 * way, and sent / failed / queued per exporter — the numbers checked against
 * what the OTLP test receiver got.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { loadConfigFromTexts, validateConfig } from '../../src/config';
import { exporterFactories } from '../../src/exporters';
import { extensionFactories, startExtensions } from '../../src/extensions';
import type { Measurement } from '../../src/pipeline/measurements';
import { Service } from '../../src/pipeline/service';
import { processorFactories } from '../../src/processors';
import { selfTelemetryMetrics } from '../../src/telemetry/self-telemetry';
import { silentLogger } from '../../src/util/log';
import { fakeReceiverFactory, fakeReceivers, logRecord } from '../helpers/fake-receiver';
import { flattenLogRecords, startOtlpReceiver } from '../helpers/otlp-receiver';

const stoppers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stoppers.splice(0).reverse()) await s().catch(() => undefined);
});

const series = (ms: readonly Measurement[], prefix: string): string[] =>
  ms
    .filter((m) => m.metric.startsWith(prefix) && m.metric.includes('log'))
    .map((m) => `${m.metric}{${Object.entries(m.attributes).map(([k, v]) => `${k}=${v}`).join(',')}} ${m.value}`)
    .sort();

test('the logs metrics are at level basic', () => {
  const basic = selfTelemetryMetrics('basic');
  for (const name of [
    'flowtel_receiver_accepted_log_records',
    'flowtel_receiver_refused_log_records',
    'flowtel_receiver_dropped_log_records',
    'flowtel_exporter_sent_log_records',
    'flowtel_exporter_send_failed_log_records',
    'flowtel_exporter_dropped_log_records',
    'flowtel_exporter_log_queue_size',
  ]) {
    assert.ok(basic.includes(name), name);
  }
});

test('accepted / dropped / refused per receiver, sent / failed / queued per exporter', async () => {
  const r = await startOtlpReceiver();
  stoppers.push(() => r.close());
  const config = validateConfig(
    loadConfigFromTexts(
      [
        {
          source: 't.yaml',
          text: `
receivers: { fake: {}, fake/2: {}, fake/m: {} }
processors:
  filter: { exclude: { ports: [22] } }
  memory_limiter: { limit_mib: 1, check_interval: 1h }   # always above: refuses everything
exporters:
  otlp: { endpoint: "http://${r.endpoint}", export_interval: 1h, retry_on_failure: { initial_interval: 1h, max_interval: 1h, max_elapsed_time: 0s } }
  otlp/m: { endpoint: "http://${r.endpoint}", export_interval: 1h }
service:
  telemetry: { metrics: { level: basic } }
  pipelines:
    logs: { receivers: [fake], processors: [filter], exporters: [otlp] }
    logs/limited: { receivers: [fake/2], processors: [memory_limiter], exporters: [otlp] }
    metrics: { receivers: [fake/m], exporters: [otlp/m] }
`,
        },
      ],
      [],
      { env: {} },
    ),
    [fakeReceiverFactory, ...Object.values(exporterFactories), ...Object.values(processorFactories), ...Object.values(extensionFactories)] as never[],
  );
  const service = Service.build(config, silentLogger());
  const running = await startExtensions(config, service, silentLogger());
  stoppers.push(() => running.shutdown());
  await service.start();
  stoppers.push(() => service.shutdown());

  const [fake, fake2] = [fakeReceivers.get('fake')!, fakeReceivers.get('fake/2')!];
  fake.emit(logRecord(443), logRecord(22), logRecord(80));
  fake.emit(logRecord(22));
  fake2.emit(logRecord(1), logRecord(2), logRecord(3));
  const logs = service.exporter('otlp')!.logs!;
  await logs.flushLogs();
  assert.deepEqual(flattenLogRecords(r.logRequests).map((x) => x.attributes['destination.port']).sort(), [443, 80].sort());

  // A rejected batch (permanent error) and a batch waiting for its retry.
  r.setBehavior('invalid_argument', { times: 1 });
  fake.emit(logRecord(5), logRecord(6));
  await logs.flushLogs();
  r.setBehavior('unavailable');
  fake.emit(logRecord(7));
  await logs.flushLogs();

  const ms = running.telemetry.collect();
  assert.deepEqual(series(ms, 'flowtel_receiver_'), [
    'flowtel_receiver_accepted_log_records{receiver=fake/2} 3',
    'flowtel_receiver_accepted_log_records{receiver=fake} 7',
    'flowtel_receiver_dropped_log_records{receiver=fake/2} 0',
    'flowtel_receiver_dropped_log_records{receiver=fake} 2',
    'flowtel_receiver_refused_log_records{receiver=fake/2} 3',
    'flowtel_receiver_refused_log_records{receiver=fake} 0',
  ]);
  assert.deepEqual(series(ms, 'flowtel_exporter_'), [
    'flowtel_exporter_dropped_log_records{exporter=otlp} 0',
    'flowtel_exporter_log_queue_size{exporter=otlp} 1',
    'flowtel_exporter_send_failed_log_records{exporter=otlp} 2',
    'flowtel_exporter_sent_log_records{exporter=otlp} 2',
  ]);
  // otlp/m and fake/m are in no logs pipeline: no log series for them.
  assert.equal(ms.some((m) => m.metric.includes('log_') && (m.attributes.exporter === 'otlp/m' || m.attributes.receiver === 'fake/m')), false);

  // At shutdown the batch waiting for its retry gets one last attempt, fails, and is counted as failed.
  await service.shutdown();
  const after = running.telemetry.collect();
  assert.ok(series(after, 'flowtel_exporter_').includes('flowtel_exporter_send_failed_log_records{exporter=otlp} 3'), series(after, 'flowtel_exporter_').join('\n'));
  assert.ok(series(after, 'flowtel_exporter_').includes('flowtel_exporter_log_queue_size{exporter=otlp} 0'));
});
