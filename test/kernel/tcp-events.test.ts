/**
 * ebpf_tcp `connection_events` against the real kernel: one log record per
 * refused, timed-out and reset connection, and per closed connection with
 * its byte counts — each exactly once, with the flow's attributes, and
 * stamped with the kernel's event time converted to the wall clock (checked
 * against the test's own clock around the traffic).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import pino from 'pino';
import type { MetricsReceiver } from '../../src/pipeline/component';
import type { LogBatch, LogConsumer, LogRecordData } from '../../src/pipeline/logs';
import { ebpfTcpReceiverFactory } from '../../src/receivers/ebpf_tcp/factory';
import { TCP_CONNECTION_CLOSED, TCP_CONNECTION_FAILED } from '../../src/receivers/ebpf_tcp/events';
import { Capture } from '../helpers/capture';
import { TestNet } from '../helpers/netns';

const net = TestNet.create('tev', 37);
const { client: C, server: S } = net;
const servers: ChildProcess[] = [];
const records: LogRecordData[] = [];
const logs: LogConsumer = { consumeLogs: (b: LogBatch) => void records.push(...b.records) };
const capture = new Capture();
let receiver: MetricsReceiver;

/** Events the kernel itself reports it lost (program recursion, full ring buffer) so far. */
function kernelLost(): number {
  return capture.sum('flowtel_ebpf_dropped', {});
}

before(async () => {
  const config = ebpfTcpReceiverFactory.validate({ collection_interval: '1h', connection_events: { failures: true, closed: true } }, 'receivers.ebpf_tcp');
  receiver = ebpfTcpReceiverFactory.create(config, { id: 'ebpf_tcp', logger: pino({ level: 'warn' }), next: capture, logs });
  await receiver.start();
});

after(async () => {
  for (const s of servers) s.kill();
  await receiver?.shutdown();
  net.destroy();
});

const matching = (match: Record<string, string | number>): LogRecordData[] =>
  records.filter((r) => Object.entries(match).every(([k, v]) => r.attributes[k] === v));

/** Wait until `n` records match (events arrive within ~50 ms of the kernel's), then a little longer to see no more come. */
async function expectRecords(match: Record<string, string | number>, n: number): Promise<LogRecordData[]> {
  for (let i = 0; i < 50 && matching(match).length < n; i++) {
    await receiver.collect();
    await new Promise((r) => setTimeout(r, 100));
  }
  await receiver.collect();
  await new Promise((r) => setTimeout(r, 300));
  const got = matching(match);
  const lost = capture.select('flowtel_ebpf_dropped', {}).map((m) => `${m.attributes.reason}=${m.value}`);
  assert.equal(got.length, n, `records matching ${JSON.stringify(match)}:\n${got.map((r) => r.body).join('\n')}\nkernel-reported losses so far: ${lost.join(', ') || 'none'}`);
  return got;
}

function assertTimeWithin(r: LogRecordData, t0: number, t1: number): void {
  // Kernel ktime → wall clock: the event happened while the traffic ran (±5 ms of clock reading).
  assert.ok(r.timeMs >= t0 - 5 && r.timeMs <= t1 + 5, `record time ${new Date(r.timeMs).toISOString()} not within ${new Date(t0).toISOString()} … ${new Date(t1).toISOString()}`);
}

test('a refused connection: one connection_failed record, refused, in syn_sent, at the time it happened', async () => {
  const t0 = Date.now();
  const { pid, result } = await net.traffic<{ error: string }>(C, ['connect', '--host', S.ip4, '--port', '7370']);
  const t1 = Date.now();
  assert.equal(result.error, 'ECONNREFUSED');
  const [r] = await expectRecords({ 'destination.address': S.ip4, 'destination.port': 7370 }, 1);
  assert.equal(r!.eventName, TCP_CONNECTION_FAILED);
  assert.equal(r!.severityText, 'WARN');
  assert.equal(r!.attributes['error.type'], 'refused');
  assert.equal(r!.attributes['network.connection.state'], 'syn_sent');
  assert.equal(r!.attributes['source.address'], C.ip4);
  assert.equal(r!.attributes['flow.direction'], 'outgoing');
  // The kernel has released the local port of a failed connect: left out rather than 0.
  assert.notEqual(r!.attributes['source.port'], 0);
  assert.equal(r!.attributes['process.pid'], pid);
  assert.equal(r!.attributes['process.executable.name'], 'node');
  assertTimeWithin(r!, t0, t1);
});

