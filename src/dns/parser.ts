/**
 * DNS messages (RFC 1035, EDNS0 RFC 6891) parsed straight out of a Buffer
 * region: no slicing or copying of the packet; the only allocations are the
 * result objects and the strings of names and rendered record data.
 *
 * Malformed input never escapes as an exception from `parseDnsMessage`: it
 * returns `{ error }` with a reason (for counting) instead.
 */
import { formatAddress } from '../flows/addresses';

export const DNS_HEADER_SIZE = 12;
const MAX_NAME_OCTETS = 255;
/** Compression pointers followed in one name at most (each must also point backwards). */
const MAX_POINTERS = 32;
/** Records of one section decoded at most (the rest are skipped, not an error). */
const MAX_RECORDS = 256;

export const RRType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
} as const;

const TYPE_NAMES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 13: 'HINFO', 15: 'MX', 16: 'TXT', 17: 'RP', 28: 'AAAA', 29: 'LOC', 33: 'SRV',
  35: 'NAPTR', 39: 'DNAME', 41: 'OPT', 43: 'DS', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY', 50: 'NSEC3', 52: 'TLSA', 64: 'SVCB',
  65: 'HTTPS', 99: 'SPF', 251: 'IXFR', 252: 'AXFR', 255: 'ANY', 256: 'URI', 257: 'CAA',
};

const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED', 6: 'YXDOMAIN', 7: 'YXRRSET',
  8: 'NXRRSET', 9: 'NOTAUTH', 10: 'NOTZONE', 11: 'DSOTYPENI', 16: 'BADVERS', 17: 'BADKEY', 18: 'BADTIME', 19: 'BADMODE',
  20: 'BADNAME', 21: 'BADALG', 22: 'BADTRUNC', 23: 'BADCOOKIE',
};

/** `A`, `AAAA`, … or `TYPE<n>` (RFC 3597) for the rest. */
export function typeName(t: number): string {
  return TYPE_NAMES[t] ?? `TYPE${t}`;
}

/** `NOERROR`, `NXDOMAIN`, … or `RCODE<n>`. */
export function rcodeName(r: number): string {
  return RCODE_NAMES[r] ?? `RCODE${r}`;
}

export interface DnsQuestion {
  /** Lower case, no trailing dot (the root is `.`); bytes outside printable ASCII and dots inside labels as `\DDD`. */
  name: string;
  type: number;
  class: number;
}

export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  /**
   * Presentation form of the data: A/AAAA the address, CNAME/NS/PTR the
   * name, MX `pref name`, SRV `prio weight port target`, TXT the quoted
   * strings, SOA `mname rname serial refresh retry expire minimum`; other
   * types `\# <length>` (RFC 3597 without the hex).
   */
  data: string;
}

export interface DnsEdns {
  udpSize: number;
  version: number;
  /** DNSSEC OK */
  do: boolean;
}

export interface DnsMessage {
  id: number;
  /** true: a response */
  qr: boolean;
  opcode: number;
  aa: boolean;
  /** TC: the message was truncated by the sender (the client retries over TCP) */
  tc: boolean;
  rd: boolean;
  ra: boolean;
  /** response code, extended by the OPT record's upper bits when there is one */
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  /** The authority section (SOA of an NXDOMAIN, NS of a referral); only with `sections: 'all'`. */
  authority: DnsRecord[];
  edns?: DnsEdns;
  /**
   * The capture ended before the message did (snap length, a lost IP
   * fragment): the header and question are whole, later records may be missing.
   */
  partial: boolean;
}

export type ParseFailure =
  | 'short_header'
  | 'truncated'
  | 'bad_label'
  | 'pointer_loop'
  | 'name_too_long'
  | 'bad_rdata'
  | 'no_question';

export type ParseResult = { ok: true; msg: DnsMessage } | { ok: false; error: ParseFailure };

export interface ParseOptions {
  /** Decode records after the question: 'none' (header and question only), 'answers' (+ answer section and EDNS), 'all'. Default 'answers'. */
  sections?: 'none' | 'answers' | 'all';
  /**
   * The bytes end early because of the capture, not the sender: running out of
   * bytes after the question gives a `partial` message instead of a failure.
   */
  captureTruncated?: boolean;
}

