/**
 * DnsMetrics: the measurements of one collection, however many there are
 * (a backlog after a flood gives one latency sample per answered query).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DnsMetrics } from '../../src/receivers/ebpf_dns/metrics';
import type { DnsTransaction } from '../../src/dns/transaction';

const tx = (i: number, process?: { pid: number; name: string }): DnsTransaction => ({
  outcome: 'response',
  transport: 'udp',
  networkType: 'ipv4',
  client: { address: '10.0.0.1', port: 40000 + (i % 1000) },
  server: { address: '10.0.0.2', port: 53 },
  id: i & 0xffff,
  questionName: `n${i % 10}.test`,
  questionType: 1,
  queryTimeUs: 1_000_000 + i,
  responseTimeUs: 1_000_100 + i,
  latencyUs: 100,
  rcode: 0,
  answers: [],
  ...(process ? { process } : {}),
});

test('a collection of 300,000 latency samples (a flood backlog) is returned whole, one measurement per series, and the next one starts empty', () => {
  const m = new DnsMetrics(100);
  const N = 300_000;
  for (let i = 0; i < N; i++) m.transaction(tx(i));
  const out = m.collect();
  const lat = out.filter((x) => x.metric === 'dns_latency_us');
  assert.equal(lat.length, 1, 'one series: no name is a kept top name before the first rotation');
  assert.equal(lat.reduce((n, x) => n + (x.samples?.length ?? 0), 0), N);
  assert.deepEqual(m.collect(), []);
});

test('the asking process is an attribute of latency and timeouts; one attribute object per series', () => {
  const m = new DnsMetrics(100);
  const dig = { pid: 7, name: 'dig' };
  m.transaction(tx(1, dig));
  m.transaction(tx(11, { pid: 8, name: 'dig' }));
  m.transaction({ ...tx(2, dig), outcome: 'timeout', latencyUs: undefined, responseTimeUs: undefined, rcode: undefined });
  m.transaction(tx(3));
  const out = m.collect();
  const lat = out.filter((x) => x.metric === 'dns_latency_us');
  assert.deepEqual(lat.map((x) => x.samples?.length), [2, 1], 'the two dig queries in one series, the other in its own');
  assert.equal(lat[0]!.attributes['process.executable.name'], 'dig');
  assert.equal(lat[0]!.attributes['process.pid'], undefined, 'two dig processes, one series (the pid is not a metric attribute)');
  assert.equal(lat[1]!.attributes['process.executable.name'], undefined);
  const to = out.filter((x) => x.metric === 'dns_timeouts');
  assert.deepEqual(to.map((x) => [x.value, x.attributes['process.executable.name']]), [[1, 'dig']]);
});
