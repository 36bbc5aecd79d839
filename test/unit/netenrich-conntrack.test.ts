/**
 * ctnetlink messages built byte by byte as the kernel lays them out, parsed
 * by the nat processor's decoder; and the translation table's lookups.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dumpRequest, IPS_DST_NAT, IPS_SRC_NAT, parseDatagram, type ConntrackEntry } from '../../src/processors/netenrich/conntrack/messages';
import { NatTable } from '../../src/processors/netenrich/conntrack/table';

function attr(type: number, payload: Buffer, nested = false): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type | (nested ? 0x8000 : 0), 2);
  payload.copy(out, 4);
  return out;
}
const be16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const be32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const v4 = (a: string): Buffer => Buffer.from(a.split('.').map(Number));
const v6 = (words: number[]): Buffer => Buffer.concat(words.map(be16));

function tuple(src: Buffer, dst: Buffer, proto: number, sport: number, dport: number): Buffer {
  const ip = src.length === 4 ? Buffer.concat([attr(1, src), attr(2, dst)]) : Buffer.concat([attr(3, src), attr(4, dst)]);
  return Buffer.concat([attr(1, ip, true), attr(2, Buffer.concat([attr(1, Buffer.from([proto])), attr(2, be16(sport)), attr(3, be16(dport))]), true)]);
}

function message(type: number, body: Buffer, family = 2): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt32LE(20 + body.length, 0);
  header.writeUInt16LE(type, 4);
  header.writeUInt8(family, 16);
  return Buffer.concat([header, body]);
}

function ctNew(orig: Buffer, reply: Buffer, status: number, kind = 0): Buffer {
  return message((1 << 8) | kind, Buffer.concat([attr(1, orig, true), attr(2, reply, true), attr(3, be32(status)), attr(7, be32(120))]));
}

const done = (): Buffer => message(3, Buffer.alloc(4));

describe('messages', () => {
  test('a dump request: CT_GET with NLM_F_DUMP, AF_UNSPEC, and the status filter', () => {
    const r = dumpRequest(IPS_DST_NAT);
    assert.equal(r.readUInt32LE(0), r.length);
    assert.equal(r.readUInt16LE(4), 0x0101);
    assert.equal(r.readUInt16LE(6), 0x301);
    assert.equal(r[16], 0);
    assert.equal(r.readUInt16LE(22), 3);
    assert.equal(r.readUInt32BE(24), IPS_DST_NAT);
    assert.equal(r.readUInt16LE(30), 26);
  });

  test('IPv4 and IPv6 DNAT entries, a plain entry and DONE in one datagram', () => {
    const d = Buffer.concat([
      ctNew(tuple(v4('10.0.0.1'), v4('10.96.0.10'), 6, 40000, 80), tuple(v4('10.1.2.3'), v4('10.0.0.1'), 6, 8080, 40000), IPS_DST_NAT | 0xe),
      ctNew(tuple(v6([0xfd00, 0, 0, 0, 0, 0, 0, 1]), v6([0xfd00, 0, 0, 0, 0, 0, 0, 0x100]), 17, 5353, 53), tuple(v6([0xfd00, 0, 0, 0, 0, 0, 0, 2]), v6([0xfd00, 0, 0, 0, 0, 0, 0, 1]), 17, 53, 5353), IPS_DST_NAT),
      ctNew(tuple(v4('10.0.0.1'), v4('10.0.0.2'), 6, 40001, 22), tuple(v4('10.0.0.2'), v4('10.0.0.1'), 6, 22, 40001), 0xe),
      done(),
    ]);
    const items = parseDatagram(d);
    assert.equal(items.length, 4);
    const e = items.filter((i) => i.type === 'entry').map((i) => (i as { entry: ConntrackEntry }).entry);
    assert.deepEqual(e[0]!.orig, { src: '10.0.0.1', dst: '10.96.0.10', proto: 6, sport: 40000, dport: 80 });
    assert.deepEqual(e[0]!.reply, { src: '10.1.2.3', dst: '10.0.0.1', proto: 6, sport: 8080, dport: 40000 });
    assert.equal(e[0]!.status, IPS_DST_NAT | 0xe);
    assert.deepEqual(e[1]!.orig, { src: 'fd00::1', dst: 'fd00::100', proto: 17, sport: 5353, dport: 53 });
    assert.equal(items[3]!.type, 'done');
  });

  test('truncated or inconsistent input is reported as malformed, never thrown', () => {
    const good = ctNew(tuple(v4('10.0.0.1'), v4('10.96.0.10'), 6, 40000, 80), tuple(v4('10.1.2.3'), v4('10.0.0.1'), 6, 8080, 40000), IPS_DST_NAT);
    for (let cut = 17; cut < good.length; cut += 7) {
      const b = Buffer.from(good.subarray(0, cut));
      b.writeUInt32LE(cut, 0); // a message whose attributes now overrun
      const items = parseDatagram(b);
      assert.ok(items.every((i) => i.type === 'malformed' || i.type === 'entry' || i.type === 'other'), `cut at ${cut}`);
    }
    assert.equal(parseDatagram(Buffer.from([40, 0, 0, 0, 0, 1, 0, 0]))[0], undefined, 'a header shorter than 16 bytes is ignored');
    const lying = Buffer.from(good);
    lying.writeUInt32LE(good.length + 100, 0);
    assert.equal(parseDatagram(lying)[0]!.type, 'malformed');
    const err = message(2, Buffer.concat([be32(0).fill(0), Buffer.alloc(16)]));
    err.writeInt32LE(-1, 16);
    assert.deepEqual(parseDatagram(err)[0], { type: 'error', errno: 1 });
  });
});

describe('the translation table', () => {
  const entry = (sport: number, backend: string, bport: number, status = IPS_DST_NAT): ConntrackEntry => ({
    orig: { src: '10.0.0.1', dst: '10.96.0.10', proto: 6, sport, dport: 80 },
    reply: { src: backend, dst: '10.0.0.1', proto: 6, sport: bport, dport: sport },
    status,
    zone: 0,
    kind: 'new',
  });

  test('exact by client port; the series only when every connection went to one backend', () => {
    const t = new NatTable();
    assert.equal(t.add(entry(40000, '10.1.0.1', 8080), 1), true);
    assert.deepEqual(t.lookup(6, '10.0.0.1', '10.96.0.10', 80, 40000), { address: '10.1.0.1', port: 8080 });
    assert.deepEqual(t.lookup(6, '10.0.0.1', '10.96.0.10', 80), { address: '10.1.0.1', port: 8080 });
    t.add(entry(40001, '10.1.0.2', 8080), 1);
    assert.equal(t.lookup(6, '10.0.0.1', '10.96.0.10', 80), 'ambiguous');
    assert.deepEqual(t.lookup(6, '10.0.0.1', '10.96.0.10', 80, 40001), { address: '10.1.0.2', port: 8080 });
    assert.equal(t.lookup(6, '10.0.0.1', '10.96.0.10', 80, 40002), undefined);
    assert.equal(t.lookup(17, '10.0.0.1', '10.96.0.10', 80), undefined, 'the protocol is part of the key');
    assert.deepEqual(t.lookupOriginal(6, '10.0.0.1', '10.1.0.2', 8080, 40001), { address: '10.96.0.10', port: 80 });
  });

  test('entries without DNAT (or whose reply is not translated) are not kept', () => {
    const t = new NatTable();
    assert.equal(t.add(entry(40000, '10.96.0.10', 80, IPS_DST_NAT), 1), false, 'DST_NAT with the same address and port: nothing translated');
    assert.equal(t.add(entry(40000, '10.1.0.1', 8080, IPS_SRC_NAT), 1), false);
    assert.equal(t.size, 0);
  });

  test('source NAT: exact with the client port (address and port); a series gets the address when every connection left with it', () => {
    const masq = (sport: number, toAddress: string, toPort: number, status = IPS_SRC_NAT): ConntrackEntry => ({
      orig: { src: '10.244.1.5', dst: '203.0.113.10', proto: 6, sport, dport: 443 },
      reply: { src: '203.0.113.10', dst: toAddress, proto: 6, sport: 443, dport: toPort },
      status,
      zone: 0,
      kind: 'new',
    });
    const t = new NatTable();
    assert.equal(t.add(masq(40000, '192.0.2.7', 61000), 1), true);
    assert.deepEqual(t.lookupSource(6, '10.244.1.5', '203.0.113.10', 443, 40000), { address: '192.0.2.7', port: 61000 });
    assert.equal(t.lookup(6, '10.244.1.5', '203.0.113.10', 443, 40000), undefined, 'no destination NAT');
    t.add(masq(40001, '192.0.2.7', 61001), 1);
    assert.deepEqual(t.lookupSource(6, '10.244.1.5', '203.0.113.10', 443), { address: '192.0.2.7' }, 'the series: one address, no port');
    t.add(masq(40002, '192.0.2.8', 61002), 1);
    assert.equal(t.lookupSource(6, '10.244.1.5', '203.0.113.10', 443), 'ambiguous');
    t.sweep(1, Number.POSITIVE_INFINITY);
    assert.equal(t.lookupSource(6, '10.244.1.5', '203.0.113.10', 443), undefined, 'swept with the entries');
    // Both: a ClusterIP whose backend is reached through a masquerade.
    const both: ConntrackEntry = {
      orig: { src: '10.244.1.5', dst: '10.96.0.10', proto: 6, sport: 40010, dport: 80 },
      reply: { src: '10.244.2.9', dst: '10.244.1.1', proto: 6, sport: 8080, dport: 40010 },
      status: IPS_DST_NAT | IPS_SRC_NAT,
      zone: 0,
      kind: 'new',
    };
    assert.equal(t.add(both, 1), true);
    assert.deepEqual(t.lookup(6, '10.244.1.5', '10.96.0.10', 80, 40010), { address: '10.244.2.9', port: 8080 });
    assert.deepEqual(t.lookupSource(6, '10.244.1.5', '10.96.0.10', 80, 40010), { address: '10.244.1.1', port: 40010 }, 'address translated, port kept');
    assert.deepEqual(t.lookupSource(6, '10.244.1.5', '10.96.0.10', 80), { address: '10.244.1.1' });
  });

  test('a sweep after a dump forgets what the dump no longer had; other namespaces untouched', () => {
    const t = new NatTable();
    t.add(entry(40000, '10.1.0.1', 8080), 1);
    t.add(entry(40001, '10.1.0.1', 8080), 2);
    const stamp = t.stamp;
    const v = t.version;
    t.add(entry(40002, '10.1.0.1', 8080), 1); // seen in (or after) the new dump
    assert.equal(t.sweep(1, stamp), 1);
    assert.equal(t.lookup(6, '10.0.0.1', '10.96.0.10', 80, 40000), undefined);
    assert.ok(t.lookup(6, '10.0.0.1', '10.96.0.10', 80, 40001));
    assert.ok(t.lookup(6, '10.0.0.1', '10.96.0.10', 80, 40002));
    assert.notEqual(t.version, v);
    t.dropNamespace(2);
    assert.equal(t.size, 1);
  });

  test('bounded: a full table refuses new entries and counts them', () => {
    const t = new NatTable(2);
    for (let p = 40000; p < 40005; p++) t.add(entry(p, '10.1.0.1', 8080), 1);
    assert.equal(t.size, 2);
    assert.equal(t.full, 3);
  });
});