class Malformed {
  constructor(readonly reason: ParseFailure) {}
}

/** A reusable cursor over buf[start, end): offsets are absolute in buf, names are decoded relative to `start`. */
class Reader {
  constructor(
    readonly buf: Buffer,
    readonly start: number,
    readonly end: number,
  ) {}

  u8(p: number): number {
    if (p >= this.end) throw new Malformed('truncated');
    return this.buf[p]!;
  }
  u16(p: number): number {
    if (p + 2 > this.end) throw new Malformed('truncated');
    return (this.buf[p]! << 8) | this.buf[p + 1]!;
  }
  u32(p: number): number {
    if (p + 4 > this.end) throw new Malformed('truncated');
    return this.buf.readUInt32BE(p);
  }

  /** Decode the name at p; returns the name, and sets `next` to the offset after it (where it is, not where pointers led). */
  next = 0;
  name(p: number): string {
    const buf = this.buf;
    let out = '';
    let octets = 0;
    let pointers = 0;
    let after = -1;
    // Pointers must go strictly backwards from the lowest point reached so
    // far: with the pointer count cap this bounds the work on any input.
    let floor = p;
    for (;;) {
      const len = this.u8(p);
      if (len === 0) {
        if (after < 0) after = p + 1;
        break;
      }
      const kind = len & 0xc0;
      if (kind === 0xc0) {
        const target = this.start + (((len & 0x3f) << 8) | this.u8(p + 1));
        if (after < 0) after = p + 2;
        if (target >= floor || ++pointers > MAX_POINTERS) throw new Malformed('pointer_loop');
        p = floor = target;
        continue;
      }
      if (kind !== 0) throw new Malformed('bad_label');
      if (p + 1 + len > this.end) throw new Malformed('truncated');
      octets += len + 1;
      if (octets > MAX_NAME_OCTETS) throw new Malformed('name_too_long');
      if (out.length > 0) out += '.';
      out += label(buf, p + 1, p + 1 + len);
      p += 1 + len;
    }
    this.next = after;
    return out.length === 0 ? '.' : out;
  }
}

/** One label in presentation form, lower case. */
function label(buf: Buffer, from: number, to: number): string {
  let plain = true;
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if (c <= 0x20 || c >= 0x7f || c === 0x2e || c === 0x5c || (c >= 0x41 && c <= 0x5a)) {
      plain = false;
      break;
    }
  }
  if (plain) return buf.toString('latin1', from, to);
  let s = '';
  for (let i = from; i < to; i++) {
    const c = buf[i]!;
    if (c >= 0x41 && c <= 0x5a) s += String.fromCharCode(c + 32);
    else if (c <= 0x20 || c >= 0x7f) s += `\\${String(c).padStart(3, '0')}`;
    else if (c === 0x2e || c === 0x5c) s += `\\${String.fromCharCode(c)}`;
    else s += String.fromCharCode(c);
  }
  return s;
}

function ipv4(buf: Buffer, p: number): string {
  return `${buf[p]}.${buf[p + 1]}.${buf[p + 2]}.${buf[p + 3]}`;
}

function txt(buf: Buffer, p: number, end: number): string {
  const parts: string[] = [];
  while (p < end) {
    const n = buf[p]!;
    if (p + 1 + n > end) throw new Malformed('bad_rdata');
    parts.push(`"${buf.toString('latin1', p + 1, p + 1 + n).replace(/["\\]/g, '\\$&')}"`);
    p += 1 + n;
  }
  return parts.join(' ');
}

