/**
 * The k8s processor with the official client (@kubernetes/client-node)
 * against a local API server (test/helpers/fake-kube-api.ts) answering list
 * and watch with the API's JSON: names on both ends, owners, services,
 * labels, watch events, 410 Gone, the API server going away and coming back,
 * node-local pods, and container.id association.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { TempDir, until } from '../helpers/e2e';
import { FakeKubeApi, endpointSlice, node, pod, replicaSet, service } from '../helpers/fake-kube-api';
import type { FlowAttributes, Measurement, MeasurementBatch } from '../../src/pipeline/measurements';
import { K8sProcessor, k8sProcessorFactory } from '../../src/processors/enrich/k8s/factory';
import { METRICS } from '../../src/metrics/definitions';
import { zoneSources } from '../../src/processors/netenrich/zone-source';

const tmp = new TempDir();
const apis: FakeKubeApi[] = [];
const processors: K8sProcessor[] = [];
after(async () => {
  for (const p of processors) await p.shutdown();
  for (const a of apis) await a.stop();
  tmp.cleanup();
});

const WEB_CONTAINER = 'a'.repeat(64);
const DB_CONTAINER = 'b'.repeat(64);

/** A small cluster: web (Deployment) and db (StatefulSet) on node-a, api (DaemonSet) on node-b, a Job on node-a; service db. */
async function cluster(): Promise<FakeKubeApi> {
  const api = await FakeKubeApi.start();
  apis.push(api);
  api.upsert('nodes', node('node-a', '192.168.77.1', 'zone-a'));
  api.upsert('nodes', node('node-b', '192.168.77.2', 'zone-b'));
  api.upsert('replicasets', replicaSet('shop', 'web-5d8f9c7b6d', 'web'));
  api.upsert('pods', pod({ namespace: 'shop', name: 'web-5d8f9c7b6d-x2x7q', uid: 'uid-web', node: 'node-a', ip: '10.244.1.10', labels: { app: 'web', team: 'storefront', 'pod-template-hash': '5d8f9c7b6d' }, owner: { kind: 'ReplicaSet', name: 'web-5d8f9c7b6d' }, containerIds: [WEB_CONTAINER] }));
  api.upsert('pods', pod({ namespace: 'shop', name: 'db-0', uid: 'uid-db', node: 'node-a', ip: '10.244.1.20', labels: { app: 'db' }, owner: { kind: 'StatefulSet', name: 'db' }, containerIds: [DB_CONTAINER] }));
  api.upsert('pods', pod({ namespace: 'infra', name: 'api-7xk2p', uid: 'uid-api', node: 'node-b', ip: '10.244.2.30', labels: { app: 'api' }, owner: { kind: 'DaemonSet', name: 'api' } }));
  api.upsert('pods', pod({ namespace: 'batch', name: 'report-28745-q9z', uid: 'uid-job', node: 'node-a', ip: '10.244.1.40', owner: { kind: 'Job', name: 'report-28745' } }));
  api.upsert('services', service('shop', 'db', '10.96.0.20'));
  api.upsert('endpointslices', endpointSlice('shop', 'db', [{ ip: '10.244.1.20', pod: 'db-0', uid: 'uid-db', node: 'node-a' }]));
  return api;
}

async function start(api: FakeKubeApi, config: Record<string, unknown> = {}, nodeName: string | undefined = 'node-a'): Promise<K8sProcessor> {
  const c = k8sProcessorFactory.validate({ auth_type: 'kubeConfig', kubeconfig: api.kubeconfig(tmp.dir), pod_labels: ['app', 'team'], wait_for_metadata: true, ...config }, 'processors.k8s');
  const p = new K8sProcessor('k8s', c, undefined, nodeName ? { KUBE_NODE_NAME: nodeName } : {});
  processors.push(p);
  await p.start();
  return p;
}

function batch(...attributes: FlowAttributes[]): MeasurementBatch {
  return { timeMs: Date.now(), measurements: attributes.map((a) => ({ metric: 'tcp_bytes_sent', value: 1, attributes: a })), gaugesReplaced: [], source: 'ebpf_tcp' };
}

