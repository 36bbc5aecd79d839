/**
 * Cross-AZ bytes and cost, and the network scope, on real traffic: two test
 * namespaces that the subnet table puts in different zones (and a second
 * address of the server's namespace in the client's zone). The bytes the
 * `zone` processor counts as cross-zone must be exactly the flows' bytes as
 * the receiver reports them (tcp_bytes_*, udp_bytes_*), which must be exactly
 * what the applications sent and received.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { MetricsProcessor, MetricsReceiver } from '../../src/pipeline/component';
import type { AttributeValue, Measurement } from '../../src/pipeline/measurements';
import { cloudServicesProcessorFactory } from '../../src/processors/netenrich/cloud-services';
import { zoneProcessorFactory } from '../../src/processors/netenrich/zone';
import { Capture, startReceiver } from '../helpers/capture';
import { freePort } from '../helpers/e2e';
import { TestNet } from '../helpers/netns';
import pino from 'pino';

const net = TestNet.create('enzone', 57);
const { client: C, server: S } = net;
/** A second address of the server namespace, in the client's zone. */
const S_SAME_ZONE = '10.201.57.3';
const dir = mkdtempSync(path.join(tmpdir(), 'flowtel-zone-k-'));
let receiver: MetricsReceiver;
let capture: Capture;
let chain: MetricsProcessor[];
const servers: ChildProcess[] = [];

before(async () => {
  net.exec(S, 'ip', ['addr', 'add', `${S_SAME_ZONE}/24`, 'dev', S.dev]);
  // An AWS-format range file that (for the test) says the server's address is DynamoDB's.
  const ranges = path.join(dir, 'ip-ranges.json');
  writeFileSync(
    ranges,
    JSON.stringify({
      syncToken: '1',
      createDate: '2026-11-21-00-00-00',
      prefixes: [
        { ip_prefix: `${S.ip4}/32`, region: 'eu-west-1', service: 'AMAZON', network_border_group: 'eu-west-1' },
        { ip_prefix: `${S.ip4}/32`, region: 'eu-west-1', service: 'DYNAMODB', network_border_group: 'eu-west-1' },
      ],
      ipv6_prefixes: [],
    }),
  );
  const log = pino({ level: 'warn' });
  const zone = zoneProcessorFactory.create(
    zoneProcessorFactory.validate(
      {
        subnets: [
          { cidr: `${C.ip4}/32`, availability_zone: 'eu-west-1a', region: 'eu-west-1' },
          { cidr: `${S.ip4}/32`, availability_zone: 'eu-west-1b', region: 'eu-west-1' },
          { cidr: `${S_SAME_ZONE}/32`, availability_zone: 'eu-west-1a', region: 'eu-west-1' },
        ],
      },
      'processors.zone',
    ),
    { id: 'zone', logger: log },
  );
  const services = cloudServicesProcessorFactory.create(cloudServicesProcessorFactory.validate({ files: [ranges] }, 'processors.cloud_services'), { id: 'cloud_services', logger: log });
  chain = [services, zone];
  for (const p of chain) await p.start();
  ({ receiver, capture } = await startReceiver());
});

