/**
 * End to end, the Collector-style processors and the logs side of
 * self-telemetry with the real agent and kernel: `flowtel run` with
 * ebpf_tcp's connection_events in a logs pipeline (filter → resource →
 * batch) to `otlphttp` (the OTLP/HTTP test receiver decodes the protobuf),
 * the same exporter in a metrics pipeline (filter → resource → batch with
 * send_batch_max_size), a prometheus exporter without the resource
 * processor, and the pprof extension.
 *
 * Refused connections between two test namespaces are the ground truth: 12
 * to a kept port become exactly 12 records in 3 requests of 4 (the batch
 * size), 3 to an excluded port none; the 2 held by the batch processor at
 * SIGTERM are delivered before the agent exits.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { after, before, test } from 'node:test';
import { Agent, TempDir, freePort, promSelect, promSum, scrape, sleep } from '../helpers/e2e';
import { TestNet } from '../helpers/netns';
import { flattenLogRecords, flattenMetrics, resourceAttributes, startOtlpHttpReceiver, type FlatLogRecord, type OtlpHttpTestReceiver } from '../helpers/otlp-receiver';

const net = TestNet.create('pl', 81);
const { client: C, server: S } = net;
const tmp = new TempDir();
let agent: Agent | undefined;
let otlp: OtlpHttpTestReceiver;
let promUrl = '';
let pprofUrl = '';

const KEPT = 7361;
const EXCLUDED = 7362;

before(async () => {
  otlp = await startOtlpHttpReceiver();
  const [promPort, pprofPort] = [await freePort(), await freePort()];
  promUrl = `http://127.0.0.1:${promPort}/metrics`;
  pprofUrl = `http://127.0.0.1:${pprofPort}/debug/pprof/`;
  const file = tmp.write(
    'pipeline.yaml',
    `receivers:
  ebpf_tcp:
    collection_interval: 500ms
    connection_events: { failures: true }
processors:
  filter/mine: { include: { cidrs: ["${S.ip4}/32"] }, exclude: { ports: [${EXCLUDED}] } }
  resource:
    attributes:
      - { key: k8s.cluster.name, value: pl-test, action: upsert }
      - { key: host.name, action: hash }
  # send_batch_max_size too: records that reach the batch processor together
  # (one ring-buffer drain) would otherwise leave as one larger batch, as in the Collector.
  batch/logs: { send_batch_size: 4, send_batch_max_size: 4, timeout: 1h }
  batch/metrics: { send_batch_size: 10, send_batch_max_size: 10 }
exporters:
  otlphttp: { endpoint: "${otlp.baseUrl}", export_interval: 1s }
  prometheus: { endpoint: "127.0.0.1:${promPort}" }
extensions:
  pprof: { endpoint: "127.0.0.1:${pprofPort}" }
service:
  extensions: [pprof]
  telemetry: { metrics: { level: basic } }
  pipelines:
    logs: { receivers: [ebpf_tcp], processors: [filter/mine, resource, batch/logs], exporters: [otlphttp] }
    # Filtered too: on a busy host, thousands of series in requests of 10 points would flood the test receiver.
    metrics: { receivers: [ebpf_tcp], processors: [filter/mine, resource, batch/metrics], exporters: [otlphttp] }
    metrics/prom: { receivers: [ebpf_tcp], exporters: [prometheus] }
`,
  );
  agent = Agent.spawn(['run', '--config', file]);
  await agent.ready();
});

after(async () => {
  await agent?.kill();
  await otlp?.close();
  net.destroy();
  tmp.cleanup();
});

const refused = (port: number): FlatLogRecord[] =>
  flattenLogRecords(otlp.logRequests).filter((r) => r.eventName === 'flowtel.tcp.connection_failed' && r.attributes['destination.port'] === port);

async function refuse(port: number, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const { result } = await net.traffic<{ error: string }>(C, ['connect', '--host', S.ip4, '--port', String(port)]);
    assert.equal(result.error, 'ECONNREFUSED');
  }
}

test('logs: filter, resource and batch — 12 refused connections are exactly 12 records in 3 requests of 4; the excluded port none', async () => {
  await refuse(KEPT, 12);
  await refuse(EXCLUDED, 3);
  await otlp.waitForLogs(() => refused(KEPT).length >= 12, 15_000).catch((e: unknown) => {
    const sizes = otlp.logRequests.map((q) => flattenLogRecords([q]).length);
    throw new Error(`${String(e)}; ${refused(KEPT).length} records of port ${KEPT} so far, requests of ${sizes.join(', ')}\n${agent!.describe()}`);
  });
  await sleep(1_500);
  assert.equal(refused(KEPT).length, 12, agent!.describe());
  assert.equal(refused(EXCLUDED).length, 0);
  // Only records of this test's namespaces pass the filter, so the batches are exactly ours.
  assert.deepEqual(otlp.logRequests.map((q) => flattenLogRecords([q]).length), [4, 4, 4]);
  assert.ok(otlp.logRequests.every((q) => q.encoding === 'proto'));
  const r = refused(KEPT)[0]!;
  assert.equal(r.attributes['source.address'], C.ip4);
  assert.equal(r.resource['k8s.cluster.name'], 'pl-test');
  assert.equal(r.resource['host.name'], createHash('sha256').update(hostname()).digest('hex'));
  assert.equal(r.resource['service.name'], 'flowtel');
});

test('metrics: the same resource on the otlphttp requests, each at most 10 data points; prometheus keeps the plain resource', async () => {
  await otlp.waitFor((reqs) => reqs.some((q) => flattenMetrics([q]).reduce((n, m) => n + m.points.length, 0) === 10), 15_000);
  const sizes = otlp.requests.map((q) => flattenMetrics([q]).reduce((n, m) => n + m.points.length, 0));
  assert.ok(sizes.every((n) => n >= 1 && n <= 10), `points per request: ${sizes.join(', ')}`);
  for (const q of otlp.requests) {
    const resource = resourceAttributes(q);
    assert.equal(resource['k8s.cluster.name'], 'pl-test');
    assert.equal(resource['host.name'], createHash('sha256').update(hostname()).digest('hex'));
  }
  const s = await scrape(promUrl);
  const targetInfo = promSelect(s, 'target_info', {});
  assert.equal(targetInfo.length, 1);
  assert.equal(targetInfo[0]!.labels.k8s_cluster_name, undefined);
  assert.equal(targetInfo[0]!.labels.host_name, hostname());
});

test('self-telemetry: log records accepted and dropped by the receiver, sent by the exporter, as the backend counts them', async () => {
  const s = await scrape(promUrl);
  const accepted = promSum(s, 'flowtel_receiver_accepted_log_records_total', { receiver: 'ebpf_tcp' });
  const dropped = promSum(s, 'flowtel_receiver_dropped_log_records_total', { receiver: 'ebpf_tcp' });
  // Other processes on the host may fail connections too: these are lower bounds.
  assert.ok(accepted >= 15, `accepted ${accepted}`);
  assert.ok(dropped >= 3, `dropped ${dropped}`);
  assert.equal(promSum(s, 'flowtel_receiver_refused_log_records_total', { receiver: 'ebpf_tcp' }), 0);
  // What passes the filter is exactly ours, so the exporter's count is exact.
  assert.equal(promSum(s, 'flowtel_exporter_sent_log_records_total', { exporter: 'otlphttp' }), flattenLogRecords(otlp.logRequests).length);
  assert.equal(promSum(s, 'flowtel_exporter_send_failed_log_records_total', { exporter: 'otlphttp' }), 0);
  assert.equal(promSum(s, 'flowtel_exporter_log_queue_size', { exporter: 'otlphttp' }), 0);
});

test('pprof: a CPU profile of the running agent', async () => {
  const res = await fetch(`${pprofUrl}profile?seconds=1`);
  assert.equal(res.status, 200);
  const profile = (await res.json()) as { nodes: Array<{ callFrame: { url: string } }>; startTime: number; endTime: number };
  assert.ok(profile.endTime - profile.startTime >= 950_000);
  assert.ok(profile.nodes.some((n) => n.callFrame.url.includes('/dist/src/')), 'frames of the agent\'s own code');
});

test('SIGTERM: the 2 records the batch processor holds are delivered before the agent exits', async () => {
  const before = refused(KEPT).length;
  await refuse(KEPT, 2);
  // Let the receiver hand them over (ring buffer drained every 50 ms, collections every 500 ms).
  await sleep(2_000);
  assert.equal(refused(KEPT).length, before, 'held: fewer than send_batch_size');
  const exit = await agent!.stop('SIGTERM');
  assert.equal(exit.code, 0, agent!.describe());
  assert.equal(refused(KEPT).length, before + 2);
  assert.equal(otlp.logRequests.map((q) => flattenLogRecords([q]).length).at(-1), 2);
});