/** Every flowtel_k8s_* measurement each processor reported, in order (counters are deltas). */
const reported = new Map<K8sProcessor, Measurement[]>();

function run(p: K8sProcessor, b: MeasurementBatch): MeasurementBatch {
  const out = p.process(b);
  const list = reported.get(p) ?? [];
  list.push(...out.measurements.filter((m) => m.metric.startsWith('flowtel_k8s_')));
  reported.set(p, list);
  return out;
}

function enrich(p: K8sProcessor, attributes: FlowAttributes): FlowAttributes {
  return run(p, batch(attributes)).measurements[0]!.attributes;
}

/** The telemetry of one more (empty) batch. */
function own(p: K8sProcessor): Measurement[] {
  return run(p, batch()).measurements.filter((m) => m.metric.startsWith('flowtel_k8s_'));
}

/** Sum of a counter's deltas reported since `from` (an index into reported). */
function counted(p: K8sProcessor, metric: string, match: Record<string, string>, from = 0): number {
  return (reported.get(p) ?? [])
    .slice(from)
    .filter((m) => m.metric === metric && Object.entries(match).every(([k, v]) => m.attributes[k] === v))
    .reduce((a, m) => a + m.value, 0);
}

function k8sOnly(a: FlowAttributes): Record<string, unknown> {
  return Object.fromEntries(Object.entries(a).filter(([k]) => k.includes('.k8s.')));
}

const flow = (src: string, dst: string, extra: FlowAttributes = {}): FlowAttributes => ({ 'network.transport': 'tcp', 'source.address': src, 'destination.address': dst, 'flow.direction': 'outgoing', ...extra });

async function named(p: K8sProcessor, attributes: FlowAttributes, key: string, value: string | undefined): Promise<FlowAttributes> {
  let last: FlowAttributes = {};
  await until(`${key} = ${value}`, () => (last = enrich(p, attributes))[key] === value, 10_000, () => JSON.stringify(last, null, 1));
  return last;
}

test('the flowtel_k8s_* metrics are registered', () => {
  for (const m of ['flowtel_k8s_api_errors', 'flowtel_k8s_relists', 'flowtel_k8s_api_reachable', 'flowtel_k8s_objects']) assert.ok(METRICS.has(m), m);
});

test('both ends named: pods, owners, service backends, ClusterIPs, nodes, labels', async () => {
  const api = await cluster();
  const p = await start(api);
  const out = await named(p, flow('10.244.1.10', '10.244.1.20', { 'destination.port': 5432 }), 'destination.k8s.pod.name', 'db-0');
  assert.deepEqual(k8sOnly(out), {
    'source.k8s.namespace.name': 'shop',
    'source.k8s.pod.name': 'web-5d8f9c7b6d-x2x7q',
    'source.k8s.pod.uid': 'uid-web',
    'source.k8s.node.name': 'node-a',
    'source.k8s.replicaset.name': 'web-5d8f9c7b6d',
    'source.k8s.deployment.name': 'web',
    'source.k8s.pod.label.app': 'web',
    'source.k8s.pod.label.team': 'storefront',
    'destination.k8s.namespace.name': 'shop',
    'destination.k8s.pod.name': 'db-0',
    'destination.k8s.pod.uid': 'uid-db',
    'destination.k8s.node.name': 'node-a',
    'destination.k8s.statefulset.name': 'db',
    'destination.k8s.service.name': 'db',
    'destination.k8s.pod.label.app': 'db',
  });
  // The server's side of the same connection.
  const back = enrich(p, flow('10.244.1.20', '10.244.1.10', { 'source.port': 5432, 'flow.direction': 'incoming' }));
  assert.equal(back['source.k8s.pod.name'], 'db-0');
  assert.equal(back['source.k8s.service.name'], 'db');
  assert.equal(back['destination.k8s.deployment.name'], 'web');
  // A ClusterIP names the service only.
  assert.deepEqual(k8sOnly(enrich(p, flow('10.244.1.10', '10.96.0.20'))), {
    ...Object.fromEntries(Object.entries(k8sOnly(out)).filter(([k]) => k.startsWith('source.'))),
    'destination.k8s.namespace.name': 'shop',
    'destination.k8s.service.name': 'db',
  });
  // A remote pod on another node (cluster-wide pods), a DaemonSet; a Job; a node address.
  const remote = enrich(p, flow('10.244.1.40', '10.244.2.30'));
  assert.equal(remote['source.k8s.job.name'], 'report-28745');
  assert.equal(remote['destination.k8s.daemonset.name'], 'api');
  assert.equal(remote['destination.k8s.node.name'], 'node-b');
  assert.equal(enrich(p, flow('10.244.1.10', '192.168.77.2'))['destination.k8s.node.name'], 'node-b');
  // Not in the cluster: nothing added, the same object back.
  const outside = flow('10.9.9.9', '10.8.8.8');
  assert.equal(enrich(p, outside), outside);
  // Loopback flows are not given a remote end.
  assert.equal(enrich(p, flow('10.244.1.10', '127.0.0.1', { 'flow.direction': 'local' }))['destination.k8s.pod.name'], undefined);
  // The pod watch is cluster-wide (remote_pods), and every resource is watched.
  for (const r of ['pods', 'services', 'endpointslices', 'nodes', 'replicasets']) assert.ok(api.requests.includes(`list ${r}`), `list ${r}: ${api.requests.join(', ')}`);
  const tel = own(p);
  assert.deepEqual(tel.filter((m) => m.metric === 'flowtel_k8s_api_reachable').map((m) => m.value), [1]);
  assert.equal(tel.find((m) => m.metric === 'flowtel_k8s_objects' && m.attributes.resource === 'pods')?.value, 4);
});

