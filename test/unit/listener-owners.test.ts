/**
 * ListenerOwners: records of connections accepted by a listener that was
 * open before the agent attached, written before the kernel knew its owner,
 * get the owner in place; nothing else changes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ListenerOwners } from '../../src/flows/listener-owners';
import { CONN_RECORD_SIZE, ConnDirection, ConnEventKind, decodeConnRecords, encodeConnRecord, type ConnRecord } from '../../src/flows/records';
import { connRecord } from '../helpers/conn-record';

function pack(recs: ConnRecord[]): Buffer {
  const buf = Buffer.alloc(recs.length * CONN_RECORD_SIZE);
  recs.forEach((r, i) => encodeConnRecord(r, buf, i * CONN_RECORD_SIZE));
  return buf;
}

test('incoming records with no owner, to a known listener (netns and port), get its pid and comm', () => {
  const owners = new ListenerOwners();
  owners.set(7, 8080, { pid: 1234, comm: 'a-server-with-a-long-name' });
  const incoming = { direction: ConnDirection.Incoming, netns: 7, sport: 8080, dport: 50000, pid: 0, comm: '' };
  const buf = pack([
    connRecord({ ...incoming, kind: ConnEventKind.Open, cookie: 1 }),
    connRecord({ ...incoming, kind: ConnEventKind.Close, cookie: 2 }),
    connRecord({ ...incoming, kind: ConnEventKind.Open, cookie: 3, pid: 99, comm: 'known' }), // the kernel knew
    connRecord({ ...incoming, kind: ConnEventKind.Open, cookie: 4, netns: 8 }), // another namespace
    connRecord({ ...incoming, kind: ConnEventKind.Open, cookie: 5, sport: 8081 }), // another port
    connRecord({ kind: ConnEventKind.Open, cookie: 6, direction: ConnDirection.Outgoing, netns: 7, sport: 8080, pid: 0, comm: '' }),
    connRecord({ ...incoming, kind: ConnEventKind.Listener, cookie: 7 }),
  ]);
  const before = Buffer.from(buf);
  assert.equal(owners.fill(buf), 2);
  const recs = decodeConnRecords(buf);
  assert.deepEqual(
    recs.map((r) => [r.cookie, r.pid, r.comm]),
    [
      [1, 1234, 'a-server-with-a'],
      [2, 1234, 'a-server-with-a'],
      [3, 99, 'known'],
      [4, 0, ''],
      [5, 0, ''],
      [6, 0, ''],
      [7, 0, ''],
    ],
  );
  // Only the pid and comm of the two records changed.
  for (let i = 0; i < buf.length; i++) {
    const rec = Math.floor(i / CONN_RECORD_SIZE);
    const at = i % CONN_RECORD_SIZE;
    if (rec < 2 && ((at >= 80 && at < 84) || at >= 136)) continue;
    assert.equal(buf[i], before[i], `byte ${at} of record ${rec}`);
  }
});
