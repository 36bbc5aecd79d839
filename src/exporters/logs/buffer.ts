/**
 * Batching of log records on their way to a push exporter: records are
 * held at most `intervalMs` (default 1 s) and sent in batches of at most
 * `maxBatch` (default 512) records; a batch is handed over as soon as it is
 * full. One batch = one export request = one entry of the sending queue.
 */
import type { LogRecordData } from '../../pipeline/logs';

export const DEFAULT_LOG_BATCH_INTERVAL_MS = 1_000;
export const DEFAULT_LOG_BATCH_SIZE = 512;

export class LogBuffer {
  private held: LogRecordData[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly emit: (records: LogRecordData[]) => void,
    private readonly intervalMs = DEFAULT_LOG_BATCH_INTERVAL_MS,
    private readonly maxBatch = DEFAULT_LOG_BATCH_SIZE,
  ) {}

  get size(): number {
    return this.held.length;
  }

  add(records: readonly LogRecordData[]): void {
    for (const r of records) {
      this.held.push(r);
      if (this.held.length >= this.maxBatch) this.flush();
    }
    if (this.held.length > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, this.intervalMs);
      this.timer.unref();
    }
  }

  /** Hand over what is held now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.held.length === 0) return;
    const batch = this.held;
    this.held = [];
    this.emit(batch);
  }
}
