/**
 * The `container` processor against a real containerd (Debian's containerd
 * 1.6 + runc) that the test starts with its own root, state and socket: an
 * image built here from busybox (no registry) is imported with `ctr`;
 * containers run with `ctr run` in a namespace of the test's, and a
 * Kubernetes-style pod is created through the daemon's CRI plugin (host
 * network, the busybox image as its sandbox image). Each container's real
 * main process goes through the `process` processor (container.id from its
 * cgroup) and then the `container` processor, which must name it exactly as
 * it was created — by containerd's API (all namespaces) and by the CRI.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { captureLogger } from '../helpers/capture-logger';
import { buildBusyboxImage, containerdAvailable, TestContainerd } from '../helpers/containerd';
import { TempDir, until } from '../helpers/e2e';
import type { FlowAttributes, MeasurementBatch } from '../../src/pipeline/measurements';
import { ProcessProcessor, processProcessorFactory } from '../../src/processors/enrich/process';
import { ContainerProcessor, containerProcessorFactory } from '../../src/processors/enrich/container';

const IMAGE = 'flowtel.test/shop/busybox:1.35';
const SANDBOX_IMAGE = 'flowtel.test/pause:3.9';
const NS = 'flowteltest';
const CGROUP_PARENT = `/flowteltest-ctr-${process.pid}`;
const POD_UID = randomUUID();

const tmp = new TempDir();
let containerd: TestContainerd | undefined;
const ids = { named: randomBytes(32).toString('hex'), unnamed: randomBytes(32).toString('hex'), cri: '' };
const pids = { named: 0, unnamed: 0, cri: 0 };

before(async () => {
  const missing = containerdAvailable();
  if (missing) throw new Error(missing);
  const tarball = buildBusyboxImage(tmp.dir, [IMAGE]);
  const sandbox = buildBusyboxImage(tmp.dir, [SANDBOX_IMAGE], ['/bin/sleep', '86400']);
  containerd = await TestContainerd.start(path.join(tmp.dir, 'containerd'), SANDBOX_IMAGE);
  containerd.importImage(NS, tarball);
  containerd.importImage('k8s.io', tarball);
  containerd.importImage('k8s.io', sandbox);
  pids.named = containerd.runContainer(NS, ids.named, IMAGE, { 'nerdctl/name': 'shop-web' }, CGROUP_PARENT);
  pids.unnamed = containerd.runContainer(NS, ids.unnamed, IMAGE, {}, CGROUP_PARENT);
  ids.cri = await containerd.runPod(
    { name: 'checkout-7d9f8', namespace: 'shop', uid: POD_UID, cgroupParent: `/flowteltest-kubepods-${process.pid}/pod${POD_UID}` },
    // The kubelet creates containers by image id, not by the reference the pod spec names.
    { name: 'checkout', image: await containerd.imageId(IMAGE), command: ['/bin/sleep', '3600'] },
  );
  pids.cri = await containerd.criPid(ids.cri);
});

after(async () => {
  await containerd?.stop();
  tmp.cleanup();
});

function processProcessor(): ProcessProcessor {
  return processProcessorFactory.create(processProcessorFactory.validate({}, 'processors.process'), { id: 'process', logger: captureLogger().logger }) as ProcessProcessor;
}

function containerProcessor(endpoints: string[], logger = captureLogger('info').logger): ContainerProcessor {
  return containerProcessorFactory.create(containerProcessorFactory.validate({ endpoints }, 'processors.container'), { id: 'container', logger }) as ContainerProcessor;
}

/** A tcp flow of a process, as the receivers report it. */
function batch(...pidList: number[]): MeasurementBatch {
  return {
    timeMs: Date.now(),
    measurements: pidList.map((pid) => ({
      metric: 'tcp_bytes_sent',
      value: 1,
      attributes: { 'network.transport': 'tcp', 'source.address': '127.0.0.1', 'destination.address': '127.0.0.1', 'destination.port': 80, 'process.pid': pid },
    })),
    gaugesReplaced: [],
    source: 'ebpf_tcp',
  };
}

