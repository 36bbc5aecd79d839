/**
 * `destination.domain` on flows: the name a DNS answer gave for the flow's
 * destination address (DomainNameLookup, fed by the ebpf_dns receiver).
 *
 * It runs when a collection's measurements are built, not when a connection
 * opens: the DNS answer that led to a connection travels to user space by
 * another path (a packet capture ring) than the connection's open event (a
 * BPF ring buffer) and may be read after it. Once an attribute set has a
 * domain it keeps it: the annotated copy is cached per attribute object
 * (receivers reuse one object per flow, and processors cache per object), and
 * the name per destination address is kept while flows to that address are
 * reported, even after the DNS answer's TTL ran out.
 *
 * Loopback flows (`flow.direction` local) are left alone. An address that
 * several names resolve to (a CDN, virtual hosting) carries the name of the
 * latest answer.
 */
import type { DomainNameLookup } from '../pipeline/domain-names';
import { relabeled, type FlowAttributes, type Measurement } from '../pipeline/measurements';

export const DESTINATION_DOMAIN = 'destination.domain';

export interface DomainAnnotatorOptions {
  /** Addresses whose name is kept at most. Default 65536. */
  maxKept?: number;
  /** A kept name is dropped after this many collections with no flow to its address. Default 3. */
  keepCollections?: number;
}

export class FlowDomainAnnotator {
  private readonly annotated = new WeakMap<FlowAttributes, FlowAttributes>();
  private readonly kept = new Map<string, { name: string; gen: number }>();
  private gen = 0;
  private readonly maxKept: number;
  private readonly keepCollections: number;

  constructor(
    private readonly names: DomainNameLookup,
    opts: DomainAnnotatorOptions = {},
  ) {
    this.maxKept = opts.maxKept ?? 65536;
    this.keepCollections = opts.keepCollections ?? 3;
  }

  /** Addresses whose name is kept now. */
  get keptSize(): number {
    return this.kept.size;
  }

  /** One collection's measurements: those of flows with a known destination get destination.domain (in place). */
  annotate(measurements: Measurement[]): void {
    this.gen++;
    if (!this.names.active && this.kept.size === 0) return;
    for (let i = 0; i < measurements.length; i++) {
      const m = measurements[i]!;
      const a = this.attributesFor(m.attributes);
      if (a !== m.attributes) measurements[i] = relabeled(m, a);
    }
    const limit = this.gen - this.keepCollections;
    for (const [address, k] of this.kept) if (k.gen < limit) this.kept.delete(address);
  }

  /** `attrs` with destination.domain when the destination's name is known, else `attrs` itself. */
  attributesFor(attrs: FlowAttributes): FlowAttributes {
    const address = attrs['destination.address'];
    if (typeof address !== 'string' || attrs['flow.direction'] === 'local' || attrs[DESTINATION_DOMAIN] !== undefined) return attrs;
    const hit = this.annotated.get(attrs);
    if (hit) {
      this.keep(address, hit[DESTINATION_DOMAIN] as string);
      return hit;
    }
    const name = this.names.lookup(address) ?? this.kept.get(address)?.name;
    if (name === undefined) return attrs;
    this.keep(address, name);
    const out: FlowAttributes = { ...attrs, [DESTINATION_DOMAIN]: name };
    this.annotated.set(attrs, out);
    return out;
  }

  private keep(address: string, name: string): void {
    const k = this.kept.get(address);
    if (k) {
      k.gen = this.gen;
      return;
    }
    if (this.kept.size >= this.maxKept) {
      const oldest = this.kept.keys().next();
      if (!oldest.done) this.kept.delete(oldest.value);
    }
    this.kept.set(address, { name, gen: this.gen });
  }
}
