/**
 * Builders of DNS messages and IP/UDP/TCP packets for the dns-* unit tests,
 * and real messages (dig's queries, dnsmasq 2.90's answers, captured once).
 */

export const REAL = {
  /** dig known.test → 10.9.9.9, with EDNS (cookie) */
  aQuery: 'ccc801200001000000000001056b6e6f776e0474657374000001000100002904d000000000000c000a00089734428aedadd602',
  aResponse: 'ccc885800001000100000001056b6e6f776e04746573740000010001c00c000100010000000000040a09090900002904d0000000000000',
  /** alias.known.test → CNAME web.known.test → 10.9.9.10 (two levels of compression) */
  cnameResponse:
    '021e8580000100020000000105616c696173056b6e6f776e04746573740000010001c00c0005000100000000001003776562056b6e6f776e047465737400c02e000100010000000000040a09090a00002904d0000000000000',
  aaaaResponse:
    '64538580000100010000000103776562056b6e6f776e047465737400001c0001c00c001c0001000000000010fd00000000000000000000000000001000002904d0000000000000',
  nxResponse: '31a4818300010000000000010178026e780474657374000001000100002904d0000000000000',
} as const;

export function hex(s: string): Buffer {
  return Buffer.from(s, 'hex');
}

export function name(n: string): Buffer {
  if (n === '.' || n === '') return Buffer.from([0]);
  const parts = n.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

export interface RR {
  name: string | Buffer;
  type: number;
  klass?: number;
  ttl?: number;
  rdata: Buffer;
}

export interface MsgSpec {
  id?: number;
  flags?: number;
  questions?: { name: string | Buffer; type: number }[];
  answers?: RR[];
  authority?: RR[];
  additional?: RR[];
  /** Override header counts. */
  counts?: [number, number, number, number];
}

function rr(r: RR): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(r.type, 0);
  fixed.writeUInt16BE(r.klass ?? 1, 2);
  fixed.writeUInt32BE(r.ttl ?? 300, 4);
  fixed.writeUInt16BE(r.rdata.length, 8);
  return Buffer.concat([typeof r.name === 'string' ? name(r.name) : r.name, fixed, r.rdata]);
}

export function message(spec: MsgSpec): Buffer {
  const qs = spec.questions ?? [];
  const h = Buffer.alloc(12);
  h.writeUInt16BE(spec.id ?? 0x1234, 0);
  h.writeUInt16BE(spec.flags ?? 0x0100, 2);
  const counts = spec.counts ?? [qs.length, spec.answers?.length ?? 0, spec.authority?.length ?? 0, spec.additional?.length ?? 0];
  counts.forEach((c, i) => h.writeUInt16BE(c, 4 + 2 * i));
  const parts = [h];
  for (const q of qs) {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(q.type, 0);
    t.writeUInt16BE(1, 2);
    parts.push(typeof q.name === 'string' ? name(q.name) : q.name, t);
  }
  for (const r of [...(spec.answers ?? []), ...(spec.authority ?? []), ...(spec.additional ?? [])]) parts.push(rr(r));
  return Buffer.concat(parts);
}

export const ptr = (offset: number): Buffer => Buffer.from([0xc0 | (offset >> 8), offset & 0xff]);

function ip4(a: string): number[] {
  return a.split('.').map(Number);
}

function ip6(a: string): Buffer {
  // Minimal expander for test addresses (one `::` at most).
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const words = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(parseInt(w || '0', 16), i * 2));
  return b;
}

function l4(proto: 'udp' | 'tcp', sport: number, dport: number, payload: Buffer, seq = 0, flags = 0x18): Buffer {
  if (proto === 'udp') {
    const u = Buffer.alloc(8);
    u.writeUInt16BE(sport, 0);
    u.writeUInt16BE(dport, 2);
    u.writeUInt16BE(8 + payload.length, 4);
    return Buffer.concat([u, payload]);
  }
  const t = Buffer.alloc(20);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(seq >>> 0, 4);
  t[12] = 5 << 4;
  t[13] = flags;
  return Buffer.concat([t, payload]);
}

/** An IPv4 (or IPv6, if `src` has a colon) packet with a UDP or TCP header. */
export function packet(opts: { src: string; dst: string; proto?: 'udp' | 'tcp'; sport: number; dport: number; payload: Buffer; seq?: number; flags?: number }): Buffer {
  const proto = opts.proto ?? 'udp';
  const body = l4(proto, opts.sport, opts.dport, opts.payload, opts.seq, opts.flags);
  if (opts.src.includes(':')) {
    const h = Buffer.alloc(40);
    h[0] = 0x60;
    h.writeUInt16BE(body.length, 4);
    h[6] = proto === 'udp' ? 17 : 6;
    h[7] = 64;
    ip6(opts.src).copy(h, 8);
    ip6(opts.dst).copy(h, 24);
    return Buffer.concat([h, body]);
  }
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + body.length, 2);
  h[8] = 64;
  h[9] = proto === 'udp' ? 17 : 6;
  Buffer.from(ip4(opts.src)).copy(h, 12);
  Buffer.from(ip4(opts.dst)).copy(h, 16);
  return Buffer.concat([h, body]);
}

/** A 2-byte length prefix (DNS over TCP). */
export function framed(m: Buffer): Buffer {
  const l = Buffer.alloc(2);
  l.writeUInt16BE(m.length, 0);
  return Buffer.concat([l, m]);
}

/** Deterministic PRNG for fuzzing (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
