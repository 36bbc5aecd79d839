/**
 * The `nat` processor against the real kernel: in a test namespace an
 * nftables DNAT sends connections to a "service" address to a backend in the
 * other namespace; the flows the ebpf_tcp receiver reports for the client
 * come out of the processor with the backend as destination.translated.*,
 * and the ground truth is what the `conntrack` tool lists for the connection.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import type { MetricsReceiver } from '../../src/pipeline/component';
import type { FlowAttributes, MeasurementBatch } from '../../src/pipeline/measurements';
import { natProcessorFactory, NatProcessor } from '../../src/processors/netenrich/nat';
import pino from 'pino';
import { type Capture, startFilteredReceiver } from '../helpers/capture';
import { freePort } from '../helpers/e2e';
import { sh, TestNet, TRAFFIC } from '../helpers/netns';

const net = TestNet.create('ennat', 56);
const { client: C, server: S } = net;
/** The "service" address: only routed inside the client namespace. */
const VIP = '10.56.0.100';
/**
 * A routed setup like a Kubernetes node's: the client in its own namespace
 * (a pod), a "node" namespace that DNATs a service address in PREROUTING and
 * forwards (kube-proxy's place), and the backend behind it.
 */
const ROUTED = { client: '10.59.1.1', nodeIn: '10.59.1.2', nodeOut: '10.59.2.1', backend: '10.59.2.2', vip: '10.59.9.9', ns: ['en-nat-pod', 'en-nat-node', 'en-nat-backend'] as const };
let receiver: MetricsReceiver;
let capture: Capture;
let nat: NatProcessor;
const servers: ChildProcess[] = [];

interface ConntrackLine {
  orig: { src: string; dst: string; sport: number; dport: number };
  reply: { src: string; dst: string; sport: number; dport: number };
}

/** `conntrack -L` in a namespace: each entry's original and reply tuples. */
function conntrackList(proto: 'tcp' | 'udp', origDst: string): ConntrackLine[] {
  const out = net.exec(C, 'conntrack', ['-L', '-p', proto, '--orig-dst', origDst]);
  const lines: ConntrackLine[] = [];
  for (const line of out.split('\n')) {
    const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]!);
    const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1]!);
    const sport = [...line.matchAll(/\bsport=(\d+)/g)].map((m) => Number(m[1]));
    const dport = [...line.matchAll(/\bdport=(\d+)/g)].map((m) => Number(m[1]));
    if (src.length < 2) continue;
    lines.push({
      orig: { src: src[0]!, dst: dst[0]!, sport: sport[0]!, dport: dport[0]! },
      reply: { src: src[1]!, dst: dst[1]!, sport: sport[1]!, dport: dport[1]! },
    });
  }
  return lines;
}

async function eventually(check: () => boolean): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await receiver.collect();
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every captured batch through the nat processor. */
function enriched(): MeasurementBatch[] {
  return capture.batches.map((b) => nat.process(b));
}

function flows(metric: string, match: FlowAttributes): FlowAttributes[] {
  return enriched()
    .flatMap((b) => b.measurements)
    .filter((m) => m.metric === metric && Object.entries(match).every(([k, v]) => m.attributes[k] === v))
    .map((m) => m.attributes);
}

before(async () => {
  net.exec(C, 'ip', ['route', 'add', `${VIP}/32`, 'dev', C.dev]);
  // One series per connection (both ports), so only this test's connections:
  // the kernel filter keeps the rest of the host's connections out.
  const logger = pino({ level: 'warn' });
  ({ receiver, capture } = await startFilteredReceiver([`${C.ip4}/32`, `${S.ip4}/32`, `${ROUTED.client}/32`, `${C.ip6}/128`], { include_ephemeral_ports: true }, logger));
  nat = natProcessorFactory.create(natProcessorFactory.validate({ refresh_interval: '1h' }, 'processors.nat'), { id: 'nat', logger }) as NatProcessor;
  await nat.start();
});

function routedDestroy(): void {
  for (const ns of ROUTED.ns) {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      /* not there */
    }
  }
}

after(async () => {
  routedDestroy();
  for (const s of servers) s.kill();
  await nat?.shutdown();
  await receiver?.shutdown();
  net.destroy();
});

