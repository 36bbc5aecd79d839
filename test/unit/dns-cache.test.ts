import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DnsNameCache } from '../../src/dns/name-cache';
import { OTHER, TopNames } from '../../src/dns/top-names';
import { transactionLogAttributes } from '../../src/dns/transaction';

describe('DnsNameCache', () => {
  test('TTL is respected, with the configured floor and ceiling', () => {
    const c = new DnsNameCache({ minTtlMs: 10_000, maxTtlMs: 100_000 });
    c.add('10.0.0.1', 'a.test', 30, 0);
    c.add('10.0.0.2', 'b.test', 0, 0); // TTL 0: kept for the floor
    c.add('10.0.0.3', 'c.test', 86_400, 0); // capped
    assert.equal(c.lookup('10.0.0.1', 29_999), 'a.test');
    assert.equal(c.lookup('10.0.0.1', 30_001), undefined);
    assert.equal(c.lookup('10.0.0.2', 9_999), 'b.test');
    assert.equal(c.lookup('10.0.0.2', 10_001), undefined);
    assert.equal(c.lookup('10.0.0.3', 100_001), undefined);
  });

  test('a newer answer replaces the name; size is bounded', () => {
    const c = new DnsNameCache({ maxEntries: 3, minTtlMs: 0 });
    c.add('10.0.0.1', 'old.test', 60, 0);
    c.add('10.0.0.1', 'new.test', 60, 0);
    assert.equal(c.lookup('10.0.0.1', 1), 'new.test');
    for (let i = 2; i < 10; i++) c.add(`10.0.0.${i}`, `n${i}.test`, 60, 0);
    assert.equal(c.size, 3);
    assert.equal(c.lookup('10.0.0.9', 1), 'n9.test');
    assert.equal(c.lookup('10.0.0.1', 1), undefined, 'the oldest went first');
  });

  test('when full, the oldest entry goes (not a later one), unless one of the oldest has expired', () => {
    const c = new DnsNameCache({ maxEntries: 20, minTtlMs: 0 });
    for (let i = 0; i < 20; i++) c.add(`10.0.1.${i}`, `n${i}.test`, 60, 0);
    c.add('10.0.1.100', 'new.test', 60, 1);
    assert.equal(c.size, 20);
    assert.equal(c.lookup('10.0.1.0', 2), undefined, 'the oldest went');
    for (let i = 1; i < 20; i++) assert.equal(c.lookup(`10.0.1.${i}`, 2), `n${i}.test`);
    assert.equal(c.evictions, 1);
    // An expired entry among the oldest few goes before the oldest live one.
    const d = new DnsNameCache({ maxEntries: 5, minTtlMs: 0 });
    d.add('10.0.2.1', 'live.test', 600, 0);
    d.add('10.0.2.2', 'short.test', 1, 0);
    for (let i = 3; i <= 5; i++) d.add(`10.0.2.${i}`, `n${i}.test`, 600, 0);
    d.add('10.0.2.6', 'new.test', 600, 10_000);
    assert.equal(d.lookup('10.0.2.1', 10_001), 'live.test');
    assert.equal(d.lookup('10.0.2.6', 10_001), 'new.test');
    assert.equal(d.size, 5);
  });

  test('prune drops expired entries', () => {
    const c = new DnsNameCache({ minTtlMs: 0 });
    c.add('10.0.0.1', 'a', 1, 0);
    c.add('10.0.0.2', 'b', 100, 0);
    c.prune(5_000);
    assert.equal(c.size, 1);
  });
});

describe('TopNames', () => {
  test('the first N names are kept, others are other', () => {
    const t = new TopNames(2);
    assert.equal(t.label('a'), 'a');
    assert.equal(t.label('b'), 'b');
    assert.equal(t.label('c'), OTHER);
    assert.equal(t.label('a'), 'a');
  });

  test('rotation ranks by volume: a busy newcomer takes the slot of a quiet name', () => {
    const t = new TopNames(2);
    t.label('a');
    t.label('b');
    for (let i = 0; i < 50; i++) t.label('busy');
    for (let i = 0; i < 10; i++) t.label('a');
    t.rotate();
    assert.deepEqual([...t.keptNames].sort(), ['a', 'busy']);
    assert.equal(t.label('b'), OTHER);
  });

  test('N = 0: always other; counting stays bounded', () => {
    assert.equal(new TopNames(0).label('x'), OTHER);
    const t = new TopNames(3);
    for (let i = 0; i < 10_000; i++) t.label(`n${i}`);
    assert.ok((t as unknown as { counts: Map<string, number> }).counts.size <= 4 * 3 + 64);
  });
});

test('log record attributes of a transaction (for the logs pipeline)', () => {
  const a = transactionLogAttributes({
    outcome: 'response',
    transport: 'udp',
    networkType: 'ipv4',
    client: { address: '10.0.0.1', port: 4000 },
    server: { address: '10.0.0.53', port: 53 },
    id: 1,
    questionName: 'example.com',
    questionType: 1,
    queryTimeUs: 1,
    responseTimeUs: 1501,
    latencyUs: 1500,
    rcode: 3,
    answers: [],
  });
  assert.equal(a['dns.response_code'], 'NXDOMAIN');
  assert.equal(a['dns.latency_ms'], 1.5);
  assert.equal(a['dns.question.type'], 'A');
  assert.equal(a['server.address'], '10.0.0.53');
  assert.equal(a['dns.answers'], '[]');
  const h = transactionLogAttributes({ outcome: 'timeout', transport: 'tcp', networkType: 'ipv4', client: { address: 'c', port: 1 }, server: { address: 's', port: 53 }, id: 2, questionName: 'secret.test', questionType: 28, queryTimeUs: 0 }, { hashName: () => 'h' });
  assert.equal(h['dns.question.name'], 'h');
  assert.equal(h['dns.response_code'], 'TIMEOUT');
});