test('zones for the zone processor: the node labels of the pod an address belongs to, while the processor runs', async () => {
  // The registry is process-wide: the processors of earlier tests (same addresses, other API servers) go first.
  for (const q of processors) await q.shutdown();
  const api = await cluster();
  const p = await start(api);
  await named(p, flow('10.244.1.10', '10.244.2.30'), 'destination.k8s.pod.name', 'api-7xk2p');
  assert.deepEqual(zoneSources.zoneOf('10.244.2.30'), { availabilityZone: 'zone-b' });
  assert.deepEqual(zoneSources.zoneOf('10.244.1.20'), { availabilityZone: 'zone-a' });
  assert.deepEqual(zoneSources.zoneOf('192.168.77.2'), { availabilityZone: 'zone-b' }, 'a node address');
  assert.equal(zoneSources.zoneOf('10.96.0.20'), undefined, 'a ClusterIP is in no zone');
  assert.equal(zoneSources.zoneOf('10.9.9.9'), undefined);
  // A pod that moves to another zone: the registry's generation moves, so zone caches are refreshed.
  const gen = zoneSources.generation;
  api.upsert('pods', pod({ namespace: 'infra', name: 'api-7xk2p', uid: 'uid-api', node: 'node-a', ip: '10.244.2.30', labels: { app: 'api' }, owner: { kind: 'DaemonSet', name: 'api' } }));
  await until('moved to zone-a', () => zoneSources.zoneOf('10.244.2.30')?.availabilityZone === 'zone-a');
  assert.ok(zoneSources.generation > gen);
  await p.shutdown();
  assert.equal(zoneSources.zoneOf('10.244.2.30'), undefined, 'unregistered at shutdown');
});

test('only pods of this node are local ends; container.id finds the pod first', async () => {
  const api = await cluster();
  const p = await start(api);
  await named(p, flow('10.244.1.10', '10.244.1.20'), 'source.k8s.pod.name', 'web-5d8f9c7b6d-x2x7q');
  // 10.244.2.30 runs on node-b: as a local end it is not this node's.
  assert.equal(enrich(p, flow('10.244.2.30', '10.244.1.20'))['source.k8s.pod.name'], undefined);
  // A host-network process of the db container: the address is the node's, the container says db-0.
  const hostNet = enrich(p, flow('192.168.77.1', '10.244.2.30', { 'container.id': DB_CONTAINER }));
  assert.equal(hostNet['source.k8s.pod.name'], 'db-0');
  assert.equal(hostNet['destination.k8s.pod.name'], 'api-7xk2p');
  // Without the container id, the node's address is the node.
  assert.deepEqual(k8sOnly(enrich(p, flow('192.168.77.1', '10.0.0.1'))), { 'source.k8s.node.name': 'node-a' });
});

