/**
 * IP address → DNS name, learned from the A and AAAA answers the DNS
 * receiver sees. An entry lives for the answer's TTL (at least `minTtlMs`,
 * at most `maxTtlMs`), so a connection opened right after a short-TTL answer
 * still finds its name; the cache holds at most `maxEntries` addresses (the
 * oldest insertions go first).
 *
 * The name is the one the client asked for (the question), not the end of a
 * CNAME chain: `www.example.com`, not `www.example.com.cdn.example.net`.
 * Addresses are in the form flows use (IPv4-mapped IPv6 as IPv4, RFC 5952 IPv6).
 */
export interface NameCacheOptions {
  maxEntries?: number;
  minTtlMs?: number;
  maxTtlMs?: number;
}

interface Entry {
  name: string;
  expiresMs: number;
}

export class DnsNameCache {
  private readonly map = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly minTtlMs: number;
  private readonly maxTtlMs: number;
  evictions = 0;

  constructor(opts: NameCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 65536;
    this.minTtlMs = opts.minTtlMs ?? 60_000;
    this.maxTtlMs = opts.maxTtlMs ?? 86_400_000;
  }

  get size(): number {
    return this.map.size;
  }

  /** Remember that `address` is `name` for `ttlS` seconds from `nowMs`. */
  add(address: string, name: string, ttlS: number, nowMs = Date.now()): void {
    if (this.maxEntries <= 0) return;
    const ttlMs = Math.min(this.maxTtlMs, Math.max(this.minTtlMs, ttlS * 1000));
    const old = this.map.get(address);
    if (old) {
      // Refresh in place; re-insert so it counts as the newest.
      this.map.delete(address);
    } else if (this.map.size >= this.maxEntries) {
      this.evictOne(nowMs);
    }
    this.map.set(address, { name, expiresMs: nowMs + ttlMs });
  }

  /** The name `address` was last resolved from, if that answer has not expired. */
  lookup(address: string, nowMs = Date.now()): string | undefined {
    const e = this.map.get(address);
    if (!e) return undefined;
    if (e.expiresMs < nowMs) {
      this.map.delete(address);
      return undefined;
    }
    return e.name;
  }

  /** Drop expired entries (the receiver calls this once per collection). */
  prune(nowMs = Date.now()): void {
    for (const [k, e] of this.map) if (e.expiresMs < nowMs) this.map.delete(k);
  }

  private evictOne(nowMs: number): void {
    // An expired entry among the oldest few if there is one, else the oldest.
    let i = 0;
    for (const [k, e] of this.map) {
      if (i++ >= 8) break;
      if (e.expiresMs < nowMs) {
        this.map.delete(k);
        this.evictions++;
        return;
      }
    }
    const first = this.map.keys().next();
    if (!first.done) {
      this.map.delete(first.value);
      this.evictions++;
    }
  }
}
