/**
 * destination.domain on TCP and UDP flows, end to end against the real
 * kernel: dnsmasq (Debian) in a server namespace answers names that point
 * at addresses of that namespace; dig and Node's resolver in the client
 * namespace resolve them and then connect. The ebpf_dns and ebpf_tcp
 * receivers share one DomainNames, as the service wires them.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { ebpfDnsReceiverFactory } from '../../src/receivers/ebpf_dns/factory';
import type { EbpfDnsReceiver } from '../../src/receivers/ebpf_dns/receiver';
import { ebpfTcpReceiverFactory } from '../../src/receivers/ebpf_tcp/factory';
import type { DnsTransaction } from '../../src/dns/transaction';
import type { MetricsReceiver } from '../../src/pipeline/component';
import { DomainNames } from '../../src/pipeline/domain-names';
import { Capture } from '../helpers/capture';
import { freePort } from '../helpers/e2e';
import { TestNet } from '../helpers/netns';

const net = TestNet.create('dnflow', 42);
const { client: C, server: S } = net;
/** Addresses of the server namespace that only DNS names lead to. */
const TCP_ADDR = '10.201.42.10';
const UDP_ADDR = '10.201.42.11';
const NODE_ADDR = '10.201.42.12';
const children: ChildProcess[] = [];
const domains = new DomainNames();
let dns: EbpfDnsReceiver;
let tcp: MetricsReceiver;
const dnsCapture = new Capture();
const flows = new Capture();
const transactions: DnsTransaction[] = [];

function ready(child: ChildProcess, what: string, marker: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const on = (d: Buffer): void => {
      out += d.toString();
      if (marker.test(out)) resolve();
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.on('exit', (code) => reject(new Error(`${what} exited ${code} before it was ready: ${out}`)));
  });
}

function dig(name: string): string {
  return net.exec(C, 'dig', ['+tries=1', '+time=1', '+short', `@${S.ip4}`, name, 'A']).trim();
}

/** Collect the flows (only: the DNS receiver is not collected) until `check` holds, at most ~5 s. */
async function eventually(check: () => boolean): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await tcp.collect();
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  for (const a of [TCP_ADDR, UDP_ADDR, NODE_ADDR]) net.exec(S, 'ip', ['addr', 'add', `${a}/24`, 'dev', S.dev]);
  const dnsmasq = net.spawn(S, 'dnsmasq', [
    '--keep-in-foreground', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--user=root', '--pid-file=',
    '--log-facility=-', '--bind-interfaces', '--port=53', '--cache-size=0', `--listen-address=${S.ip4}`,
    `--address=/tcp.flow.test/${TCP_ADDR}`, `--address=/udp.flow.test/${UDP_ADDR}`, `--address=/node.flow.test/${NODE_ADDR}`,
  ]);
  children.push(dnsmasq);
  await ready(dnsmasq, 'dnsmasq', /started, version/);

  const dnsConfig = ebpfDnsReceiverFactory.validate(
    { collection_interval: '1h', network_namespaces: [`/run/netns/${C.ns}`, `/run/netns/${S.ns}`] },
    'receivers.ebpf_dns',
  );
  dns = ebpfDnsReceiverFactory.create(dnsConfig, { id: 'ebpf_dns', logger: pino({ level: 'warn' }), next: dnsCapture, domains }) as EbpfDnsReceiver;
  dns.onTransaction((t) => transactions.push(t));
  await dns.start();
  const tcpConfig = ebpfTcpReceiverFactory.validate({ collection_interval: '1h' }, 'receivers.ebpf_tcp');
  tcp = ebpfTcpReceiverFactory.create(tcpConfig, { id: 'ebpf_tcp', logger: pino({ level: 'warn' }), next: flows, domains });
  await tcp.start();
});

after(async () => {
  await tcp?.shutdown();
  await dns?.shutdown();
  for (const c of children) c.kill();
  net.destroy();
});

test('a TCP connection to an address dig just resolved carries destination.domain; one to an address never resolved does not', async () => {
  const [port, plain] = [await freePort(), await freePort()];
  children.push(await net.startServer(S, ['tcp-server', '--host', TCP_ADDR, '--port', String(port), '--reply', '100']));
  children.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(plain), '--reply', '100']));
  assert.equal(dig('tcp.flow.test'), TCP_ADDR);
  const named = await net.traffic<{ received: number }>(C, ['tcp-client', '--host', TCP_ADDR, '--port', String(port), '--send', '1000']);
  assert.equal(named.result.received, 100);
  const unnamed = await net.traffic<{ received: number }>(C, ['tcp-client', '--host', S.ip4, '--port', String(plain), '--send', '1000']);
  assert.equal(unnamed.result.received, 100);
  const toNamed = { 'network.transport': 'tcp', 'destination.address': TCP_ADDR, 'destination.port': port };
  const toPlain = { 'network.transport': 'tcp', 'destination.address': S.ip4, 'destination.port': plain };
  await eventually(() => flows.sum('tcp_connections_closed', toNamed) === 1 && flows.sum('tcp_connections_closed', toPlain) === 1);

  assert.equal(flows.sum('tcp_connections_opened', { ...toNamed, 'destination.domain': 'tcp.flow.test' }), 1);
  assert.equal(flows.sum('tcp_bytes_sent', { ...toNamed, 'destination.domain': 'tcp.flow.test', 'process.pid': named.pid }), 1000);
  const namedAll = flows.select('tcp_bytes_sent', toNamed).concat(flows.select('tcp_connections_opened', toNamed), flows.select('tcp_connections_closed', toNamed));
  assert.ok(namedAll.length >= 3 && namedAll.every((m) => m.attributes['destination.domain'] === 'tcp.flow.test'), 'every metric of the flow has the exact name');

  assert.equal(flows.sum('tcp_connections_opened', toPlain), 1);
  assert.equal(flows.sum('tcp_bytes_sent', toPlain), 1000);
  const plainAll = flows.all().filter((m) => m.attributes['destination.address'] === S.ip4 && m.attributes['network.transport'] === 'tcp');
  assert.ok(plainAll.length > 0 && plainAll.every((m) => m.attributes['destination.domain'] === undefined), 'never resolved: no domain');
  // The server's side of the named connection: its destination is the client, which no answer named.
  const serverSide = flows.select('tcp_bytes_sent', { 'source.address': TCP_ADDR, 'source.port': port });
  assert.equal(serverSide.length, 1);
  assert.equal(serverSide[0]!.attributes['destination.domain'], undefined);
});

