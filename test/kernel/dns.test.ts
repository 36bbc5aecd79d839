/**
 * The ebpf_dns receiver against the real kernel and a real DNS server:
 * dnsmasq (Debian) in a server namespace answering from names the test
 * gives it, dig (bind9-dnsutils) and Node's resolver (c-ares) in a client
 * namespace. Nothing is forwarded anywhere: the only upstream dnsmasq knows
 * (for sf.test) is a tiny responder on the server namespace's loopback that
 * answers SERVFAIL.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { EbpfDnsReceiver } from '../../src/receivers/ebpf_dns/receiver';
import { ebpfDnsReceiverFactory } from '../../src/receivers/ebpf_dns/factory';
import type { DnsTransaction } from '../../src/dns/transaction';
import { Capture, memoryLogger } from '../helpers/capture';
import { DnsCapture } from '../../src/receivers/ebpf_dns/probes';
import { TestNet, type TestHost } from '../helpers/netns';

const net = TestNet.create('dns', 41);
const { client: C, server: S } = net;
/** A server address where queries are dropped (nft): they time out. */
const BLACKHOLE = '10.201.41.3';
const children: ChildProcess[] = [];
let receiver: EbpfDnsReceiver;
let capture: Capture;
const transactions: DnsTransaction[] = [];

const SERVFAIL_UPSTREAM = `
const d = require('dgram').createSocket('udp4');
d.on('message', (m, r) => { const b = Buffer.from(m); b[2] |= 0x80; b[3] = (b[3] & 0xf0) | 2; d.send(b, r.port, r.address); });
d.bind(5999, '127.0.0.1', () => console.log('ready'));`;

function waitReady(child: ChildProcess, what: string, marker: RegExp): Promise<void> {
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

interface DigResult {
  status: string;
  wallUs: number;
  out: string;
}

function dig(h: TestHost, args: string[]): DigResult {
  const t0 = process.hrtime.bigint();
  let out: string;
  try {
    out = net.exec(h, 'dig', ['+tries=1', '+time=1', ...args]);
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? '');
  }
  const wallUs = Number((process.hrtime.bigint() - t0) / 1000n);
  const m = /status: (\w+)/.exec(out);
  return { status: m ? m[1]! : 'NONE', wallUs, out };
}

/** dig run as a child of its own, to know its pid. */
async function digPid(h: TestHost, args: string[]): Promise<{ pid: number; status: string }> {
  const child = net.spawn(h, 'dig', ['+tries=1', '+time=1', ...args]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'exit');
  return { pid: child.pid!, status: /status: (\w+)/.exec(out)?.[1] ?? 'NONE' };
}

const sum = (metric: string, match: Record<string, string | number>): number => capture.sum(metric, match);

before(async () => {
  net.exec(S, 'ip', ['addr', 'add', `${BLACKHOLE}/24`, 'dev', S.dev]);
  net.nft(S, `table inet ftdnsdrop { chain input { type filter hook input priority 0; ip daddr ${BLACKHOLE} udp dport 53 drop; }; }`);
  const up = net.spawn(S, process.execPath, ['-e', SERVFAIL_UPSTREAM]);
  children.push(up);
  await waitReady(up, 'SERVFAIL upstream', /ready/);
  const dnsmasq = net.spawn(S, 'dnsmasq', [
    '--keep-in-foreground', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--user=root', '--pid-file=',
    '--log-facility=-', '--bind-interfaces', '--port=53', '--cache-size=0',
    `--listen-address=${S.ip4}`, `--listen-address=${S.ip6}`, '--listen-address=127.0.0.1',
    '--address=/known.test/10.9.9.9', '--address=/nx.test/',
    '--host-record=web.known.test,10.9.9.10,fd00::10', '--cname=alias.known.test,web.known.test',
    '--mx-host=known.test,mail.known.test,10', '--srv-host=_sip._tcp.known.test,sip.known.test,5060,1,2',
    '--txt-record=txt.known.test,hello world', '--ptr-record=9.9.9.10.in-addr.arpa,known.test',
    '--server=/sf.test/127.0.0.1#5999',
  ]);
  children.push(dnsmasq);
  await waitReady(dnsmasq, 'dnsmasq', /started, version/);

  capture = new Capture();
  const config = ebpfDnsReceiverFactory.validate(
    {
      collection_interval: '1h',
      query_timeout: '500ms',
      // Both ends of the veth pair: every packet is captured twice and must count once.
      network_namespaces: [`/run/netns/${C.ns}`, `/run/netns/${S.ns}`],
    },
    'receivers.ebpf_dns',
  );
  receiver = ebpfDnsReceiverFactory.create(config, { id: 'ebpf_dns', logger: pino({ level: 'warn' }), next: capture }) as EbpfDnsReceiver;
  receiver.onTransaction((t) => transactions.push(t));
  await receiver.start();
});

