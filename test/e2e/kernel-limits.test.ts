/**
 * End to end, the kernel side at its limits, made small on purpose:
 *
 * - the UDP flow map full (`max_udp_flows: 4`): flows beyond it are counted in
 *   flowtel_ebpf_dropped{reason="udp_map_full"}, the agent goes on, and once
 *   idle flows have been expired from the map a new flow is counted exactly;
 * - the ring buffer full (`ring_buffer_size: 4096`, the minimum, under a
 *   burst of short connections): lost events are counted in
 *   flowtel_ebpf_dropped{reason="ringbuf_full"}, nothing is over-counted, the
 *   agent goes on, and when the burst is over a connection is counted exactly.
 *
 * TCP connections have no capacity to fill: their state lives in socket-local
 * storage (BPF_MAP_TYPE_SK_STORAGE) that comes and goes with each socket; a
 * failed allocation would be counted as reason="storage_alloc_failed".
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, test } from 'node:test';
import { Agent, TempDir, assertNothingAttached, freePort, promSum, scrape, until, type PromScrape } from '../helpers/e2e';
import { TestNet } from '../helpers/netns';

const net = TestNet.create('rlkl', 74);
const { client: C, server: S } = net;
const tmp = new TempDir();
const servers: ChildProcess[] = [];
const agents: Agent[] = [];

before(() => assertNothingAttached());
afterEach(async () => {
  for (const a of agents.splice(0)) await a.kill();
  for (const s of servers.splice(0)) s.kill();
});
after(() => {
  net.destroy();
  tmp.cleanup();
});

/**
 * The agent sees the whole host, and other tests may run beside this one: a
 * filter on the test subnet, pushed into the kernel, keeps their TCP
 * connections out of the tiny ring buffer (UDP has no in-kernel filter).
 */
async function startAgent(receiver: string): Promise<{ agent: Agent; url: string }> {
  const port = await freePort();
  const file = tmp.write(
    `kl-${randomUUID()}.yaml`,
    `
receivers: { ebpf_tcp: { collection_interval: 1s, ${receiver} } }
processors: { filter: { include: { cidrs: ["10.201.74.0/24"] } } }
exporters: { prometheus: { endpoint: "127.0.0.1:${port}" } }
service: { pipelines: { metrics: { receivers: [ebpf_tcp], processors: [filter], exporters: [prometheus] } } }
`,
  );
  const agent = Agent.spawn(['run', '--config', file]);
  agents.push(agent);
  await agent.ready(60_000);
  return { agent, url: `http://127.0.0.1:${port}/metrics` };
}

const dropped = (s: PromScrape, reason: string): number => promSum(s, 'flowtel_ebpf_dropped_total', { reason });
const flowOf = (port: number): Record<string, string> => ({ source_address: C.ip4, destination_address: S.ip4, destination_port: String(port) });

test('UDP flow map full: the overflow is counted, the agent goes on, and new flows are counted exactly once idle ones expired', async () => {
  const { agent, url } = await startAgent('max_udp_flows: 8');
  servers.push(await net.startServer(S, ['udp-server', '--host', S.ip4, '--port', '7401']));
  // Sixteen flows at once (each client run has its own port; each is a flow at both ends): twice the capacity.
  await Promise.all(Array.from({ length: 8 }, () => net.traffic(C, ['udp-client', '--host', S.ip4, '--port', '7401', '--count', '5', '--size', '100'])));
  let s: PromScrape | undefined;
  await until('udp_map_full drops counted', async () => dropped((s = await scrape(url)), 'udp_map_full') > 0, 30_000, () => agent.describe());
  const sent = promSum(s!, 'udp_bytes_sent_total', flowOf(7401));
  assert.ok(sent < 8 * 500, `flows that did not fit are not counted: ${sent}`);
  assert.ok(agent.running);

  // Idle flows leave the map after 3 collections; then there is room again.
  // Each attempt is a process of its own (process.pid tells them apart);
  // other UDP on the host competes for the room, so try until one fits.
  servers.push(await net.startServer(S, ['udp-server', '--host', S.ip4, '--port', '7402']));
  const exact: string[] = [];
  const seen: number[] = [];
  await until(
    'a new flow counted exactly',
    async () => {
      const { pid } = await net.traffic(C, ['udp-client', '--host', S.ip4, '--port', '7402', '--count', '9', '--size', '200']);
      await new Promise((r) => setTimeout(r, 2_200));
      s = await scrape(url);
      const bytes = promSum(s, 'udp_bytes_sent_total', { ...flowOf(7402), process_pid: String(pid) });
      seen.push(bytes);
      if (bytes === 1800) exact.push(String(pid));
      return exact.length > 0;
    },
    30_000,
    () => `bytes per attempt: ${seen.join(', ')}\n${agent.describe()}`,
    0,
  );
  assert.deepEqual(agent.logs().filter((l) => l.level === 'error' || l.level === 'fatal'), [], agent.describe());
  assert.deepEqual(await agent.stop('SIGTERM'), { code: 0, signal: null }, agent.describe());
});

test('ring buffer full under a burst of connections: lost events counted, never over-counted, exact again after the burst', async () => {
  // The smallest ring buffer, and a wakeup only every 4096 events (the agent still drains it every 50 ms).
  const { agent, url } = await startAgent('ring_buffer_size: 4096, wakeup_batch: 4096');
  const port = 7411;
  servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(port), '--reply', '1']));
  const K = 3000;
  const { result } = await net.traffic<{ connections: number }>(C, ['churn', '--host', S.ip4, '--port', String(port), '--count', String(K), '--parallel', '64']);
  assert.equal(result.connections, K);
  let s: PromScrape | undefined;
  await until('ringbuf_full drops counted', async () => dropped((s = await scrape(url)), 'ringbuf_full') > 0, 30_000, () => agent.describe());
  // Two collections later, nothing more comes for the burst.
  await new Promise((r) => setTimeout(r, 2_500));
  s = await scrape(url);
  const closed = promSum(s, 'tcp_connections_closed_total', flowOf(port));
  assert.ok(closed <= K, `never more than happened: ${closed} > ${K}`);
  assert.ok(agent.running, agent.describe());

  // After the burst: one connection, exact.
  const dropsBefore = dropped(s, 'ringbuf_full');
  const port2 = 7412;
  const N = 65_432;
  const M = 12_345;
  servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(port2), '--reply', String(M)]));
  await net.traffic(C, ['tcp-client', '--host', S.ip4, '--port', String(port2), '--send', String(N)]);
  await until('exact after the burst', async () => promSum((s = await scrape(url)), 'tcp_connections_closed_total', flowOf(port2)) === 1, 30_000, () => agent.describe());
  assert.equal(promSum(s!, 'tcp_bytes_sent_total', flowOf(port2)), N);
  assert.equal(promSum(s!, 'tcp_bytes_received_total', flowOf(port2)), M);
  assert.equal(dropped(s!, 'ringbuf_full'), dropsBefore, 'no drop once the load is gone');
  assert.deepEqual(agent.logs().filter((l) => l.level === 'error' || l.level === 'fatal'), [], agent.describe());
  assert.deepEqual(await agent.stop('SIGTERM'), { code: 0, signal: null }, agent.describe());
});
