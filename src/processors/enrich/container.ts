/**
 * `container`: `container.id` (from the `process` processor, which must come
 * before it in the pipeline) → `container.name`, `container.image.name`,
 * `container.image.tag`, from the container engines' API: Docker's Engine API
 * and Podman's Docker-compatible API, over their unix sockets.
 *
 * Every `refresh_interval` (and soon after a flow names a container id not
 * seen yet, at most once per second) each endpoint is asked for its whole
 * container list (`GET /containers/json?all=1`): one request, whatever the
 * number of flows. An endpoint that is not there (no socket, connection
 * refused) is no error: its containers just get no names; other failures are
 * logged once until the endpoint answers again. A container that is gone from
 * the list keeps its names for `retention`, so the last flows of a stopped
 * container are still named.
 *
 * Not done: containerd's and CRI-O's own APIs are gRPC (containerd's API and
 * the CRI); containers of Kubernetes pods get their names from the `k8s`
 * processor instead (container.id → pod).
 */
import type { Logger } from 'pino';
import { ConfigError } from '../../config/errors';
import { childPath } from '../../config/location';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../../config/schema';
import type { ProcessorFactory } from '../../pipeline/component';
import type { FlowAttributes } from '../../pipeline/measurements';
import { throwIfErrors } from '../common';
import { getJson, parseContainerList, parseEngineEndpoint, parseImageReference, type EngineEndpoint } from './docker-api';
import { Enricher, withAttributes } from './enricher';

const containerSchema = {
  endpoints: {
    type: 'string[]',
    default: ['unix:///var/run/docker.sock', 'unix:///run/podman/podman.sock'],
    description: 'Docker Engine API endpoints to ask, in order (the first that knows a container names it): unix:///path/to/socket or http://host:port. Podman answers the same API on its docker-compatible socket. Endpoints that do not exist are skipped quietly.',
  },
  refresh_interval: { type: 'duration', default: '30s', minMs: 1000, description: 'How often the container list is read again (also soon after an unknown container id appears, at most once a second).' },
  timeout: { type: 'duration', default: '2s', description: 'Deadline of one request to an endpoint.' },
  retention: { type: 'duration', default: '10m', description: 'How long a container that is no longer listed (stopped and removed) keeps its names.' },
} as const satisfies Schema;

export type ContainerConfig = SchemaValue<typeof containerSchema>;

export function validateContainerConfig(raw: unknown, path: string): ContainerConfig {
  const c = validateObject(raw, path, containerSchema);
  const errors: ConfigError[] = [];
  c.endpoints.forEach((e, i) => {
    const p = parseEngineEndpoint(e);
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

interface Known {
  names: ContainerNames;
  lastSeenMs: number;
}

/** Container id → names, from every endpoint's list. */
export class ContainerDirectory {
  private readonly endpoints: EngineEndpoint[];
  private known = new Map<string, Known>();
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  private lastRefreshMs = 0;
  private readonly failing = new Set<string>();
  private stopped = true;
  /** Successful and failed list requests (tests, telemetry). */
  lists = 0;
  listFailures = 0;

  constructor(
    private readonly config: ContainerConfig,
    private readonly logger?: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.endpoints = config.endpoints.map((e) => parseEngineEndpoint(e) as EngineEndpoint);
  }

  get size(): number {
    return this.known.size;
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.config.refresh_interval);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.refreshing;
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
    this.refreshing ??= this.readAll().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async readAll(): Promise<void> {
    this.lastRefreshMs = this.now();
    const seen = new Map<string, ContainerNames>();
    const answered: boolean[] = await Promise.all(
      this.endpoints.map(async (endpoint) => {
        try {
          const list = parseContainerList(await getJson(endpoint, '/containers/json?all=1', this.config.timeout));
          this.lists++;
          if (this.failing.delete(endpoint.url)) this.logger?.info({ endpoint: endpoint.url }, 'container: engine API answers again');
          return list;
        } catch (error) {
          this.listFailures++;
          this.reportFailure(endpoint, error);
          return undefined;
        }
      }),
    ).then((lists) =>
      lists.map((list) => {
        if (!list) return false;
        for (const c of list) {
          if (seen.has(c.id)) continue;
          const image = c.image ? parseImageReference(c.image) : {};
          const names: { -readonly [K in keyof ContainerNames]: ContainerNames[K] } = {};
          if (c.name) names['container.name'] = c.name;
          if (image.name) names['container.image.name'] = image.name;
          if (image.tag) names['container.image.tag'] = image.tag;
          seen.set(c.id, names);
        }
        return true;
      }),
    );
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

  private reportFailure(endpoint: EngineEndpoint, error: unknown): void {
    const code = (error as NodeJS.ErrnoException).code;
    // No engine here: not an error.
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return;
    if (this.failing.has(endpoint.url)) return;
    this.failing.add(endpoint.url);
    this.logger?.warn({ endpoint: endpoint.url, err: error }, 'container: engine API request failed; containers it runs get no names until it answers');
  }
}

function sameNames(a: ContainerNames, b: ContainerNames): boolean {
  return a['container.name'] === b['container.name'] && a['container.image.name'] === b['container.image.name'] && a['container.image.tag'] === b['container.image.tag'];
}

export class ContainerProcessor extends Enricher<ContainerNames> {
  readonly directory: ContainerDirectory;

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