after(async () => {
  await receiver?.shutdown();
  for (const c of children) c.kill();
  net.destroy();
});

describe('UDP over a veth pair, captured at both ends', () => {
  test('N queries for a known name: N queries, N NOERROR responses, N latencies, each plausible', async () => {
    const N = 5;
    const wall: number[] = [];
    for (let i = 0; i < N; i++) {
      const r = dig(C, [`@${S.ip4}`, 'known.test', 'A']);
      assert.equal(r.status, 'NOERROR', r.out);
      wall.push(r.wallUs);
    }
    await receiver.collect();
    const q = { 'dns.question.name': 'known.test', 'dns.question.type': 'A', 'server.address': S.ip4, 'network.transport': 'udp' };
    assert.equal(sum('dns_queries', q), N);
    assert.equal(sum('dns_responses', { ...q, 'dns.response_code': 'NOERROR' }), N);
    assert.equal(sum('dns_responses', q), N);
    // Every query, its response and its latency carry the process that asked.
    assert.equal(sum('dns_queries', { ...q, 'process.executable.name': 'dig' }), N);
    assert.equal(sum('dns_responses', { ...q, 'process.executable.name': 'dig' }), N);
    assert.equal(capture.select('dns_latency_us', { ...q, 'process.executable.name': 'dig' }).length, N);
    const lat = capture.select('dns_latency_us', q);
    assert.equal(lat.length, N);
    for (const m of lat) {
      assert.ok(m.value > 0, `latency ${m.value} µs must be positive`);
      assert.ok(m.value < Math.max(...wall), `latency ${m.value} µs must be below dig's wall time ${Math.max(...wall)} µs`);
    }
    assert.ok(sum('flowtel_dns_duplicates', {}) >= 2 * N, 'the second capture of each packet is recognised');
    assert.equal(receiver.nameCache.lookup('10.9.9.9'), 'known.test');
  });

  test("process attribution: each query's transaction carries the pid of the dig that sent it, over IPv4 and IPv6", async () => {
    const runs = [await digPid(C, [`@${S.ip4}`, 'pid4.known.test']), await digPid(C, [`@${S.ip6}`, 'pid6.known.test', 'A'])];
    for (const r of runs) assert.equal(r.status, 'NOERROR');
    await receiver.collect();
    for (const [i, name] of ['pid4.known.test', 'pid6.known.test'].entries()) {
      const ts = transactions.filter((t) => t.questionName === name);
      assert.equal(ts.length, 1, name);
      assert.deepEqual(ts[0]!.process, { pid: runs[i]!.pid, name: 'dig' }, name);
    }
    assert.equal(sum('dns_queries', { 'dns.question.name': 'pid6.known.test', 'server.address': S.ip6, 'process.executable.name': 'dig' }), 1);
  });

  test('NXDOMAIN, REFUSED and SERVFAIL are counted exactly', async () => {
    for (let i = 0; i < 3; i++) assert.equal(dig(C, [`@${S.ip4}`, 'nx.test']).status, 'NXDOMAIN');
    for (let i = 0; i < 2; i++) assert.equal(dig(C, [`@${S.ip4}`, 'other.example']).status, 'REFUSED');
    assert.equal(dig(C, [`@${S.ip4}`, 'sf.test']).status, 'SERVFAIL');
    await receiver.collect();
    assert.equal(sum('dns_responses', { 'dns.question.name': 'nx.test', 'dns.response_code': 'NXDOMAIN' }), 3);
    assert.equal(sum('dns_queries', { 'dns.question.name': 'nx.test' }), 3);
    assert.equal(sum('dns_responses', { 'dns.question.name': 'other.example', 'dns.response_code': 'REFUSED' }), 2);
    assert.equal(sum('dns_responses', { 'dns.question.name': 'sf.test', 'dns.response_code': 'SERVFAIL' }), 1);
    assert.equal(sum('dns_queries', { 'dns.question.name': 'sf.test' }), 1, "dnsmasq's own query to its upstream (port 5999) is not DNS on a configured port");
  });

  test('a query nobody answers is a timeout', async () => {
    const r = dig(C, [`@${BLACKHOLE}`, 'known.test']);
    assert.equal(r.status, 'NONE');
    await new Promise((res) => setTimeout(res, 600));
    await receiver.collect();
    assert.equal(sum('dns_queries', { 'server.address': BLACKHOLE }), 1);
    assert.equal(sum('dns_timeouts', { 'server.address': BLACKHOLE, 'dns.question.name': 'known.test', 'dns.question.type': 'A' }), 1);
    assert.equal(sum('dns_responses', { 'server.address': BLACKHOLE }), 0);
    assert.ok(transactions.some((t) => t.outcome === 'timeout' && t.server.address === BLACKHOLE));
  });

  test('IPv6, and answers of every type are decoded', async () => {
    assert.equal(dig(C, [`@${S.ip6}`, 'web.known.test', 'AAAA']).status, 'NOERROR');
    for (const [name, type] of [['alias.known.test', 'A'], ['known.test', 'MX'], ['_sip._tcp.known.test', 'SRV'], ['txt.known.test', 'TXT']] as const) {
      assert.equal(dig(C, [`@${S.ip4}`, name, type]).status, 'NOERROR');
    }
    assert.equal(dig(C, [`@${S.ip4}`, '-x', '10.9.9.9']).status, 'NOERROR');
    await receiver.collect();
    assert.equal(sum('dns_responses', { 'server.address': S.ip6, 'dns.question.type': 'AAAA', 'dns.response_code': 'NOERROR' }), 1);
    assert.equal(receiver.nameCache.lookup('fd00::10'), 'web.known.test');
    assert.equal(receiver.nameCache.lookup('10.9.9.10'), 'alias.known.test', 'the name asked for, not the CNAME target');
    const answers = (name: string): string[] =>
      transactions.filter((t) => t.questionName === name && t.outcome === 'response').flatMap((t) => (t.answers ?? []).map((a) => a.data));
    assert.deepEqual(answers('alias.known.test'), ['web.known.test', '10.9.9.10']);
    assert.ok(answers('known.test').includes('10 mail.known.test'));
    assert.deepEqual(answers('_sip._tcp.known.test'), ['1 2 5060 sip.known.test']);
    assert.deepEqual(answers('txt.known.test'), ['"hello world"']);
    assert.deepEqual(answers('9.9.9.10.in-addr.arpa'), ['known.test']);
  });
});

