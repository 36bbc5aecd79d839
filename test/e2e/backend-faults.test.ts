/**
 * End to end, the OTLP backend misbehaving under a running agent (real
 * kernel data, a real OTLP/gRPC receiver, the agent's own counters from its
 * self-telemetry endpoint):
 *
 * - down mid-run, then back on the same port: collection goes on, batches
 *   queue, and once it is back every queued batch arrives exactly once, no
 *   duplicate, no gap, with a connection made during the outage exact;
 * - slow (seconds per export): the queue absorbs it, then drains;
 * - down longer than the queue holds: the queue never exceeds queue_size,
 *   what does not fit is dropped and counted, the queued batches arrive;
 * - down while a memory_limiter is above its limit: the queue does not grow
 *   past one batch, the rest is dropped and counted;
 * - INVALID_ARGUMENT: given up at once, counted, never retried;
 *   UNAVAILABLE / RESOURCE_EXHAUSTED from a live server: retried, delivered.
 *
 * "No duplicate, no gap" is checked on the data, with delta temporality:
 * every request carries only its interval's bytes, so the bytes of
 * connections made before, during and after the fault, summed over every
 * request that arrived, equal what was sent exactly only if no batch was
 * lost (gap) and none arrived twice (duplicate). Collection timestamps are
 * also all distinct. Nothing depends on timing: the waits are generous
 * bounds for a busy machine.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, test } from 'node:test';
import { Agent, TempDir, assertNothingAttached, freePort, parsePrometheus, promSum, until } from '../helpers/e2e';
import { TestNet } from '../helpers/netns';
import { flattenMetrics, startOtlpReceiver, type DecodedRequest, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const net = TestNet.create('rlbf', 72);
// Every agent here filters on this test's subnet (pushed into the kernel): other work on a shared machine stays out of its way.
const { client: C, server: S } = net;
const tmp = new TempDir();
const servers: ChildProcess[] = [];
const agents: Agent[] = [];
const receivers: OtlpTestReceiver[] = [];
const INTERVAL_MS = 1_000;

before(() => assertNothingAttached());
afterEach(async () => {
  for (const a of agents.splice(0)) await a.kill();
  for (const s of servers.splice(0)) s.kill();
  serving.clear();
  for (const r of receivers.splice(0)) await r.close();
});
after(() => {
  net.destroy();
  tmp.cleanup();
});

async function receiver(port?: number): Promise<OtlpTestReceiver> {
  const r = await startOtlpReceiver(port === undefined ? {} : { port });
  receivers.push(r);
  return r;
}

interface Setup {
  agent: Agent;
  stats: () => Promise<ExporterStats>;
}

interface ExporterStats {
  sent: number;
  failed: number;
  dropped: number;
  retries: number;
  queue: number;
}

async function startAgent(otlpPort: number, queueSize = 1000, processors = '', temporality: 'cumulative' | 'delta' = 'cumulative'): Promise<Setup> {
  const selfPort = await freePort();
  const file = tmp.write(
    `bf-${randomUUID()}.yaml`,
    `
receivers: { ebpf_tcp: { collection_interval: 1s } }
processors: { filter: { include: { cidrs: ["10.201.72.0/24"] } }${processors ? `, ${processors}` : ''} }
exporters:
  otlp:
    endpoint: http://127.0.0.1:${otlpPort}
    export_interval: ${INTERVAL_MS}ms
    temporality: ${temporality}
    timeout: 5s
    retry_on_failure: { initial_interval: 200ms, max_interval: 500ms, randomization_factor: 0 }
    sending_queue: { queue_size: ${queueSize} }
service:
  telemetry: { metrics: { address: "127.0.0.1:${selfPort}" } }
  pipelines: { metrics: { receivers: [ebpf_tcp], processors: [${processors ? `${processors.split(':')[0]}, ` : ''}filter], exporters: [otlp] } }
`,
  );
  const agent = Agent.spawn(['run', '--config', file]);
  agents.push(agent);
  await agent.ready(60_000);
  const stats = async (): Promise<ExporterStats> => {
    const s = parsePrometheus(await (await fetch(`http://127.0.0.1:${selfPort}/metrics`)).text());
    const v = (name: string): number => promSum(s, name, { exporter: 'otlp' });
    return {
      sent: v('flowtel_exporter_sent_batches_total'),
      failed: v('flowtel_exporter_send_failed_batches_total'),
      dropped: v('flowtel_exporter_dropped_batches_total'),
      retries: v('flowtel_exporter_retries_total'),
      queue: v('flowtel_exporter_queue_size'),
    };
  };
  return { agent, stats };
}

/** The collection time of a request (every point of one export carries it). */
function collectedAtMs(request: DecodedRequest): number {
  const point = flattenMetrics([request]).find((m) => m.points.length > 0)?.points[0];
  assert.ok(point, 'a request with data points');
  return Number(BigInt(point.timeUnixNano) / 1_000_000n);
}