test('TCP to a DNATed service address: the flow carries the address dialled and the backend conntrack lists', async () => {
  const [svcPort, backendPort] = [await freePort(), await freePort()];
  net.nft(C, `table ip ennat { chain out { type nat hook output priority -100; ip daddr ${VIP} tcp dport ${svcPort} dnat to ${S.ip4}:${backendPort}; }; }`);
  servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(backendPort), '--reply', '777']));
  const { result } = await net.traffic<{ received: number; localPort: number }>(C, ['tcp-client', '--host', VIP, '--port', String(svcPort), '--send', '12345']);
  assert.equal(result.received, 777);

  const truth = conntrackList('tcp', VIP).filter((l) => l.orig.dport === svcPort);
  assert.equal(truth.length, 1, 'conntrack lists the one connection');
  const t = truth[0]!;
  assert.equal(t.orig.sport, result.localPort);
  assert.equal(t.reply.src, S.ip4, 'conntrack: the reply comes from the backend');

  const clientSide = { 'source.address': C.ip4, 'destination.address': VIP, 'destination.port': svcPort };
  await eventually(() => capture.sum('tcp_connections_closed', clientSide) === 1);
  const [flow] = flows('tcp_bytes_sent', clientSide);
  assert.ok(flow, 'the client flow was reported');
  assert.equal(flow['source.port'], t.orig.sport);
  assert.equal(flow['destination.translated.address'], t.reply.src);
  assert.equal(flow['destination.translated.port'], t.reply.sport);
  assert.equal(flow['destination.translated.port'], backendPort);
  assert.equal(capture.sum('tcp_bytes_sent', clientSide), 12345);

  // The receiver's default aggregation (no client port): every connection of
  // the series went to one backend, so the series gets it too.
  const { 'source.port': _drop, ...series } = capture.select('tcp_bytes_sent', clientSide)[0]!.attributes;
  const out = nat.process({ timeMs: Date.now(), measurements: [{ metric: 'tcp_bytes_sent', value: 1, attributes: series }], gaugesReplaced: [] });
  assert.equal(out.measurements[0]!.attributes['destination.translated.address'], S.ip4);
  assert.equal(out.measurements[0]!.attributes['destination.translated.port'], backendPort);

  // A connection log record (both ports) of the same connection gets it too.
  const record = { timeMs: 0, severityNumber: 9, severityText: 'INFO', body: 'closed', eventName: 'flowtel.tcp.connection_closed', attributes: flow };
  const { 'destination.translated.address': _a, 'destination.translated.port': _p, ...bare } = flow;
  const [logged] = nat.processLogs({ records: [{ ...record, attributes: bare }] }).records;
  assert.equal(logged!.attributes['destination.translated.address'], t.reply.src);
  assert.equal(logged!.attributes['destination.translated.port'], t.reply.sport);

  // The backend's own flow is not translated: it saw the real addresses.
  const serverSide = flows('tcp_bytes_received', { 'source.address': S.ip4, 'source.port': backendPort });
  assert.ok(serverSide.length > 0);
  for (const f of serverSide) assert.equal(f['destination.translated.address'], undefined);
  net.exec(C, 'nft', ['delete', 'table', 'ip', 'ennat']);
});

test('round-robin DNAT to two backends: each connection gets its own backend, the aggregated series none', async () => {
  const svcPort = await freePort();
  const backends = [await freePort(), await freePort()];
  net.nft(C, `table ip ennat2 { chain out { type nat hook output priority -100; ip daddr ${VIP} tcp dport ${svcPort} dnat to numgen inc mod 2 map { 0 : ${S.ip4} . ${backends[0]}, 1 : ${S.ip4} . ${backends[1]} }; }; }`);
  for (const p of backends) servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(p), '--reply', '10']));
  const ports: number[] = [];
  for (let i = 0; i < 4; i++) {
    const { result } = await net.traffic<{ received: number; localPort: number }>(C, ['tcp-client', '--host', VIP, '--port', String(svcPort), '--send', '100']);
    assert.equal(result.received, 10);
    ports.push(result.localPort);
  }
  const truth = new Map(conntrackList('tcp', VIP).filter((l) => l.orig.dport === svcPort).map((l) => [l.orig.sport, l.reply.sport]));
  assert.equal(truth.size, 4);
  assert.deepEqual(new Set(truth.values()), new Set(backends), 'conntrack: both backends were used');
  const clientSide = { 'source.address': C.ip4, 'destination.address': VIP, 'destination.port': svcPort };
  await eventually(() => capture.sum('tcp_connections_closed', clientSide) === 4);
  for (const port of ports) {
    const [flow] = flows('tcp_bytes_sent', { ...clientSide, 'source.port': port });
    assert.ok(flow, `flow of client port ${port}`);
    assert.equal(flow['destination.translated.port'], truth.get(port), `connection from port ${port}`);
    assert.equal(flow['destination.translated.address'], S.ip4);
  }
  const { 'source.port': _drop, ...series } = capture.select('tcp_bytes_sent', clientSide)[0]!.attributes;
  const out = nat.process({ timeMs: Date.now(), measurements: [{ metric: 'tcp_bytes_sent', value: 1, attributes: series }], gaugesReplaced: [] });
  assert.equal(out.measurements[0]!.attributes['destination.translated.address'], undefined, 'no backend is made up for a series that went to two');
  net.exec(C, 'nft', ['delete', 'table', 'ip', 'ennat2']);
});