test('a dropped SYN: one record with error.type timeout', async () => {
  net.nft(S, 'table inet ftevtimeout { chain input { type filter hook input priority 0; tcp dport 7371 drop; tcp dport 7381 drop; }; }');
  // The kernel closes a timed-out connect from a timer (softirq): if that
  // interrupts our program running on the same CPU, the kernel skips the run
  // and counts it (program_recursion), and nothing can recover a connection
  // that never opened. Only then is the attempt made once more, on another port.
  let port = 7371;
  const lostBefore = kernelLost();
  let { result } = await net.traffic<{ error: string }>(C, ['connect', '--host', S.ip4, '--port', String(port)]);
  await receiver.collect();
  if (matching({ 'destination.address': S.ip4, 'destination.port': port }).length === 0 && kernelLost() > lostBefore) {
    port = 7381;
    ({ result } = await net.traffic<{ error: string }>(C, ['connect', '--host', S.ip4, '--port', String(port)]));
  }
  assert.equal(result.error, 'ETIMEDOUT');
  const [r] = await expectRecords({ 'destination.address': S.ip4, 'destination.port': port }, 1);
  assert.equal(r!.eventName, TCP_CONNECTION_FAILED);
  assert.equal(r!.attributes['error.type'], 'timeout');
});

test('an RST from the server: the client side is one connection_failed (reset, established) with what it sent', async () => {
  servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', '7372', '--mode', 'rst']));
  const { result } = await net.traffic<{ error: string }>(C, ['tcp-client', '--host', S.ip4, '--port', '7372', '--send', '100', '--hold-ms', '300']);
  assert.equal(result.error, 'ECONNRESET');
  const [r] = await expectRecords({ 'source.address': C.ip4, 'destination.port': 7372 }, 1);
  assert.equal(r!.eventName, TCP_CONNECTION_FAILED);
  assert.equal(r!.attributes['error.type'], 'reset');
  assert.equal(r!.attributes['tcp.bytes_sent'], 100);
});

test('a normal connection: one connection_closed record per side, with exact bytes and a duration', async () => {
  const N = 123_456;
  const M = 4_321;
  servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', '7373', '--reply', String(M)]));
  const t0 = Date.now();
  const { result } = await net.traffic<{ received: number; localPort: number }>(C, ['tcp-client', '--host', S.ip4, '--port', '7373', '--send', String(N), '--hold-ms', '200']);
  const t1 = Date.now();
  assert.equal(result.received, M);
  const [client] = await expectRecords({ 'source.address': C.ip4, 'destination.port': 7373 }, 1);
  const [server] = await expectRecords({ 'source.address': S.ip4, 'source.port': 7373 }, 1);
  for (const r of [client!, server!]) {
    assert.equal(r.eventName, TCP_CONNECTION_CLOSED);
    assert.equal(r.severityText, 'INFO');
    assert.equal(r.attributes['error.type'], undefined);
    const d = r.attributes['tcp.duration_ms'] as number;
    assert.ok(d > 0 && d <= t1 - t0 + 5, `duration ${d} ms`);
    assertTimeWithin(r, t0, t1 + 100);
  }
  assert.equal(client!.attributes['source.port'], result.localPort);
  assert.equal(client!.attributes['tcp.bytes_sent'], N);
  assert.equal(client!.attributes['tcp.bytes_received'], M);
  assert.equal(server!.attributes['tcp.bytes_sent'], M);
  assert.equal(server!.attributes['tcp.bytes_received'], N);
  assert.equal(server!.attributes['flow.direction'], 'incoming');
  assert.equal(server!.attributes['destination.port'], result.localPort);
});
