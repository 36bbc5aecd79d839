/**
 * Address → domain name, shared by the receivers of one service: a receiver
 * that learns names from DNS answers (ebpf_dns) provides them, a receiver
 * that reports flows (ebpf_tcp) reads them for `destination.domain`.
 *
 * The service creates one DomainNames and hands it to every receiver in its
 * ReceiverContext; nothing is global, so two services (tests, a reload that
 * builds a new one) never see each other's names. The interfaces are narrow
 * on purpose: a provider exposes a lookup and a way to catch up, a consumer
 * can only look up.
 */

/** What a receiver that learns names offers. */
export interface DomainNameSource {
  /** The name `address` (in the form flows use: dotted IPv4, RFC 5952 IPv6) was resolved from, if still valid. */
  lookup(address: string): string | undefined;
  /**
   * Resolves once the answers the kernel captured before the call have been
   * read (the capture path and the flow path reach user space separately:
   * an answer can still be in a capture ring when the connection it led to
   * is reported).
   */
  settle(): Promise<void>;
}

/** What a receiver that reports flows may ask. */
export interface DomainNameLookup {
  /** Some receiver provides names right now. */
  readonly active: boolean;
  lookup(address: string): string | undefined;
  /** Every provider's settle(), bounded by `timeoutMs`; never rejects. */
  settle(timeoutMs?: number): Promise<void>;
}

export class DomainNames implements DomainNameLookup {
  private readonly sources = new Set<DomainNameSource>();

  /** Start providing names; returns the function that stops. */
  provide(source: DomainNameSource): () => void {
    this.sources.add(source);
    return () => {
      this.sources.delete(source);
    };
  }

  get active(): boolean {
    return this.sources.size > 0;
  }

  lookup(address: string): string | undefined {
    for (const s of this.sources) {
      const name = s.lookup(address);
      if (name !== undefined) return name;
    }
    return undefined;
  }

  async settle(timeoutMs = 500): Promise<void> {
    if (this.sources.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const all = Promise.all([...this.sources].map((s) => s.settle().catch(() => undefined)));
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    try {
      await Promise.race([all, limit]);
    } finally {
      clearTimeout(timer);
    }
  }
}
