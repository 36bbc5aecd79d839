import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDnsMessage, rcodeName, RRType, typeName, type ParseResult } from '../../src/dns/parser';
import { hex, message, name, ptr, REAL, rng } from './dns-fixtures';

function ok(r: ParseResult) {
  assert.ok(r.ok, r.ok ? '' : `parse failed: ${r.error}`);
  return r.msg;
}

describe('real messages (dig queries, dnsmasq answers)', () => {
  test('query with EDNS: header, question', () => {
    const m = ok(parseDnsMessage(hex(REAL.aQuery)));
    assert.equal(m.id, 0xccc8);
    assert.equal(m.qr, false);
    assert.equal(m.rd, true);
    assert.deepEqual(m.questions, [{ name: 'known.test', type: RRType.A, class: 1 }]);
    assert.deepEqual(m.edns, { udpSize: 1232, version: 0, do: false });
  });

  test('A answer with a compressed owner name', () => {
    const m = ok(parseDnsMessage(hex(REAL.aResponse)));
    assert.equal(m.qr, true);
    assert.equal(rcodeName(m.rcode), 'NOERROR');
    assert.deepEqual(m.answers, [{ name: 'known.test', type: 1, class: 1, ttl: 0, data: '10.9.9.9' }]);
  });

  test('CNAME chain: pointers into the question and into the CNAME data', () => {
    const m = ok(parseDnsMessage(hex(REAL.cnameResponse)));
    assert.deepEqual(
      m.answers.map((a) => [a.name, typeName(a.type), a.data]),
      [
        ['alias.known.test', 'CNAME', 'web.known.test'],
        ['web.known.test', 'A', '10.9.9.10'],
      ],
    );
  });

  test('AAAA in the form flows use', () => {
    assert.equal(ok(parseDnsMessage(hex(REAL.aaaaResponse))).answers[0]!.data, 'fd00::10');
  });

  test('NXDOMAIN', () => {
    const m = ok(parseDnsMessage(hex(REAL.nxResponse)));
    assert.equal(rcodeName(m.rcode), 'NXDOMAIN');
    assert.equal(m.answers.length, 0);
  });

  test('a region of a larger buffer (no copy): offsets are relative to the message', () => {
    const msg = hex(REAL.cnameResponse);
    const big = Buffer.concat([Buffer.alloc(37, 0xee), msg, Buffer.alloc(11, 0xee)]);
    const m = ok(parseDnsMessage(big, 37, 37 + msg.length));
    assert.equal(m.answers[1]!.data, '10.9.9.10');
  });
});

describe('record types', () => {
  const u16 = (n: number): Buffer => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n);
    return b;
  };
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const cases: [string, number, Buffer, string][] = [
    ['NS', RRType.NS, name('ns1.example.org'), 'ns1.example.org'],
    ['PTR', RRType.PTR, name('host.example.org'), 'host.example.org'],
    ['MX', RRType.MX, Buffer.concat([u16(10), name('mail.example.org')]), '10 mail.example.org'],
    ['SRV', RRType.SRV, Buffer.concat([u16(1), u16(2), u16(5060), name('sip.example.org')]), '1 2 5060 sip.example.org'],
    ['TXT', RRType.TXT, Buffer.from('\x05hello\x07"quo\\te', 'latin1'), '"hello" "\\"quo\\\\te"'],
    ['SOA', RRType.SOA, Buffer.concat([name('ns.example.org'), name('admin.example.org'), u32(2024), u32(3600), u32(600), u32(86400), u32(60)]), 'ns.example.org admin.example.org 2024 3600 600 86400 60'],
    ['unknown', 99, Buffer.from('v=spf1'), '\\# 6'],
  ];
  for (const [label, type, rdata, data] of cases) {
    test(label, () => {
      const m = ok(parseDnsMessage(message({ flags: 0x8180, questions: [{ name: 'example.org', type }], answers: [{ name: ptr(12), type, rdata }] })));
      assert.equal(m.answers[0]!.name, 'example.org');
      assert.equal(m.answers[0]!.data, data);
    });
  }

  test('authority section only with sections: all (SOA of an NXDOMAIN)', () => {
    const soa = Buffer.concat([name('ns.x'), name('a.x'), Buffer.alloc(20)]);
    const b = message({ flags: 0x8183, questions: [{ name: 'no.x', type: 1 }], authority: [{ name: 'x', type: RRType.SOA, rdata: soa }] });
    assert.equal(ok(parseDnsMessage(b)).authority.length, 0);
    assert.equal(ok(parseDnsMessage(b, 0, b.length, { sections: 'all' })).authority[0]!.data, 'ns.x a.x 0 0 0 0 0');
  });

  test('EDNS extended rcode (BADVERS = 16)', () => {
    const opt = { name: '.', type: RRType.OPT, klass: 4096, ttl: 0x01008000, rdata: Buffer.alloc(0) };
    const m = ok(parseDnsMessage(message({ flags: 0x8180, questions: [{ name: 'a.b', type: 1 }], additional: [opt] })));
    assert.equal(rcodeName(m.rcode), 'BADVERS');
    assert.deepEqual(m.edns, { udpSize: 4096, version: 0, do: true });
  });

  test('TC bit', () => {
    assert.equal(ok(parseDnsMessage(message({ flags: 0x8380, questions: [{ name: 'a.b', type: 1 }] }))).tc, true);
  });

  test('names: upper case folded, odd bytes escaped, root', () => {
    const odd = Buffer.from([3, 0x41, 0x2e, 0x20, 3, 0x63, 0x6f, 0x6d, 0]);
    assert.equal(ok(parseDnsMessage(message({ questions: [{ name: odd, type: 1 }] }))).questions[0]!.name, 'a\\.\\032.com');
    assert.equal(ok(parseDnsMessage(message({ questions: [{ name: 'WwW.Example.COM', type: 1 }] }))).questions[0]!.name, 'www.example.com');
    assert.equal(ok(parseDnsMessage(message({ questions: [{ name: '.', type: 2 }] }))).questions[0]!.name, '.');
  });
});