test('remote_pods: false watches only this node\'s pods; remote pods named from EndpointSlices', async () => {
  const api = await cluster();
  api.upsert('endpointslices', endpointSlice('infra', 'api', [{ ip: '10.244.2.30', pod: 'api-7xk2p', uid: 'uid-api', node: 'node-b' }]));
  const p = await start(api, { remote_pods: false });
  const out = await named(p, flow('10.244.1.10', '10.244.2.30'), 'destination.k8s.service.name', 'api');
  assert.ok(api.requests.includes('list pods node=node-a'), api.requests.join(', '));
  assert.ok(!api.requests.includes('list pods'), 'no cluster-wide pod list');
  assert.deepEqual(
    Object.fromEntries(Object.entries(k8sOnly(out)).filter(([k]) => k.startsWith('destination.'))),
    { 'destination.k8s.namespace.name': 'infra', 'destination.k8s.service.name': 'api', 'destination.k8s.pod.name': 'api-7xk2p', 'destination.k8s.pod.uid': 'uid-api', 'destination.k8s.node.name': 'node-b' },
  );
  assert.equal(out['source.k8s.deployment.name'], 'web');
});

test('watch events: ADDED, MODIFIED and DELETED change the names', async () => {
  const api = await cluster();
  const p = await start(api);
  const f = flow('10.244.1.10', '10.244.1.50');
  await named(p, f, 'source.k8s.pod.name', 'web-5d8f9c7b6d-x2x7q');
  assert.equal(enrich(p, f)['destination.k8s.pod.name'], undefined);
  api.upsert('pods', pod({ namespace: 'shop', name: 'cache-0', uid: 'uid-cache', node: 'node-b', ip: '10.244.1.50', labels: { app: 'cache' }, owner: { kind: 'StatefulSet', name: 'cache' } }));
  await named(p, f, 'destination.k8s.pod.name', 'cache-0');
  api.upsert('pods', pod({ namespace: 'shop', name: 'cache-0', uid: 'uid-cache', node: 'node-b', ip: '10.244.1.50', labels: { app: 'cache', team: 'platform' }, owner: { kind: 'StatefulSet', name: 'cache' } }));
  await named(p, f, 'destination.k8s.pod.label.team', 'platform');
  api.remove('pods', 'shop', 'cache-0');
  await named(p, f, 'destination.k8s.pod.name', undefined);
  // A finished pod's address is no longer its own.
  api.upsert('pods', pod({ namespace: 'batch', name: 'report-28745-q9z', uid: 'uid-job', node: 'node-a', ip: '10.244.1.40', owner: { kind: 'Job', name: 'report-28745' }, phase: 'Succeeded' }));
  await named(p, flow('10.244.1.10', '10.244.1.40'), 'destination.k8s.pod.name', undefined);
});

test('410 Gone: an expired watch re-lists, and what changed meanwhile is seen', async () => {
  const api = await cluster();
  const p = await start(api);
  const f = flow('10.244.1.10', '10.244.1.60');
  await named(p, f, 'source.k8s.pod.name', 'web-5d8f9c7b6d-x2x7q');
  await until('every resource watched', () => api.watchCount() === 5);
  const mark = reported.get(p)?.length ?? 0;
  const lists = api.requests.filter((r) => r === 'list pods').length;
  // The watch gets ERROR 410 and ends; a pod added now is in no watch's replay (history compacted): only a list finds it.
  api.expireWatches();
  api.upsert('pods', pod({ namespace: 'shop', name: 'late-0', uid: 'uid-late', node: 'node-a', ip: '10.244.1.60' }));
  await named(p, f, 'destination.k8s.pod.name', 'late-0');
  assert.ok(api.requests.filter((r) => r === 'list pods').length > lists, 'pods listed again');
  await until('every resource relisted', () => {
    own(p);
    return ['pods', 'services', 'endpointslices', 'nodes', 'replicasets'].every((resource) => counted(p, 'flowtel_k8s_relists', { resource, reason: 'expired' }, mark) === 1);
  });
  assert.equal(counted(p, 'flowtel_k8s_relists', { reason: 'error' }), 0);
  assert.equal(counted(p, 'flowtel_k8s_api_errors', {}), 0, 'a 410 is not an error');
});