test('DNS over TCP (dig +tcp) is reassembled and counted once', async () => {
  for (let i = 0; i < 3; i++) assert.equal(dig(C, ['+tcp', `@${S.ip4}`, 'known.test']).status, 'NOERROR');
  await receiver.collect();
  const q = { 'dns.question.name': 'known.test', 'network.transport': 'tcp', 'server.address': S.ip4 };
  assert.equal(sum('dns_queries', q), 3);
  assert.equal(sum('dns_queries', { ...q, 'process.executable.name': 'dig' }), 3, 'dig +tcp is attributed');
  assert.equal(sum('dns_responses', { ...q, 'process.executable.name': 'dig' }), 3);
  const tcpDig = await digPid(C, ['+tcp', `@${S.ip4}`, 'tcppid.known.test']);
  assert.equal(tcpDig.status, 'NOERROR');
  await receiver.collect();
  assert.deepEqual(transactions.find((t) => t.questionName === 'tcppid.known.test' && t.transport === 'tcp')?.process, { pid: tcpDig.pid, name: 'dig' });
  assert.equal(sum('dns_responses', { ...q, 'dns.response_code': 'NOERROR' }), 3);
  const lat = capture.select('dns_latency_us', q);
  assert.equal(lat.length, 3);
  for (const m of lat) assert.ok(m.value > 0 && m.value < 1_000_000);
});