function rdata(r: Reader, type: number, p: number, end: number): string {
  const buf = r.buf;
  const inRdata = (q: number): void => {
    if (q > end) throw new Malformed('bad_rdata');
  };
  switch (type) {
    case RRType.A:
      if (end - p !== 4) throw new Malformed('bad_rdata');
      return ipv4(buf, p);
    case RRType.AAAA:
      if (end - p !== 16) throw new Malformed('bad_rdata');
      return formatAddress(10, buf.subarray(p, p + 16)).address;
    case RRType.CNAME:
    case RRType.NS:
    case RRType.PTR: {
      const n = r.name(p);
      inRdata(r.next);
      return n;
    }
    case RRType.MX: {
      const pref = r.u16(p);
      const n = r.name(p + 2);
      inRdata(r.next);
      return `${pref} ${n}`;
    }
    case RRType.SRV: {
      if (end - p < 7) throw new Malformed('bad_rdata');
      const n = r.name(p + 6);
      inRdata(r.next);
      return `${r.u16(p)} ${r.u16(p + 2)} ${r.u16(p + 4)} ${n}`;
    }
    case RRType.TXT:
      return txt(buf, p, end);
    case RRType.SOA: {
      const mname = r.name(p);
      const rname = r.name(r.next);
      const q = r.next;
      if (q + 20 !== end) throw new Malformed('bad_rdata');
      return `${mname} ${rname} ${r.u32(q)} ${r.u32(q + 4)} ${r.u32(q + 8)} ${r.u32(q + 12)} ${r.u32(q + 16)}`;
    }
    default:
      return `\\# ${end - p}`;
  }
}

/**
 * Parse the DNS message in buf[start, end). Never throws on bad input:
 * malformed messages come back as `{ ok: false, error }`.
 */
export function parseDnsMessage(buf: Buffer, start = 0, end = buf.length, opts: ParseOptions = {}): ParseResult {
  if (end - start < DNS_HEADER_SIZE) return { ok: false, error: 'short_header' };
  const sections = opts.sections ?? 'answers';
  const r = new Reader(buf, start, Math.min(end, buf.length));
  const flags = r.u16(start + 2);
  const msg: DnsMessage = {
    id: r.u16(start),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    qdcount: r.u16(start + 4),
    ancount: r.u16(start + 6),
    nscount: r.u16(start + 8),
    arcount: r.u16(start + 10),
    questions: [],
    answers: [],
    authority: [],
    partial: false,
  };
  let p = start + DNS_HEADER_SIZE;
  try {
    for (let i = 0; i < msg.qdcount; i++) {
      const name = r.name(p);
      p = r.next;
      const type = r.u16(p);
      const klass = r.u16(p + 2);
      p += 4;
      if (i < 4) msg.questions.push({ name, type, class: klass });
    }
  } catch (e) {
    if (e instanceof Malformed) return { ok: false, error: e.reason };
    throw e;
  }
  if (sections === 'none') return { ok: true, msg };
  try {
    const sectionCounts = [msg.ancount, msg.nscount, msg.arcount];
    for (let s = 0; s < 3; s++) {
      const wanted = s === 0 || sections === 'all';
      for (let i = 0; i < sectionCounts[s]!; i++) {
        const name = r.name(p);
        p = r.next;
        const type = r.u16(p);
        const klass = r.u16(p + 2);
        const ttl = r.u32(p + 4);
        const rdlen = r.u16(p + 8);
        const rd = p + 10;
        p = rd + rdlen;
        if (p > r.end) throw new Malformed('truncated');
        if (type === RRType.OPT && s === 2) {
          // EDNS0: class is the UDP payload size, TTL the extended rcode, version and flags.
          msg.edns = { udpSize: klass, version: (ttl >>> 16) & 0xff, do: (ttl & 0x8000) !== 0 };
          msg.rcode |= (ttl >>> 24) << 4;
          continue;
        }
        // Not wanted (authority, additional): skipped without decoding their data.
        if (!wanted || s === 2) continue;
        const list = s === 0 ? msg.answers : msg.authority;
        if (list.length >= MAX_RECORDS) continue;
        list.push({ name, type, class: klass, ttl: ttl >= 0x80000000 ? 0 : ttl, data: rdata(r, type, rd, p) });
      }
    }
  } catch (e) {
    if (!(e instanceof Malformed)) throw e;
    if (opts.captureTruncated && e.reason === 'truncated') msg.partial = true;
    else return { ok: false, error: e.reason };
  }
  return { ok: true, msg };
}