test('API server down: names stay, the outage is counted, and it recovers', async () => {
  const api = await cluster();
  const p = await start(api);
  const f = flow('10.244.1.10', '10.244.1.20');
  await named(p, f, 'destination.k8s.pod.name', 'db-0');
  await until('every resource watched', () => api.watchCount() === 5);
  const mark = reported.get(p)?.length ?? 0;
  await api.stop();
  await until('the outage is visible', () => own(p).find((m) => m.metric === 'flowtel_k8s_api_reachable')?.value === 0 && counted(p, 'flowtel_k8s_api_errors', { reason: 'unreachable' }, mark) > 0);
  assert.equal(counted(p, 'flowtel_k8s_api_errors', {}, mark), counted(p, 'flowtel_k8s_api_errors', { reason: 'unreachable' }, mark), 'every error is "unreachable"');
  // New flows (new attribute objects) of known pods are still named.
  const out = enrich(p, { ...f });
  assert.equal(out['source.k8s.deployment.name'], 'web');
  assert.equal(out['destination.k8s.pod.name'], 'db-0');
  await api.restart();
  await until('reachable again', () => own(p).find((m) => m.metric === 'flowtel_k8s_api_reachable')?.value === 1, 15_000);
  api.upsert('pods', pod({ namespace: 'shop', name: 'after-0', uid: 'uid-after', node: 'node-a', ip: '10.244.1.70' }));
  await named(p, flow('10.244.1.10', '10.244.1.70'), 'destination.k8s.pod.name', 'after-0');
});

test('a hung API server (accepts, never answers): requests time out, counted; shutdown does not wait for it', async () => {
  const sockets: Socket[] = [];
  const hung = createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
  const fake = new FakeKubeApi();
  fake.port = (hung.address() as { port: number }).port;
  const c = k8sProcessorFactory.validate({ auth_type: 'kubeConfig', kubeconfig: fake.kubeconfig(tmp.dir), request_timeout: '300ms' }, 'processors.k8s');
  const p = new K8sProcessor('k8s', c, undefined, {});
  await p.start();
  // A processor whose requests would wait a minute: stopping it must not.
  const patient = new K8sProcessor('k8s/patient', k8sProcessorFactory.validate({ auth_type: 'kubeConfig', kubeconfig: fake.kubeconfig(tmp.dir), request_timeout: '1m', pod_labels: ['x'] }, 'processors.k8s'), undefined, {});
  await patient.start();
  try {
    await until('timeouts counted', () => own(p).find((m) => m.metric === 'flowtel_k8s_api_reachable')?.value === 0 && counted(p, 'flowtel_k8s_api_errors', { resource: 'pods', reason: 'unreachable' }) > 0);
    await until('the patient processor waits on its lists', () => sockets.length >= 10);
  } finally {
    const t0 = Date.now();
    await patient.shutdown();
    assert.ok(Date.now() - t0 < 30_000, `shutdown waited for the hung server (${Date.now() - t0} ms)`);
    await p.shutdown();
    for (const s of sockets) s.destroy();
    hung.close();
  }
});

test('start fails clearly outside a cluster with serviceAccount auth; config is validated', async () => {
  const c = k8sProcessorFactory.validate({}, 'processors.k8s');
  const p = new K8sProcessor('k8s', c, undefined, {});
  await assert.rejects(p.start(), /KUBERNETES_SERVICE_HOST/);
  await p.shutdown();
  const missing = new K8sProcessor('k8s', k8sProcessorFactory.validate({ auth_type: 'kubeConfig', kubeconfig: '/nonexistent/kubeconfig' }, 'processors.k8s'));
  await assert.rejects(missing.start(), /\/nonexistent\/kubeconfig/);
  assert.throws(() => k8sProcessorFactory.validate({ auth_type: 'token' }, 'processors.k8s'), /processors\.k8s\.auth_type/);
  assert.throws(() => k8sProcessorFactory.validate({ pod_label: ['app'] }, 'processors.k8s'), /pod_labels/);
});
