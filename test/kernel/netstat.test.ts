/**
 * The netstat receiver reads a namespace's own kernel counters; the eBPF
 * receiver's connection counts agree with them exactly.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, test } from 'node:test';
import pino from 'pino';
import { netstatReceiverFactory } from '../../src/receivers/netstat/receiver';
import { Capture, startReceiver } from '../helpers/capture';
import { TestNet } from '../helpers/netns';

const net = TestNet.create('nst', 12);
const children: ChildProcess[] = [];

after(() => {
  for (const c of children) c.kill();
  net.destroy();
});

test('netstat counters of a namespace, and eBPF opens/closes equal to them', async () => {
  const anchor = net.spawn(net.client, 'sleep', ['120']);
  children.push(anchor);
  const capture = new Capture();
  const netstat = netstatReceiverFactory.create(
    netstatReceiverFactory.validate({ collection_interval: '1h', proc_path: `/proc/${anchor.pid}` }, 'receivers.netstat'),
    { id: 'netstat', logger: pino({ level: 'warn' }), next: capture },
  );
  await netstat.start();
  const ebpf = await startReceiver();
  try {
    children.push(await net.startServer(net.server, ['tcp-server', '--host', net.server.ip4, '--port', '7101', '--reply', '1']));
    const K = 120;
    await net.traffic(net.client, ['churn', '--host', net.server.ip4, '--port', '7101', '--count', String(K), '--parallel', '4']);
    const truth = net.nstat(net.client, 'TcpActiveOpens');
    await netstat.collect();
    assert.equal(capture.sum('netstat_tcp_active_opens', {}), K, 'every connect() of the namespace since the receiver started');
    assert.equal(truth, K, 'nstat agrees (a fresh namespace)');
    assert.equal(capture.gauge('netstat_tcp_curr_estab', {}), 0);
    for (let i = 0; i < 30 && ebpf.capture.sum('tcp_connections_closed', { 'source.address': net.client.ip4 }) < K; i++) {
      await ebpf.receiver.collect();
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(ebpf.capture.sum('tcp_connections_opened', { 'source.address': net.client.ip4, 'flow.direction': 'outgoing' }), K);
    assert.equal(ebpf.capture.sum('tcp_connections_closed', { 'source.address': net.client.ip4, 'flow.direction': 'outgoing' }), K);
  } finally {
    await ebpf.receiver.shutdown();
    await netstat.shutdown();
  }
});

test('netstat config: a counter that is not Group:Name is an error', () => {
  assert.throws(() => netstatReceiverFactory.validate({ counters: ['RetransSegs'] }, 'receivers.netstat'), /receivers\.netstat\.counters: "RetransSegs" is not Group:Name/);
});
