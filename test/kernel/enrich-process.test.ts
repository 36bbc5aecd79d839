/**
 * The process and container processors on real processes: each is moved into
 * a real cgroup named as a container runtime names it — under the cgroup v2
 * hierarchy and under a named v1 hierarchy the test mounts — and described
 * from /proc; ground truth from `ps` and the file system. Container names
 * come from a Docker Engine API served on a unix socket by the test, with the
 * API's JSON shapes.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { after, test } from 'node:test';
import { captureLogger } from '../helpers/capture-logger';
import { cgroup2Root, TestCgroups } from '../helpers/cgroups';
import { TempDir, until } from '../helpers/e2e';
import { sh } from '../helpers/netns';
import type { FlowAttributes, MeasurementBatch } from '../../src/pipeline/measurements';
import { ProcessProcessor, processProcessorFactory } from '../../src/processors/enrich/process';
import { ContainerProcessor, containerProcessorFactory } from '../../src/processors/enrich/container';

const cgroups = new TestCgroups();
const tmp = new TempDir();
const children: ChildProcess[] = [];
const servers: Server[] = [];
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)));
  cgroups.cleanup();
  for (const s of servers) s.close();
  tmp.cleanup();
});

const DOCKER_ID = 'd0c4e5'.padEnd(64, '1');
const CONTAINERD_ID = 'c0a7e1'.padEnd(64, '2');
const POD_UID = '7c1f3a2e-0b4d-4e6f-8a9b-1c2d3e4f5a6b';
const PODMAN_ID = 'b0d3a1'.padEnd(64, '3');

/** A `sleep` child (optionally as another user) — a process that lives until the test ends. */
async function sleeper(args: string[] = ['300'], uid?: number): Promise<ChildProcess> {
  const child = spawn('sleep', args, { stdio: 'ignore', ...(uid !== undefined ? { uid, gid: uid } : {}) });
  children.push(child);
  await once(child, 'spawn');
  return child;
}

function processor(config: Record<string, unknown> = {}): ProcessProcessor {
  return processProcessorFactory.create(processProcessorFactory.validate(config, 'processors.process'), { id: 'process', logger: captureLogger().logger }) as ProcessProcessor;
}

function batch(...attributes: FlowAttributes[]): MeasurementBatch {
  return { timeMs: Date.now(), measurements: attributes.map((a) => ({ metric: 'tcp_bytes_sent', value: 1, attributes: a })), gaugesReplaced: [], source: 'ebpf_tcp' };
}

const flowOf = (pid: number, comm?: string): FlowAttributes => ({
  'network.transport': 'tcp',
  'source.address': '127.0.0.1',
  'destination.address': '127.0.0.1',
  'destination.port': 80,
  'process.pid': pid,
  ...(comm ? { 'process.executable.name': comm } : {}),
});

function ps(pid: number, field: string): string {
  return sh('ps', ['-o', `${field}=`, '-p', String(pid)]).trim();
}

test('cgroup v2: docker, containerd (Kubernetes) and podman shaped cgroups give the container id; the rest from /proc as ps sees it', async () => {
  const v2 = cgroup2Root();
  const nobody = Number(sh('id', ['-u', 'nobody']).trim());
  const docker = await sleeper(['301']);
  const kube = await sleeper(['302'], nobody);
  const podman = await sleeper(['303']);
  cgroups.move(docker.pid!, cgroups.make(v2, `flowteltest.slice/docker-${DOCKER_ID}.scope`));
  cgroups.move(kube.pid!, cgroups.make(v2, `flowteltest-kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_UID.replace(/-/g, '_')}.slice/cri-containerd-${CONTAINERD_ID}.scope`));
  cgroups.move(podman.pid!, cgroups.make(v2, `flowteltest-machine.slice/libpod-${PODMAN_ID}.scope/container`));

  const p = processor({ attributes: ['process.executable.name', 'process.executable.path', 'process.command', 'process.command_line', 'process.owner', 'container.id'] });
  const out = p.process(batch(flowOf(docker.pid!, 'sleep'), flowOf(kube.pid!), flowOf(podman.pid!)));
  const [a, b, c] = out.measurements.map((m) => m.attributes) as [FlowAttributes, FlowAttributes, FlowAttributes];
  const sleepPath = realpathSync(sh('which', ['sleep']).trim());
  assert.deepEqual(a, {
    ...flowOf(docker.pid!, 'sleep'),
    'process.executable.path': sleepPath,
    'process.command': 'sleep',
    'process.command_line': 'sleep 301',
    'process.owner': ps(docker.pid!, 'user'),
    'container.id': DOCKER_ID,
  });
  assert.equal(b['container.id'], CONTAINERD_ID);
  assert.equal(b['process.owner'], 'nobody');
  assert.equal(b['process.owner'], ps(kube.pid!, 'user'));
  assert.equal(b['process.executable.name'], ps(kube.pid!, 'comm'), 'filled in from /proc when the receiver did not set it');
  assert.equal(b['process.command_line'], 'sleep 302');
  assert.equal(c['container.id'], PODMAN_ID);
  // A process in no container: no container.id.
  const host = await sleeper(['304']);
  const plain = p.process(batch(flowOf(host.pid!))).measurements[0]!.attributes;
  assert.equal(plain['container.id'], undefined);
  assert.equal(plain['process.executable.path'], sleepPath);
});

