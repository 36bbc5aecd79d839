/**
 * A reflector, as client-go calls it: keeps a local copy of one kind of
 * object by listing it, then watching from the list's resourceVersion.
 *
 * - A watch that ends normally (the server's timeout) is opened again from
 *   the last resourceVersion seen (events and bookmarks move it).
 * - `410 Gone` (the resourceVersion is too old: as an HTTP status or as an
 *   ERROR event in the stream) starts over with a new list: objects missing
 *   from it are removed, the others replaced.
 * - Any other failure (connection refused, HTTP 5xx, 403) is counted and
 *   retried after a backoff (0.5 s doubling to 30 s, reset by a success),
 *   re-listing. Meanwhile the last known objects are kept and used.
 */
import type { ApiStatus } from './status';

export interface WatchHandle {
  /** Resolves when the watch ends normally; rejects with its error. */
  readonly done: Promise<void>;
  abort(): void;
}

/** List and watch of one resource, implemented over the Kubernetes client (./client.ts) or anything else. */
export interface ResourceClient {
  /** `signal` aborts the request (the reflector stops). */
  list(signal?: AbortSignal): Promise<{ items: readonly unknown[]; resourceVersion: string }>;
  /** Resolves once the server answered (the stream is open); `signal` aborts the wait. */
  watch(resourceVersion: string, onEvent: (type: string, object: unknown) => void, signal?: AbortSignal): Promise<WatchHandle>;
}

/** An error's HTTP status, from the client's errors (ApiException.code, watch errors' statusCode) or a Status object. */
export function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { code?: unknown; statusCode?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code;
  return undefined;
}

/** Why a request failed, for the errors counter: `http_<status>`, `unreachable` or `other`. */
export function failureReason(error: unknown): string {
  const status = httpStatusOf(error);
  if (status !== undefined) return `http_${status}`;
  const text = `${(error as { code?: unknown })?.code ?? ''} ${(error as Error)?.message ?? ''} ${String((error as { cause?: { code?: unknown } })?.cause?.code ?? '')}`;
  // Connection refused or lost (a watch stream cut off: node-fetch's "Premature close"), no answer, no route.
  if (/ECONNREFUSED|ECONNRESET|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EAI_AGAIN|socket hang up|fetch failed|EPIPE|Premature close|ERR_STREAM_PREMATURE_CLOSE/i.test(text)) return 'unreachable';
  return 'other';
}

class Expired extends Error {}

export class Reflector<R> {
  private resourceVersion = '';
  private stopped = true;
  private watch?: WatchHandle;
  private loop?: Promise<void>;
  private wake?: () => void;
  private backoffMs = 0;
  private stopper = new AbortController();
  /** True once a list succeeded. */
  synced = false;
  private readonly syncWaiters: Array<() => void> = [];

  constructor(
    readonly resource: string,
    private readonly client: ResourceClient,
    private readonly convert: (object: unknown) => { key: string; record: R | undefined } | undefined,
    private readonly status: ApiStatus,
    private readonly changed: () => void,
    private readonly backoff = { minMs: 500, maxMs: 30_000 },
    /** Where the objects are kept (key → record). */
    readonly items = new Map<string, R>(),
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.stopper = new AbortController();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopper.abort();
    this.watch?.abort();
    this.wake?.();
    await this.loop;
  }

  /** Resolves once the first list succeeded, or after `timeoutMs`. */
  waitForSync(timeoutMs: number): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.syncWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private async run(): Promise<void> {
    let relistReason = 'initial';
    while (!this.stopped) {
      try {
        if (this.resourceVersion === '') {
          await this.relist(relistReason);
          if (this.stopped) return;
        }
        await this.watchOnce();
        // Ended normally: watch again from where we are.
        this.backoffMs = 0;
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof Expired || httpStatusOf(error) === 410) {
          this.resourceVersion = '';
          relistReason = 'expired';
          continue;
        }
        this.status.failed(this.resource, failureReason(error), error);
        this.resourceVersion = '';
        relistReason = 'error';
        this.backoffMs = this.backoffMs === 0 ? this.backoff.minMs : Math.min(this.backoffMs * 2, this.backoff.maxMs);
        await this.sleep(this.backoffMs);
      }
    }
  }

  private async relist(reason: string): Promise<void> {
    const list = await this.client.list(this.stopper.signal);
    this.status.succeeded(this.resource);
    this.status.relisted(this.resource, reason);
    const fresh = new Map<string, R>();
    for (const item of list.items) {
      const c = this.convert(item);
      if (c?.record !== undefined) fresh.set(c.key, c.record);
    }
    this.items.clear();
    for (const [k, v] of fresh) this.items.set(k, v);
    this.resourceVersion = list.resourceVersion;
    this.changed();
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private async watchOnce(): Promise<void> {
    let expired = false;
    let errorCode: number | undefined;
    /** Set when the stream said ERROR: the watch is closed by us, its abort error is not a failure. */
    let closedByUs = false;
    let handle: WatchHandle | undefined;
    const close = (): void => {
      closedByUs = true;
      handle?.abort();
    };
    handle = await this.client.watch(this.resourceVersion, (type, object) => {
      if (closedByUs) return;
      switch (type) {
        case 'ADDED':
        case 'MODIFIED': {
          const c = this.convert(object);
          if (c?.record !== undefined) this.items.set(c.key, c.record);
          else if (c) this.items.delete(c.key);
          this.changed();
          break;
        }
        case 'DELETED': {
          const c = this.convert(object);
          if (c) this.items.delete(c.key);
          this.changed();
          break;
        }
        case 'ERROR': {
          // A Status object: 410 = our resourceVersion is too old.
          const code = (object as { code?: unknown } | null)?.code;
          if (code === 410) expired = true;
          else errorCode = typeof code === 'number' ? code : 0;
          close();
          return;
        }
        case 'BOOKMARK':
          break;
        default:
          return;
      }
      const rv = (object as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
      if (typeof rv === 'string' && rv !== '') this.resourceVersion = rv;
    }, this.stopper.signal);
    if (closedByUs || this.stopped) handle.abort();
    this.watch = handle;
    this.status.succeeded(this.resource);
    try {
      await handle.done;
    } catch (error) {
      if (!closedByUs && !this.stopped) throw error;
    } finally {
      this.watch = undefined;
    }
    if (expired) throw new Expired(`${this.resource}: resourceVersion expired`);
    // An ERROR event other than 410: relist after a pause, as for a failed request.
    if (errorCode !== undefined) throw Object.assign(new Error(`${this.resource}: the watch reported an error`), errorCode ? { statusCode: errorCode } : {});
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
