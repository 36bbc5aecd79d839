/**
 * End to end: the agent (`flowtel run`) with the `process` and `k8s`
 * processors, a Kubernetes API server started by the test (list + watch with
 * the API's JSON) whose pods have the addresses of two network-namespace test
 * hosts, real TCP connections between them, and what the OTLP exporter
 * delivers: both ends named, a ClusterIP named as its service; then the API
 * server is stopped mid-run: new flows keep their names and the outage is in
 * the exported flowtel_k8s_* metrics.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { Agent, TempDir, freePort, until } from '../helpers/e2e';
import { cgroup2Root, TestCgroups } from '../helpers/cgroups';
import { FakeKubeApi, endpointSlice, node, pod, replicaSet, service } from '../helpers/fake-kube-api';
import { TestNet } from '../helpers/netns';
import { flattenMetrics, lastExportPoints, startOtlpReceiver, type FlatPoint, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const net = TestNet.create('ehk8s', 51);
const { client: C, server: S } = net;
const CLUSTER_IP = '10.201.51.100';
const DB_CONTAINER = 'db0c0a'.padEnd(64, '9');
const POD_UID = '2b7e1d3c-4a5f-4e6d-9c8b-7a6f5e4d3c2b';
const tmp = new TempDir();
const cgroups = new TestCgroups();
const children: ChildProcess[] = [];
let agent: Agent | undefined;
let api: FakeKubeApi | undefined;
let receiver: OtlpTestReceiver | undefined;

after(async () => {
  await agent?.kill();
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)));
  await api?.stop();
  await receiver?.close();
  cgroups.cleanup();
  net.destroy();
  tmp.cleanup();
});

/** The points of `metric` in the last export whose attributes include `match`. */
function points(metric: string, match: Record<string, string | number>): FlatPoint[] {
  return lastExportPoints(receiver!.requests, metric, match);
}

function k8sOf(p: FlatPoint | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(p?.attributes ?? {}).filter(([k]) => k.includes('.k8s.')));
}

async function exchange(host: string, bytes: number): Promise<{ port: number; serverPid: number }> {
  const port = await freePort();
  const server = await net.startServer(S, ['tcp-server', '--host', host, '--port', String(port), '--reply', '1000']);
  children.push(server);
  await net.traffic(C, ['tcp-client', '--host', host, '--port', String(port), '--send', String(bytes)]);
  return { port, serverPid: server.pid! };
}

async function exported(what: string, metric: string, match: Record<string, string | number>): Promise<FlatPoint> {
  await until(what, () => points(metric, match).length > 0, 15_000, () => `${agent!.describe()}\nlast export: ${JSON.stringify(flattenMetrics(receiver!.requests.slice(-1)).filter((m) => m.name === metric).map((m) => m.points.map((p) => p.attributes)))}`);
  return points(metric, match)[0]!;
}

const WEB = {
  'k8s.namespace.name': 'shop',
  'k8s.pod.name': 'web-6c9f8d7b5-k2l8m',
  'k8s.pod.uid': 'uid-web',
  'k8s.node.name': 'node-a',
  'k8s.replicaset.name': 'web-6c9f8d7b5',
  'k8s.deployment.name': 'web',
  'k8s.pod.label.app': 'web',
};
const DB = {
  'k8s.namespace.name': 'shop',
  'k8s.pod.name': 'db-0',
  'k8s.pod.uid': POD_UID,
  'k8s.node.name': 'node-a',
  'k8s.statefulset.name': 'db',
  'k8s.service.name': 'db',
  'k8s.pod.label.app': 'db',
};
const prefixed = (prefix: string, a: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(a).map(([k, v]) => [`${prefix}${k}`, v]));

