/**
 * Container ids from /proc/PID/cgroup text as each runtime writes it (cgroup
 * v1 and v2, systemd and cgroupfs drivers), the /proc field parsers, and the
 * Docker Engine API shapes the container processor reads.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { containerFromCgroupFile, containerFromCgroupPath } from '../../src/processors/enrich/cgroup';
import { parseEffectiveUid, parsePasswd, parseStartTime } from '../../src/processors/enrich/proc-info';
import { parseContainerList, parseEngineEndpoint, parseImageReference } from '../../src/processors/enrich/docker-api';
import { processProcessorFactory } from '../../src/processors/enrich/process';
import { containerProcessorFactory } from '../../src/processors/enrich/container';

const ID = '3f4b1c0e9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c';
const ID2 = 'c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6f7e8d9c0b1a2f3e4d5c6b7a8f9e0d1c2b3';
const POD = '1e9e6b3c-5b4a-4d0e-9f5b-2f6c0f8e1a2b';
const POD_ = POD.replace(/-/g, '_');

/** /proc/PID/cgroup of a process in a container, per runtime (captured shapes; ids replaced). */
const CAPTURED: Array<{ what: string; text: string; want: ReturnType<typeof containerFromCgroupFile> }> = [
  {
    what: 'docker, systemd driver, cgroup v2',
    text: `0::/system.slice/docker-${ID}.scope\n`,
    want: { id: ID, runtime: 'docker' },
  },
  {
    what: 'docker, cgroupfs driver, cgroup v1 (every controller)',
    text: [
      `12:pids:/docker/${ID}`,
      `11:hugetlb:/docker/${ID}`,
      `10:net_cls,net_prio:/docker/${ID}`,
      `9:memory:/docker/${ID}`,
      `8:cpu,cpuacct:/docker/${ID}`,
      `1:name=systemd:/docker/${ID}`,
      `0::/system.slice/containerd.service`,
      '',
    ].join('\n'),
    want: { id: ID, runtime: 'docker' },
  },
  {
    what: 'docker, cgroupfs driver, cgroup v2',
    text: `0::/docker/${ID}\n`,
    want: { id: ID, runtime: 'docker' },
  },
  {
    what: 'Kubernetes, containerd, systemd driver, cgroup v2',
    text: `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_}.slice/cri-containerd-${ID}.scope\n`,
    want: { id: ID, runtime: 'containerd', podUid: POD },
  },
  {
    what: 'Kubernetes, containerd, cgroupfs driver, cgroup v1',
    text: [`11:memory:/kubepods/besteffort/pod${POD}/${ID}`, `5:cpu,cpuacct:/kubepods/besteffort/pod${POD}/${ID}`, `1:name=systemd:/kubepods/besteffort/pod${POD}/${ID}`, ''].join('\n'),
    want: { id: ID, podUid: POD },
  },
  {
    what: 'Kubernetes guaranteed pod (no QoS slice), containerd, systemd driver',
    text: `0::/kubepods.slice/kubepods-pod${POD_}.slice/cri-containerd-${ID}.scope\n`,
    want: { id: ID, runtime: 'containerd', podUid: POD },
  },
  {
    what: 'containerd under containerd.service, the systemd name as a path (k3s and others)',
    text: `0::/system.slice/containerd.service/kubepods-burstable-pod${POD_}.slice:cri-containerd:${ID}\n`,
    want: { id: ID, runtime: 'containerd', podUid: POD },
  },
  {
    what: 'CRI-O, systemd driver',
    text: `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_}.slice/crio-${ID}.scope\n`,
    want: { id: ID, runtime: 'cri-o', podUid: POD },
  },
  {
    what: "CRI-O's monitor (conmon) is not the container",
    text: `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_}.slice/crio-conmon-${ID}.scope\n`,
    want: undefined,
  },
  {
    what: 'podman rootful, systemd, split cgroup (/container)',
    text: `0::/machine.slice/libpod-${ID}.scope/container\n`,
    want: { id: ID, runtime: 'podman' },
  },
  {
    what: 'podman rootless',
    text: `0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope\n`,
    want: { id: ID, runtime: 'podman' },
  },
  {
    what: 'podman, cgroupfs driver',
    text: `0::/libpod_parent/libpod-${ID}\n`,
    want: { id: ID, runtime: 'podman' },
  },
  {
    what: "podman's conmon",
    text: `0::/machine.slice/libpod-conmon-${ID}.scope\n`,
    want: undefined,
  },
  {
    what: 'nerdctl (containerd), systemd driver',
    text: `0::/system.slice/nerdctl-${ID}.scope\n`,
    want: { id: ID, runtime: 'containerd' },
  },
  {
    what: 'ECS task (cgroupfs, v1)',
    text: `9:memory:/ecs/8f2b1e6a3c4d4e5f9a0b1c2d3e4f5a6b/${ID}\n`,
    want: { id: ID },
  },
  {
    what: 'kind: a pod container inside a node container — the innermost id',
    text: `0::/docker/${ID2}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${POD_}.slice/cri-containerd-${ID}.scope\n`,
    want: { id: ID, runtime: 'containerd', podUid: POD },
  },
  {
    what: 'a host process, systemd service, hybrid v1/v2',
    text: ['12:pids:/system.slice/nginx.service', '1:name=systemd:/system.slice/nginx.service', '0::/system.slice/nginx.service', ''].join('\n'),
    want: undefined,
  },
  {
    what: 'a login session',
    text: '0::/user.slice/user-1000.slice/session-3.scope\n',
    want: undefined,
  },
  {
    what: 'v2 says nothing, a v1 hierarchy names the container',
    text: ['3:name=flowteltest:/docker/' + ID, '0::/', ''].join('\n'),
    want: { id: ID, runtime: 'docker' },
  },
];