test('cgroup v1: a named hierarchy mounted by the test, with docker and Kubernetes cgroupfs paths', async () => {
  const v1 = cgroups.v1Root();
  const docker = await sleeper(['311']);
  const kube = await sleeper(['312']);
  cgroups.move(docker.pid!, cgroups.make(v1, `docker/${DOCKER_ID}`));
  cgroups.move(kube.pid!, cgroups.make(v1, `kubepods/burstable/pod${POD_UID}/${CONTAINERD_ID}`));
  const p = processor();
  const [a, b] = p.process(batch(flowOf(docker.pid!), flowOf(kube.pid!))).measurements.map((m) => m.attributes) as [FlowAttributes, FlowAttributes];
  assert.equal(a['container.id'], DOCKER_ID);
  assert.equal(b['container.id'], CONTAINERD_ID);
  // Defaults: no command line.
  assert.equal(a['process.command_line'], undefined);
  assert.equal(a['process.command'], undefined);
});

test('cache: one read per process, a process that exited keeps its description, a reused pid is read again', async () => {
  const p = processor();
  const child = await sleeper(['321']);
  const f = flowOf(child.pid!);
  const first = p.process(batch(f)).measurements[0]!.attributes;
  assert.equal(first['process.executable.name'], 'sleep');
  const reads = p.cache.reads;
  const again = p.process(batch(f, { ...f })).measurements.map((m) => m.attributes);
  assert.equal(p.cache.reads, reads, 'no new read for a known, unchanged process');
  assert.equal(again[0], first, 'the same output object for the same input object');
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.equal(p.process(batch(f)).measurements[0]!.attributes, first, 'gone: last known description');

  // Pid reuse, on a procfs the test writes (the kernel will not reuse a pid on request).
  const proc = path.join(tmp.dir, 'proc');
  const writeProc = (pid: number, comm: string, start: number, exe: string): void => {
    const dir = path.join(proc, String(pid));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'stat'), `${pid} (${comm}) S 1 ${pid} ${pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 ${start} 0 0`);
    writeFileSync(path.join(dir, 'comm'), `${comm}\n`);
    writeFileSync(path.join(dir, 'status'), `Name:\t${comm}\nUid:\t0\t0\t0\t0\n`);
    writeFileSync(path.join(dir, 'cgroup'), `0::/system.slice/docker-${DOCKER_ID}.scope\n`);
    rmSync(path.join(dir, 'exe'), { force: true });
    sh('ln', ['-s', exe, path.join(dir, 'exe')]);
  };
  writeProc(4242, 'old', 1000, '/usr/bin/old');
  const fake = processor({ proc_path: proc });
  const g = flowOf(4242);
  assert.equal(fake.process(batch(g)).measurements[0]!.attributes['process.executable.path'], '/usr/bin/old');
  writeProc(4242, 'new', 2000, '/usr/bin/new');
  const reused = fake.process(batch(g)).measurements[0]!.attributes;
  assert.equal(reused['process.executable.path'], '/usr/bin/new');
  assert.equal(reused['process.executable.name'], 'new');
  // Bounded: cache_size entries at most.
  const small = processor({ proc_path: proc, cache_size: 16 });
  for (let pid = 5000; pid < 5040; pid++) writeProc(pid, `p${pid}`, pid, '/bin/true');
  for (let pid = 5000; pid < 5040; pid++) small.process(batch(flowOf(pid)));
  assert.equal(small.cache.size, 16);
  // Bad pids are skipped, not thrown on.
  for (const pid of [0, -1, 1.5, 999_999_999]) assert.equal(small.process(batch(flowOf(pid))).measurements[0]!.attributes['process.executable.path'], undefined);
});

// ---------------------------------------------------------------------------
// container: the Docker Engine API on a unix socket

interface DockerContainer {
  Id: string;
  Names: string[];
  Image: string;
}

