/**
 * What makes two TCP records the same flow, as a few 32-bit words read
 * straight from the packed record — direction, the ports kept, both
 * addresses, the owner — and a table of flows keyed by them.
 *
 * At thousands of short connections per second every record needs its
 * flow. A text key built from the record (addresses, command) costs a few
 * allocations and about two microseconds; the signature costs a few word
 * reads, a hash and a comparison, and no allocation when the flow is known.
 */
import { AF_INET, CONN_RECORD_OFFSETS, ConnRecordCursor, type ConnDirection, type ConnRecord } from './records';

/** Words of a signature: direction; ports; local address (4); remote address (4); pid; command (4). */
export const SIGNATURE_WORDS = 15;

/** An IPv4 address as the 4 words of its IPv4-mapped IPv6 form (::ffff:a.b.c.d), little-endian words. */
const V4_MAPPED_WORD = 0xffff0000;

/**
 * A reusable signature: `fill()` it from a record, then look it up. The
 * words are the flow's identity, `hash` their hash. IPv4 and IPv4-mapped
 * IPv6 addresses give the same words (they give the same attributes).
 */
export class FlowSignature {
  readonly words = new Uint32Array(SIGNATURE_WORDS);
  hash = 0;

  /**
   * `sport`/`dport`: the ports that are part of the flow (-1: left out, the
   * client's ephemeral port).
   */
  fill(rec: ConnRecord, dir: ConnDirection, sport: number, dport: number): this {
    const w = this.words;
    w[0] = dir;
    w[1] = ((sport < 0 ? 0 : sport) | ((dport < 0 ? 0 : dport) << 16)) >>> 0;
    const v4 = rec.family === AF_INET;
    const pid = rec.pid;
    const words = rec instanceof ConnRecordCursor ? rec.alignedWords : undefined;
    if (words) {
      const base = (rec as ConnRecordCursor).wordIndex;
      addressWords(w, 2, words, base + (CONN_RECORD_OFFSETS.saddr >>> 2), v4);
      addressWords(w, 6, words, base + (CONN_RECORD_OFFSETS.daddr >>> 2), v4);
      w[10] = pid;
      const c = base + (CONN_RECORD_OFFSETS.comm >>> 2);
      for (let i = 0; i < 4; i++) w[11 + i] = pid ? words[c + i]! : 0;
    } else {
      bufferAddressWords(w, 2, rec.saddr, v4);
      bufferAddressWords(w, 6, rec.daddr, v4);
      w[10] = pid;
      commWords(w, 11, pid ? rec.comm : '');
    }
    let h = 0x811c9dc5;
    for (let i = 0; i < SIGNATURE_WORDS; i++) h = Math.imul(h ^ w[i]!, 0x01000193);
    this.hash = h >>> 0;
    return this;
  }
}

function addressWords(out: Uint32Array, at: number, words: Uint32Array, from: number, v4: boolean): void {
  if (v4) {
    out[at] = 0;
    out[at + 1] = 0;
    out[at + 2] = V4_MAPPED_WORD;
    out[at + 3] = words[from]!;
  } else {
    for (let i = 0; i < 4; i++) out[at + i] = words[from + i]!;
  }
}

function bufferAddressWords(out: Uint32Array, at: number, a: Buffer, v4: boolean): void {
  if (v4) {
    out[at] = 0;
    out[at + 1] = 0;
    out[at + 2] = V4_MAPPED_WORD;
    out[at + 3] = a.readUInt32LE(0);
  } else {
    for (let i = 0; i < 4; i++) out[at + i] = a.readUInt32LE(4 * i);
  }
}

/** A command (at most 16 latin1 bytes, zero-padded as the kernel's comm) as 4 little-endian words. */
function commWords(out: Uint32Array, at: number, comm: string): void {
  for (let i = 0; i < 4; i++) {
    let v = 0;
    for (let b = 3; b >= 0; b--) {
      const j = 4 * i + b;
      v = (v << 8) | (j < comm.length ? comm.charCodeAt(j) & 0xff : 0);
    }
    out[at + i] = v >>> 0;
  }
}

interface Entry<V> {
  readonly words: Uint32Array;
  readonly value: V;
  next: Entry<V> | undefined;
}

/** Values by signature (a hash map with chained collisions; the words are compared in full). */
export class SignatureTable<V> {
  private readonly buckets = new Map<number, Entry<V>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(sig: FlowSignature): V | undefined {
    for (let e = this.buckets.get(sig.hash); e; e = e.next) if (sameWords(e.words, sig.words)) return e.value;
    return undefined;
  }

  /** Adds a value under a signature that is not in the table (the words are copied). */
  add(sig: FlowSignature, value: V): void {
    const e: Entry<V> = { words: sig.words.slice(), value, next: this.buckets.get(sig.hash) };
    this.buckets.set(sig.hash, e);
    this.count++;
  }

  /** Calls `visit` for every value; those it returns false for are removed. */
  sweep(visit: (value: V) => boolean): void {
    for (const [hash, head] of this.buckets) {
      let first: Entry<V> | undefined = head;
      let prev: Entry<V> | undefined;
      for (let e: Entry<V> | undefined = head; e; e = e.next) {
        if (visit(e.value)) {
          prev = e;
          continue;
        }
        this.count--;
        if (prev) prev.next = e.next;
        else first = e.next;
      }
      if (!first) this.buckets.delete(hash);
      else if (first !== head) this.buckets.set(hash, first);
    }
  }

  *values(): IterableIterator<V> {
    for (const head of this.buckets.values()) for (let e: Entry<V> | undefined = head; e; e = e.next) yield e.value;
  }
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < SIGNATURE_WORDS; i++) if (a[i] !== b[i]) return false;
  return true;
}