test("Node's resolver (c-ares): its queries are counted exactly and attributed to node", async () => {
  const N = 7;
  const script = `
const { Resolver } = require('node:dns');
const r = new Resolver({ timeout: 2000, tries: 1 });
r.setServers([${JSON.stringify(S.ip4)}]);
(async () => {
  const got = [];
  for (let i = 0; i < ${N}; i++) got.push(...await new Promise((res, rej) => r.resolve4('node.known.test', (e, a) => (e ? rej(e) : res(a)))));
  await new Promise((res) => r.resolveMx('known.test', (e, a) => res(a)));
  await new Promise((res) => r.resolve4('nx.test', () => res()));
  console.log(JSON.stringify({ pid: process.pid, got }));
})().catch((e) => { console.error(e); process.exit(1); });`;
  const out = JSON.parse(net.exec(C, process.execPath, ['-e', script]).trim()) as { pid: number; got: string[] };
  assert.deepEqual(out.got, Array(N).fill('10.9.9.9'));
  await receiver.collect();
  const q = { 'dns.question.name': 'node.known.test', 'dns.question.type': 'A', 'server.address': S.ip4 };
  assert.equal(sum('dns_queries', q), N);
  assert.equal(sum('dns_queries', { ...q, 'process.executable.name': 'node' }), N);
  assert.equal(sum('dns_responses', { ...q, 'dns.response_code': 'NOERROR', 'process.executable.name': 'node' }), N);
  assert.equal(capture.select('dns_latency_us', { ...q, 'process.executable.name': 'node' }).length, N);
  assert.equal(sum('dns_responses', { 'dns.question.name': 'known.test', 'dns.question.type': 'MX', 'process.executable.name': 'node' }), 1);
  assert.equal(sum('dns_responses', { 'dns.question.name': 'nx.test', 'dns.response_code': 'NXDOMAIN', 'process.executable.name': 'node' }), 1);
  const mine = transactions.filter((t) => t.process?.pid === out.pid);
  assert.equal(mine.length, N + 2, 'every transaction of the node process carries its pid');
  assert.ok(mine.every((t) => t.process?.name === 'node'));
});

test('loopback: each packet is seen out and in on lo, and counted once', async () => {
  for (let i = 0; i < 4; i++) assert.equal(dig(S, ['@127.0.0.1', 'known.test']).status, 'NOERROR');
  await receiver.collect();
  assert.equal(sum('dns_queries', { 'server.address': '127.0.0.1' }), 4);
  assert.equal(sum('dns_queries', { 'server.address': '127.0.0.1', 'process.executable.name': 'dig' }), 4);
  assert.equal(sum('dns_responses', { 'server.address': '127.0.0.1', 'dns.response_code': 'NOERROR' }), 4);
  assert.equal(capture.select('dns_latency_us', { 'server.address': '127.0.0.1' }).length, 4);
});