/** Every collection at most once: no two requests carry the same collection time. */
function assertNoDuplicate(requests: readonly DecodedRequest[]): void {
  const times = requests.map(collectedAtMs).sort((a, b) => a - b);
  assert.equal(new Set(times).size, times.length, `duplicate collections: ${times.join(', ')}`);
}

/** The client end's bytes sent to S:port in a request (cumulative or, with delta temporality, this interval's). */
function bytesSent(request: DecodedRequest, port: number): number {
  return flattenMetrics([request])
    .filter((m) => m.name === 'tcp_bytes_sent')
    .flatMap((m) => m.points)
    .filter((p) => p.attributes['source.address'] === C.ip4 && p.attributes['destination.port'] === port)
    .reduce((a, p) => a + (p.value ?? 0), 0);
}

const serving = new Set<number>();
async function exchange(port: number, n: number): Promise<void> {
  if (!serving.has(port)) {
    servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(port), '--reply', '10']));
    serving.add(port);
  }
  const { result } = await net.traffic<{ sent: number }>(C, ['tcp-client', '--host', S.ip4, '--port', String(port), '--send', String(n)]);
  assert.equal(result.sent, n);
}

/** Wait until nothing is held and every batch the agent says it sent is one the receivers got. */
async function untilDrained(setup: Setup, received: () => number, what: string): Promise<ExporterStats> {
  let last: ExporterStats | undefined;
  await until(
    what,
    async () => {
      last = await setup.stats();
      return last.queue === 0 && last.sent === received();
    },
    60_000,
    () => `${JSON.stringify(last)} received ${received()}\n${setup.agent.describe()}`,
    200,
  );
  return last!;
}

test('backend down mid-run, then back on the same port: batches queue, then all arrive once, no duplicate, no gap', async () => {
  const first = await receiver();
  const port = first.port;
  const setup = await startAgent(port, 1000, '', 'delta');
  const N1 = 11_111;
  await exchange(7201, N1);
  await first.waitFor((r) => r.reduce((a, q) => a + bytesSent(q, 7201), 0) === N1, 30_000);
  await first.close();
  receivers.splice(receivers.indexOf(first), 1);
  const downAt = Date.now();
  // Traffic while the backend is down.
  const N2 = 54_321;
  await exchange(7201, N2);
  let s = await setup.stats();
  await until('at least 3 batches queued', async () => (s = await setup.stats()).queue >= 3, 30_000, () => JSON.stringify(s));
  assert.ok(setup.agent.running, setup.agent.describe());
  assert.equal(s.dropped + s.failed, 0, JSON.stringify(s));
  assert.ok(s.retries >= 1, 'the down backend was retried');

  const second = await receiver(port);
  const upAt = Date.now();
  const N3 = 7_777;
  await exchange(7201, N3);
  const all = (): DecodedRequest[] => [...first.requests, ...second.requests];
  const total = (): number => all().reduce((a, q) => a + bytesSent(q, 7201), 0);
  await until('every byte delivered', () => total() >= N1 + N2 + N3, 60_000, () => `${total()} of ${N1 + N2 + N3}`);
  const end = await untilDrained(setup, () => all().length, 'the queue drained into the new receiver');
  assert.deepEqual([end.dropped, end.failed], [0, 0]);
  assert.equal(total(), N1 + N2 + N3, 'the bytes of every interval exactly once: no batch lost, none twice');
  assertNoDuplicate(all());
  // Collections made while it was down arrived after it came back.
  const duringOutage = second.requests.filter((r) => collectedAtMs(r) > downAt && collectedAtMs(r) < upAt);
  assert.ok(duringOutage.length >= 3, `collections of the outage delivered late: ${duringOutage.length}`);
  assert.deepEqual(await setup.agent.stop(), { code: 0, signal: null });
});

test('slow backend (2.5 s per export): collection goes on into the queue, which drains once it is fast again, every interval once', async () => {
  const r = await receiver();
  r.setDelay(2_500);
  const setup = await startAgent(r.port, 1000, '', 'delta');
  let s = await setup.stats();
  await until('several exports held at once', async () => (s = await setup.stats()).queue >= 2, 30_000, () => JSON.stringify(s));
  const N1 = 22_222;
  await exchange(7202, N1);
  await until('slow exports delivered', () => r.requests.length >= 3, 30_000);
  r.setDelay(0);
  const N2 = 3_333;
  await exchange(7202, N2);
  const total = (): number => r.requests.reduce((a, q) => a + bytesSent(q, 7202), 0);
  await until('every byte delivered', () => total() >= N1 + N2, 60_000, () => `${total()} of ${N1 + N2}`);
  const end = await untilDrained(setup, () => r.requests.length, 'the queue drained');
  assert.deepEqual([end.dropped, end.failed], [0, 0]);
  assert.equal(total(), N1 + N2, 'every interval exactly once');
  assertNoDuplicate(r.requests);
  assert.deepEqual(await setup.agent.stop(), { code: 0, signal: null });
});

