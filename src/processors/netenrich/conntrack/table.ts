/**
 * NAT translations learned from conntrack, looked up by what a flow knows
 * about its connection: destination NAT (the backend behind a service
 * address) and source NAT (the address and port a masquerade gave the
 * connection on its way out).
 *
 * A client's socket sees the address it dialled (a service IP); conntrack's
 * entry for the connection has that as its original destination and the
 * real backend as the reply's source. Entries are keyed by the original
 * tuple. A flow that carries both ports (the receiver's
 * `include_ephemeral_ports: true`) is one connection and finds its entry
 * exactly; a flow without the client port is every connection from that
 * client address to that service address and port, and gets a translation
 * only when all those connections went to the same backend (`ambiguous`
 * otherwise: no translation is made up). Source NAT likewise: exact with the
 * client port; for a series, the translated address when all its connections
 * left with the same one (a masquerade's ports differ per connection, so a
 * series gets no port).
 */
import type { ConntrackEntry } from './messages';
import { dnatTarget, snatSource } from './messages';

export interface Translation {
  readonly address: string;
  readonly port: number;
}

/** A source translation: the port only for one connection. */
export interface SourceTranslation {
  readonly address: string;
  readonly port?: number;
}

interface Stored {
  /** Destination NAT, when the entry has it. */
  readonly target?: Translation;
  readonly targetKey: string;
  /** Source NAT, when the entry has it. */
  readonly source?: Translation;
  readonly seriesKey: string;
  /** The original destination, and the keys of the reverse indexes (by the translated destination). */
  readonly original: Translation;
  readonly originalKey: string;
  readonly reverseExactKey: string;
  readonly reverseSeriesKey: string;
  /** Which network namespace's conntrack it came from (its inode). */
  readonly netns: number;
  stamp: number;
}

export type Lookup = Translation | 'ambiguous' | undefined;
export type SourceLookup = SourceTranslation | 'ambiguous' | undefined;

const exactKey = (proto: number, src: string, sport: number, dst: string, dport: number): string => `${proto}|${src}|${sport}|${dst}|${dport}`;
const seriesKey = (proto: number, src: string, dst: string, dport: number): string => `${proto}|${src}|${dst}|${dport}`;

export class NatTable {
  private readonly entries = new Map<string, Stored>();
  /** series key → target key → entries with it. */
  private readonly series = new Map<string, Map<string, { target: Translation; count: number }>>();
  /** The same, by the translated destination: what a flow that saw the backend's address dialled. */
  private readonly reverseExact = new Map<string, Stored>();
  private readonly reverseSeries = new Map<string, Map<string, { target: Translation; count: number }>>();
  /** series key → translated source address → entries with it. */
  private readonly sourceSeries = new Map<string, Map<string, { target: Translation; count: number }>>();
  private stampCounter = 0;
  private ver = 0;
  /** Entries refused because the table was full. */
  full = 0;

  constructor(private readonly maxEntries = 262_144) {}

  get size(): number {
    return this.entries.size;
  }

  /** Changes whenever a lookup could answer differently. */
  get version(): number {
    return this.ver;
  }

  /** The current stamp: entries added or seen after this have a higher one. */
  get stamp(): number {
    return this.stampCounter;
  }

  /** Learn (or refresh) an entry; entries without NAT are ignored. Returns true if it has a destination or source translation. */
  add(e: ConntrackEntry, netns: number): boolean {
    const target = dnatTarget(e);
    const source = snatSource(e);
    if (!target && !source) return false;
    const o = e.orig;
    const key = exactKey(o.proto, o.src, o.sport, o.dst, o.dport);
    const targetKey = `${target ? `${target.address}|${target.port}` : ''}>${source ? `${source.address}|${source.port}` : ''}`;
    const old = this.entries.get(key);
    if (old && old.targetKey === targetKey) {
      old.stamp = ++this.stampCounter;
      return true;
    }
    if (old) this.delete(key);
    else if (this.entries.size >= this.maxEntries) {
      this.full++;
      return true;
    }
    const stored: Stored = {
      ...(target ? { target } : {}),
      ...(source ? { source } : {}),
      targetKey,
      seriesKey: seriesKey(o.proto, o.src, o.dst, o.dport),
      original: { address: o.dst, port: o.dport },
      originalKey: `${o.dst}|${o.dport}`,
      reverseExactKey: target ? exactKey(o.proto, o.src, o.sport, target.address, target.port) : '',
      reverseSeriesKey: target ? seriesKey(o.proto, o.src, target.address, target.port) : '',
      netns,
      stamp: ++this.stampCounter,
    };
    this.entries.set(key, stored);
    if (target) {
      this.reverseExact.set(stored.reverseExactKey, stored);
      addCount(this.series, stored.seriesKey, `${target.address}|${target.port}`, target);
      addCount(this.reverseSeries, stored.reverseSeriesKey, stored.originalKey, stored.original);
    }
    if (source) addCount(this.sourceSeries, stored.seriesKey, source.address, source);
    this.ver++;
    return true;
  }