describe('malformed input is reported, never thrown', () => {
  const q = (n: Buffer | string) => message({ questions: [{ name: n, type: 1 }] });
  const cases: [string, Buffer, string][] = [
    ['shorter than a header', Buffer.from([1, 2, 3]), 'short_header'],
    ['question count with no bytes', message({ counts: [3, 0, 0, 0] }), 'truncated'],
    ['pointer to itself', q(ptr(12)), 'pointer_loop'],
    ['pointer forwards', q(Buffer.concat([ptr(14), name('a')])), 'pointer_loop'],
    ['two pointers pointing at each other', Buffer.concat([message({ counts: [1, 0, 0, 0] }), Buffer.from([1, 0x61]), ptr(16), ptr(12)]), 'pointer_loop'],
    ['pointer past the end', q(ptr(0x3fff)), 'pointer_loop'],
    ['label longer than the message', q(Buffer.from([0x3f, 0x61])), 'truncated'],
    ['reserved label type 0x80', q(Buffer.from([0x80, 0x61, 0])), 'bad_label'],
    ['extended label type 0x40', q(Buffer.from([0x41, 0x61, 0])), 'bad_label'],
    ['name over 255 octets', q(Buffer.concat([...Array(5).fill(Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])), Buffer.from([0])])), 'name_too_long'],
    ['A record of 3 bytes', message({ flags: 0x8180, questions: [{ name: 'a', type: 1 }], answers: [{ name: 'a', type: 1, rdata: Buffer.from([1, 2, 3]) }] }), 'bad_rdata'],
    ['CNAME running past its rdata', message({ flags: 0x8180, questions: [{ name: 'a', type: 5 }], answers: [{ name: 'a', type: 5, rdata: Buffer.concat([name('b'), Buffer.alloc(0)]).subarray(0, 2) }] }), 'truncated'],
    ['answer count larger than the answers', message({ flags: 0x8180, questions: [{ name: 'a', type: 1 }], counts: [1, 9, 0, 0] }), 'truncated'],
    ['rdlength past the end', Buffer.concat([message({ flags: 0x8180, questions: [{ name: 'a', type: 1 }], counts: [1, 1, 0, 0] }), name('a'), Buffer.from([0, 1, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 1])]), 'truncated'],
    ['TXT string longer than its rdata', message({ flags: 0x8180, questions: [{ name: 'a', type: 16 }], answers: [{ name: 'a', type: 16, rdata: Buffer.from([9, 0x61]) }] }), 'bad_rdata'],
  ];
  for (const [label, buf, reason] of cases) {
    test(label, () => {
      const r = parseDnsMessage(buf);
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.error, reason);
    });
  }

  test('answers cut by the capture: partial, header and question kept', () => {
    const full = hex(REAL.cnameResponse);
    const r = ok(parseDnsMessage(full, 0, 70, { captureTruncated: true }));
    assert.equal(r.partial, true);
    assert.equal(r.questions[0]!.name, 'alias.known.test');
    assert.equal(r.answers.length, 1);
    assert.equal(parseDnsMessage(full, 0, 70).ok, false, 'without the capture flag it is malformed');
  });
});

test('fuzz: random bytes and mutated real messages never throw, and stay bounded', () => {
  const rand = rng(42);
  const seeds = Object.values(REAL).map(hex);
  let okCount = 0;
  const t0 = Date.now();
  for (let i = 0; i < 60_000; i++) {
    let b: Buffer;
    if (i % 3 === 0) {
      b = Buffer.alloc(Math.floor(rand() * 300));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(rand() * 256);
    } else {
      b = Buffer.from(seeds[i % seeds.length]!);
      const flips = 1 + Math.floor(rand() * 6);
      for (let f = 0; f < flips; f++) {
        const at = Math.floor(rand() * b.length);
        const r = rand();
        if (r < 0.2) b[at] = 0xc0 | Math.floor(rand() * 4); // pointers
        else if (r < 0.3) b = b.subarray(0, at); // truncation
        else b[at] = Math.floor(rand() * 256);
        if (b.length === 0) break;
      }
    }
    const r = parseDnsMessage(b, 0, b.length, { sections: 'all' });
    if (r.ok) {
      okCount++;
      assert.ok(r.msg.answers.length <= 256 && r.msg.questions.length <= 4);
      for (const q of r.msg.questions) assert.ok(q.name.length <= 255 * 4);
    }
  }
  assert.ok(okCount > 1000, `some mutations still parse (${okCount})`);
  assert.ok(Date.now() - t0 < 10_000);
});
