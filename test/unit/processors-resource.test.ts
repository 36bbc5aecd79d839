/**
 * resource: the actions change the resource the pipeline's exporters send —
 * checked end to end by decoding what the OTLP test receivers get, for
 * metrics and log records, OTLP/gRPC and OTLP/HTTP; an exporter listed by
 * pipelines with different resource processors is a config error; a reload
 * that changes the actions changes the resource.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, test } from 'node:test';
import { ConfigError, ConfigValidationError, loadConfigFromTexts, validateConfig, type ValidatedConfig } from '../../src/config';
import { exporterFactories } from '../../src/exporters';
import { Service } from '../../src/pipeline/service';
import { processorFactories, resourceProcessorFactory, ResourceProcessor } from '../../src/processors';
import { buildSettledResource } from '../../src/telemetry/resource';
import { silentLogger } from '../../src/util/log';
import { fakeReceiverFactory, fakeReceivers, logRecord } from '../helpers/fake-receiver';
import { freePort } from '../helpers/e2e';
import {
  flattenAttributes,
  flattenLogRecords,
  resourceAttributes,
  startOtlpHttpReceiver,
  startOtlpReceiver,
  type OtlpTestReceiver,
} from '../helpers/otlp-receiver';

const stoppers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stoppers.splice(0).reverse()) await s().catch(() => undefined);
});

function config(text: string): ValidatedConfig {
  return validateConfig(loadConfigFromTexts([{ source: 't.yaml', text }], [], { env: {} }), [
    fakeReceiverFactory,
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

async function grpcReceiver(): Promise<OtlpTestReceiver> {
  const r = await startOtlpReceiver();
  stoppers.push(() => r.close());
  return r;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

test('config: the Collector\'s `attributes` list of actions; errors name the action', () => {
  const c = resourceProcessorFactory.validate({ attributes: [{ key: 'k8s.cluster.name', value: 'prod', action: 'upsert' }] }, 'processors.resource');
  assert.deepEqual(c, { attributes: [{ action: 'upsert', key: 'k8s.cluster.name', value: 'prod' }] });
  assert.throws(() => resourceProcessorFactory.validate({}, 'processors.resource'), (e: unknown) => e instanceof ConfigError && /processors\.resource\.attributes: at least one action is required/.test(e.message));
  assert.throws(
    () => resourceProcessorFactory.validate({ attributes: [{ key: 'x', action: 'upsrt', value: 1 }] }, 'processors.resource'),
    (e: unknown) => e instanceof ConfigError && /processors\.resource\.attributes\[0\]\.action: unknown action "upsrt"; did you mean "upsert"\?/.test(e.message),
  );
  assert.throws(() => resourceProcessorFactory.validate({ actions: [] }, 'processors.resource'), /unknown option "actions".*known options: hash_key, attributes/);
  // Batches pass unchanged: the resource is not in them.
  const p = resourceProcessorFactory.create(c, { id: 'resource', logger: silentLogger() }) as ResourceProcessor;
  const batch = { timeMs: 1, measurements: [{ metric: 'tcp_bytes_sent', value: 1, attributes: { a: 1 } }], gaugesReplaced: [] };
  assert.equal(p.process(batch), batch);
  assert.deepEqual(p.transformResource({ 'service.name': 'flowtel' }), { 'service.name': 'flowtel', 'k8s.cluster.name': 'prod' });
});

test('metrics and logs over OTLP/gRPC: insert, upsert, update, delete, hash (host.id, detected asynchronously), extract', async () => {
  const r = await grpcReceiver();
  const base = await buildSettledResource();
  const hostId = base.attributes['host.id'];
  const service = await run(`
receivers: { fake: {} }
processors:
  resource:
    attributes:
      - { key: deployment.environment.name, value: production, action: insert }
      - { key: service.name, value: flowtel-edge, action: upsert }
      - { key: service.namespace, value: never, action: update }
      - { key: os.version, action: delete }
      - { key: host.id, action: hash }
      - { key: service.version, pattern: "^(?P<version.major>\\\\d+)\\\\.(?P<version.minor>\\\\d+)", action: extract }
exporters: { otlp: { endpoint: "http://${r.endpoint}", export_interval: 1h } }
service:
  pipelines:
    metrics: { receivers: [fake], processors: [resource], exporters: [otlp] }
    logs: { receivers: [fake], processors: [resource], exporters: [otlp] }
`);
  const fake = fakeReceivers.get('fake')!;
  fake.send([{ metric: 'tcp_bytes_sent', value: 5, attributes: { 'destination.port': 443 } }]);
  fake.emit(logRecord(443));
  await service.shutdown();
  const metricsResource = resourceAttributes(r.requests[0]!);
  const logsResource = flattenLogRecords(r.logRequests)[0]!.resource;
  for (const resource of [metricsResource, logsResource]) {
    assert.equal(resource['deployment.environment.name'], 'production');
    assert.equal(resource['service.name'], 'flowtel-edge');
    assert.equal(resource['service.namespace'], undefined, 'update does not create');
    assert.equal(resource['os.version'], undefined);
    assert.equal(resource['os.type'], 'linux', 'the rest is kept');
    assert.equal(resource['host.name'], base.attributes['host.name']);
    if (hostId !== undefined) assert.equal(resource['host.id'], sha256(String(hostId)));
    const [major, minor] = String(base.attributes['service.version']).split('.');
    assert.equal(resource['version.major'], major);
    assert.equal(resource['version.minor'], minor);
  }
  assert.deepEqual(metricsResource, logsResource, 'metrics and log records carry the same resource');
});

test('OTLP/HTTP logs and metrics carry the pipeline\'s resource; an exporter in no resource pipeline keeps the service resource', async () => {
  const http = await startOtlpHttpReceiver();
  stoppers.push(() => http.close());
  const plain = await grpcReceiver();
  const service = await run(`
receivers: { fake: {} }
processors:
  resource: { attributes: [{ key: k8s.cluster.name, value: east, action: upsert }] }
exporters:
  otlphttp: { endpoint: "${http.baseUrl}", export_interval: 1h }
  otlp/plain: { endpoint: "http://${plain.endpoint}", export_interval: 1h }
service:
  pipelines:
    metrics: { receivers: [fake], processors: [resource], exporters: [otlphttp] }
    logs: { receivers: [fake], processors: [resource], exporters: [otlphttp] }
    logs/plain: { receivers: [fake], exporters: [otlp/plain] }
`);
  const fake = fakeReceivers.get('fake')!;
  fake.send([{ metric: 'tcp_bytes_sent', value: 5, attributes: {} }]);
  fake.emit(logRecord(1));
  await service.shutdown();
  assert.equal(resourceAttributes(http.requests[0]!)['k8s.cluster.name'], 'east');
  assert.equal(flattenLogRecords(http.logRequests)[0]!.resource['k8s.cluster.name'], 'east');
  const plainResource = flattenAttributes(plain.logRequests[0]!.resourceLogs[0]!.resource.attributes);
  assert.equal(plainResource['k8s.cluster.name'], undefined);
  assert.equal(plainResource['service.name'], 'flowtel');
});

test('prometheus: target_info shows the transformed resource', async () => {
  const port = await freePort();
  const service = await run(`
receivers: { fake: {} }
processors: { resource: { attributes: [{ key: k8s.cluster.name, value: east, action: upsert }, { key: host.name, action: delete }] } }
exporters: { prometheus: { endpoint: "127.0.0.1:${port}" } }
service: { pipelines: { metrics: { receivers: [fake], processors: [resource], exporters: [prometheus] } } }
`);
  fakeReceivers.get('fake')!.send([{ metric: 'tcp_bytes_sent', value: 5, attributes: { 'destination.port': 443 } }]);
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const targetInfo = text.split('\n').find((l) => l.startsWith('target_info{'));
  assert.ok(targetInfo, text);
  assert.match(targetInfo, /k8s_cluster_name="east"/);
  assert.doesNotMatch(targetInfo, /host_name=/);
  assert.match(targetInfo, /service_name="flowtel"/);
  assert.match(text, /tcp_bytes_sent_total\{[^}]*destination_port="443"[^}]*\} 5/);
  await service.shutdown();
});

test('an exporter listed by pipelines with different resource processors is a config error naming both', () => {
  assert.throws(
    () =>
      config(`
receivers: { fake: {} }
processors:
  resource/a: { attributes: [{ key: team, value: a, action: upsert }] }
exporters: { otlp: {} }
service:
  pipelines:
    metrics: { receivers: [fake], processors: [resource/a], exporters: [otlp] }
    metrics/b: { receivers: [fake], exporters: [otlp] }
`),
    (e: unknown) => {
      assert.ok(e instanceof ConfigValidationError);
      assert.match(
        e.message,
        /service\.pipelines\.metrics\/b\.exporters\[0\]: exporter "otlp" is listed by pipelines metrics \(resource processors: resource\/a\) and metrics\/b \(no resource processor\): an exporter sends one resource/,
      );
      assert.match(e.message, /give each its own exporter id \(e\.g\. otlp\/metrics_b\)/);
      return true;
    },
  );
  // Two ids with the same actions are the same resource: fine.
  config(`
receivers: { fake: {} }
processors:
  resource/a: { attributes: [{ key: team, value: a, action: upsert }] }
  resource/b: { attributes: [{ key: team, value: a, action: upsert }] }
exporters: { otlp: {} }
service:
  pipelines:
    metrics: { receivers: [fake], processors: [resource/a], exporters: [otlp] }
    logs: { receivers: [fake], processors: [resource/b], exporters: [otlp] }
`);
});

test('reload: changed resource actions change what the exporter sends; the receiver is kept', async () => {
  const r = await grpcReceiver();
  const text = (team: string): string => `
receivers: { fake: {} }
processors: { resource: { attributes: [{ key: team, value: ${team}, action: upsert }] } }
exporters: { otlp: { endpoint: "http://${r.endpoint}", export_interval: 1h } }
service: { pipelines: { logs: { receivers: [fake], processors: [resource], exporters: [otlp] } } }
`;
  const service = await run(text('red'));
  const fake = fakeReceivers.get('fake')!;
  fake.emit(logRecord(1));
  await service.reload(config(text('blue')));
  assert.equal(fakeReceivers.get('fake'), fake);
  fake.emit(logRecord(2));
  await service.shutdown();
  const teams = flattenLogRecords(r.logRequests).map((x) => [x.attributes['destination.port'], x.resource.team]);
  assert.deepEqual(teams.sort(), [
    [1, 'red'],
    [2, 'blue'],
  ]);
});