test('flows between pods named on both ends; ClusterIP named as its service; API server stopped: names stay, outage exported', async () => {
  net.exec(S, 'ip', ['addr', 'add', `${CLUSTER_IP}/32`, 'dev', S.dev]);
  api = await FakeKubeApi.start();
  api.upsert('nodes', node('node-a', '10.201.51.250', 'zone-a'));
  api.upsert('replicasets', replicaSet('shop', 'web-6c9f8d7b5', 'web'));
  api.upsert('pods', pod({ namespace: 'shop', name: 'web-6c9f8d7b5-k2l8m', uid: 'uid-web', node: 'node-a', ip: C.ip4, labels: { app: 'web', 'pod-template-hash': '6c9f8d7b5' }, owner: { kind: 'ReplicaSet', name: 'web-6c9f8d7b5' } }));
  api.upsert('pods', pod({ namespace: 'shop', name: 'db-0', uid: POD_UID, node: 'node-a', ip: S.ip4, labels: { app: 'db' }, owner: { kind: 'StatefulSet', name: 'db' }, containerIds: [DB_CONTAINER] }));
  api.upsert('services', service('shop', 'db', CLUSTER_IP));
  api.upsert('endpointslices', endpointSlice('shop', 'db', [{ ip: S.ip4, pod: 'db-0', uid: POD_UID, node: 'node-a' }]));
  receiver = await startOtlpReceiver();
  const config = tmp.write(
    `k8s-${randomUUID()}.yaml`,
    `receivers:
  ebpf_tcp:
    collection_interval: 1s
processors:
  process: {}
  k8s:
    auth_type: kubeConfig
    kubeconfig: ${api.kubeconfig(tmp.dir)}
    pod_labels: [app]
    wait_for_metadata: true
exporters:
  otlp:
    endpoint: http://${receiver.endpoint}
    export_interval: 1s
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      processors: [process, k8s]
      exporters: [otlp]
`,
  );
  agent = Agent.spawn(['run', '--config', config], { env: { KUBE_NODE_NAME: 'node-a' } });
  await agent.ready();

  // The db server runs in a cgroup shaped as containerd's for the db-0 container.
  const port = await freePort();
  const server = await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(port), '--reply', '1000']);
  children.push(server);
  cgroups.move(server.pid!, cgroups.make(cgroup2Root(), `flowteltest-kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_UID.replace(/-/g, '_')}.slice/cri-containerd-${DB_CONTAINER}.scope`));
  await net.traffic(C, ['tcp-client', '--host', S.ip4, '--port', String(port), '--send', '12345']);

  const clientSide = await exported('the client side, named', 'tcp_bytes_sent', { 'source.address': C.ip4, 'destination.port': port, 'destination.k8s.pod.name': 'db-0' });
  assert.equal(clientSide.value, 12345);
  assert.deepEqual(k8sOf(clientSide), { ...prefixed('source.', WEB), ...prefixed('destination.', DB) });
  const serverSide = await exported('the server side, named', 'tcp_bytes_sent', { 'source.address': S.ip4, 'source.port': port, 'source.k8s.pod.name': 'db-0' });
  assert.equal(serverSide.value, 1000);
  assert.deepEqual(k8sOf(serverSide), { ...prefixed('source.', DB), ...prefixed('destination.', WEB) });
  assert.equal(serverSide.attributes['container.id'], DB_CONTAINER, 'the process processor found the container of the server process');
  assert.equal(serverSide.attributes['process.pid'], server.pid);

  // A connection to the service's ClusterIP (an address of the server host here: no NAT involved).
  const viaService = await exchange(CLUSTER_IP, 2222);
  const svc = await exported('the ClusterIP flow', 'tcp_bytes_sent', { 'destination.address': CLUSTER_IP, 'destination.port': viaService.port });
  assert.equal(svc.value, 2222);
  assert.deepEqual(k8sOf(svc), { ...prefixed('source.', WEB), 'destination.k8s.namespace.name': 'shop', 'destination.k8s.service.name': 'db' });

  const reachable = await exported('flowtel_k8s_api_reachable', 'flowtel_k8s_api_reachable', { processor: 'k8s' });
  assert.equal(reachable.value, 1);

  // The API server goes away.
  await api.stop();
  await exported('the outage', 'flowtel_k8s_api_reachable', { processor: 'k8s' }).then(() =>
    until('flowtel_k8s_api_reachable = 0', () => points('flowtel_k8s_api_reachable', { processor: 'k8s' })[0]?.value === 0, 15_000),
  );
  await until('flowtel_k8s_api_errors counted', () => points('flowtel_k8s_api_errors', { reason: 'unreachable' }).reduce((a, p) => a + (p.value ?? 0), 0) > 0, 15_000);
  const later = await exchange(S.ip4, 4321);
  const afterOutage = await exported('a new flow during the outage', 'tcp_bytes_sent', { 'source.address': C.ip4, 'destination.port': later.port });
  assert.equal(afterOutage.value, 4321);
  assert.deepEqual(k8sOf(afterOutage), { ...prefixed('source.', WEB), ...prefixed('destination.', DB) }, 'the last known metadata is used');
  assert.ok(agent.logs().some((l) => l.level === 'warn' || (l.level as unknown) === 40), 'the outage is logged');
  assert.equal((await agent.stop()).code, 0);
});