for (const c of CAPTURED) {
  test(`cgroup: ${c.what}`, () => assert.deepEqual(containerFromCgroupFile(c.text), c.want));
}

test('cgroup: ids must be 64 lower-case hex digits; garbage gives nothing', () => {
  assert.equal(containerFromCgroupPath('/docker/abc123'), undefined);
  assert.equal(containerFromCgroupPath(`/docker/${ID.toUpperCase()}`), undefined);
  assert.equal(containerFromCgroupPath(`/system.slice/docker-${ID}x.scope`), undefined);
  assert.equal(containerFromCgroupFile(''), undefined);
  assert.equal(containerFromCgroupFile('not a cgroup file\n\u0000\u0001'), undefined);
});

test('/proc/PID/stat: start time after a comm with spaces and parentheses', () => {
  const stat = '4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 12345678 500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0';
  assert.equal(parseStartTime(stat), 987654);
  assert.equal(parseStartTime('garbage'), undefined);
});

test('/proc/PID/status: effective uid; passwd: first name per uid', () => {
  assert.equal(parseEffectiveUid('Name:\tx\nUid:\t1000\t33\t33\t33\nGid:\t0\t0\t0\t0\n'), 33);
  assert.equal(parseEffectiveUid('Name:\tx\n'), undefined);
  const names = parsePasswd('root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n# comment\nbad line\ntoor:x:0:0::/:/bin/sh\n');
  assert.deepEqual([...names], [[0, 'root'], [33, 'www-data']]);
});

test('docker image references: name and tag', () => {
  assert.deepEqual(parseImageReference('nginx:1.25'), { name: 'nginx', tag: '1.25' });
  assert.deepEqual(parseImageReference('nginx'), { name: 'nginx', tag: 'latest' });
  assert.deepEqual(parseImageReference('registry.local:5000/team/app:v2.1'), { name: 'registry.local:5000/team/app', tag: 'v2.1' });
  assert.deepEqual(parseImageReference('registry.local:5000/team/app'), { name: 'registry.local:5000/team/app', tag: 'latest' });
  assert.deepEqual(parseImageReference(`ghcr.io/x/y@sha256:${ID}`), { name: 'ghcr.io/x/y' });
  assert.deepEqual(parseImageReference(`ghcr.io/x/y:1.0@sha256:${ID}`), { name: 'ghcr.io/x/y', tag: '1.0' });
  assert.deepEqual(parseImageReference(`sha256:${ID}`), {});
});

test('docker /containers/json: the own name, not link aliases; bad entries skipped', () => {
  const list = parseContainerList([
    { Id: ID, Names: ['/web/db', '/db'], Image: 'postgres:16', ImageID: `sha256:${ID2}`, Command: 'postgres', State: 'running', Status: 'Up 2 hours', Labels: {} },
    { Id: ID2, Names: ['/web'], Image: 'nginx', State: 'exited' },
    { Names: ['/no-id'] },
    'garbage',
  ]);
  assert.deepEqual(list, [
    { id: ID, name: 'db', image: 'postgres:16' },
    { id: ID2, name: 'web', image: 'nginx' },
  ]);
  assert.throws(() => parseContainerList({ message: 'page not found' }), /expected a JSON array/);
});

test('config: process attributes and container endpoints are checked', () => {
  assert.deepEqual(processProcessorFactory.defaultConfig().attributes, ['process.executable.name', 'process.executable.path', 'process.owner', 'container.id']);
  assert.throws(() => processProcessorFactory.validate({ attributes: ['process.cmdline'] }, 'processors.process'), /processors\.process\.attributes\[0\].*process\.command_line/);
  assert.throws(() => processProcessorFactory.validate({ cache_size: 1 }, 'processors.process'), /cache_size/);
  assert.deepEqual(parseEngineEndpoint('unix:///var/run/docker.sock'), { url: 'unix:///var/run/docker.sock', socketPath: '/var/run/docker.sock' });
  assert.deepEqual(parseEngineEndpoint('http://127.0.0.1:2375'), { url: 'http://127.0.0.1:2375', host: '127.0.0.1', port: 2375 });
  assert.throws(() => containerProcessorFactory.validate({ endpoints: ['docker.sock'] }, 'processors.container'), /processors\.container\.endpoints\[0\]/);
});