test('down longer than the queue holds: never more than queue_size held, the overflow dropped and counted, the queued ones delivered', async () => {
  const first = await receiver();
  const port = first.port;
  const setup = await startAgent(port, 3);
  await first.waitFor((q) => q.length >= 1, 30_000);
  await first.close();
  receivers.splice(receivers.indexOf(first), 1);
  const N = 33_333;
  await exchange(7203, N);
  let s = await setup.stats();
  let maxQueue = 0;
  await until(
    'batches dropped',
    async () => {
      s = await setup.stats();
      maxQueue = Math.max(maxQueue, s.queue);
      return s.dropped >= 3;
    },
    40_000,
    () => JSON.stringify(s),
  );
  assert.ok(maxQueue <= 3, `queue held ${maxQueue} > queue_size 3`);
  const upAt = Date.now();
  const second = await receiver(port);
  const end = await untilDrained(setup, () => first.requests.length + second.requests.length, 'the queue drained');
  assert.ok(end.dropped >= 3);
  assert.equal(end.failed, 0);
  const backlog = second.requests.filter((q) => collectedAtMs(q) < upAt);
  assert.equal(backlog.length, 3, 'exactly the queue_size oldest batches held during the outage arrive');
  const times = [...first.requests, ...second.requests].map(collectedAtMs);
  assert.equal(new Set(times).size, times.length, 'no duplicate');
  // Cumulative temporality: the connection of the outage is exact in what arrives after.
  assert.equal(Math.max(...second.requests.map((q) => bytesSent(q, 7203))), N);
  assert.deepEqual(await setup.agent.stop(), { code: 0, signal: null });
});

test('INVALID_ARGUMENT: given up at once and counted, not retried; UNAVAILABLE and RESOURCE_EXHAUSTED from a live backend: retried and delivered', async () => {
  const r = await receiver();
  const setup = await startAgent(r.port);
  await r.waitFor((q) => q.length >= 1, 30_000);
  const before = await untilDrained(setup, () => r.requests.length, 'a steady start');

  r.setBehavior('invalid_argument', { times: 2 });
  await until('two batches rejected', () => r.rejected >= 2, 30_000);
  const afterInvalid = await untilDrained(setup, () => r.requests.length + 0, 'delivering again');
  assert.equal(afterInvalid.failed - before.failed, 2, 'the two rejected batches are counted as failed');
  assert.equal(afterInvalid.retries - before.retries, 0, 'INVALID_ARGUMENT is not retried');
  assert.equal(r.calls, r.requests.length + 2, 'each rejected batch was sent once');

  for (const behavior of ['unavailable', 'resource_exhausted'] as const) {
    const rejectedBefore = r.rejected;
    r.setBehavior(behavior, { times: 2 });
    await until(`${behavior} twice`, () => r.rejected >= rejectedBefore + 2, 30_000);
    const s = await untilDrained(setup, () => r.requests.length, `delivered after ${behavior}`);
    assert.equal(s.failed, afterInvalid.failed, `${behavior}: nothing given up`);
    assert.equal(s.dropped, 0);
  }
  const end = await setup.stats();
  assert.ok(end.retries - afterInvalid.retries >= 4, `retries after UNAVAILABLE / RESOURCE_EXHAUSTED: ${end.retries - afterInvalid.retries}`);
  const times = r.requests.map(collectedAtMs);
  assert.equal(new Set(times).size, times.length, 'no duplicate');
  assert.deepEqual(await setup.agent.stop(), { code: 0, signal: null });
});

test('backend down while the memory_limiter is above its limit: the queue does not grow, new batches are dropped and counted, delivery resumes', async () => {
  const first = await receiver();
  const port = first.port;
  // The agent's resident memory is far above 40 MiB: the limiter refuses data from its first check.
  const setup = await startAgent(port, 1000, 'memory_limiter: { limit_mib: 40, check_interval: 100ms }');
  await first.close();
  receivers.splice(receivers.indexOf(first), 1);
  let s = await setup.stats();
  let maxQueue = 0;
  await until(
    'batches dropped for memory',
    async () => {
      s = await setup.stats();
      maxQueue = Math.max(maxQueue, s.queue);
      return s.dropped >= 4;
    },
    40_000,
    () => JSON.stringify(s),
  );
  assert.ok(maxQueue <= 1, `the queue held ${maxQueue} batches while short of memory`);
  assert.ok(setup.agent.logs().some((l) => /memory_limiter is above its soft limit: dropped the new batch/.test(String(l.msg))), setup.agent.describe());
  const second = await receiver(port);
  await until('delivery resumes', () => second.requests.length >= 2, 40_000, () => setup.agent.describe());
  // What the limiter refused is counted in the data itself.
  const refused = flattenMetrics(second.requests).filter((m) => m.name === 'flowtel_processor_refused_measurements').flatMap((m) => m.points);
  assert.ok(refused.length > 0 && refused.every((p) => p.attributes.processor === 'memory_limiter'), 'flowtel_processor_refused_measurements exported');
  assert.ok(Math.max(...refused.map((p) => p.value ?? 0)) > 0);
  assert.deepEqual(await setup.agent.stop(), { code: 0, signal: null });
});
