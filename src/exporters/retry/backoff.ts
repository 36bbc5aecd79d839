/**
 * Exponential backoff as the Collector's exporterhelper computes it
 * (cenkalti/backoff): the n-th wait is
 * `min(initial_interval * multiplier^n, max_interval)`, randomized to
 * `[interval * (1 - randomization_factor), interval * (1 + randomization_factor)]`.
 */

export interface BackoffSettings {
  readonly initialIntervalMs: number;
  readonly maxIntervalMs: number;
  readonly multiplier: number;
  /** 0 … 1 */
  readonly randomizationFactor: number;
}

export class ExponentialBackoff {
  private currentMs: number;

  constructor(
    private readonly settings: BackoffSettings,
    private readonly random: () => number = Math.random,
  ) {
    this.currentMs = settings.initialIntervalMs;
  }

  /** The next wait in milliseconds; each call advances the series. */
  next(): number {
    const base = this.currentMs;
    const delta = this.settings.randomizationFactor * base;
    this.currentMs = Math.min(base * this.settings.multiplier, this.settings.maxIntervalMs);
    return base - delta + this.random() * 2 * delta;
  }

  /** Back to initial_interval (after a success). */
  reset(): void {
    this.currentMs = this.settings.initialIntervalMs;
  }
}
