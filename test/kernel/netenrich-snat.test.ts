/**
 * The `nat` processor and source NAT, against the real kernel: a "pod"
 * namespace reaches an "external" host through a "node" namespace that
 * forwards and masquerades (nftables `masquerade` to a port range, as a
 * Kubernetes node or a docker bridge does for traffic leaving it); the
 * external host has no route back to the pod's subnet, so every reply
 * depends on the translation. The pod's flows (ebpf_tcp receiver) come out
 * of the processor with source.translated.* — compared with what the
 * `conntrack` tool lists in the node's namespace and with the peer address
 * the external host's own socket saw.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import pino from 'pino';
import type { MetricsReceiver } from '../../src/pipeline/component';
import type { FlowAttributes } from '../../src/pipeline/measurements';
import { natProcessorFactory, type NatProcessor } from '../../src/processors/netenrich/nat';
import { type Capture, startFilteredReceiver } from '../helpers/capture';
import { freePort } from '../helpers/e2e';
import { sh, TRAFFIC } from '../helpers/netns';

/** 10.201.91.0/24, split: the pod's link .16/28, the node's outside link .32/28. */
const POD = '10.201.91.18';
const NODE_IN = '10.201.91.17';
const NODE_OUT = '10.201.91.33';
const EXT = '10.201.91.34';
const NS = { pod: 'cri-snat-pod', node: 'cri-snat-node', ext: 'cri-snat-ext' } as const;
/** The same links in IPv6. */
const POD6 = 'fd00:201:91:1::2';
const NODE_IN6 = 'fd00:201:91:1::1';
const NODE_OUT6 = 'fd00:201:91:2::1';
const EXT6 = 'fd00:201:91:2::2';
const PORTS = { from: 45000, to: 45999 };

let receiver: MetricsReceiver;
let capture: Capture;
let nat: NatProcessor;
const children: ChildProcess[] = [];

const inNs = (ns: string, ...args: string[]): string => sh('ip', ['netns', 'exec', ns, ...args]);

function destroy(): void {
  for (const ns of Object.values(NS)) {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      /* not there */
    }
  }
}

async function run<T>(ns: string, args: string[]): Promise<T> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, TRAFFIC, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`traffic ${args.join(' ')} in ${ns} exited ${code}: ${err}`);
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

async function server(ns: string, args: string[]): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, TRAFFIC, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

interface Entry {
  orig: { src: string; dst: string; sport: number; dport: number };
  reply: { src: string; dst: string; sport: number; dport: number };
}

/** `conntrack -L` in the node's namespace: the entries of the pod's connections. */
function conntrackOfPod(proto: 'tcp' | 'udp'): Entry[] {
  const out = inNs(NS.node, 'conntrack', '-L', '-p', proto, '--orig-src', POD);
  const entries: Entry[] = [];
  for (const line of out.split('\n')) {
    const v = (k: string): string[] => [...line.matchAll(new RegExp(`\\b${k}=(\\S+)`, 'g'))].map((m) => m[1]!);
    const [src, dst, sport, dport] = [v('src'), v('dst'), v('sport').map(Number), v('dport').map(Number)];
    if (src.length < 2) continue;
    entries.push({ orig: { src: src[0]!, dst: dst[0]!, sport: sport[0]!, dport: dport[0]! }, reply: { src: src[1]!, dst: dst[1]!, sport: sport[1]!, dport: dport[1]! } });
  }
  return entries;
}