function dockerListEntry(c: DockerContainer): Record<string, unknown> {
  return {
    Id: c.Id,
    Names: c.Names,
    Image: c.Image,
    ImageID: `sha256:${'e'.repeat(64)}`,
    Command: '/docker-entrypoint.sh nginx -g daemon off;',
    Created: 1795240000,
    Ports: [{ PrivatePort: 80, Type: 'tcp' }],
    Labels: { 'com.docker.compose.service': 'web' },
    State: 'running',
    Status: 'Up 5 minutes',
    HostConfig: { NetworkMode: 'bridge' },
    NetworkSettings: { Networks: { bridge: { IPAddress: '172.17.0.2' } } },
    Mounts: [],
  };
}

/** A Docker Engine API on a unix socket: GET /containers/json?all=1, /_ping. */
async function dockerApi(socket: string, containers: DockerContainer[]): Promise<{ requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.url === '/_ping') {
      res.writeHead(200, { 'content-type': 'text/plain', 'api-version': '1.45' });
      res.end('OK');
      return;
    }
    if (req.url?.startsWith('/containers/json')) {
      res.writeHead(200, { 'content-type': 'application/json', 'api-version': '1.45', server: 'Docker/26.1.4 (linux)' });
      res.end(JSON.stringify(containers.map(dockerListEntry)));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ message: `page not found` }));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { requests };
}

test('container: names from the engine API for the container id of a real process; an absent engine is no error', async () => {
  const v2 = cgroup2Root();
  const web = await sleeper(['331']);
  cgroups.move(web.pid!, cgroups.make(v2, `flowteltest.slice/docker-${DOCKER_ID}.scope`));
  const socket = path.join(tmp.dir, 'docker.sock');
  const containers: DockerContainer[] = [{ Id: DOCKER_ID, Names: ['/shop-web-1'], Image: 'registry.local:5000/shop/web:2.3.1' }];
  const api = await dockerApi(socket, containers);
  const { logger, lines } = captureLogger('info');
  const cp = containerProcessorFactory.create(containerProcessorFactory.validate({ endpoints: ['unix:///nonexistent/docker.sock', `unix://${socket}`] }, 'processors.container'), { id: 'container', logger }) as ContainerProcessor;
  await cp.start();
  try {
    const p = processor();
    const withId = p.process(batch(flowOf(web.pid!)));
    const out = cp.process(withId).measurements[0]!.attributes;
    assert.equal(out['container.id'], DOCKER_ID);
    assert.equal(out['container.name'], 'shop-web-1');
    assert.equal(out['container.image.name'], 'registry.local:5000/shop/web');
    assert.equal(out['container.image.tag'], '2.3.1');
    assert.ok(api.requests.includes('GET /containers/json?all=1'), api.requests.join(', '));
    assert.deepEqual(lines.filter((l) => l.level >= 40), [], 'a missing engine socket is not worth a warning');

    // A container started after the last list: its first flow triggers a new list.
    const late = await sleeper(['332']);
    cgroups.move(late.pid!, cgroups.make(v2, `flowteltest.slice/docker-${PODMAN_ID}.scope`));
    containers.push({ Id: PODMAN_ID, Names: ['/late'], Image: 'busybox' });
    const lateFlow = p.process(batch(flowOf(late.pid!)));
    let named: FlowAttributes = {};
    await until('the late container is named', () => (named = cp.process(lateFlow).measurements[0]!.attributes)['container.name'] === 'late', 5_000);
    assert.equal(named['container.image.tag'], 'latest');
  } finally {
    await cp.shutdown();
  }
  // No engine anywhere: start does not fail, flows pass unchanged.
  const none = containerProcessorFactory.create(containerProcessorFactory.validate({ endpoints: ['unix:///nonexistent/docker.sock'] }, 'processors.container'), { id: 'container', logger }) as ContainerProcessor;
  await none.start();
  const f = { ...flowOf(1), 'container.id': DOCKER_ID };
  assert.equal(none.process(batch(f)).measurements[0]!.attributes, f);
  await none.shutdown();
});

test('logs pipelines: log records of a flow get the same attributes; records without flow attributes pass untouched', async () => {
  const child = await sleeper(['341']);
  const p = processor();
  const record = { timeMs: Date.now(), severityNumber: 13, severityText: 'WARN', body: 'tcp connection failed', eventName: 'flowtel.tcp.connection_failed', attributes: flowOf(child.pid!, 'sleep') };
  const other = { ...record, eventName: 'flowtel.dns.query', attributes: { 'dns.question.name': 'example.com' } };
  const input = { records: [record, other], source: 'ebpf_tcp' };
  const out = p.processLogs(input);
  assert.notEqual(out, input, 'a new batch');
  assert.equal(out.records[0]!.attributes['process.executable.path'], realpathSync(sh('which', ['sleep']).trim()));
  assert.equal(out.records[0]!.body, record.body);
  assert.equal(out.records[1], other);
  assert.equal(record.attributes['process.executable.path' as keyof typeof record.attributes], undefined, 'the input record is not changed');
});
