/** The DNS engine over crafted packets: correlation, timeouts, bounds, capture copies, DNS over TCP. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DnsCorrelator } from '../../src/dns/correlator';
import { DnsEngine, type DnsEvents } from '../../src/dns/engine';
import { DnsNameCache } from '../../src/dns/name-cache';
import type { DnsMessage } from '../../src/dns/parser';
import { TcpDnsReassembler } from '../../src/dns/tcp-stream';
import type { DnsTransaction } from '../../src/dns/transaction';
import { framed, message, packet, rng } from './dns-fixtures';

const CLIENT = '10.0.0.1';
const SERVER = '10.0.0.53';
const T0 = 1_700_000_000_000_000; // µs

function a(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

function query(id: number, qname = 'example.com', type = 1): Buffer {
  return message({ id, flags: 0x0100, questions: [{ name: qname, type }] });
}

function response(id: number, qname = 'example.com', rcode = 0, answers: string[] = ['93.184.216.34'], ttl = 300): Buffer {
  return message({
    id,
    flags: 0x8180 | rcode,
    questions: [{ name: qname, type: 1 }],
    answers: answers.map((ip) => ({ name: qname, type: 1, ttl, rdata: a(ip) })),
  });
}

class Recorder implements DnsEvents {
  queries: DnsMessage[] = [];
  responses: DnsMessage[] = [];
  tx: DnsTransaction[] = [];
  query(_m: unknown, msg: DnsMessage): void {
    this.queries.push(msg);
  }
  response(_m: unknown, msg: DnsMessage): void {
    this.responses.push(msg);
  }
  transaction(t: DnsTransaction): void {
    this.tx.push(t);
  }
}

function engine(opts: Partial<ConstructorParameters<typeof DnsEngine>[0]> = {}) {
  const rec = new Recorder();
  const cache = new DnsNameCache({ minTtlMs: 0 });
  const e = new DnsEngine({ timeoutMs: 5000, maxInflight: 100, maxTcpFlows: 16, nameCache: cache, ...opts }, rec);
  const feed = (pkt: Buffer, tsUs: number, caplen = pkt.length): void => e.onPacket(pkt, 0, caplen, tsUs);
  return { e, rec, cache, feed };
}

const udp = (src: string, sport: number, dst: string, dport: number, payload: Buffer) => packet({ src, dst, sport, dport, payload });

describe('correlation over UDP', () => {
  test('query and response: latency from capture timestamps, answers feed the name cache', () => {
    const { rec, cache, feed } = engine();
    feed(udp(CLIENT, 40000, SERVER, 53, query(7)), T0);
    feed(udp(SERVER, 53, CLIENT, 40000, response(7)), T0 + 1234);
    assert.equal(rec.tx.length, 1);
    const t = rec.tx[0]!;
    assert.equal(t.outcome, 'response');
    assert.equal(t.latencyUs, 1234);
    assert.deepEqual(t.client, { address: CLIENT, port: 40000 });
    assert.deepEqual(t.server, { address: SERVER, port: 53 });
    assert.equal(cache.lookup('93.184.216.34', T0 / 1000), 'example.com');
  });

  test('a response matches only its own (client, port, server, id, question)', () => {
    const { e, rec, feed } = engine();
    feed(udp(CLIENT, 40000, SERVER, 53, query(7)), T0);
    feed(udp(SERVER, 53, CLIENT, 40001, response(7)), T0 + 1); // other port
    feed(udp('10.0.0.54', 53, CLIENT, 40000, response(7)), T0 + 2); // other server
    feed(udp(SERVER, 53, CLIENT, 40000, response(8)), T0 + 3); // other id
    feed(udp(SERVER, 53, CLIENT, 40000, response(7, 'other.com')), T0 + 4); // other question
    assert.equal(rec.tx.length, 0);
    assert.equal(e.correlator.stats.unmatched, 4);
    feed(udp(SERVER, 53, CLIENT, 40000, response(7, 'EXAMPLE.com')), T0 + 5); // names compare case-insensitively
    assert.equal(rec.tx.length, 1);
  });

  test('no response within the timeout: a timeout, once', () => {
    const { e, rec, feed } = engine({ timeoutMs: 1000 });
    feed(udp(CLIENT, 40000, SERVER, 53, query(9)), T0);
    e.expire(T0 + 999_000);
    assert.equal(rec.tx.length, 0);
    e.expire(T0 + 1_000_000);
    e.expire(T0 + 2_000_000);
    assert.deepEqual(rec.tx.map((t) => t.outcome), ['timeout']);
    feed(udp(SERVER, 53, CLIENT, 40000, response(9)), T0 + 2_000_001);
    assert.equal(e.correlator.stats.unmatched, 1, 'a late response is a response, unmatched');
    assert.equal(rec.responses.length, 1);
  });

  test('timeouts follow capture time even when nobody calls expire (an agent behind its capture)', () => {
    const { e, rec, feed } = engine({ timeoutMs: 1000, maxInflight: 10_000 });
    // 20,000 unanswered queries over 10 s of capture time, no collection in between.
    const N = 20_000;
    for (let i = 0; i < N; i++) feed(udp(CLIENT, 1024 + (i % 60000), SERVER, 53, query(i & 0xffff)), T0 + i * 500);
    assert.equal(e.correlator.stats.overflow, 0, 'max_inflight is never reached');
    const timeouts = rec.tx.filter((t) => t.outcome === 'timeout');
    // Expired: sent more than timeout + 1 s margin before the latest capture (checked every 4096 packets).
    assert.ok(timeouts.length >= N - 4096 - 4000 - 1 && timeouts.length < N - 4000, `timeouts ${timeouts.length}`);
    assert.ok(timeouts.every((t) => t.queryTimeUs <= T0 + (N - 1) * 500 - 2_000_000));
    e.expire(T0 + N * 500 + 1_000_000);
    assert.equal(rec.tx.filter((t) => t.outcome === 'timeout').length, N, 'each query times out exactly once');
  });

  test("copies from a capture socket read seconds after the other's are still recognised", () => {
    const { e, rec, feed } = engine({ maxInflight: 10_000 });
    const pkts = Array.from({ length: 3000 }, (_, i) => udp(CLIENT, 1024 + i, SERVER, 53, query(i)));
    // Socket A: 3,000 queries over 3 s of capture time; socket B's copies of the same packets (1 µs later each) are read after all of A's.
    pkts.forEach((p, i) => feed(p, T0 + i * 1000));
    pkts.forEach((p, i) => feed(p, T0 + i * 1000 + 1));
    assert.equal(rec.queries.length, 3000);
    assert.equal(e.stats.duplicates, 3000);
  });

  test('in-flight queries are bounded; overflow is counted', () => {
    const { e, rec, feed } = engine({ maxInflight: 10 });
    for (let i = 0; i < 15; i++) feed(udp(CLIENT, 40000 + i, SERVER, 53, query(i)), T0 + i);
    assert.equal(rec.queries.length, 15, 'every query is still counted');
    assert.equal(e.correlator.size, 10);
    assert.equal(e.correlator.stats.overflow, 5);
  });

  test('IPv6', () => {
    const { rec, cache, feed } = engine();
    const six = message({ id: 3, flags: 0x8180, questions: [{ name: 'v6.test', type: 28 }], answers: [{ name: 'v6.test', type: 28, rdata: Buffer.from('20010db8000000000000000000000001', 'hex') }] });
    feed(packet({ src: 'fd00::1', dst: 'fd00::53', sport: 5000, dport: 53, payload: message({ id: 3, questions: [{ name: 'v6.test', type: 28 }] }) }), T0);
    feed(packet({ src: 'fd00::53', dst: 'fd00::1', sport: 53, dport: 5000, payload: six }), T0 + 50);
    assert.equal(rec.tx[0]!.server.address, 'fd00::53');
    assert.equal(rec.tx[0]!.networkType, 'ipv6');
    assert.equal(cache.lookup('2001:db8::1', T0 / 1000), 'v6.test');
  });
});

describe('capture copies', () => {
  test('the same packet captured twice (both ends of a veth) counts once; a retry later counts again', () => {
    const { e, rec, feed } = engine();
    const q = udp(CLIENT, 40000, SERVER, 53, query(5));
    feed(q, T0);
    feed(q, T0 + 15); // the other end
    feed(udp(SERVER, 53, CLIENT, 40000, response(5)), T0 + 100);
    feed(udp(SERVER, 53, CLIENT, 40000, response(5)), T0 + 110);
    assert.equal(rec.queries.length, 1);
    assert.equal(rec.responses.length, 1);
    assert.equal(e.stats.duplicates, 2);
    assert.equal(rec.tx[0]!.latencyUs, 100, 'the first capture of each is used');
    feed(q, T0 + 2_000_000); // the client retried with the same id, much later
    assert.equal(rec.queries.length, 2);
  });
});

describe('DNS over TCP', () => {
  const seg = (from: 'c' | 's', seq: number, payload: Buffer, flags = 0x18) =>
    from === 'c'
      ? packet({ src: CLIENT, dst: SERVER, proto: 'tcp', sport: 41000, dport: 53, seq, flags, payload })
      : packet({ src: SERVER, dst: CLIENT, proto: 'tcp', sport: 53, dport: 41000, seq, flags, payload });

  test('handshake, query, response: correlated with transport tcp', () => {
    const { rec, feed } = engine();
    feed(seg('c', 100, Buffer.alloc(0), 0x02), T0);
    feed(seg('s', 900, Buffer.alloc(0), 0x12), T0 + 1);
    feed(seg('c', 101, framed(query(1))), T0 + 2);
    feed(seg('s', 901, framed(response(1))), T0 + 500);
    feed(seg('c', 101 + framed(query(1)).length, Buffer.alloc(0), 0x11), T0 + 600);
    assert.equal(rec.tx.length, 1);
    assert.equal(rec.tx[0]!.transport, 'tcp');
    assert.equal(rec.tx[0]!.latencyUs, 498);
  });

  test('several messages in one segment', () => {
    const { rec, feed } = engine();
    feed(seg('c', 100, Buffer.alloc(0), 0x02), T0);
    feed(seg('c', 101, Buffer.concat([framed(query(1)), framed(query(2, 'b.com')), framed(query(3, 'c.com'))])), T0 + 1);
    assert.deepEqual(rec.queries.map((q) => q.id), [1, 2, 3]);
  });

  test('one message over two (and three) segments, split inside the length prefix too', () => {
    for (const cuts of [[10], [1], [1, 2], [5, 17]]) {
      const { rec, feed } = engine();
      const data = Buffer.concat([framed(response(4, 'split.example')), framed(response(5, 'next.example'))]);
      feed(seg('s', 1000, Buffer.alloc(0), 0x12), T0);
      let seq = 1001;
      let prev = 0;
      for (const c of [...cuts, data.length]) {
        feed(seg('s', seq, data.subarray(prev, c)), T0 + c);
        seq += c - prev;
        prev = c;
      }
      assert.deepEqual(rec.responses.map((r) => r.id), [4, 5], `cuts ${cuts.join(',')}`);
    }
  });

  test('retransmitted and overlapping segments are not counted twice', () => {
    const { e, rec, feed } = engine();
    const data = Buffer.concat([framed(query(1)), framed(query(2, 'b.com'))]);
    feed(seg('c', 100, Buffer.alloc(0), 0x02), T0);
    feed(seg('c', 101, data.subarray(0, 20)), T0 + 1);
    feed(seg('c', 101, data.subarray(0, 20)), T0 + 900_000); // retransmission, outside the copy window
    feed(seg('c', 111, data.subarray(10)), T0 + 900_001); // overlaps the first 10 bytes already seen
    assert.deepEqual(rec.queries.map((q) => q.id), [1, 2]);
    assert.equal(e.tcp.stats.duplicateSegments, 1);
  });

  test('a gap drops the unfinished message and resynchronises', () => {
    const { e, rec, feed } = engine();
    const m1 = framed(query(1));
    feed(seg('c', 100, Buffer.alloc(0), 0x02), T0);
    feed(seg('c', 101, m1.subarray(0, 10)), T0 + 1);
    // the rest of m1 is never captured
    feed(seg('c', 101 + m1.length, framed(query(2))), T0 + 2);
    assert.deepEqual(rec.queries.map((q) => q.id), [2]);
    assert.equal(e.tcp.stats.gaps, 1);
  });

  test('reassembly state is bounded', () => {
    const r = new TcpDnsReassembler(4);
    const part = framed(query(1)).subarray(0, 5);
    for (let i = 0; i < 10; i++) r.onSegment(`f${i}`, 1, 0x18, part, 0, part.length, part.length, T0, () => assert.fail('no whole message'));
    assert.equal(r.size, 4);
    assert.equal(r.stats.flowsEvicted, 6);
  });
});

test('malformed packets are counted by reason and never throw', () => {
  const { e, rec, feed } = engine();
  feed(Buffer.from([0x45, 0, 0]), T0); // not even an IP header
  feed(udp(CLIENT, 1, SERVER, 53, Buffer.from('abc')), T0 + 1);
  feed(udp(CLIENT, 2, SERVER, 53, Buffer.concat([query(1).subarray(0, 12), Buffer.from([0xc0, 0x0c])])), T0 + 2);
  const rand = rng(7);
  for (let i = 0; i < 20_000; i++) {
    const base = i % 2 ? udp(SERVER, 53, CLIENT, 3000 + (i % 500), response(i & 0xffff)) : udp(CLIENT, 3000 + (i % 500), SERVER, 53, query(i & 0xffff));
    const b = Buffer.from(base);
    for (let f = 0; f < 3; f++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    feed(b, T0 + 10 + i * 1000, Math.floor(rand() * b.length) + 1);
  }
  assert.equal(e.stats.malformed.internal ?? 0, 0, String(e.takeLastError()));
  assert.ok((e.stats.malformed.not_ip ?? 0) >= 1);
  assert.ok((e.stats.malformed.short_header ?? 0) >= 1);
  assert.ok((e.stats.malformed.pointer_loop ?? 0) >= 1);
  assert.ok(e.correlator.size <= 100);
  feed(udp(CLIENT, 9, SERVER, 53, query(77, 'after.fuzz')), T0 + 100_000_000);
  assert.equal(rec.queries[rec.queries.length - 1]!.questions[0]!.name, 'after.fuzz', 'still working');
});

test('DnsCorrelator alone: a retry with the same key keeps the first query', () => {
  const out: DnsTransaction[] = [];
  const c = new DnsCorrelator(1_000_000, 10, (t) => out.push(t));
  const m = { tsUs: 0, transport: 'udp' as const, networkType: 'ipv4' as const, src: CLIENT, sport: 1, dst: SERVER, dport: 53 };
  const q = { id: 1, qr: false, questions: [{ name: 'x', type: 1, class: 1 }] } as unknown as DnsMessage;
  c.query(m, q);
  c.query({ ...m, tsUs: 300_000 }, q);
  assert.equal(c.stats.retries, 1);
  c.response({ ...m, tsUs: 400_000, src: SERVER, sport: 53, dst: CLIENT, dport: 1 }, { ...q, qr: true, rcode: 0, answers: [], tc: false } as unknown as DnsMessage);
  assert.equal(out[0]!.latencyUs, 400_000);
});
