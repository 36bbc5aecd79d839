/**
 * One connection to the API server shared by every `k8s` processor instance
 * with the same connection settings (each pipeline has its own instance of a
 * processor; they should not each watch the cluster). Counted references:
 * the last instance to shut down stops the watches.
 *
 * What is watched:
 * - pods: cluster-wide when `remote_pods` (remote addresses are named as
 *   pods wherever they run; local ends are still only this node's pods), or
 *   only this node's (`spec.nodeName=<node>`) when `remote_pods` is false;
 * - services, EndpointSlices (discovery.k8s.io/v1), nodes, ReplicaSets:
 *   cluster-wide.
 *
 * While it runs it answers the `zone` processor's "which zone is this
 * address in?" (netenrich/zone-source.ts): the topology.kubernetes.io/zone
 * and region labels of the node the address's pod runs on (or of the node
 * whose address it is).
 */
import type { Logger } from 'pino';
import { loadKubeConfig, resourceClients, type ConnectionOptions, type ResourceName } from './client';
import { MetadataIndex } from './metadata';
import { toEndpointSlice, toNode, toPod, toReplicaSet, toService, metadataOf, type EndpointSliceRecord, type NodeRecord, type PodRecord, type ReplicaSetRecord, type ServiceRecord } from './objects';
import { Reflector, type ResourceClient } from './reflector';
import { ApiStatus } from './status';
import { zoneSources, type AddressZone } from '../../netenrich/zone-source';

export interface ClusterOptions {
  readonly connection: ConnectionOptions;
  /** This node's name (KUBE_NODE_NAME on a DaemonSet), if known. */
  readonly node?: string;
  readonly remotePods: boolean;
  readonly podLabels: readonly string[];
  /** Reflector retry pauses (tests shorten them). */
  readonly backoff?: { minMs: number; maxMs: number };
}

/** The node labels kept (for zone lookups). */
const NODE_LABELS: ReadonlySet<string> = new Set(['topology.kubernetes.io/zone', 'topology.kubernetes.io/region']);

function keyed<R>(convert: (o: unknown) => R | undefined, key: (o: unknown) => string | undefined): (o: unknown) => { key: string; record: R | undefined } | undefined {
  return (o) => {
    const k = key(o);
    return k === undefined ? undefined : { key: k, record: convert(o) };
  };
}
const nsName = (o: unknown): string | undefined => {
  const m = metadataOf(o);
  return m.name && m.namespace ? `${m.namespace}/${m.name}` : undefined;
};

export class ClusterMetadata {
  readonly status: ApiStatus;
  readonly index: MetadataIndex;
  private reflectors: Reflector<unknown>[] = [];
  private readonly sources = {
    pods: new Map<string, PodRecord>(),
    services: new Map<string, ServiceRecord>(),
    endpointSlices: new Map<string, EndpointSliceRecord>(),
    nodes: new Map<string, NodeRecord>(),
    replicaSets: new Map<string, ReplicaSetRecord>(),
  };
  private started?: Promise<void>;
  private unregisterZones?: () => void;
  private zoneGeneration = -1;

  constructor(
    readonly options: ClusterOptions,
    private readonly logger?: Logger,
    /** Resource clients (tests); default: the Kubernetes client for `options.connection`. */
    private readonly clients?: Record<ResourceName, ResourceClient>,
  ) {
    this.status = new ApiStatus(logger);
    this.index = new MetadataIndex(this.sources, { node: options.node, podLabels: options.podLabels });
  }

  /** Objects held, by resource. */
  objectCounts(): Map<string, number> {
    return new Map(this.reflectors.map((r) => [r.resource, r.items.size]));
  }

  start(): Promise<void> {
    this.started ??= this.doStart();
    return this.started;
  }

  private async doStart(): Promise<void> {
    const o = this.options;
    const podSelector = o.node !== undefined && !o.remotePods ? `spec.nodeName=${o.node}` : undefined;
    const clients = this.clients ?? (await resourceClients(await loadKubeConfig(o.connection), o.connection, podSelector));
    const labels = new Set(o.podLabels);
    const changed = (): void => this.index.invalidate();
    const reflector = <R>(resource: ResourceName, target: Map<string, R>, convert: (o: unknown) => { key: string; record: R | undefined } | undefined): Reflector<R> => {
      return new Reflector<R>(resource, clients[resource], convert, this.status, changed, o.backoff, target);
    };
    this.reflectors = [
      reflector('pods', this.sources.pods, keyed((x) => toPod(x, labels), (x) => metadataOf(x).uid)),
      reflector('services', this.sources.services, keyed(toService, nsName)),
      reflector('endpointslices', this.sources.endpointSlices, keyed(toEndpointSlice, nsName)),
      reflector('nodes', this.sources.nodes, keyed((x) => toNode(x, NODE_LABELS), (x) => metadataOf(x).name)),
      reflector('replicasets', this.sources.replicaSets, keyed(toReplicaSet, nsName)),
    ] as Reflector<unknown>[];
    for (const r of this.reflectors) r.start();
    this.unregisterZones = zoneSources.register({ name: 'k8s', zoneOf: (address) => this.zoneOf(address) });
    this.logger?.info({ node: o.node ?? null, remote_pods: o.remotePods, pod_selector: podSelector ?? null }, 'k8s: watching the API server');
  }

  /** Rebuild the indexes if something changed (once per batch); zone caches are told. */
  refresh(): void {
    this.index.refresh();
    if (this.index.generation === this.zoneGeneration) return;
    if (this.zoneGeneration >= 0) zoneSources.changed();
    this.zoneGeneration = this.index.generation;
  }

  /** The zone and region of the node an address's pod runs on, or of the node it is. */
  zoneOf(address: string): AddressZone | undefined {
    this.refresh();
    const node = this.index.remote(address)?.['k8s.node.name'];
    if (!node) return undefined;
    const zone = this.index.nodeZone(node);
    const region = this.index.nodeRegion(node);
    if (zone === undefined && region === undefined) return undefined;
    return { ...(zone !== undefined ? { availabilityZone: zone } : {}), ...(region !== undefined ? { region } : {}) };
  }

  /** Wait until every resource was listed once, at most `timeoutMs`; false on timeout. */
  async waitForSync(timeoutMs: number): Promise<boolean> {
    await this.started;
    const results = await Promise.all(this.reflectors.map((r) => r.waitForSync(timeoutMs)));
    return results.every(Boolean);
  }

  async stop(): Promise<void> {
    await this.started?.catch(() => undefined);
    this.unregisterZones?.();
    this.unregisterZones = undefined;
    await Promise.all(this.reflectors.map((r) => r.stop()));
  }
}

/** Shared instances by connection settings. */
const shared = new Map<string, { cluster: ClusterMetadata; refs: number }>();

export function acquireCluster(options: ClusterOptions, logger?: Logger): ClusterMetadata {
  const key = JSON.stringify({ ...options, connection: { ...options.connection, env: undefined } });
  let entry = shared.get(key);
  if (!entry) {
    entry = { cluster: new ClusterMetadata(options, logger), refs: 0 };
    shared.set(key, entry);
  }
  entry.refs++;
  return entry.cluster;
}

export async function releaseCluster(cluster: ClusterMetadata): Promise<void> {
  for (const [key, entry] of shared) {
    if (entry.cluster !== cluster) continue;
    if (--entry.refs > 0) return;
    shared.delete(key);
    await cluster.stop();
    return;
  }
}
