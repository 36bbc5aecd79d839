/**
 * The four network enrichment processors in a running agent, in the order
 * the docs recommend ([nat, cloud, cloud_services, zone]), exported on a
 * Prometheus endpoint: a client dials a DNATed service address whose backend
 * sits in another zone and inside a (test) provider range; the host's own
 * zone comes from a local IMDSv2 server the test runs.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { Agent, TempDir, freePort, promSelect, promSum, scrape, until } from '../helpers/e2e';
import { TestNet } from '../helpers/netns';

const net = TestNet.create('enpipe', 58);
const { client: C, server: S } = net;
const VIP = '10.58.0.100';
const tmp = new TempDir();
const children: ChildProcess[] = [];
let agent: Agent | undefined;
let imds: Server | undefined;

after(async () => {
  await agent?.kill();
  for (const c of children) c.kill();
  imds?.close();
  net.destroy();
  tmp.cleanup();
});

const TOKEN = 'e2e-token';

async function startImds(): Promise<string> {
  imds = createServer((req, res) => {
    if (req.url === '/latest/api/token' && req.method === 'PUT' && req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return void res.end(TOKEN);
    if (req.headers['x-aws-ec2-metadata-token'] !== TOKEN) return void res.writeHead(401).end();
    if (req.url === '/latest/dynamic/instance-identity/document') {
      return void res.end(JSON.stringify({ accountId: '111122223333', availabilityZone: 'eu-west-1a', instanceId: 'i-0e2e0e2e0e2e0e2e0', instanceType: 't3.micro', region: 'eu-west-1', imageId: 'ami-1' }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => imds!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(imds.address() as AddressInfo).port}`;
}

test('a DNATed cross-zone connection to a provider service: every attribute and the cross-AZ bytes and cost on /metrics', async () => {
  const [promPort, svcPort, backendPort] = [await freePort(), await freePort(), await freePort()];
  const endpoint = await startImds();
  net.exec(C, 'ip', ['route', 'add', `${VIP}/32`, 'dev', C.dev]);
  net.nft(C, `table ip enpipe { chain out { type nat hook output priority -100; ip daddr ${VIP} tcp dport ${svcPort} dnat to ${S.ip4}:${backendPort}; }; }`);
  const ranges = tmp.write(
    'ip-ranges.json',
    JSON.stringify({ syncToken: '1', createDate: '2026-11-21-00-00-00', prefixes: [{ ip_prefix: `${S.ip4}/32`, region: 'eu-west-1', service: 'S3', network_border_group: 'eu-west-1' }], ipv6_prefixes: [] }),
  );
  const file = tmp.write(
    'enrich.yaml',
    `receivers:
  ebpf_tcp: { collection_interval: 500ms }
processors:
  nat: {}
  cloud:
    detectors: [ec2]
    endpoints: { ec2: "${endpoint}" }
  zone:
    subnets:
      - { cidr: ${S.ip4}/32, availability_zone: eu-west-1b, region: eu-west-1 }
  cloud_services:
    files: [${ranges}]
exporters:
  prometheus: { endpoint: "127.0.0.1:${promPort}" }
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      processors: [nat, cloud, cloud_services, zone]
      exporters: [prometheus]
`,
  );
  agent = Agent.spawn(['run', '--config', file]);
  await agent.ready();
  const N = 1_048_577;
  const M = 65_537;
  children.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(backendPort), '--reply', String(M)]));
  const { result } = await net.traffic<{ received: number }>(C, ['tcp-client', '--host', VIP, '--port', String(svcPort), '--send', String(N)]);
  assert.equal(result.received, M);

  const url = `http://127.0.0.1:${promPort}/metrics`;
  const clientFlow = { source_address: C.ip4, destination_address: VIP, destination_port: String(svcPort) };
  await until('the client connection is exported', async () => promSum(await scrape(url), 'tcp_connections_closed_total', clientFlow) === 1, 15_000, () => agent!.describe());
  await until('its cross-zone bytes are exported', async () => promSum(await scrape(url), 'network_cross_az_bytes_total', {}) >= N + M, 5_000, () => agent!.describe());
  const s = await scrape(url);
  const [sent] = promSelect(s, 'tcp_bytes_sent_total', clientFlow);
  assert.ok(sent, 'the client flow is on /metrics');
  assert.equal(sent.value, N);
  assert.deepEqual(
    {
      translated: [sent.labels.destination_translated_address, sent.labels.destination_translated_port],
      host: [sent.labels.cloud_provider, sent.labels.cloud_region, sent.labels.cloud_availability_zone, sent.labels.host_id],
      zones: [sent.labels.source_cloud_availability_zone, sent.labels.destination_cloud_availability_zone, sent.labels.network_cross_az],
      service: [sent.labels.destination_cloud_provider, sent.labels.destination_cloud_service, sent.labels.destination_network_scope],
    },
    {
      translated: [S.ip4, String(backendPort)],
      host: ['aws', 'eu-west-1', 'eu-west-1a', 'i-0e2e0e2e0e2e0e2e0'],
      zones: ['eu-west-1a', 'eu-west-1b', 'true'],
      service: ['aws', 'S3', 'private'],
    },
  );
  // The host is in eu-west-1a (IMDS), so the server's side of the connection is
  // local too: source eu-west-1a, destination C (unknown zone) — not cross-zone.
  const cross = { source_cloud_availability_zone: 'eu-west-1a', destination_cloud_availability_zone: 'eu-west-1b' };
  assert.equal(promSum(s, 'network_cross_az_bytes_total', { ...cross, network_io_direction: 'transmit', destination_cloud_service: 'S3' }), N);
  assert.equal(promSum(s, 'network_cross_az_bytes_total', { ...cross, network_io_direction: 'receive' }), M);
  assert.equal(promSum(s, 'network_cross_az_bytes_total', {}), N + M);
  const cost = promSum(s, 'network_cross_az_cost_usd_total', {});
  const expected = ((N + M) * 0.01) / 2 ** 30;
  assert.ok(Math.abs(cost - expected) <= expected * 1e-9, `cost ${cost} vs ${expected}`);
  assert.equal(s.types.get('network_cross_az_bytes_total') ?? s.types.get('network_cross_az_bytes'), 'counter');
  assert.equal((await agent.stop()).code, 0);
});
