/**
 * Fan-out: one receiver feeding two pipelines, one pipeline feeding two
 * exporters. Every exporter gets the same data; a filter in one pipeline is
 * not pushed into the kernel (the other pipeline wants that traffic).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, test } from 'node:test';
import { Agent, TempDir, freePort, promSum, scrape, until } from '../helpers/e2e';
import { TestNet } from '../helpers/netns';

const net = TestNet.create('fan', 34);
const tmp = new TempDir();
const children: ChildProcess[] = [];
let agent: Agent | undefined;

after(async () => {
  await agent?.kill();
  for (const c of children) c.kill();
  net.destroy();
  tmp.cleanup();
});

test('two exporters of a pipeline get the same numbers; a filtering pipeline beside an unfiltered one', async () => {
  const [a, b, c] = [await freePort(), await freePort(), await freePort()];
  const file = tmp.write(
    'fanout.yaml',
    `receivers:
  ebpf_tcp: { collection_interval: 500ms }
processors:
  filter: { exclude: { ports: [7341] } }
exporters:
  prometheus/a: { endpoint: "127.0.0.1:${a}" }
  prometheus/b: { endpoint: "127.0.0.1:${b}" }
  prometheus/c: { endpoint: "127.0.0.1:${c}" }
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [prometheus/a, prometheus/b]
    metrics/filtered:
      receivers: [ebpf_tcp]
      processors: [filter]
      exporters: [prometheus/c]
`,
  );
  agent = Agent.spawn(['run', '--config', file]);
  await agent.ready();
  assert.ok(!agent.logs().some((l) => l.msg === 'filter pushed down into the kernel'), 'not every pipeline filters: nothing pushed down');
  for (const port of [7340, 7341]) children.push(await net.startServer(net.server, ['tcp-server', '--host', net.server.ip4, '--port', String(port), '--reply', '4321']));
  for (const port of [7340, 7341]) await net.traffic(net.client, ['tcp-client', '--host', net.server.ip4, '--port', String(port), '--send', '98765']);
  const url = (p: number): string => `http://127.0.0.1:${p}/metrics`;
  const flow = (port: number): Record<string, string> => ({ source_address: net.client.ip4, destination_port: String(port) });
  await until('both connections exported', async () => promSum(await scrape(url(b)), 'tcp_connections_closed_total', { source_address: net.client.ip4 }) === 2, 10_000, () => agent!.describe());
  const [sa, sb, sc] = [await scrape(url(a)), await scrape(url(b)), await scrape(url(c))];
  for (const port of [7340, 7341]) {
    for (const s of [sa, sb]) {
      assert.equal(promSum(s, 'tcp_bytes_sent_total', flow(port)), 98765);
      assert.equal(promSum(s, 'tcp_bytes_received_total', flow(port)), 4321);
    }
  }
  assert.equal(promSum(sc, 'tcp_bytes_sent_total', flow(7340)), 98765);
  assert.equal(promSum(sc, 'tcp_bytes_sent_total', flow(7341)), 0, 'the filtered pipeline does not have port 7341');
  assert.equal((await agent.stop()).code, 0);
});