test('IPv6: a DNATed service address in the client\'s /64 is translated too', async () => {
  const vip6 = C.ip6.replace(/::1$/, '::100');
  const [svcPort, backendPort] = [await freePort(), await freePort()];
  net.nft(C, `table ip6 ennat6 { chain out { type nat hook output priority -100; ip6 daddr ${vip6} tcp dport ${svcPort} dnat to [${S.ip6}]:${backendPort}; }; }`);
  servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip6, '--port', String(backendPort), '--reply', '321']));
  const { result } = await net.traffic<{ received: number; localPort: number }>(C, ['tcp-client', '--host', vip6, '--port', String(svcPort), '--send', '6543']);
  assert.equal(result.received, 321);
  const out = net.exec(C, 'conntrack', ['-L', '-f', 'ipv6', '-p', 'tcp', '--orig-dst', vip6]);
  assert.match(out, new RegExp(`sport=${result.localPort} dport=${svcPort} src=${S.ip6} `), `conntrack: ${out}`);
  const clientSide = { 'source.address': C.ip6, 'destination.address': vip6, 'destination.port': svcPort };
  await eventually(() => capture.sum('tcp_connections_closed', clientSide) === 1);
  const [flow] = flows('tcp_bytes_sent', clientSide);
  assert.ok(flow, 'the IPv6 client flow was reported');
  assert.equal(flow['network.type'], 'ipv6');
  assert.equal(flow['destination.translated.address'], S.ip6);
  assert.equal(flow['destination.translated.port'], backendPort);
  net.exec(C, 'nft', ['delete', 'table', 'ip6', 'ennat6']);
});

test('UDP to a DNATed address: translated as well', async () => {
  const [svcPort, backendPort] = [await freePort(), await freePort()];
  net.nft(C, `table ip ennat3 { chain out { type nat hook output priority -100; ip daddr ${VIP} udp dport ${svcPort} dnat to ${S.ip4}:${backendPort}; }; }`);
  servers.push(await net.startServer(S, ['udp-server', '--host', S.ip4, '--port', String(backendPort)]));
  const { result } = await net.traffic<{ received: number }>(C, ['udp-client', '--host', VIP, '--port', String(svcPort), '--count', '5', '--size', '200']);
  assert.equal(result.received, 1000);
  const truth = conntrackList('udp', VIP).filter((l) => l.orig.dport === svcPort);
  assert.equal(truth.length, 1);
  await receiver.collect();
  // Sent datagrams are counted after the DNAT (the receiver sees the backend),
  // received ones after the reverse translation (it sees the service address):
  // out of the processor, both read "dialled VIP:svcPort, reached the backend".
  const dialled = { 'source.address': C.ip4, 'destination.address': VIP, 'destination.port': svcPort };
  for (const metric of ['udp_bytes_sent', 'udp_bytes_received']) {
    const got = flows(metric, dialled);
    assert.equal(got.length, 1, `${metric}: one flow to the service address`);
    assert.equal(got[0]!['source.port'], truth[0]!.orig.sport);
    assert.equal(got[0]!['destination.translated.address'], truth[0]!.reply.src);
    assert.equal(got[0]!['destination.translated.port'], truth[0]!.reply.sport);
  }
  const sum = (metric: string): number =>
    enriched()
      .flatMap((b) => b.measurements)
      .filter((m) => m.metric === metric && Object.entries(dialled).every(([k, v]) => m.attributes[k] === v))
      .reduce((s, m) => s + m.value, 0);
  assert.equal(sum('udp_bytes_sent'), 1000);
  assert.equal(sum('udp_bytes_received'), 1000);
  net.exec(C, 'nft', ['delete', 'table', 'ip', 'ennat3']);
});