async function collectUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 50 && !check(); i++) {
    await receiver.collect();
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function flows(metric: string, match: FlowAttributes): FlowAttributes[] {
  return capture.batches
    .map((b) => nat.process(b))
    .flatMap((b) => b.measurements)
    .filter((m) => m.metric === metric && Object.entries(match).every(([k, v]) => m.attributes[k] === v))
    .map((m) => m.attributes);
}

before(async () => {
  destroy();
  for (const ns of Object.values(NS)) sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', 'crisnatp', 'netns', NS.pod, 'type', 'veth', 'peer', 'name', 'crisnatn1', 'netns', NS.node]);
  sh('ip', ['link', 'add', 'crisnate', 'netns', NS.ext, 'type', 'veth', 'peer', 'name', 'crisnatn2', 'netns', NS.node]);
  for (const [ns, dev, addr] of [
    [NS.pod, 'crisnatp', `${POD}/28`],
    [NS.node, 'crisnatn1', `${NODE_IN}/28`],
    [NS.node, 'crisnatn2', `${NODE_OUT}/28`],
    [NS.ext, 'crisnate', `${EXT}/28`],
  ] as const) {
    inNs(ns, 'ip', 'addr', 'add', addr, 'dev', dev);
    inNs(ns, 'ip', 'link', 'set', dev, 'up');
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
  }
  for (const [ns, dev, addr] of [
    [NS.pod, 'crisnatp', `${POD6}/64`],
    [NS.node, 'crisnatn1', `${NODE_IN6}/64`],
    [NS.node, 'crisnatn2', `${NODE_OUT6}/64`],
    [NS.ext, 'crisnate', `${EXT6}/64`],
  ] as const) {
    inNs(ns, 'ip', '-6', 'addr', 'add', addr, 'dev', dev, 'nodad');
  }
  inNs(NS.pod, 'ip', 'route', 'add', 'default', 'via', NODE_IN);
  inNs(NS.pod, 'ip', '-6', 'route', 'add', 'default', 'via', NODE_IN6);
  inNs(NS.node, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1');
  // No route back from the external host to the pod's subnet: only the masquerade makes replies come back.
  inNs(NS.node, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
  sh('ip', ['netns', 'exec', NS.node, 'nft', '-f', '-'], `table ip crisnat { chain post { type nat hook postrouting priority 100; oifname "crisnatn2" meta l4proto { tcp, udp } masquerade to :${PORTS.from}-${PORTS.to}; }; }
table ip6 crisnat6 { chain post { type nat hook postrouting priority 100; oifname "crisnatn2" meta l4proto tcp masquerade; }; }`);

  const logger = pino({ level: 'warn' });
  ({ receiver, capture } = await startFilteredReceiver(['10.201.91.0/24', 'fd00:201:91::/48'], { include_ephemeral_ports: true }, logger));
  nat = natProcessorFactory.create(natProcessorFactory.validate({ refresh_interval: '1h' }, 'processors.nat'), { id: 'nat', logger }) as NatProcessor;
  await nat.start();
});

after(async () => {
  for (const c of children) c.kill();
  await nat?.shutdown();
  await receiver?.shutdown();
  destroy();
});

test('TCP through a masquerade: the pod\'s flows carry the address and port the connection left with, as conntrack lists them and the far end saw them', async () => {
  const port = await freePort();
  await server(NS.ext, ['tcp-server', '--host', EXT, '--port', String(port), '--reply', '555']);
  const results: Array<{ received: number; localPort: number }> = [];
  for (let i = 0; i < 3; i++) results.push(await run(NS.pod, ['tcp-client', '--host', EXT, '--port', String(port), '--send', '7777']));
  for (const r of results) assert.equal(r.received, 555, 'replies came back through the masquerade');

  const truth = new Map(conntrackOfPod('tcp').filter((e) => e.orig.dport === port).map((e) => [e.orig.sport, e]));
  assert.equal(truth.size, 3, 'conntrack in the node lists the three connections');
  for (const r of results) {
    const e = truth.get(r.localPort)!;
    assert.ok(e, `connection from ${r.localPort}`);
    assert.equal(e.reply.dst, NODE_OUT, 'conntrack: masqueraded to the node\'s outside address');
    assert.ok(e.reply.dport >= PORTS.from && e.reply.dport <= PORTS.to, `conntrack: a port of the range (${e.reply.dport})`);
  }

  const podSide = { 'source.address': POD, 'destination.address': EXT, 'destination.port': port };
  await collectUntil(() => capture.sum('tcp_connections_closed', podSide) === 3);
  assert.equal(capture.sum('tcp_bytes_sent', podSide), 3 * 7777);
  for (const r of results) {
    const [flow] = flows('tcp_bytes_sent', { ...podSide, 'source.port': r.localPort });
    assert.ok(flow, `the pod's flow from port ${r.localPort}`);
    assert.equal(flow['source.translated.address'], truth.get(r.localPort)!.reply.dst);
    assert.equal(flow['source.translated.port'], truth.get(r.localPort)!.reply.dport);
    assert.equal(flow['destination.translated.address'], undefined, 'no destination NAT');
    // The far end's own socket saw the connection come from there.
    const [far] = flows('tcp_bytes_received', { 'source.address': EXT, 'source.port': port, 'destination.port': truth.get(r.localPort)!.reply.dport });
    assert.ok(far, 'the external host\'s flow of the same connection');
    assert.equal(far['destination.address'], NODE_OUT);
    assert.equal(far['source.translated.address'], undefined, 'the far end was not translated');
  }

  // The receiver's default aggregation (no client port): the address only.
  const { 'source.port': _drop, ...series } = flows('tcp_bytes_sent', podSide)[0]!;
  const bare = Object.fromEntries(Object.entries(series).filter(([k]) => !k.startsWith('source.translated.')));
  const [out] = nat.process({ timeMs: Date.now(), measurements: [{ metric: 'tcp_bytes_sent', value: 1, attributes: bare }], gaugesReplaced: [] }).measurements;
  assert.equal(out!.attributes['source.translated.address'], NODE_OUT);
  assert.equal(out!.attributes['source.translated.port'], undefined, 'a series has no single port');

  // A connection log record (both ports) gets the same.
  const r0 = results[0]!;
  const record = { timeMs: 0, severityNumber: 9, severityText: 'INFO', body: 'closed', eventName: 'flowtel.tcp.connection_closed', attributes: { ...bare, 'source.port': r0.localPort } };
  const [logged] = nat.processLogs({ records: [record] }).records;
  assert.equal(logged!.attributes['source.translated.address'], NODE_OUT);
  assert.equal(logged!.attributes['source.translated.port'], truth.get(r0.localPort)!.reply.dport);
});

test('TCP through a DNAT and the masquerade at once: both translations on one flow', async () => {
  const [svcPort, realPort] = [await freePort(), await freePort()];
  const vip = '10.201.91.100';
  sh('ip', ['netns', 'exec', NS.node, 'nft', '-f', '-'], `table ip crisnatd { chain pre { type nat hook prerouting priority -100; ip daddr ${vip} tcp dport ${svcPort} dnat to ${EXT}:${realPort}; }; }`);
  await server(NS.ext, ['tcp-server', '--host', EXT, '--port', String(realPort), '--reply', '99']);
  await nat.watcher.refresh(false);
  const r = await run<{ received: number; localPort: number }>(NS.pod, ['tcp-client', '--host', vip, '--port', String(svcPort), '--send', '1234']);
  assert.equal(r.received, 99);
  const e = conntrackOfPod('tcp').find((x) => x.orig.sport === r.localPort && x.orig.dst === vip);
  assert.ok(e, 'conntrack lists it');
  assert.equal(e.reply.src, EXT);
  assert.equal(e.reply.dst, NODE_OUT);
  const podSide = { 'source.address': POD, 'source.port': r.localPort, 'destination.address': vip, 'destination.port': svcPort };
  await collectUntil(() => capture.sum('tcp_connections_closed', podSide) === 1);
  const [flow] = flows('tcp_bytes_sent', podSide);
  assert.ok(flow, 'the pod\'s flow to the service address');
  assert.equal(flow['destination.translated.address'], EXT);
  assert.equal(flow['destination.translated.port'], realPort);
  assert.equal(flow['source.translated.address'], e.reply.dst);
  assert.equal(flow['source.translated.port'], e.reply.dport);
  inNs(NS.node, 'nft', 'delete', 'table', 'ip', 'crisnatd');
});

test('UDP through the masquerade: the pod\'s datagram flows get the translated source', async () => {
  const port = await freePort();
  await server(NS.ext, ['udp-server', '--host', EXT, '--port', String(port)]);
  const r = await run<{ received: number }>(NS.pod, ['udp-client', '--host', EXT, '--port', String(port), '--count', '4', '--size', '100']);
  assert.equal(r.received, 400);
  const [e] = conntrackOfPod('udp').filter((x) => x.orig.dport === port);
  assert.ok(e, 'conntrack lists the UDP flow');
  await receiver.collect();
  for (const metric of ['udp_bytes_sent', 'udp_bytes_received']) {
    const got = flows(metric, { 'source.address': POD, 'destination.address': EXT, 'destination.port': port });
    assert.equal(got.length, 1, metric);
    assert.equal(got[0]!['source.port'], e.orig.sport);
    assert.equal(got[0]!['source.translated.address'], e.reply.dst);
    assert.equal(got[0]!['source.translated.port'], e.reply.dport);
  }
});

test('IPv6 through a masquerade: translated the same way', async () => {
  const port = await freePort();
  await server(NS.ext, ['tcp-server', '--host', EXT6, '--port', String(port), '--reply', '66']);
  const r = await run<{ received: number; localPort: number }>(NS.pod, ['tcp-client', '--host', EXT6, '--port', String(port), '--send', '606']);
  assert.equal(r.received, 66);
  const out = inNs(NS.node, 'conntrack', '-L', '-f', 'ipv6', '-p', 'tcp', '--orig-src', POD6);
  const m = new RegExp(`sport=${r.localPort} dport=${port} src=${EXT6} dst=(\\S+) sport=${port} dport=(\\d+)`).exec(out);
  assert.ok(m, `conntrack: ${out}`);
  assert.equal(m[1], NODE_OUT6, 'masqueraded to the node\'s outside address');
  const podSide = { 'source.address': POD6, 'source.port': r.localPort, 'destination.address': EXT6, 'destination.port': port };
  await collectUntil(() => capture.sum('tcp_connections_closed', podSide) === 1);
  const [flow] = flows('tcp_bytes_sent', podSide);
  assert.ok(flow, 'the pod\'s IPv6 flow');
  assert.equal(flow['network.type'], 'ipv6');
  assert.equal(flow['source.translated.address'], NODE_OUT6);
  assert.equal(flow['source.translated.port'], Number(m[2]));
});
