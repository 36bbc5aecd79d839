/**
 * One full garbage collection after a burst: when what the agent holds (e.g.
 * tracked connections) changed by much since the last one, and has stopped
 * changing (a collection in the middle of a ramp would leave the rest of it).
 *
 * Why: a burst — the start-up sweep of 130k sockets, 65k connections opened
 * or closed at once — leaves tens of MB of objects that lived just long
 * enough to be promoted to V8's old generation, then died. A steady agent
 * afterwards promotes almost nothing, so V8 has no reason for a full
 * collection and keeps that garbage (and its RSS) for minutes. Measured with
 * 65k connections open before the agent started: RSS 195 MB without, 147 MB
 * with one collection after the first interval.
 *
 * It needs `global.gc`, which `node --expose-gc` provides (bin/flowtel and the
 * deploy files start node with it); without it this does nothing.
 */
export interface BurstGcOptions {
  /** The smallest change that counts as a burst, in items. */
  minChange: number;
  /** ... and as a share of the size at the last collection. */
  minRatio: number;
  /** Settled: changed by at most this share of its size since the previous observation. */
  settledRatio: number;
  /** At most one collection per this many ms (a full collection blocks for tens of ms). */
  minIntervalMs: number;
}

export const DEFAULT_BURST_GC: BurstGcOptions = { minChange: 10_000, minRatio: 0.25, settledRatio: 0.02, minIntervalMs: 10_000 };

/** node's `global.gc`, when node runs with --expose-gc. */
export function exposedGc(): (() => void) | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === 'function' ? (gc as () => void) : undefined;
}

export class BurstGc {
  /** Size when the last collection ran (or at the start). */
  private base = 0;
  /** Size at the previous observation. */
  private last = 0;
  private lastMs = -Infinity;
  /** Collections run. */
  runs = 0;

  constructor(
    private readonly gc: (() => void) | undefined = exposedGc(),
    private readonly options: BurstGcOptions = DEFAULT_BURST_GC,
    private readonly now: () => number = Date.now,
  ) {}

  /** After a unit of work (a collection): `size`, what the agent holds now. Returns whether it collected. */
  observe(size: number): boolean {
    if (!this.gc) return false;
    const last = this.last;
    this.last = size;
    const change = Math.abs(size - this.base);
    if (change < this.options.minChange || change < this.options.minRatio * this.base) return false;
    if (Math.abs(size - last) > this.options.settledRatio * size) return false;
    const t = this.now();
    if (t - this.lastMs < this.options.minIntervalMs) return false;
    this.gc();
    this.base = size;
    this.lastMs = t;
    this.runs++;
    return true;
  }
}
