/**
 * End to end: the agent (`flowtel run`) with the `process` and `container`
 * processors and a real containerd (started by the test, see
 * test/helpers/containerd.ts). Two containers connect over loopback to a
 * server of the test and keep the connection open — one run with `ctr` and a
 * nerdctl name label, one created through the CRI as the kubelet does (a pod
 * with host network, its container made from the image id) — and what the
 * OTLP exporter delivers for each container id carries its container and
 * image names exactly — from the first export of each flow on (the agent
 * follows containerd's container events).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { buildBusyboxImage, containerdAvailable, TestContainerd } from '../helpers/containerd';
import { Agent, TempDir, until } from '../helpers/e2e';
import { flattenMetrics, lastExportPoints, startOtlpReceiver, type FlatPoint, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const IMAGE = 'registry.flowtel.test:5000/shop/web:2.3.1';
const SANDBOX_IMAGE = 'flowtel.test/pause:3.9';
const NS = 'flowteltest-e2e';
const POD_UID = randomUUID();
const CTR_ID = randomBytes(32).toString('hex');

const tmp = new TempDir();
let containerd: TestContainerd | undefined;
let agent: Agent | undefined;
let receiver: OtlpTestReceiver | undefined;
let server: Server | undefined;
const sockets: Socket[] = [];
const greetings: string[] = [];
let port = 0;

before(async () => {
  const missing = containerdAvailable();
  if (missing) throw new Error(missing);
  // The server answers each client once and keeps the connection open: the containers' flows stay live.
  server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    s.once('data', (d) => {
      greetings.push(d.toString().trim());
      s.write('pong\n');
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
  containerd = await TestContainerd.start(path.join(tmp.dir, 'containerd'), SANDBOX_IMAGE);
  const tarball = buildBusyboxImage(tmp.dir, [IMAGE]);
  containerd.importImage(NS, tarball);
  containerd.importImage('k8s.io', tarball);
  containerd.importImage('k8s.io', buildBusyboxImage(tmp.dir, [SANDBOX_IMAGE], ['/bin/sleep', '86400']));
});

after(async () => {
  await agent?.kill();
  await containerd?.stop();
  for (const s of sockets) s.destroy();
  server?.close();
  await receiver?.close();
  tmp.cleanup();
});

/** The points of `metric` in the last export whose attributes include `match`. */
function points(metric: string, match: Record<string, string | number>): FlatPoint[] {
  return lastExportPoints(receiver!.requests, metric, match);
}

function containerOf(p: FlatPoint): Record<string, unknown> {
  return Object.fromEntries(Object.entries(p.attributes).filter(([k]) => k.startsWith('container.')));
}

test('flows of containerd containers (ctr and CRI) carry their container and image names', async () => {
  assert.ok(containerd);
  receiver = await startOtlpReceiver();
  const config = tmp.write(
    `containers-${randomUUID()}.yaml`,
    `receivers:
  ebpf_tcp:
    collection_interval: 1s
processors:
  filter:
    include:
      ports: ["${port}"]
  process: {}
  container:
    endpoints: [cri://${containerd.socket}, containerd://${containerd.socket}, unix:///nonexistent/docker.sock]
exporters:
  otlp:
    endpoint: http://${receiver.endpoint}
    export_interval: 1s
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      processors: [filter, process, container]
      exporters: [otlp]
`,
  );
  agent = Agent.spawn(['run', '--config', config], { env: { FLOWTEL_LOG_LEVEL: 'debug' } });
  await agent.ready();

  // nc keeps the connection while its standard input is open (sleep holds
  // it): the flow is exported once, so its first export must be named — the
  // agent learns of each container from containerd's events when it is
  // created, a moment before its process connects.
  const connect = ['/bin/sh', '-c', `sleep 2; (echo hello-from-a-container; exec sleep 3600) | nc 127.0.0.1 ${port}`];
  containerd.runContainer(NS, CTR_ID, IMAGE, { 'nerdctl/name': 'shop-web' }, `/flowteltest-e2e-${process.pid}`, connect);
  const criId = await containerd.runPod(
    { name: 'checkout-7d9f8', namespace: 'shop', uid: POD_UID, cgroupParent: `/flowteltest-e2e-kubepods-${process.pid}/pod${POD_UID}` },
    { name: 'checkout', image: await containerd.imageId(IMAGE), command: connect },
  );
  await until('both containers connected', () => greetings.length === 2, 15_000, () => `greetings: ${greetings.join(', ')}\n${containerd!.output()}`);

  const expected = { 'container.image.name': 'registry.flowtel.test:5000/shop/web', 'container.image.tag': '2.3.1' };
  for (const [id, name] of [[CTR_ID, 'shop-web'], [criId, 'checkout']] as const) {
    await until(
      `the flow of container ${name} exported with its names`,
      () => points('tcp_bytes_sent', { 'container.id': id, 'destination.port': port, 'container.name': name }).length > 0,
      20_000,
      () => `${agent!.describe()}\nlast export: ${JSON.stringify(flattenMetrics(receiver!.requests.slice(-1)).filter((m) => m.name === 'tcp_bytes_sent').map((m) => m.points.map((p) => p.attributes)))}`,
    );
    const all = points('tcp_bytes_sent', { 'container.id': id, 'destination.port': port });
    assert.equal(all.length, 1, 'one series: named from its first export on');
    const p = all[0];
    assert.deepEqual(containerOf(p!), { 'container.id': id, 'container.name': name, ...expected });
    assert.equal(p!.attributes['process.executable.name'], 'nc');
    assert.equal(p!.value, 'hello-from-a-container\n'.length, 'the bytes it sent');
  }
  const warnings = agent.logs().filter((l) => l.component === 'container' && (l.level === 'warn' || l.level === 'error'));
  assert.deepEqual(warnings, [], 'no warnings from the container processor: the absent docker socket is skipped quietly');
  assert.equal((await agent.stop()).code, 0);
});
