/**
 * One DNS packet can be captured more than once: out on one device and in on
 * another (a veth pair whose two ends are both captured, a bridge, a routed
 * hop), or out and in on loopback (the kernel filter already drops that one).
 * A UDP DNS message is taken as seen already when the same
 * (source, source port, destination, destination port, id, QR, length)
 * was captured within `windowUs` of kernel time. Real retransmissions come
 * hundreds of milliseconds apart at least, so a short window tells them from
 * capture copies. TCP segments are keyed by (ends, sequence number, flags,
 * length): the reassembly would drop a copy by its sequence number, but not
 * one that arrives after the connection's FIN made it forget the flow.
 *
 * Keys are kept for `keepUs` of capture time (at most `maxEntries`), longer
 * than the window: the copies come from different capture sockets, each read
 * by its own thread, and when the agent is behind one socket's packets can
 * reach it seconds after the other's. The window compares the two copies'
 * own capture times, so that lag does not matter as long as the key is kept.
 */
export class CaptureDedup {
  private readonly seen = new Map<string, number>();
  private readonly order: string[] = [];
  private head = 0;
  private maxTsUs = 0;
  duplicates = 0;

  constructor(
    private readonly windowUs = 500_000,
    private readonly maxEntries = 200_000,
    private readonly keepUs = 5_000_000,
  ) {}

  /** True if this message was already seen (a capture copy): skip it. */
  isDuplicate(key: string, tsUs: number): boolean {
    if (tsUs > this.maxTsUs) this.maxTsUs = tsUs;
    this.prune();
    const prev = this.seen.get(key);
    if (prev !== undefined && Math.abs(tsUs - prev) <= this.windowUs) {
      this.duplicates++;
      return true;
    }
    this.seen.set(key, tsUs);
    this.order.push(key);
    return false;
  }

  get size(): number {
    return this.seen.size;
  }

  private prune(): void {
    const limit = this.maxTsUs - Math.max(this.keepUs, this.windowUs);
    const order = this.order;
    while (this.head < order.length) {
      const k = order[this.head]!;
      const ts = this.seen.get(k);
      if (ts !== undefined && ts >= limit && this.seen.size <= this.maxEntries) break;
      if (ts !== undefined) this.seen.delete(k);
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > order.length) {
      order.splice(0, this.head);
      this.head = 0;
    }
  }
}
