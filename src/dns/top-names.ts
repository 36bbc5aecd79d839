/**
 * Keeps the `dns.question.name` attribute bounded: the N names with the most
 * queries keep their name, every other name becomes `other`.
 *
 * Names are admitted as they come while fewer than N are kept. At each
 * collection (`rotate()`) the kept set is recomputed from query counts that
 * decay by half per collection, so a name that became busy takes a slot from
 * one that went quiet. Counting is bounded (at most `4N + 64` names counted;
 * the smallest counts go first).
 */
export const OTHER = 'other';

export class TopNames {
  private kept = new Set<string>();
  private counts = new Map<string, number>();
  private readonly maxCounted: number;

  constructor(private readonly n: number) {
    this.maxCounted = 4 * n + 64;
  }

  /** The attribute value for `name`; counts it. */
  label(name: string): string {
    if (this.n <= 0) return OTHER;
    const c = this.counts.get(name);
    if (c !== undefined) this.counts.set(name, c + 1);
    else {
      if (this.counts.size >= this.maxCounted) this.shrink();
      this.counts.set(name, 1);
    }
    if (this.kept.has(name)) return name;
    if (this.kept.size < this.n) {
      this.kept.add(name);
      return name;
    }
    return OTHER;
  }

  /** Recompute the kept names; call once per collection. */
  rotate(): void {
    if (this.n <= 0) return;
    const ranked = [...this.counts].sort((a, b) => b[1] - a[1]);
    this.kept = new Set(ranked.slice(0, this.n).filter(([, c]) => c >= 1).map(([k]) => k));
    const next = new Map<string, number>();
    for (const [k, c] of ranked) if (c / 2 >= 0.5) next.set(k, c / 2);
    this.counts = next;
  }

  get keptNames(): ReadonlySet<string> {
    return this.kept;
  }

  private shrink(): void {
    // Drop the lower half of the counted names that are not kept.
    const ranked = [...this.counts].filter(([k]) => !this.kept.has(k)).sort((a, b) => a[1] - b[1]);
    for (let i = 0; i < Math.max(1, ranked.length >> 1); i++) this.counts.delete(ranked[i]![0]);
  }
}