test('malformed packets are counted and skipped; the receiver keeps working', async () => {
  const before = sum('flowtel_dns_malformed', {});
  const hdr = (id: number, flags: number, qd: number, an: number): Buffer => {
    const b = Buffer.alloc(12);
    b.writeUInt16BE(id, 0);
    b.writeUInt16BE(flags, 2);
    b.writeUInt16BE(qd, 4);
    b.writeUInt16BE(an, 6);
    return b;
  };
  const bad = [
    Buffer.from('junk'), // shorter than a header
    hdr(0x1111, 0x0100, 3, 0), // three questions, no bytes
    Buffer.concat([hdr(0x2222, 0x0100, 1, 0), Buffer.from([0xc0, 0x0c])]), // a name that points at itself
    Buffer.concat([hdr(0x3333, 0x0100, 1, 0), Buffer.from([0x3f, 0x61])]), // a label longer than the packet
    Buffer.concat([hdr(0x4444, 0x0100, 1, 0), Buffer.from([0x80, 0x61, 0x00, 0x00, 0x01, 0x00, 0x01])]), // reserved label type
  ];
  const sender = `
const s = require('dgram').createSocket('udp4');
const msgs = ${JSON.stringify(bad.map((b) => b.toString('hex')))};
let n = 0;
for (const m of msgs) s.send(Buffer.from(m, 'hex'), 53, ${JSON.stringify(S.ip4)}, () => { if (++n === msgs.length) s.close(); });`;
  net.exec(C, process.execPath, ['-e', sender]);
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(dig(C, [`@${S.ip4}`, 'web.known.test', 'A']).status, 'NOERROR');
  await receiver.collect();
  // Each bad query counts once (its second capture is a duplicate); dnsmasq may answer some with FORMERR.
  assert.ok(sum('flowtel_dns_malformed', {}) - before >= bad.length, `malformed: ${sum('flowtel_dns_malformed', {}) - before}`);
  assert.equal(sum('flowtel_dns_malformed', { reason: 'internal' }), 0);
  assert.equal(sum('dns_responses', { 'dns.question.name': 'web.known.test', 'dns.question.type': 'A', 'dns.response_code': 'NOERROR' }), 1, 'still counting');
});

test('a burst of queries: every one counted, no capture drops', async () => {
  const N = 5000;
  // A pipelined UDP client: at most 200 queries outstanding, each id used once.
  const flood = `
const s = require('dgram').createSocket('udp4');
const N = ${N};
const q = (id) => { const n = Buffer.from([5,0x66,0x6c,0x6f,0x6f,0x64,5,0x6b,0x6e,0x6f,0x77,0x6e,4,0x74,0x65,0x73,0x74,0]);
  const h = Buffer.alloc(12); h.writeUInt16BE(id, 0); h.writeUInt16BE(0x0100, 2); h.writeUInt16BE(1, 4);
  return Buffer.concat([h, n, Buffer.from([0, 1, 0, 1])]); };
let sent = 0, got = 0;
const t0 = Date.now();
const more = () => { while (sent < N && sent - got < 200) s.send(q(sent++), 53, ${JSON.stringify(S.ip4)}); };
let idle;
const done = () => { console.log(JSON.stringify({ got, ms: Date.now() - t0 })); process.exit(0); };
s.on('message', () => { got++; clearTimeout(idle); if (got === N) done(); more(); idle = setTimeout(done, 500); });
s.bind(0, more);`;
  const rcvbufBefore = net.nstat(C, 'UdpRcvbufErrors');
  const out = JSON.parse(net.exec(C, process.execPath, ['-e', flood]).trim()) as { got: number; ms: number };
  // Responses that reached the client namespace: those the client read, and those its socket buffer overflowed with.
  const answered = out.got + net.nstat(C, 'UdpRcvbufErrors') - rcvbufBefore;
  await receiver.collect();
  const q = { 'dns.question.name': 'flood.known.test', 'server.address': S.ip4 };
  assert.equal(sum('dns_queries', q), N);
  assert.equal(sum('dns_queries', { ...q, 'process.executable.name': 'node' }), N, 'an unconnected socket (sendto) is attributed too');
  assert.equal(sum('dns_responses', q), answered);
  assert.equal(capture.select('dns_latency_us', q).length, answered);
  assert.equal(sum('flowtel_dns_capture_drops', {}), 0);
});