test('a UDP flow to an address dig just resolved carries destination.domain', async () => {
  const port = await freePort();
  children.push(await net.startServer(S, ['udp-server', '--host', UDP_ADDR, '--port', String(port)]));
  assert.equal(dig('udp.flow.test'), UDP_ADDR);
  // The answer is in the name cache before the flow exists (the TCP tests
  // above and the Node test below cover a flow that races its answer).
  for (let i = 0; i < 50 && domains.lookup(UDP_ADDR) === undefined; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(domains.lookup(UDP_ADDR), 'udp.flow.test', `transactions: ${JSON.stringify(transactions.map((t) => [t.questionName, t.outcome, t.rcode]))}`);
  const { pid } = await net.traffic(C, ['udp-client', '--host', UDP_ADDR, '--port', String(port), '--count', '5', '--size', '100']);
  const to = { 'network.transport': 'udp', 'destination.address': UDP_ADDR, 'destination.port': port };
  await eventually(() => flows.sum('udp_datagrams_sent', to) === 5);
  const seen = JSON.stringify(flows.select('udp_datagrams_sent', to).map((m) => [m.value, m.attributes]));
  assert.equal(flows.sum('udp_datagrams_sent', { ...to, 'destination.domain': 'udp.flow.test', 'process.pid': pid }), 5, `client pid ${pid}; ${seen}`);
  assert.equal(flows.sum('udp_bytes_sent', { ...to, 'destination.domain': 'udp.flow.test' }), 500);
  // dig's own UDP flow went to the DNS server's address, which no answer named.
  const toServer = flows.all().filter((m) => m.attributes['destination.address'] === S.ip4 && m.attributes['destination.port'] === 53);
  assert.ok(toServer.length > 0 && toServer.every((m) => m.attributes['destination.domain'] === undefined));
});

test("Node resolves with node:dns and connects at once: the connection carries the name, the query carries Node's pid", async () => {
  const port = await freePort();
  children.push(await net.startServer(S, ['tcp-server', '--host', NODE_ADDR, '--port', String(port), '--reply', '10']));
  const script = `
const { Resolver } = require('node:dns');
const netm = require('node:net');
const r = new Resolver({ timeout: 2000, tries: 1 });
r.setServers([${JSON.stringify(S.ip4)}]);
r.resolve4('node.flow.test', (err, addrs) => {
  if (err) { console.error(err); process.exit(1); }
  const s = netm.connect(${port}, addrs[0], () => s.end('hello'));
  let got = 0;
  s.on('data', (d) => (got += d.length));
  s.on('close', () => console.log(JSON.stringify({ pid: process.pid, addr: addrs[0], got })));
});`;
  const out = JSON.parse(net.exec(C, process.execPath, ['-e', script]).trim()) as { pid: number; addr: string; got: number };
  assert.deepEqual([out.addr, out.got], [NODE_ADDR, 10]);
  // Straight to the flows: the receiver waits for the DNS capture to catch up before labelling.
  const to = { 'network.transport': 'tcp', 'destination.address': NODE_ADDR, 'destination.port': port };
  await eventually(() => flows.sum('tcp_connections_closed', to) === 1);
  assert.equal(flows.sum('tcp_connections_opened', { ...to, 'destination.domain': 'node.flow.test', 'process.pid': out.pid, 'process.executable.name': 'node' }), 1);
  assert.equal(flows.sum('tcp_bytes_sent', { ...to, 'destination.domain': 'node.flow.test' }), 5);

  await dns.collect();
  assert.equal(dnsCapture.sum('dns_queries', { 'dns.question.name': 'node.flow.test', 'process.executable.name': 'node' }), 1);
  const t = transactions.filter((x) => x.questionName === 'node.flow.test');
  assert.equal(t.length, 1);
  assert.deepEqual(t[0]!.process, { pid: out.pid, name: 'node' });
});

test('the DNS receiver stops providing names when it shuts down', async () => {
  assert.equal(domains.active, true);
  assert.equal(domains.lookup(TCP_ADDR), 'tcp.flow.test');
  await dns.shutdown();
  assert.equal(domains.active, false);
  assert.equal(domains.lookup(TCP_ADDR), undefined);
});
