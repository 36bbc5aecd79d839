/**
 * `container`: `container.id` (from the `process` processor, which must come
 * before it in the pipeline) → `container.name`, `container.image.name`,
 * `container.image.tag`, from the container runtimes' own APIs over their
 * unix sockets:
 *
 * - Docker's Engine API, and Podman's Docker-compatible API
 *   (`unix:///var/run/docker.sock`): `GET /containers/json?all=1`;
 * - containerd's API (`containerd:///run/containerd/containerd.sock`): every
 *   namespace (`default`, `k8s.io`, `moby`, …), `Containers/List` in each; the
 *   name is the kubelet's `io.kubernetes.container.name` label or nerdctl's
 *   `nerdctl/name`, else the container id;
 * - the Kubernetes CRI (`cri:///var/run/crio/crio.sock` for CRI-O; containerd
 *   serves it on its own socket): `RuntimeService/ListContainers`, the name
 *   from the container's metadata.
 *
 * Every `refresh_interval`, at once when containerd reports a container
 * created, updated or deleted (its event stream, so a new container is named
 * before its first flow is collected), and soon after a flow names a
 * container id not seen yet (at most once per second), each endpoint is asked
 * for its whole container list: one request (containerd: one per namespace),
 * whatever the number of flows. When several endpoints know a container, each name comes
 * from the first endpoint (in the configured order) that has it, and the
 * container id stands in for a name only when none has one. An endpoint that
 * is not there (no socket, connection refused) is no error: its containers
 * just get no names; other failures are logged once until the endpoint
 * answers again. A container that is gone from every list keeps its names for
 * `retention`, so the last flows of a stopped container are still named.
 */
import type { Logger } from 'pino';
import { status as grpcStatus } from '@grpc/grpc-js';
import { ConfigError } from '../../config/errors';
import { registerMetric } from '../../metrics/definitions';
import { childPath } from '../../config/location';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../../config/schema';
import type { ProcessorFactory } from '../../pipeline/component';
import type { FlowAttributes, Measurement } from '../../pipeline/measurements';
import { throwIfErrors } from '../common';
import { getJson, parseContainerList, parseEngineEndpoint, parseImageReference, type ContainerSummary } from './docker-api';
import { Enricher, withAttributes } from './enricher';
import { ProtobufError } from './protobuf-wire';
import { CriLister, GrpcUnixClient, isGrpcError, isRuntimeAbsent, listContainerd, watchContainerd } from './runtime-api';

/** Self-telemetry (docs/metrics.md), with the attribute `processor` and, per endpoint, `endpoint`. */
export const CONTAINER_METRICS = [
  { name: 'flowtel_container_runtime_reachable', kind: 'gauge', unit: '1', description: '1 while the last container list of a runtime endpoint succeeded, else 0 (its containers keep their last known names); endpoints whose socket does not exist are not reported.' },
  { name: 'flowtel_container_runtime_errors', kind: 'counter', unit: '{request}', description: 'Failed container lists of a runtime endpoint, by reason: timeout, malformed (an answer that does not decode), other. A missing socket or a refused connection (no runtime there) is not counted.' },
  { name: 'flowtel_container_known', kind: 'gauge', unit: '{container}', description: 'Containers the container processor knows names of (listed now or within retention).' },
] as const;
for (const m of CONTAINER_METRICS) registerMetric(m);

/** Why a list failed, for flowtel_container_runtime_errors. */
function failureReason(error: unknown): string {
  if (isGrpcError(error, grpcStatus.DEADLINE_EXCEEDED) || /no answer within/.test(String((error as Error)?.message))) return 'timeout';
  if (error instanceof ProtobufError || /not JSON|expected a JSON array/.test(String((error as Error)?.message))) return 'malformed';
  return 'other';
}

const containerSchema = {
  endpoints: {
    type: 'string[]',
    default: ['unix:///var/run/docker.sock', 'unix:///run/podman/podman.sock', 'containerd:///run/containerd/containerd.sock', 'containerd:///run/k3s/containerd/containerd.sock', 'cri:///var/run/crio/crio.sock'],
    description:
      'Container runtime APIs to ask, in order (for each name, the first endpoint that knows it wins). The scheme says which API: unix:///path/to/socket or http://host:port (tcp://) is the Docker Engine API (Podman serves it on its docker-compatible socket, e.g. unix:///run/podman/podman.sock); containerd:///path/to/socket is containerd\'s own API, all namespaces (name from the io.kubernetes.container.name or nerdctl/name label, else the container id); cri:///path/to/socket is the Kubernetes CRI RuntimeService (CRI-O: cri:///var/run/crio/crio.sock; containerd serves it too), name from the container\'s metadata. Sockets that do not exist are skipped quietly.',
  },
  refresh_interval: { type: 'duration', default: '30s', minMs: 1000, description: "How often the container lists are read again (also at once when containerd's event stream reports a container created, updated or deleted, and soon after an unknown container id appears, at most once a second)." },
  timeout: { type: 'duration', default: '2s', description: 'Deadline of one request to an endpoint.' },
  retention: { type: 'duration', default: '10m', description: 'How long a container that is no longer listed (stopped and removed) keeps its names.' },
} as const satisfies Schema;