test('DNAT in another namespace (a node forwarding a pod\'s connection, as kube-proxy does): found there', async () => {
  routedDestroy();
  const [pod, node, backend] = ROUTED.ns;
  const inNs = (ns: string, ...args: string[]): string => sh('ip', ['netns', 'exec', ns, ...args]);
  for (const ns of ROUTED.ns) sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', 'ennatp', 'netns', pod, 'type', 'veth', 'peer', 'name', 'ennatn1', 'netns', node]);
  sh('ip', ['link', 'add', 'ennatb', 'netns', backend, 'type', 'veth', 'peer', 'name', 'ennatn2', 'netns', node]);
  const setup: Array<[string, string, string]> = [
    [pod, 'ennatp', `${ROUTED.client}/24`],
    [node, 'ennatn1', `${ROUTED.nodeIn}/24`],
    [node, 'ennatn2', `${ROUTED.nodeOut}/24`],
    [backend, 'ennatb', `${ROUTED.backend}/24`],
  ];
  for (const [ns, dev, addr] of setup) {
    inNs(ns, 'ip', 'addr', 'add', addr, 'dev', dev);
    inNs(ns, 'ip', 'link', 'set', dev, 'up');
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
  }
  inNs(pod, 'ip', 'route', 'add', 'default', 'via', ROUTED.nodeIn);
  inNs(backend, 'ip', 'route', 'add', 'default', 'via', ROUTED.nodeOut);
  inNs(node, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
  const [svcPort, backendPort] = [await freePort(), await freePort()];
  sh('ip', ['netns', 'exec', node, 'nft', '-f', '-'], `table ip ennode { chain pre { type nat hook prerouting priority -100; ip daddr ${ROUTED.vip} tcp dport ${svcPort} dnat to ${ROUTED.backend}:${backendPort}; }; }`);
  // The new namespaces are found at the watcher's next refresh (every refresh_interval; now, for the test).
  await nat.watcher.refresh(false);
  const spawnIn = (ns: string, args: string[]): ChildProcess => spawn('ip', ['netns', 'exec', ns, process.execPath, TRAFFIC, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = spawnIn(backend, ['tcp-server', '--host', ROUTED.backend, '--port', String(backendPort), '--reply', '42']);
  servers.push(server);
  await new Promise<void>((resolve) => server.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
  const client = spawnIn(pod, ['tcp-client', '--host', ROUTED.vip, '--port', String(svcPort), '--send', '4242']);
  let out = '';
  client.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await once(client, 'exit');
  const result = JSON.parse(out.trim().split('\n').pop()!) as { received: number; localPort: number };
  assert.equal(result.received, 42);
  const truth = sh('ip', ['netns', 'exec', node, 'conntrack', '-L', '-p', 'tcp', '--orig-dst', ROUTED.vip]);
  assert.match(truth, new RegExp(`src=${ROUTED.client} dst=${ROUTED.vip} sport=${result.localPort} dport=${svcPort} .*src=${ROUTED.backend.replace(/\./g, '\\.')} dst=${ROUTED.client} sport=${backendPort}`), 'conntrack in the node namespace');
  assert.equal(sh('ip', ['netns', 'exec', pod, 'conntrack', '-L']).includes(ROUTED.vip), false, 'nothing about it in the pod\'s own table');
  const clientSide = { 'source.address': ROUTED.client, 'destination.address': ROUTED.vip, 'destination.port': svcPort };
  await eventually(() => capture.sum('tcp_connections_closed', clientSide) === 1);
  const [flow] = flows('tcp_bytes_sent', clientSide);
  assert.ok(flow, 'the pod\'s flow was reported');
  assert.equal(flow['source.port'], result.localPort);
  assert.equal(flow['destination.translated.address'], ROUTED.backend);
  assert.equal(flow['destination.translated.port'], backendPort);
  assert.equal(capture.sum('tcp_bytes_sent', clientSide), 4242);
});

test('pipelines listing the same nat share one watcher; it stops with the last of them', async () => {
  const config = natProcessorFactory.validate({ refresh_interval: '1h' }, 'processors.nat');
  const other = natProcessorFactory.create(config, { id: 'nat', logger: pino({ level: 'warn' }) }) as NatProcessor;
  assert.equal(other.watcher, nat.watcher);
  await other.start();
  const namespaces = nat.watcher.namespaceCount;
  assert.ok(namespaces >= 3, `reads the test namespaces and its own (${namespaces})`);
  await other.shutdown();
  assert.equal(nat.watcher.namespaceCount, namespaces, 'still running for the first pipeline');
});

test('the processor counts what it learned', () => {
  const batch = nat.process({ timeMs: Date.now(), measurements: [], gaugesReplaced: [] });
  const learned = nat.watcher.counters.eventEntries + nat.watcher.counters.dumpEntries;
  assert.ok(learned >= 6, `learned ${learned} DNAT entries`);
  assert.equal(nat.watcher.counters.malformed, 0);
  assert.ok(batch.measurements.every((m) => m.metric.startsWith('flowtel_nat_')));
});
