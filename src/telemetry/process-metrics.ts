/**
 * The agent process's own numbers: memory, CPU, uptime and event-loop delay
 * (perf_hooks.monitorEventLoopDelay, in windows so that the quantiles are
 * recent rather than since the start).
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface ProcessSample {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly cpuSeconds: number;
  readonly uptimeSeconds: number;
}

export function sampleProcess(): ProcessSample {
  const cpu = process.cpuUsage();
  return {
    rssBytes: process.memoryUsage.rss(),
    heapUsedBytes: process.memoryUsage().heapUsed,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    uptimeSeconds: process.uptime(),
  };
}

export const EVENT_LOOP_RESOLUTION_MS = 10;
export const EVENT_LOOP_WINDOW_MS = 10_000;

/** Quantiles (0–1) → delay in seconds. */
export type DelayQuantiles = ReadonlyMap<number, number>;

/**
 * Event-loop delay quantiles over the last complete window (or, before the
 * first window ends, since enable). The histogram measures how late a timer
 * of `resolution` fires, so the resolution itself is taken off.
 */
export class EventLoopDelayMonitor {
  private histogram?: IntervalHistogram;
  private timer?: NodeJS.Timeout;
  private last?: DelayQuantiles;

  constructor(
    private readonly quantiles: readonly number[],
    private readonly resolutionMs = EVENT_LOOP_RESOLUTION_MS,
    private readonly windowMs = EVENT_LOOP_WINDOW_MS,
  ) {}

  start(): void {
    if (this.histogram) return;
    this.histogram = monitorEventLoopDelay({ resolution: this.resolutionMs });
    this.histogram.enable();
    this.timer = setInterval(() => {
      const q = this.read();
      if (q) this.last = q;
      this.histogram?.reset();
    }, this.windowMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.histogram?.disable();
    this.histogram = undefined;
  }

  /** The last window's quantiles; the current window's while no window has ended. Undefined before any sample. */
  quantilesSeconds(): DelayQuantiles | undefined {
    return this.last ?? this.read();
  }

  private read(): DelayQuantiles | undefined {
    const h = this.histogram;
    if (!h || h.count === 0) return undefined;
    const offsetNs = this.resolutionMs * 1e6;
    const out = new Map<number, number>();
    for (const q of this.quantiles) {
      const ns = q >= 1 ? h.max : h.percentile(q * 100);
      out.set(q, Math.max(0, ns - offsetNs) / 1e9);
    }
    return out;
  }
}