after(async () => {
  for (const s of servers) s.kill();
  for (const p of chain ?? []) await p.shutdown();
  await receiver?.shutdown();
  net.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** Every measurement captured so far, through [cloud_services, zone], batch by batch. */
function processed(): Measurement[] {
  return capture.batches.flatMap((b) => chain.reduce((x, p) => p.process(x), b).measurements);
}

const sum = (ms: Measurement[], metric: string, match: Record<string, AttributeValue>): number =>
  ms.filter((m) => m.metric === metric && Object.entries(match).every(([k, v]) => m.attributes[k] === v)).reduce((s, m) => s + m.value, 0);

async function eventually(check: () => boolean): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await receiver.collect();
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('cross-zone TCP and UDP bytes and their cost are exact; same-zone traffic costs nothing', async () => {
  const [crossPort, samePort, udpPort] = [await freePort(), await freePort(), await freePort()];
  const N = 2_345_678;
  const M = 123_457;
  const K = 765_432;
  const D = 40;
  const Z = 1000;
  servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(crossPort), '--reply', String(M)]));
  servers.push(await net.startServer(S, ['tcp-server', '--host', S_SAME_ZONE, '--port', String(samePort), '--reply', '10']));
  servers.push(await net.startServer(S, ['udp-server', '--host', S.ip4, '--port', String(udpPort)]));
  const cross = await net.traffic<{ sent: number; received: number }>(C, ['tcp-client', '--host', S.ip4, '--port', String(crossPort), '--send', String(N)]);
  const same = await net.traffic<{ sent: number; received: number }>(C, ['tcp-client', '--host', S_SAME_ZONE, '--port', String(samePort), '--send', String(K)]);
  const udp = await net.traffic<{ received: number }>(C, ['udp-client', '--host', S.ip4, '--port', String(udpPort), '--count', String(D), '--size', String(Z)]);
  // The applications' own counts.
  assert.equal(cross.result.received, M);
  assert.equal(same.result.received, 10);
  assert.equal(udp.result.received, D * Z);

  const clientCross = { 'source.address': C.ip4, 'destination.address': S.ip4, 'destination.port': crossPort };
  const serverCross = { 'source.address': S.ip4, 'source.port': crossPort, 'destination.address': C.ip4 };
  await eventually(() => capture.sum('tcp_connections_closed', clientCross) === 1 && capture.sum('tcp_connections_closed', serverCross) === 1 && capture.sum('tcp_connections_closed', { 'destination.port': samePort }) === 1);
  const all = processed();

  // The receiver's byte counters agree with the applications ...
  assert.equal(sum(all, 'tcp_bytes_sent', clientCross), N);
  assert.equal(sum(all, 'tcp_bytes_received', clientCross), M);
  assert.equal(sum(all, 'tcp_bytes_sent', serverCross), M);
  assert.equal(sum(all, 'tcp_bytes_received', serverCross), N);

  // ... the flows carry both zones and the verdict ...
  const [flow] = all.filter((m) => m.metric === 'tcp_bytes_sent' && m.attributes['destination.port'] === crossPort);
  assert.equal(flow!.attributes['source.cloud.availability_zone'], 'eu-west-1a');
  assert.equal(flow!.attributes['destination.cloud.availability_zone'], 'eu-west-1b');
  assert.equal(flow!.attributes['network.cross_az'], true);
  const [sameFlow] = all.filter((m) => m.metric === 'tcp_bytes_sent' && m.attributes['destination.port'] === samePort);
  assert.equal(sameFlow!.attributes['network.cross_az'], false);

  // ... and the cross-AZ bytes are exactly the cross-zone flows' bytes, each side counting its own.
  const xaz = (match: Record<string, AttributeValue>): number => sum(all, 'network_cross_az_bytes', match);
  const clientZones = { 'source.cloud.availability_zone': 'eu-west-1a', 'destination.cloud.availability_zone': 'eu-west-1b' };
  const serverZones = { 'source.cloud.availability_zone': 'eu-west-1b', 'destination.cloud.availability_zone': 'eu-west-1a' };
  assert.equal(xaz({ ...clientZones, 'network.transport': 'tcp', 'network.io.direction': 'transmit' }), N);
  assert.equal(xaz({ ...clientZones, 'network.transport': 'tcp', 'network.io.direction': 'receive' }), M);
  assert.equal(xaz({ ...serverZones, 'network.transport': 'tcp', 'network.io.direction': 'transmit' }), M);
  assert.equal(xaz({ ...serverZones, 'network.transport': 'tcp', 'network.io.direction': 'receive' }), N);
  const udpBytes = sum(all, 'udp_bytes_sent', { 'source.address': C.ip4, 'destination.address': S.ip4 });
  assert.equal(udpBytes, D * Z);
  assert.equal(xaz({ ...clientZones, 'network.transport': 'udp', 'network.io.direction': 'transmit' }), D * Z);
  assert.equal(xaz({ ...clientZones, 'network.transport': 'udp', 'network.io.direction': 'receive' }), D * Z);
  const total = xaz({});
  assert.equal(total, 2 * (N + M) + 4 * D * Z, 'nothing else crossed zones: the same-zone connection is not counted');
  assert.equal(xaz({ 'destination.port': samePort }), 0);

  const cost = sum(all, 'network_cross_az_cost_usd', {});
  const expected = (total * 0.01) / 2 ** 30;
  assert.ok(Math.abs(cost - expected) <= expected * 1e-12, `cost ${cost} USD, expected ${expected}`);
  assert.ok(all.filter((m) => m.metric === 'network_cross_az_bytes').every((m) => m.attributes['process.executable.name'] === 'node'));
});

test('flows get the network scope, and the provider service where the range file names one', async () => {
  const port = await freePort();
  servers.push(await net.startServer(C, ['tcp-server', '--host', '127.0.0.1', '--port', String(port), '--reply', '5']));
  const local = await net.traffic<{ received: number }>(C, ['tcp-client', '--host', '127.0.0.1', '--port', String(port), '--send', '5']);
  assert.equal(local.result.received, 5);
  await eventually(() => capture.sum('tcp_connections_closed', { 'destination.address': '127.0.0.1', 'destination.port': port }) === 1);
  const all = processed().filter((m) => m.metric === 'tcp_bytes_sent');
  const toLoopback = all.find((m) => m.attributes['destination.port'] === port)!;
  assert.equal(toLoopback.attributes['destination.network.scope'], 'loopback');
  const toServer = all.find((m) => m.attributes['source.address'] === C.ip4 && m.attributes['destination.address'] === S.ip4)!;
  assert.equal(toServer.attributes['destination.network.scope'], 'private');
  assert.equal(toServer.attributes['destination.cloud.service'], 'DYNAMODB');
  assert.equal(toServer.attributes['destination.cloud.provider'], 'aws');
  assert.equal(toServer.attributes['destination.cloud.region'], 'eu-west-1');
  const toSameZone = all.find((m) => m.attributes['destination.address'] === S_SAME_ZONE)!;
  assert.equal(toSameZone.attributes['destination.network.scope'], 'private');
  assert.equal(toSameZone.attributes['destination.cloud.service'], undefined);
  for (const m of all) assert.ok(m.attributes['destination.network.scope'] !== undefined, `every flow has a scope: ${JSON.stringify(m.attributes)}`);
});
