/**
 * Flow signatures (src/flows/flow-signature.ts): the same words for the same
 * flow whichever way the record is read, different words for different
 * flows, and a table that keeps colliding hashes apart.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlowSignature, SignatureTable } from '../../src/flows/flow-signature';
import { AF_INET6, CONN_RECORD_SIZE, ConnDirection, ConnRecordCursor, encodeConnRecord, type ConnRecord } from '../../src/flows/records';
import { connRecord } from '../helpers/conn-record';

function rec(over: Partial<ConnRecord> = {}): ConnRecord {
  return connRecord({ saddr: Buffer.from([192, 168, 1, 10, ...new Array<number>(12).fill(0)]), daddr: Buffer.from([192, 168, 1, 20, ...new Array<number>(12).fill(0)]), pid: 7, ...over });
}

function viaCursor(r: ConnRecord): ConnRecordCursor {
  const buf = Buffer.alloc(CONN_RECORD_SIZE);
  encodeConnRecord(r, buf, 0);
  return new ConnRecordCursor(buf).moveTo(0);
}

const words = (r: ConnRecord, sport = -1, dport = 443): number[] => [...new FlowSignature().fill(r, ConnDirection.Outgoing, sport, dport).words];

test('a packed record and its decoded form give the same signature; so do IPv4 and IPv4-mapped IPv6', () => {
  const r = rec();
  assert.deepEqual(words(viaCursor(r)), words(r));
  const mapped = (a: number[]): Buffer => Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...a]);
  const m = rec({ family: AF_INET6, saddr: mapped([192, 168, 1, 10]), daddr: mapped([192, 168, 1, 20]) });
  assert.deepEqual(words(m), words(r));
  assert.deepEqual(words(viaCursor(m)), words(r));
});

test('whatever changes the attributes changes the signature; a port left out and the command of a flow without owner do not', () => {
  const base = words(rec());
  assert.notDeepEqual(words(rec({ comm: 'wget' })), base);
  assert.notDeepEqual(words(rec({ pid: 8 })), base);
  assert.notDeepEqual(words(rec({ daddr: Buffer.from([192, 168, 1, 21, ...new Array<number>(12).fill(0)]) })), base);
  assert.notDeepEqual(words(rec(), -1, 80), base);
  assert.notDeepEqual(words(rec(), 40000, 443), base, 'a port that is kept is part of it');
  assert.deepEqual(words(rec({ sport: 50000 })), base, 'a port left out is not');
  // No owner: the command is not part of the flow.
  assert.deepEqual(words(rec({ pid: 0, comm: 'a' })), words(rec({ pid: 0, comm: 'b' })));
  const v6 = rec({ family: AF_INET6, saddr: Buffer.from('20010db8000000000000000000000001', 'hex'), daddr: Buffer.from('20010db8000000000000000000000002', 'hex') });
  assert.deepEqual(words(viaCursor(v6)), words(v6));
  assert.notDeepEqual(words(v6), base);
});

test('SignatureTable: colliding hashes are kept apart; sweep removes what it is told to, from any place in a chain', () => {
  const table = new SignatureTable<string>();
  const sig = (w0: number): FlowSignature => {
    const s = new FlowSignature();
    s.words[0] = w0;
    s.hash = 42; // every one collides
    return s;
  };
  for (let i = 1; i <= 5; i++) table.add(sig(i), `v${i}`);
  assert.equal(table.size, 5);
  for (let i = 1; i <= 5; i++) assert.equal(table.get(sig(i)), `v${i}`);
  assert.equal(table.get(sig(6)), undefined);
  // Remove the head of the chain (v5, added last), one in the middle and the tail.
  const visited: string[] = [];
  table.sweep((v) => {
    visited.push(v);
    return !['v5', 'v3', 'v1'].includes(v);
  });
  assert.deepEqual(visited.sort(), ['v1', 'v2', 'v3', 'v4', 'v5']);
  assert.equal(table.size, 2);
  assert.deepEqual([...table.values()].sort(), ['v2', 'v4']);
  assert.equal(table.get(sig(4)), 'v4');
  assert.equal(table.get(sig(5)), undefined);
  table.sweep(() => false);
  assert.equal(table.size, 0);
  assert.deepEqual([...table.values()], []);
});