/** The flows of a batch (without the processor's own flowtel_* measurements). */
function flowsOf(b: MeasurementBatch): FlowAttributes[] {
  return b.measurements.filter((m) => m.metric === 'tcp_bytes_sent').map((m) => m.attributes);
}

/** The processor's flowtel_container_* measurements on a batch: [metric, attributes, value]. */
function telemetry(cp: ContainerProcessor): Array<[string, Record<string, unknown>, number]> {
  return cp
    .process(batch())
    .measurements.filter((m) => m.metric.startsWith('flowtel_container_'))
    .map((m) => [m.metric, { ...m.attributes }, m.value]);
}

function names(a: FlowAttributes): Record<string, unknown> {
  return { id: a['container.id'], name: a['container.name'], image: a['container.image.name'], tag: a['container.image.tag'] };
}

test('containerd API: containers of every namespace named from their labels (nerdctl, kubelet) or their id, image name and tag from the image they run', async () => {
  assert.ok(containerd);
  const namespaces = containerd.ctr('default', ['namespaces', 'ls', '-q']).split('\n').filter(Boolean);
  assert.ok(namespaces.includes(NS) && namespaces.includes('k8s.io'), namespaces.join(','));
  const { logger, lines } = captureLogger('info');
  const cp = containerProcessor(['unix:///nonexistent/docker.sock', `containerd://${containerd.socket}`, 'cri:///nonexistent/crio.sock'], logger);
  await cp.start();
  try {
    const withIds = processProcessor().process(batch(pids.named, pids.unnamed, pids.cri));
    const out = flowsOf(cp.process(withIds)).map(names);
    assert.deepEqual(out, [
      { id: ids.named, name: 'shop-web', image: 'flowtel.test/shop/busybox', tag: '1.35' },
      { id: ids.unnamed, name: ids.unnamed, image: 'flowtel.test/shop/busybox', tag: '1.35' },
      // The cri plugin stores the kubelet's labels on the containerd container.
      { id: ids.cri, name: 'checkout', image: 'flowtel.test/shop/busybox', tag: '1.35' },
    ]);
    assert.equal(cp.directory.lists, 1, 'one list per refresh from containerd');
    assert.equal(cp.directory.listFailures, 2, 'the absent sockets, quietly');
    assert.deepEqual(lines.filter((l) => l.level >= 40), [], 'absent sockets are not worth a warning');
    assert.deepEqual(telemetry(cp), [
      ['flowtel_container_runtime_reachable', { processor: 'container', endpoint: `containerd://${containerd.socket}` }, 1],
      ['flowtel_container_known', { processor: 'container' }, 4],
    ], 'absent endpoints are neither reachable nor failing');
  } finally {
    await cp.shutdown();
  }
});

test('CRI: the pod container named from its metadata, its image (created by image id, as the kubelet does) named from the image list; ctr containers are not CRI containers', async () => {
  assert.ok(containerd);
  const cp = containerProcessor([`cri://${containerd.socket}`]);
  await cp.start();
  try {
    const withIds = processProcessor().process(batch(pids.cri, pids.named));
    const [pod, ctr] = flowsOf(cp.process(withIds)).map(names);
    assert.deepEqual(pod, { id: ids.cri, name: 'checkout', image: 'flowtel.test/shop/busybox', tag: '1.35' });
    assert.deepEqual(ctr, { id: ids.named, name: undefined, image: undefined, tag: undefined });
  } finally {
    await cp.shutdown();
  }
});