export type ContainerConfig = SchemaValue<typeof containerSchema>;

export function validateContainerConfig(raw: unknown, path: string): ContainerConfig {
  const c = validateObject(raw, path, containerSchema);
  const errors: ConfigError[] = [];
  c.endpoints.forEach((e, i) => {
    const p = parseRuntimeEndpoint(e);
    if (typeof p === 'string') errors.push(new ConfigError(`${childPath(path, 'endpoints')}[${i}]`, `"${e}": ${p}`));
  });
  throwIfErrors(errors, path);
  return c;
}

export interface ContainerNames {
  readonly 'container.name'?: string;
  readonly 'container.image.name'?: string;
  readonly 'container.image.tag'?: string;
}

/** One configured endpoint, by the API it speaks. */
export type RuntimeEndpoint = { readonly url: string } & ({ readonly api: 'docker' } | { readonly api: 'containerd' | 'cri'; readonly socketPath: string });

const GRPC_SCHEMES = { 'containerd://': 'containerd', 'cri://': 'cri' } as const;

export function parseRuntimeEndpoint(url: string): RuntimeEndpoint | string {
  for (const [scheme, api] of Object.entries(GRPC_SCHEMES)) {
    if (!url.startsWith(scheme)) continue;
    const socketPath = url.slice(scheme.length);
    if (!socketPath.startsWith('/')) return `a ${api} endpoint is a unix socket with an absolute path: ${scheme}/run/…/….sock`;
    return { url, api, socketPath };
  }
  const docker = parseEngineEndpoint(url);
  if (typeof docker === 'string') return `${docker}; or containerd:///path/to/containerd.sock, cri:///path/to/cri.sock`;
  return { url, api: 'docker' };
}

/** Reads one endpoint's container list. */
interface Lister {
  readonly endpoint: RuntimeEndpoint;
  list(): Promise<ContainerSummary[]>;
  /** Where the runtime has an event stream: call `onChange` when containers change; `onEnd` when the stream ends. */
  watch?(onChange: () => void, onEnd: (error?: Error) => void): Promise<{ cancel(): void }>;
  close(): void;
}

function lister(endpoint: RuntimeEndpoint, timeoutMs: number): Lister {
  if (endpoint.api === 'docker') {
    const engine = parseEngineEndpoint(endpoint.url) as Exclude<ReturnType<typeof parseEngineEndpoint>, string>;
    return { endpoint, list: async () => parseContainerList(await getJson(engine, '/containers/json?all=1', timeoutMs)), close: () => undefined };
  }
  const client = new GrpcUnixClient(endpoint.socketPath, timeoutMs);
  if (endpoint.api === 'containerd') return { endpoint, list: () => listContainerd(client), watch: (onChange, onEnd) => watchContainerd(client, onChange, onEnd), close: () => client.close() };
  const cri = new CriLister(client);
  return { endpoint, list: () => cri.list(), close: () => client.close() };
}

/** Events closer together than this are read with one refresh. */
/** How long after a container event stream starts the lists are read once more (see watch()). */
const SUBSCRIBE_GAP_MS = 1000;
const EVENT_COALESCE_MS = 100;

interface Known {
  names: ContainerNames;
  lastSeenMs: number;
}

/** Container id → names, from every endpoint's list. */
export class ContainerDirectory {
  private readonly listers: Lister[];
  private known = new Map<string, Known>();
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  private lastRefreshMs = 0;
  private readonly failing = new Set<string>();
  private stopped = true;
  /** Per endpoint: whether its last list succeeded (absent endpoints are not here). */
  readonly reachable = new Map<string, boolean>();
  /** `endpoint\u0000reason` → failed lists (cumulative). */
  readonly errors = new Map<string, number>();
  private again = false;
  private soon?: NodeJS.Timeout;
  private readonly watches = new Map<Lister, { cancel(): void }>();
  private readonly rewatch = new Map<Lister, NodeJS.Timeout>();
  private readonly watchFailures = new Map<Lister, number>();
  /** Successful and failed list requests, container events received (tests, telemetry). */
  lists = 0;
  listFailures = 0;
  events = 0;

