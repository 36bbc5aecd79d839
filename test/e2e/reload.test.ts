/**
 * SIGHUP: a valid new config replaces the pipelines without touching the
 * kernel state (same BPF programs, connections keep their counters, the
 * exporter's cumulative series go on); an invalid one is rejected and the old
 * config keeps running.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, test } from 'node:test';
import { Agent, TempDir, freePort, promSum, scrape, sleep, until } from '../helpers/e2e';
import { TestNet } from '../helpers/netns';

const net = TestNet.create('rld', 33);
const tmp = new TempDir();
const children: ChildProcess[] = [];
let agent: Agent | undefined;

after(async () => {
  await agent?.kill();
  for (const c of children) c.kill();
  net.destroy();
  tmp.cleanup();
});

function config(promPort: number, extra = ''): string {
  return `receivers:
  ebpf_tcp:
    collection_interval: 500ms
exporters:
  prometheus:
    endpoint: 127.0.0.1:${promPort}
${extra}
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [prometheus]
`;
}

test('SIGHUP: valid config swapped in with the kernel state kept; invalid config rejected', async () => {
  const promPort = await freePort();
  const file = tmp.write('flowtel.yaml', config(promPort));
  agent = Agent.spawn(['run', '--config', file]);
  await agent.ready();
  const programs = agent.heldProgramIds();
  const url = `http://127.0.0.1:${promPort}/metrics`;
  const port = 7330;
  children.push(await net.startServer(net.server, ['tcp-server', '--host', net.server.ip4, '--port', String(port), '--mode', 'hold']));
  const flow = { source_address: net.client.ip4, destination_port: String(port) };

  // A connection that lives across the reload: 300 kB before it, 200 kB after.
  const client = net.traffic(net.client, ['tcp-client', '--host', net.server.ip4, '--port', String(port), '--send', '300000', '--hold-ms', '2500']);
  await until('the first bytes are exported', async () => promSum(await scrape(url), 'tcp_bytes_sent_total', flow) === 300_000, 10_000);

  // A valid new config: one more pipeline with a second exporter.
  const promPort2 = await freePort();
  tmp.write(
    'flowtel.yaml',
    config(promPort, `  prometheus/second:\n    endpoint: 127.0.0.1:${promPort2}\n`).replace(
      'exporters: [prometheus]\n',
      'exporters: [prometheus]\n    metrics/second:\n      receivers: [ebpf_tcp]\n      exporters: [prometheus/second]\n',
    ),
  );
  agent.child.kill('SIGHUP');
  await agent.waitFor('"configuration reloaded"', () => agent!.logs().some((l) => l.msg === 'configuration reloaded'));
  const reloaded = agent.logs().find((l) => l.msg === 'configuration reloaded')!;
  assert.deepEqual(reloaded.kept, ['ebpf_tcp'], 'the receiver was kept, not restarted');
  assert.deepEqual(agent.heldProgramIds(), programs, 'the same BPF programs: nothing detached or reloaded');

  await client;
  const second = net.traffic(net.client, ['tcp-client', '--host', net.server.ip4, '--port', String(port), '--send', '200000']);
  await second;
  await until('all bytes exported', async () => promSum(await scrape(url), 'tcp_bytes_sent_total', flow) === 500_000, 10_000, () => agent!.describe());
  // The kept exporter's series went on (no reset); the new one counts from the reload on.
  const s1 = await scrape(url);
  assert.equal(promSum(s1, 'tcp_connections_opened_total', flow), 2);
  await until('the new exporter sees the second connection', async () => promSum(await scrape(`http://127.0.0.1:${promPort2}/metrics`), 'tcp_bytes_sent_total', flow) >= 200_000, 10_000);

  // An invalid config: rejected, logged, the old one keeps running.
  tmp.write('flowtel.yaml', config(promPort).replace('collection_interval: 500ms', 'collection_interval: 5 parsecs'));
  agent.child.kill('SIGHUP');
  await agent.waitFor('the rejection', () => agent!.logs().some((l) => String(l.msg).includes('new configuration rejected')));
  const rejection = agent.logs().find((l) => String(l.msg).includes('new configuration rejected'))!;
  assert.match(String(rejection.error), /collection_interval/);
  await sleep(300);
  assert.ok(agent.running);
  assert.equal(promSum(await scrape(url), 'tcp_bytes_sent_total', flow), 500_000);
  assert.deepEqual(agent.heldProgramIds(), programs);

  const exit = await agent.stop('SIGTERM');
  assert.equal(exit.code, 0);
});
