/**
 * Whether the agent is short of memory, process-wide: every memory_limiter
 * instance reports whether it is above its soft limit, and the exporters'
 * sending queues read it. While any limiter refuses data, a queue that
 * already holds a batch rejects new ones (dropped and counted) instead of
 * growing: a backend that is down must not take the memory the limiter is
 * there to protect (each queued batch is a whole collection).
 */
export class MemoryPressure {
  private readonly refusing = new Set<object>();

  /** `source`: the limiter instance reporting. */
  set(source: object, refusing: boolean): void {
    if (refusing) this.refusing.add(source);
    else this.refusing.delete(source);
  }

  get active(): boolean {
    return this.refusing.size > 0;
  }
}

export const memoryPressure = new MemoryPressure();