  constructor(
    private readonly config: ContainerConfig,
    private readonly logger?: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.listers = config.endpoints.map((e) => lister(parseRuntimeEndpoint(e) as RuntimeEndpoint, config.timeout));
  }

  get size(): number {
    return this.known.size;
  }

  async start(): Promise<void> {
    this.stopped = false;
    for (const l of this.listers) if (l.watch) void this.watch(l);
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.config.refresh_interval);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const t of this.rewatch.values()) clearTimeout(t);
    this.rewatch.clear();
    if (this.soon) clearTimeout(this.soon);
    this.soon = undefined;
    for (const w of this.watches.values()) w.cancel();
    this.watches.clear();
    await this.refreshing;
    for (const l of this.listers) l.close();
  }

  /**
   * Follow a runtime's container events: each change reads the lists again
   * at once, so a new container is named before its first flow is collected.
   * A stream that ends or cannot start is tried again later (and the lists
   * read, for what happened meanwhile).
   */
  private async watch(l: Lister): Promise<void> {
    const retry = (): void => {
      if (this.stopped || this.rewatch.has(l)) return;
      this.watches.delete(l);
      // 1 s, 2 s, 4 s, … up to refresh_interval while the stream keeps failing (an event resets it).
      const failures = (this.watchFailures.get(l) ?? 0) + 1;
      this.watchFailures.set(l, failures);
      const t = setTimeout(() => {
        this.rewatch.delete(l);
        if (this.stopped) return;
        void this.watch(l).then(() => this.watches.has(l) && this.refreshSoon());
      }, Math.min(this.config.refresh_interval, 1000 * 2 ** Math.min(failures - 1, 16)));
      t.unref();
      this.rewatch.set(l, t);
    };
    try {
      const w = await l.watch!(() => {
        this.events++;
        this.watchFailures.delete(l);
        this.refreshSoon();
      }, retry);
      if (this.stopped) w.cancel();
      else {
        this.watches.set(l, w);
        // The runtime subscribes us when our request reaches it, and gRPC
        // says nothing when that is: a container created meanwhile sends its
        // event to nobody. One more list a moment later covers that gap.
        const t = setTimeout(() => this.refreshSoon(), SUBSCRIBE_GAP_MS);
        t.unref();
      }
    } catch {
      retry();
    }
  }

  /**
   * A refresh in a moment (a burst of events — a pod's sandbox and containers
   * — is read once); if one is running then, another right after it (it may
   * have listed before the change).
   */
  private refreshSoon(): void {
    if (this.stopped || this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      if (this.stopped) return;
      if (this.refreshing) this.again = true;
      else void this.refresh();
    }, EVENT_COALESCE_MS);
    this.soon.unref();
  }

  /** The names of a container id, or undefined (and a refresh soon) when it is not known. */
  lookup(id: string): ContainerNames | undefined {
    const k = this.known.get(id);
    if (k) return k.names;
    if (!this.stopped && this.now() - this.lastRefreshMs >= 1000) void this.refresh();
    return undefined;
  }

  /** Read every endpoint's list now (one refresh at a time). */
  refresh(): Promise<void> {
    this.refreshing ??= this.readAll().finally(() => {
      this.refreshing = undefined;
      if (this.again) {
        this.again = false;
        this.refreshSoon();
      }
    });
    return this.refreshing;
  }

  private async readAll(): Promise<void> {
    this.lastRefreshMs = this.now();
    const lists = await Promise.all(
      this.listers.map(async (l) => {
        try {
          const list = await l.list();
          this.lists++;
          this.reachable.set(l.endpoint.url, true);
          this.logger?.debug({ endpoint: l.endpoint.url, containers: list.length }, 'container: runtime API listed its containers');
          if (this.failing.delete(l.endpoint.url)) this.logger?.info({ endpoint: l.endpoint.url }, 'container: runtime API answers again');
          return { api: l.endpoint.api, list };
        } catch (error) {
          this.listFailures++;
          this.reportFailure(l.endpoint, error);
          return undefined;
        }
      }),
    );
    const answered = lists.map((l) => l !== undefined);
    const seen = mergeLists(lists.filter((l) => l !== undefined));
    if (!answered.some(Boolean)) return; // nobody answered: keep what we knew
    const now = this.now();
    const next = new Map<string, Known>();
    for (const [id, names] of seen) {
      const old = this.known.get(id);
      // Same names: keep the same object, so cached flow attributes stay valid.
      next.set(id, { names: old && sameNames(old.names, names) ? old.names : names, lastSeenMs: now });
    }
    for (const [id, old] of this.known) if (!next.has(id) && now - old.lastSeenMs < this.config.retention) next.set(id, old);
    this.known = next;
  }

  private reportFailure(endpoint: RuntimeEndpoint, error: unknown): void {
    // No runtime here: not an error.
    if (isRuntimeAbsent(error)) {
      this.reachable.delete(endpoint.url);
      return;
    }
    this.reachable.set(endpoint.url, false);
    const key = `${endpoint.url}\u0000${failureReason(error)}`;
    this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
    if (this.failing.has(endpoint.url)) return;
    this.failing.add(endpoint.url);
    this.logger?.warn({ endpoint: endpoint.url, err: error }, 'container: runtime API request failed; containers it runs get no names until it answers');
  }
}

