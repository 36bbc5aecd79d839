/**
 * The filter processor pushed down into the kernel: excluded connections never
 * reach userspace (the receiver's raw output has none of them, the kernel
 * counts each one it dropped), and everything else is counted as before.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, test } from 'node:test';
import pino from 'pino';
import { filterProcessorFactory, type FilterProcessor } from '../../src/processors/filter';
import { ebpfTcpReceiverFactory } from '../../src/receivers/ebpf_tcp/factory';
import type { EbpfTcpReceiver } from '../../src/receivers/ebpf_tcp/receiver';
import { FanOut } from '../../src/pipeline/instrument-sink';
import { Capture } from '../helpers/capture';
import { TestNet } from '../helpers/netns';

const net = TestNet.create('flt', 13);
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill();
  net.destroy();
});

test('an excluded port is dropped in the kernel: no record of it reaches the agent', async () => {
  const logger = pino({ level: 'warn' });
  const filter = filterProcessorFactory.create(filterProcessorFactory.validate({ exclude: { ports: [7201] } }, 'processors.filter'), { id: 'filter', logger }) as FilterProcessor;
  const raw = new Capture(); // what the receiver emits, before any processor
  const filtered = new Capture();
  const receiver = ebpfTcpReceiverFactory.create(ebpfTcpReceiverFactory.validate({ collection_interval: '1h' }, 'receivers.ebpf_tcp'), {
    id: 'ebpf_tcp',
    logger,
    next: new FanOut([raw, { consume: (b) => filtered.consume(filter.process(b)) }]),
    filter: filter.kernelPushdown(),
  }) as EbpfTcpReceiver;
  await receiver.start();
  try {
    for (const port of [7201, 7202]) children.push(await net.startServer(net.server, ['tcp-server', '--host', net.server.ip4, '--port', String(port), '--reply', '5']));
    await receiver.collect();
    const filteredBefore = receiver.stats.kernelFiltered;
    const K = 100;
    for (const port of [7201, 7202]) await net.traffic(net.client, ['churn', '--host', net.server.ip4, '--port', String(port), '--count', String(K), '--parallel', '4']);
    for (let i = 0; i < 30 && raw.sum('tcp_connections_closed', { 'source.port': 7202 }) < K; i++) {
      await receiver.collect();
      await new Promise((r) => setTimeout(r, 100));
    }
    // Both ends of each excluded connection were dropped at their start.
    assert.equal(receiver.stats.kernelFiltered - filteredBefore, 2 * K);
    const mentions7201 = raw.all().filter((m) => m.attributes['destination.port'] === 7201 || m.attributes['source.port'] === 7201);
    assert.deepEqual(mentions7201, [], 'nothing about port 7201 left the receiver');
    // The rest is untouched.
    assert.equal(raw.sum('tcp_connections_opened', { 'source.address': net.client.ip4, 'destination.port': 7202 }), K);
    assert.equal(raw.sum('tcp_connections_closed', { 'source.address': net.server.ip4, 'source.port': 7202 }), K);
    assert.equal(filtered.sum('tcp_bytes_received', { 'source.address': net.client.ip4, 'destination.port': 7202 }), 5 * K);
  } finally {
    await receiver.shutdown();
  }
});