test('interface globs: a socket per matching interface, others not captured; process_attribution off', async () => {
  const own = new Capture();
  const config = ebpfDnsReceiverFactory.validate(
    { collection_interval: '1h', network_namespaces: [`/run/netns/${S.ns}`], include_interfaces: ['l?'], exclude_interfaces: [`${S.dev}*`], process_attribution: false },
    'receivers.ebpf_dns/lo',
  );
  const r = ebpfDnsReceiverFactory.create(config, { id: 'ebpf_dns/lo', logger: pino({ level: 'warn' }), next: own }) as EbpfDnsReceiver;
  await r.start();
  try {
    assert.equal(r.socketCount, 1, 'lo only');
    assert.equal(dig(S, ['@127.0.0.1', 'web.known.test', 'AAAA']).status, 'NOERROR');
    assert.equal(dig(C, [`@${S.ip4}`, 'web.known.test', 'AAAA']).status, 'NOERROR');
    await r.collect();
    assert.equal(own.sum('dns_queries', { 'dns.question.name': 'web.known.test' }), 1);
    assert.equal(own.sum('dns_queries', { 'server.address': '127.0.0.1' }), 1);
    assert.ok(
      own.all().every((m) => m.attributes['process.executable.name'] === undefined),
      'process_attribution: false attributes nothing',
    );
  } finally {
    await r.shutdown();
  }
});

test('process attribution: its cgroup programs are attached while the receiver runs, and gone after shutdown', async () => {
  const config = ebpfDnsReceiverFactory.validate({ collection_interval: '1h', network_namespaces: [`/run/netns/${S.ns}`] }, 'receivers.ebpf_dns/attr');
  const r = ebpfDnsReceiverFactory.create(config, { id: 'ebpf_dns/attr', logger: pino({ level: 'warn' }), next: new Capture() }) as EbpfDnsReceiver;
  await r.start();
  const progs = r.kernelPrograms();
  await r.shutdown();
  const attached = progs.filter((p) => p.attached).map((p) => p.name).sort();
  assert.deepEqual(attached, ['dns_connect4', 'dns_connect6', 'dns_owner_egress', 'dns_sendmsg4', 'dns_sendmsg6']);
  assert.ok(progs.some((p) => p.name === 'dns_filter'));
  // The kernel frees a socket filter after an RCU grace period once its last socket is closed.
  const left = (): typeof progs => {
    const live = new Set((JSON.parse(execFileSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8' })) as Array<{ id: number }>).map((p) => p.id));
    return progs.filter((p) => live.has(p.id));
  };
  for (let i = 0; i < 50 && left().length > 0; i++) await new Promise((res) => setTimeout(res, 100));
  assert.deepEqual(left(), [], 'no program of the receiver is left in the kernel');
  assert.deepEqual(r.kernelPrograms(), []);
});

test('process attribution cannot attach (not a cgroup v2 directory): a warning, and capture works unattributed', async () => {
  const { logger, lines } = memoryLogger();
  let packets = 0;
  const cap = DnsCapture.open(
    { ports: [53], snapLength: 512, namespaces: [`/run/netns/${S.ns}`], includeInterfaces: [], excludeInterfaces: [], ringBytes: 1 << 20, processAttribution: true, cgroupPath: '/tmp' },
    (_batch, count) => (packets += count),
    logger,
  );
  try {
    assert.equal(cap.ownerCgroup, undefined);
    assert.ok(lines.some((l) => l.level === 40 && String(l.msg).includes('not attributed')), JSON.stringify(lines));
    assert.deepEqual(cap.programs().filter((p) => p.attached), []);
    assert.equal(dig(C, [`@${S.ip4}`, 'known.test']).status, 'NOERROR');
    await cap.flush();
    assert.equal(packets, 2, 'the query and its response, captured in the server namespace');
    const key = Buffer.alloc(4);
    assert.equal(cap.owners.lookup(17, 4, key, 0, 1, Date.now() * 1000), undefined);
  } finally {
    cap.close();
  }
});

test('capture self-telemetry: packets passed, none dropped', async () => {
  await receiver.collect();
  assert.ok(sum('flowtel_dns_capture_packets', {}) > 0);
  assert.equal(sum('flowtel_dns_capture_drops', {}), 0);
  assert.equal(receiver.socketCount, 2);
});
