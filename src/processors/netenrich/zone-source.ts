/**
 * "Which zone is this address in?" — the question the `zone` processor asks
 * about both ends of every flow, answered by sources that can be plugged in.
 *
 * flowtel's own source is the user's subnet table (./subnet-table.ts). Other
 * processors that know where addresses live — the `k8s` processor, from the
 * `topology.kubernetes.io/zone` label of the node a pod runs on — register an
 * AddressZoneSource in `zoneSources` at start and unregister it at shutdown;
 * when their mapping changes (a pod moved) they call `zoneSources.changed()`
 * so that `zone` forgets what it cached. Registered sources are asked before
 * the subnet table, in the order they registered.
 */

/** Where an address is. Every field is optional: a source says what it knows. */
export interface AddressZone {
  /** `cloud.availability_zone`: `us-east-1a`, `europe-west1-b`, `1` (Azure). */
  readonly availabilityZone?: string;
  /** `cloud.region`: `us-east-1`. */
  readonly region?: string;
  /** The VPC / virtual network (`cloud.vpc.id`, not a semantic convention yet). */
  readonly vpc?: string;
  /** `cloud.provider`: `aws`, `gcp`, `azure`. */
  readonly provider?: string;
}

export interface AddressZoneSource {
  /** For logs: `subnets`, `k8s`. */
  readonly name: string;
  /** The zone of an address as flows carry it (`10.0.1.5`, `fd00::5`), or undefined when unknown. */
  zoneOf(address: string): AddressZone | undefined;
}

/** The sources other components registered, asked in registration order. */
export class ZoneSourceRegistry {
  private sources: AddressZoneSource[] = [];
  private gen = 0;

  /** Bumped on every register, unregister and changed(): caches keyed on it stay right. */
  get generation(): number {
    return this.gen;
  }

  get size(): number {
    return this.sources.length;
  }

  /** Add a source; returns the function that removes it. */
  register(source: AddressZoneSource): () => void {
    this.sources = [...this.sources, source];
    this.gen++;
    return () => {
      const before = this.sources.length;
      this.sources = this.sources.filter((s) => s !== source);
      if (this.sources.length !== before) this.gen++;
    };
  }

  /** A source's answers changed: cached lookups are stale. */
  changed(): void {
    this.gen++;
  }

  /** The first registered source's answer that names an availability zone or region. */
  zoneOf(address: string): AddressZone | undefined {
    for (const s of this.sources) {
      const z = s.zoneOf(address);
      if (z && (z.availabilityZone !== undefined || z.region !== undefined)) return z;
    }
    return undefined;
  }
}

/** The process-wide registry the `zone` processors read (the `k8s` processor feeds it). */
export const zoneSources = new ZoneSourceRegistry();
