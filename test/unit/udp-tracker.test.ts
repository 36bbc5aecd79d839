/**
 * UdpFlowTracker: deltas between dumps of the kernel's UDP flow map, which
 * end is the client, and expiry of idle flows.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { UdpFlowRecord } from '../../src/flows/records';
import { UdpFlowTracker } from '../../src/flows/udp-tracker';

const EPHEMERAL = { low: 32768, high: 60999 };

function v4(a: string): Buffer {
  const b = Buffer.alloc(16);
  a.split('.').forEach((x, i) => b.writeUInt8(Number(x), i));
  return b;
}

function flow(over: Partial<UdpFlowRecord> & { lport: number; rport: number }): UdpFlowRecord {
  const key = Buffer.alloc(48);
  key.writeUInt16LE(over.lport, 40);
  key.writeUInt16LE(over.rport, 42);
  return {
    key,
    cookie: 1n,
    family: 2,
    laddr: v4('10.0.0.1'),
    raddr: v4('10.0.0.2'),
    bytesSent: 0,
    bytesReceived: 0,
    datagramsSent: 1,
    datagramsReceived: 0,
    firstNs: 1n,
    lastNs: 1n,
    pid: 42,
    comm: 'client',
    egressFirst: true,
    ...over,
  };
}

function directionOf(f: UdpFlowRecord): { direction: unknown; sport: unknown; dport: unknown } {
  const [m] = new UdpFlowTracker({ ephemeral: EPHEMERAL }).onDump([f]).measurements;
  assert.ok(m);
  return { direction: m.attributes['flow.direction'], sport: m.attributes['source.port'], dport: m.attributes['destination.port'] };
}

test('one port ephemeral: that side is the client, whoever spoke first', () => {
  assert.deepEqual(directionOf(flow({ lport: 40000, rport: 53, egressFirst: false })), { direction: 'outgoing', sport: undefined, dport: 53 });
  assert.deepEqual(directionOf(flow({ lport: 53, rport: 40000, egressFirst: true })), { direction: 'incoming', sport: 53, dport: undefined });
});

test('both ports ephemeral (a server on a high port): the side that sent first is the client, whichever port is lower', () => {
  assert.deepEqual(directionOf(flow({ lport: 33000, rport: 45000, egressFirst: true })), { direction: 'outgoing', sport: undefined, dport: 45000 });
  assert.deepEqual(directionOf(flow({ lport: 45000, rport: 33000, egressFirst: true })), { direction: 'outgoing', sport: undefined, dport: 33000 });
  assert.deepEqual(directionOf(flow({ lport: 33000, rport: 45000, egressFirst: false })), { direction: 'incoming', sport: 33000, dport: undefined });
});

test('neither port ephemeral (NTP 123 ↔ 123): the side that sent first', () => {
  assert.deepEqual(directionOf(flow({ lport: 123, rport: 123, egressFirst: true })), { direction: 'outgoing', sport: undefined, dport: 123 });
  assert.deepEqual(directionOf(flow({ lport: 123, rport: 123, egressFirst: false })), { direction: 'incoming', sport: 123, dport: undefined });
});

test('deltas between dumps; a flow idle for idleCollections dumps is handed back to delete', () => {
  const t = new UdpFlowTracker({ ephemeral: EPHEMERAL, idleCollections: 2 });
  const sum = (ms: { metric: string; value: number }[], name: string): number => ms.filter((m) => m.metric === name).reduce((a, m) => a + m.value, 0);
  const first = t.onDump([flow({ lport: 40000, rport: 53, datagramsSent: 3, bytesSent: 300, lastNs: 10n })]);
  assert.equal(sum(first.measurements, 'udp_datagrams_sent'), 3);
  assert.equal(sum(first.measurements, 'udp_bytes_sent'), 300);
  const second = t.onDump([flow({ lport: 40000, rport: 53, datagramsSent: 5, bytesSent: 500, lastNs: 20n })]);
  assert.equal(sum(second.measurements, 'udp_datagrams_sent'), 2);
  assert.equal(sum(second.measurements, 'udp_bytes_sent'), 200);
  assert.deepEqual(t.onDump([flow({ lport: 40000, rport: 53, datagramsSent: 5, bytesSent: 500, lastNs: 20n })]), { measurements: [], expired: [] });
  const idle = t.onDump([flow({ lport: 40000, rport: 53, datagramsSent: 5, bytesSent: 500, lastNs: 20n })]);
  assert.equal(idle.expired.length, 1);
  assert.equal(idle.measurements.length, 0);
});