type MutableNames = { -readonly [K in keyof ContainerNames]: ContainerNames[K] };

/**
 * The lists of the endpoints that answered, in the configured order, as one
 * map: each name from the first list that has it; a containerd container
 * nobody names is named by its id.
 */
export function mergeLists(lists: ReadonlyArray<{ api: RuntimeEndpoint['api']; list: ContainerSummary[] }>): Map<string, ContainerNames> {
  const seen = new Map<string, MutableNames>();
  const idNamed = new Set<string>();
  for (const { api, list } of lists) {
    for (const c of list) {
      let names = seen.get(c.id);
      if (!names) seen.set(c.id, (names = {}));
      const image = c.image ? parseImageReference(c.image) : {};
      names['container.name'] ??= c.name;
      if (!names['container.image.name'] && image.name) {
        names['container.image.name'] = image.name;
        names['container.image.tag'] = image.tag;
      }
      if (api === 'containerd') idNamed.add(c.id);
    }
  }
  for (const [id, names] of seen) {
    if (names['container.name'] === undefined && idNamed.has(id)) names['container.name'] = id;
    for (const k of Object.keys(names) as Array<keyof MutableNames>) if (names[k] === undefined) delete names[k];
  }
  return seen;
}

function sameNames(a: ContainerNames, b: ContainerNames): boolean {
  return a['container.name'] === b['container.name'] && a['container.image.name'] === b['container.image.name'] && a['container.image.tag'] === b['container.image.tag'];
}

export class ContainerProcessor extends Enricher<ContainerNames> {
  readonly directory: ContainerDirectory;
  private readonly reportedErrors = new Map<string, number>();

  constructor(id: string, config: ContainerConfig, logger?: Logger) {
    super(id);
    this.directory = new ContainerDirectory(config, logger);
  }

  start(): Promise<void> {
    return this.directory.start();
  }

  shutdown(): Promise<void> {
    return this.directory.stop();
  }

  /** flowtel_container_*: per endpoint reachability and failed lists (as deltas), containers known. */
  protected override telemetry(): Measurement[] {
    const processor = this.id;
    const out: Measurement[] = [];
    for (const [endpoint, ok] of this.directory.reachable) out.push({ metric: 'flowtel_container_runtime_reachable', value: ok ? 1 : 0, attributes: { processor, endpoint } });
    for (const [key, total] of this.directory.errors) {
      const delta = total - (this.reportedErrors.get(key) ?? 0);
      if (delta <= 0) continue;
      this.reportedErrors.set(key, total);
      const [endpoint, reason] = key.split('\u0000') as [string, string];
      out.push({ metric: 'flowtel_container_runtime_errors', value: delta, attributes: { processor, endpoint, reason } });
    }
    out.push({ metric: 'flowtel_container_known', value: this.directory.size, attributes: { processor } });
    return out;
  }

  protected token(attributes: FlowAttributes): ContainerNames | undefined {
    const id = attributes['container.id'];
    return typeof id === 'string' ? this.directory.lookup(id) : undefined;
  }

  protected enrich(attributes: FlowAttributes, names: ContainerNames): FlowAttributes {
    return withAttributes(attributes, { ...names });
  }
}

export const containerProcessorFactory: ProcessorFactory<ContainerConfig> = {
  kind: 'processor',
  type: 'container',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: describeSchema(containerSchema),
  defaultConfig: () => validateContainerConfig(undefined, ''),
  validate: validateContainerConfig,
  create: (config, ctx) => new ContainerProcessor(ctx.id, config, ctx.logger),
};