test('a runtime that hangs: calls time out, names are kept, the failure is logged once; it answers again: logged', async () => {
  assert.ok(containerd);
  const { logger, lines } = captureLogger('info');
  const cp = containerProcessorFactory.create(
    containerProcessorFactory.validate({ endpoints: [`containerd://${containerd.socket}`], timeout: '300ms' }, 'processors.container'),
    { id: 'container', logger },
  ) as ContainerProcessor;
  await cp.start();
  const f = processProcessor().process(batch(pids.named, pids.cri));
  const named = (): unknown[] => flowsOf(cp.process(f)).map((a) => a['container.name']);
  try {
    assert.deepEqual(named(), ['shop-web', 'checkout']);
    assert.equal(cp.directory.size, 4, 'both namespaces: 2 ctr containers, the pod sandbox and its container');
    containerd.freeze(true);
    try {
      await cp.directory.refresh();
      await cp.directory.refresh();
    } finally {
      containerd.freeze(false);
    }
    assert.equal(cp.directory.listFailures, 2);
    const endpoint = `containerd://${containerd.socket}`;
    assert.deepEqual(telemetry(cp), [
      ['flowtel_container_runtime_reachable', { processor: 'container', endpoint }, 0],
      ['flowtel_container_runtime_errors', { processor: 'container', endpoint, reason: 'timeout' }, 2],
      ['flowtel_container_known', { processor: 'container' }, 4],
    ], 'read before any other batch: the errors counter reports deltas');
    assert.deepEqual(named(), ['shop-web', 'checkout'], 'last known names kept');
    const warnings = lines.filter((l) => l.level === 40);
    assert.equal(warnings.length, 1, JSON.stringify(lines));
    assert.match(String(warnings[0]!.msg), /runtime API request failed/);
    await cp.directory.refresh();
    assert.equal(cp.directory.lists, 2);
    assert.ok(lines.some((l) => l.level === 30 && /answers again/.test(String(l.msg))), JSON.stringify(lines));
    assert.deepEqual(telemetry(cp), [
      ['flowtel_container_runtime_reachable', { processor: 'container', endpoint }, 1],
      ['flowtel_container_known', { processor: 'container' }, 4],
    ], 'reachable again; the errors counter reports deltas (none new)');
  } finally {
    await cp.shutdown();
  }
});

test('containerd events: a container created after start is listed at once, before any flow names it; its removal too', async () => {
  assert.ok(containerd);
  const cp = containerProcessor([`containerd://${containerd.socket}`]);
  await cp.start();
  try {
    // Past the list that follows the subscription (it covers a container
    // created before the runtime had subscribed us): from here on, events.
    await new Promise((r) => setTimeout(r, 1_500));
    const before = cp.directory.size;
    const id = randomBytes(32).toString('hex');
    containerd.runContainer(NS, id, IMAGE, { 'nerdctl/name': 'late-comer' }, CGROUP_PARENT);
    // No lookup, no refresh_interval (30 s): only the event stream can tell.
    await until('the new container is known', () => cp.directory.size === before + 1, 10_000);
    assert.ok(cp.directory.events >= 1, `events: ${cp.directory.events}`);
    const f = processProcessor().process(batch(containerd.taskPid(NS, id)));
    assert.equal(cp.process(f).measurements[0]!.attributes['container.name'], 'late-comer');
    const lists = cp.directory.lists;
    await containerd.removeContainer(NS, id);
    await until('the removal is listed', () => cp.directory.lists > lists, 10_000);
  } finally {
    await cp.shutdown();
  }
});

test('containerd restarts: the event stream is subscribed again, a container created afterwards is listed without a lookup', async () => {
  assert.ok(containerd);
  const cp = containerProcessor([`containerd://${containerd.socket}`]);
  await cp.start();
  try {
    const known = cp.directory.size;
    await containerd.restart();
    const id = randomBytes(32).toString('hex');
    containerd.runContainer(NS, id, IMAGE, { 'nerdctl/name': 'after-restart' }, CGROUP_PARENT);
    await until('the container created after the restart is known', () => cp.directory.size === known + 1, 15_000);
    const f = processProcessor().process(batch(containerd.taskPid(NS, id)));
    assert.equal(flowsOf(cp.process(f))[0]!['container.name'], 'after-restart');
    // Containers started before the restart kept running and kept their names.
    assert.equal(flowsOf(cp.process(processProcessor().process(batch(pids.named))))[0]!['container.name'], 'shop-web');
  } finally {
    await cp.shutdown();
  }
});
