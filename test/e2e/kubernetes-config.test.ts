/**
 * End to end: the agent runs deploy/config/flowtel-kubernetes.yaml — the
 * config of the DaemonSet and of the Helm chart's default — with only what a
 * test machine cannot give swapped in by a second config file (the API
 * server: kubeconfig of a fake one started here instead of the pod's service
 * account; the host's /proc at /proc instead of /host/proc; the test's own
 * containerd socket; the OTLP receiver; free local ports; no cloud metadata
 * requests). A pod created through the CRI of a real containerd (host
 * network) connects over loopback; its flow, as exported, carries the names
 * every processor of the shipped pipeline adds: process, container and
 * image, pod, namespace, owner and node.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { buildBusyboxImage, containerdAvailable, TestContainerd } from '../helpers/containerd';
import { Agent, REPO, TempDir, freePort, until } from '../helpers/e2e';
import { FakeKubeApi, node, pod, replicaSet } from '../helpers/fake-kube-api';
import { flattenMetrics, lastExportPoints, startOtlpReceiver, type FlatPoint, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const KUBERNETES_CONFIG = path.join(REPO, 'deploy', 'config', 'flowtel-kubernetes.yaml');
const IMAGE = 'registry.flowtel.test:5000/shop/checkout:4.2';
const SANDBOX_IMAGE = 'flowtel.test/pause:3.9';
const POD_UID = randomUUID();

const tmp = new TempDir();
let containerd: TestContainerd | undefined;
let api: FakeKubeApi | undefined;
let agent: Agent | undefined;
let receiver: OtlpTestReceiver | undefined;
let server: Server | undefined;
const sockets: Socket[] = [];
let greeted = 0;
let port = 0;

before(async () => {
  const missing = containerdAvailable();
  if (missing) throw new Error(missing);
  server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    s.once('data', () => {
      greeted++;
      s.write('pong\n');
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
  containerd = await TestContainerd.start(path.join(tmp.dir, 'containerd'), SANDBOX_IMAGE);
  containerd.importImage('k8s.io', buildBusyboxImage(tmp.dir, [IMAGE]));
  containerd.importImage('k8s.io', buildBusyboxImage(tmp.dir, [SANDBOX_IMAGE], ['/bin/sleep', '86400']));
  api = await FakeKubeApi.start();
  receiver = await startOtlpReceiver();
});

after(async () => {
  await agent?.kill();
  await containerd?.stop();
  for (const s of sockets) s.destroy();
  server?.close();
  await api?.stop();
  await receiver?.close();
  tmp.cleanup();
});

function points(metric: string, match: Record<string, string | number>): FlatPoint[] {
  return lastExportPoints(receiver!.requests, metric, match);
}

test('the Kubernetes agent config, as shipped, names a pod\'s flow with its process, container, image and pod', async () => {
  assert.ok(containerd && api && receiver);
  const shipped = parse(readFileSync(KUBERNETES_CONFIG, 'utf8')) as { service: { pipelines: { metrics: { processors: string[] } } } };
  api.upsert('nodes', node('node-a', '10.201.91.250', 'zone-a'));
  api.upsert('replicasets', replicaSet('shop', 'checkout-7d9f8', 'checkout'));
  const overrides = tmp.write(
    `test-overrides-${randomUUID()}.yaml`,
    `# What a test machine cannot give the shipped config; nothing else changes.
receivers:
  ebpf_tcp:
    collection_interval: 1s
processors:
  process:
    proc_path: /proc
  container:
    endpoints: [containerd://${containerd.socket}]
  k8s:
    auth_type: kubeConfig
    kubeconfig: ${api.kubeconfig(tmp.dir)}
    wait_for_metadata: true
  cloud:
    detectors: []
exporters:
  otlp:
    endpoint: http://${receiver.endpoint}
    export_interval: 1s
extensions:
  health_check:
    endpoint: 127.0.0.1:${await freePort()}
service:
  telemetry:
    metrics:
      address: 127.0.0.1:${await freePort()}
`,
  );
  agent = Agent.spawn(['run', '--config', KUBERNETES_CONFIG, '--config', overrides], { env: { KUBE_NODE_NAME: 'node-a' } });
  await agent.ready(30_000);

  const command = ['/bin/sh', '-c', `sleep 2; (echo hello; exec sleep 3600) | nc 127.0.0.1 ${port}`];
  const id = await containerd.runPod(
    { name: 'checkout-7d9f8-x2k4p', namespace: 'shop', uid: POD_UID, cgroupParent: `/flowteltest-e2e-kubepods-${process.pid}/pod${POD_UID}` },
    { name: 'checkout', image: await containerd.imageId(IMAGE), command },
  );
  // The kubelet reports the container in the pod's status; the API server tells the agent.
  api.upsert('pods', pod({ namespace: 'shop', name: 'checkout-7d9f8-x2k4p', uid: POD_UID, node: 'node-a', hostNetwork: true, labels: { app: 'checkout' }, owner: { kind: 'ReplicaSet', name: 'checkout-7d9f8' }, containerIds: [id] }));
  await until('the pod connected', () => greeted === 1, 15_000, () => containerd!.output());

  await until(
    'the pod\'s flow exported',
    () => points('tcp_bytes_sent', { 'container.id': id, 'destination.port': port }).length > 0,
    20_000,
    () => `${agent!.describe()}\nlast export: ${JSON.stringify(flattenMetrics(receiver!.requests.slice(-1)).filter((m) => m.name === 'tcp_bytes_sent').map((m) => m.points.map((p) => p.attributes)))}`,
  );
  const all = points('tcp_bytes_sent', { 'container.id': id, 'destination.port': port });
  assert.equal(all.length, 1, 'one series, named from its first export');
  const a = all[0]!.attributes;
  assert.equal(all[0]!.value, 'hello\n'.length);
  assert.deepEqual(
    {
      process: a['process.executable.name'],
      container: a['container.name'],
      image: a['container.image.name'],
      tag: a['container.image.tag'],
      pod: a['source.k8s.pod.name'],
      namespace: a['source.k8s.namespace.name'],
      deployment: a['source.k8s.deployment.name'],
      node: a['source.k8s.node.name'],
      app: a['source.k8s.pod.label.app'],
    },
    { process: 'nc', container: 'checkout', image: 'registry.flowtel.test:5000/shop/checkout', tag: '4.2', pod: 'checkout-7d9f8-x2k4p', namespace: 'shop', deployment: 'checkout', node: 'node-a', app: 'checkout' },
  );
  assert.equal(a['process.pid'], undefined, 'aggregate drops process.pid, as shipped');
  assert.deepEqual(shipped.service.pipelines.metrics.processors, ['memory_limiter', 'process', 'container', 'nat', 'k8s', 'cloud', 'zone', 'aggregate'], 'the pipeline this test ran');
  const warnings = agent.logs().filter((l) => l['component.kind'] === 'processor' && (l.level === 'warn' || l.level === 'error'));
  assert.deepEqual(warnings, [], 'every processor of the shipped config ran without a warning');
  assert.equal((await agent.stop()).code, 0);
});