  /** Forget the entries of `netns` not added or seen since `stamp` (they were not in a dump that started then). */
  sweep(netns: number, stamp: number): number {
    let removed = 0;
    for (const [key, s] of this.entries) {
      if (s.netns === netns && s.stamp <= stamp) {
        this.delete(key);
        removed++;
      }
    }
    return removed;
  }

  /** Forget every entry of a namespace that is gone. */
  dropNamespace(netns: number): void {
    this.sweep(netns, Number.POSITIVE_INFINITY);
  }

  /**
   * The translation of a flow: with `sport`, of that one connection; without,
   * of every connection from src to dst:dport (undefined when there is none,
   * `ambiguous` when they went to different backends).
   */
  lookup(proto: number, src: string, dst: string, dport: number, sport?: number): Lookup {
    if (sport !== undefined) return this.entries.get(exactKey(proto, src, sport, dst, dport))?.target;
    const targets = this.series.get(seriesKey(proto, src, dst, dport));
    if (!targets || targets.size === 0) return undefined;
    if (targets.size > 1) return 'ambiguous';
    return targets.values().next().value!.target;
  }

  /**
   * The other way round, for a flow that saw the translated destination (UDP
   * flows are counted per packet after the DNAT on the way out): the
   * destination that was dialled, with the same rules as lookup().
   */
  lookupOriginal(proto: number, src: string, translatedDst: string, translatedPort: number, sport?: number): Lookup {
    if (sport !== undefined) {
      const exact = this.reverseExact.get(exactKey(proto, src, sport, translatedDst, translatedPort));
      if (exact) return exact.original;
      return undefined;
    }
    const originals = this.reverseSeries.get(seriesKey(proto, src, translatedDst, translatedPort));
    if (!originals || originals.size === 0) return undefined;
    if (originals.size > 1) return 'ambiguous';
    return originals.values().next().value!.target;
  }

  /**
   * The source translation of a flow as its socket saw it (the address
   * before the masquerade, the destination dialled): with `sport`, that
   * connection's address and port; without, the address every connection of
   * the series left with (`ambiguous` when they left with different ones).
   */
  lookupSource(proto: number, src: string, dst: string, dport: number, sport?: number): SourceLookup {
    if (sport !== undefined) return this.entries.get(exactKey(proto, src, sport, dst, dport))?.source;
    const sources = this.sourceSeries.get(seriesKey(proto, src, dst, dport));
    if (!sources || sources.size === 0) return undefined;
    if (sources.size > 1) return 'ambiguous';
    return { address: sources.values().next().value!.target.address };
  }

  private delete(key: string): void {
    const s = this.entries.get(key);
    if (!s) return;
    this.entries.delete(key);
    if (s.target) {
      if (this.reverseExact.get(s.reverseExactKey) === s) this.reverseExact.delete(s.reverseExactKey);
      removeCount(this.series, s.seriesKey, `${s.target.address}|${s.target.port}`);
      removeCount(this.reverseSeries, s.reverseSeriesKey, s.originalKey);
    }
    if (s.source) removeCount(this.sourceSeries, s.seriesKey, s.source.address);
    this.ver++;
  }
}

type CountIndex = Map<string, Map<string, { target: Translation; count: number }>>;

function addCount(index: CountIndex, key: string, valueKey: string, target: Translation): void {
  let values = index.get(key);
  if (!values) {
    values = new Map();
    index.set(key, values);
  }
  const v = values.get(valueKey);
  if (v) v.count++;
  else values.set(valueKey, { target, count: 1 });
}

function removeCount(index: CountIndex, key: string, valueKey: string): void {
  const values = index.get(key);
  const v = values?.get(valueKey);
  if (!values || !v) return;
  if (--v.count === 0) values.delete(valueKey);
  if (values.size === 0) index.delete(key);
}
