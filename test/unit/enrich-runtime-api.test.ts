/**
 * The container runtime answers as bytes: the protobuf reader on well-formed,
 * unknown-field and malformed messages; containerd's and the CRI's container
 * lists; the choice of image name; endpoint parsing; how the lists of several
 * endpoints are merged. (The real daemons: test/kernel/enrich-containerd.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { mergeLists, parseRuntimeEndpoint, validateContainerConfig } from '../../src/processors/enrich/container';
import { encode, encodeMap, fields, ProtobufError, type WriteMessage } from '../../src/processors/enrich/protobuf-wire';
import { CriLister, criImageName, decodeContainerdContainers, decodeCriContainers, decodeCriImages, decodeNamespaces, GrpcUnixClient, isRuntimeAbsent } from '../../src/processors/enrich/runtime-api';

const ID_A = 'a'.repeat(64);
const ID_B = 'B'.repeat(64);
const IMAGE_ID = `sha256:${'c'.repeat(64)}`;

test('protobuf wire: fields in order, nested messages, varints past 32 bits, fixed-width fields skipped', () => {
  const buf = encode([[1, 'x'], [2, 300], [3, [[1, 'inner']]], [4, 2 ** 40], [5, true], [6, -1]]);
  const out = [...fields(buf)];
  assert.deepEqual(out.map((f) => [f.field, f.wireType]), [[1, 2], [2, 0], [3, 2], [4, 0], [5, 0], [6, 0]]);
  assert.equal(out[1]!.wireType === 0 && out[1]!.value, 300n);
  assert.equal(out[3]!.wireType === 0 && out[3]!.value, 2n ** 40n);
  assert.equal(out[5]!.wireType === 0 && out[5]!.value, 2n ** 64n - 1n, 'int64 -1 as ten bytes');
  // fixed64 (wire type 1) and fixed32 (5): skipped by length.
  const fixed = Buffer.concat([Buffer.from([(7 << 3) | 1]), Buffer.alloc(8), Buffer.from([(8 << 3) | 5]), Buffer.alloc(4), encode([[9, 'end']])]);
  assert.deepEqual([...fields(fixed)].map((f) => f.field), [7, 8, 9]);
});

test('protobuf wire: malformed messages throw a ProtobufError, never read past the end', () => {
  const good = encode([[1, 'hello']]);
  for (const bad of [good.subarray(0, good.length - 1), Buffer.from([0x0a, 0xff]), Buffer.from([0x0b]), Buffer.from([0x00, 0x01]), Buffer.from([0x09, 1, 2]), Buffer.alloc(11, 0xff)]) {
    assert.throws(() => [...fields(bad)], ProtobufError, bad.toString('hex'));
  }
  assert.deepEqual([...fields(Buffer.alloc(0))], []);
});

function containerdContainer(id: string, labels: Record<string, string>, image?: string, extra: WriteMessage = []): WriteMessage {
  return [[1, id], ...encodeMap(2, labels), [3, image], [4, [[1, 'io.containerd.runc.v2']]], [5, [[1, 'types.containerd.io/opencontainers/runtime-spec/1/Spec'], [2, Buffer.from('{"ociVersion":"1.0.2"}')]]], [6, 'overlayfs'], ...extra];
}

test('containerd: namespaces; containers named by the kubelet label, then nerdctl\'s, else no name; unknown fields skipped', () => {
  assert.deepEqual(decodeNamespaces(encode([[1, [[1, 'default'], ...encodeMap(2, { team: 'x' })]], [1, [[1, 'k8s.io']]], [1, [[1, 'moby']]]])), ['default', 'k8s.io', 'moby']);
  const list = encode([
    [1, containerdContainer(ID_A, { 'nerdctl/name': 'web', 'io.kubernetes.container.name': 'checkout', 'io.kubernetes.pod.name': 'checkout-1' }, 'docker.io/shop/checkout:2.1')],
    [1, containerdContainer(ID_B, { 'nerdctl/name': 'cache' }, 'redis:7', [[99, 'a field of a newer containerd']])],
    [1, containerdContainer('c'.repeat(64), { 'io.cri-containerd.kind': 'sandbox' })],
    [1, [[3, 'an image, no id']]],
  ]);
  assert.deepEqual(decodeContainerdContainers(list), [
    { id: ID_A, name: 'checkout', image: 'docker.io/shop/checkout:2.1' },
    { id: ID_B.toLowerCase(), name: 'cache', image: 'redis:7' },
    { id: 'c'.repeat(64) },
  ]);
});

function criContainer(id: string, name: string, image: WriteMessage, imageRef: string): WriteMessage {
  return [[1, id], [2, 'd'.repeat(64)], [3, [[1, name], [2, 1]]], [4, image], [5, imageRef], [6, 1], [7, 1_795_240_000_000_000_000], ...encodeMap(8, { 'io.kubernetes.container.name': name })];
}

test('CRI: metadata name; image as the user wrote it, else the spec or image_ref that is a name, else the tag of the image id', () => {
  const list = decodeCriContainers(
    encode([
      [1, criContainer(ID_A, 'web', [[1, IMAGE_ID], [18, 'nginx:1.25']], IMAGE_ID)], // kubelet ≥ 1.30
      [1, criContainer(ID_B, 'crio-style', [[1, 'quay.io/team/app:3']], IMAGE_ID)], // CRI-O
      [1, criContainer('e'.repeat(64), 'by-id', [[1, IMAGE_ID]], IMAGE_ID)], // containerd's cri, older kubelet
      [1, criContainer('f'.repeat(64), 'digest', [[1, IMAGE_ID]], 'registry:5000/x/y@sha256:' + '1'.repeat(64))],
    ]),
  );
  assert.deepEqual(list.map((c) => c.name), ['web', 'crio-style', 'by-id', 'digest']);
  const images = decodeCriImages(encode([[1, [[1, IMAGE_ID], [2, 'registry.local/shop/app:4.2'], [2, 'registry.local/shop/app:latest'], [3, 'registry.local/shop/app@sha256:' + '2'.repeat(64)]]], [1, [[1, 'sha256:' + '3'.repeat(64)], [3, 'x@sha256:' + '4'.repeat(64)]]]]));
  assert.equal(images.get(IMAGE_ID), 'registry.local/shop/app:4.2');
  assert.equal(images.get('sha256:' + '3'.repeat(64)), 'x@sha256:' + '4'.repeat(64), 'untagged: its digest reference');
  assert.deepEqual(list.map((c) => criImageName(c, images)), ['nginx:1.25', 'quay.io/team/app:3', 'registry.local/shop/app:4.2', 'registry:5000/x/y@sha256:' + '1'.repeat(64)]);
  assert.equal(criImageName(list[2]!, new Map()), undefined, 'an id nobody tags: no image name');
});

test('endpoints: the scheme names the API; relative socket paths and unknown schemes are config errors', () => {
  assert.deepEqual(parseRuntimeEndpoint('containerd:///run/containerd/containerd.sock'), { url: 'containerd:///run/containerd/containerd.sock', api: 'containerd', socketPath: '/run/containerd/containerd.sock' });
  assert.deepEqual(parseRuntimeEndpoint('cri:///var/run/crio/crio.sock'), { url: 'cri:///var/run/crio/crio.sock', api: 'cri', socketPath: '/var/run/crio/crio.sock' });
  assert.deepEqual(parseRuntimeEndpoint('unix:///var/run/docker.sock'), { url: 'unix:///var/run/docker.sock', api: 'docker' });
  assert.throws(() => validateContainerConfig({ endpoints: ['containerd://run/containerd.sock'] }, 'processors.container'), /processors\.container\.endpoints\[0\].*absolute path/s);
  assert.throws(() => validateContainerConfig({ endpoints: ['unix:///ok.sock', 'grpc://x'] }, 'processors.container'), /endpoints\[1\].*containerd:\/\/\/path/s);
  const defaults = validateContainerConfig(undefined, '');
  assert.ok(defaults.endpoints.includes('containerd:///run/containerd/containerd.sock') && defaults.endpoints.includes('cri:///var/run/crio/crio.sock'));
});

test('merge: each name from the first endpoint that has it; the id names a containerd container only when nobody else does', () => {
  const merged = mergeLists([
    { api: 'docker', list: [{ id: ID_A, name: 'shop-web-1', image: 'shop/web:2' }] },
    { api: 'containerd', list: [{ id: ID_A, image: 'docker.io/shop/web:2' }, { id: ID_B }, { id: 'c'.repeat(64), image: `sha256:${'9'.repeat(64)}` }] },
    { api: 'cri', list: [{ id: ID_B, name: 'checkout', image: 'shop/checkout@sha256:' + '5'.repeat(64) }] },
  ]);
  assert.deepEqual(Object.fromEntries(merged), {
    [ID_A]: { 'container.name': 'shop-web-1', 'container.image.name': 'shop/web', 'container.image.tag': '2' },
    [ID_B]: { 'container.name': 'checkout', 'container.image.name': 'shop/checkout' },
    ['c'.repeat(64)]: { 'container.name': 'c'.repeat(64) },
  });
});

test('CRI: a runtime that serves only runtime.v1alpha2 is asked that (and stays asked that); absent and refused sockets are "absent"', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'flowtel-cri-'));
  const socket = path.join(dir, 'cri.sock');
  const server = new Server();
  const asked: string[] = [];
  const answer = encode([[1, criContainer(ID_A, 'legacy', [[1, 'quay.io/old/app:1.9']], IMAGE_ID)]]);
  // Only the old service: v1 calls get UNIMPLEMENTED from grpc-js itself, as from an old runtime.
  server.register(
    '/runtime.v1alpha2.RuntimeService/ListContainers',
    (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      asked.push(call.getPath());
      callback(null, answer);
    },
    (b: Buffer) => b,
    (b: Buffer) => b,
    'unary',
  );
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  const client = new GrpcUnixClient(socket, 2000);
  try {
    const lister = new CriLister(client);
    assert.deepEqual(await lister.list(), [{ id: ID_A, name: 'legacy', image: 'quay.io/old/app:1.9' }]);
    assert.deepEqual(await lister.list(), [{ id: ID_A, name: 'legacy', image: 'quay.io/old/app:1.9' }]);
    assert.equal(asked.length, 2);
  } finally {
    client.close();
    server.forceShutdown();
  }
  // A socket file left behind by a runtime that stopped (bound, nobody listening): refused, not an error worth a warning.
  execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', socket]);
  const stale = new GrpcUnixClient(socket, 500);
  const refused = await new CriLister(stale).list().then(() => undefined, (e: unknown) => e);
  stale.close();
  assert.ok(refused, 'a call to a stopped runtime fails');
  assert.match(String(refused), /ECONNREFUSED/);
  assert.equal(isRuntimeAbsent(refused), true, String(refused));
  const none = await new CriLister(new GrpcUnixClient(path.join(dir, 'none.sock'), 500)).list().then(() => undefined, (e: unknown) => e);
  assert.equal(isRuntimeAbsent(none), true, String(none));
  rmSync(dir, { recursive: true, force: true });
});
