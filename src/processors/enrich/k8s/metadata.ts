/**
 * The cluster as the `k8s` processor knows it: pods, services,
 * EndpointSlices, nodes and ReplicaSets kept by reflectors, and the indexes
 * that answer "who is this address / this container":
 *
 * - local end (the flow's source): container.id → a pod of this node; else
 *   the source address → a pod of this node (not hostNetwork); else → a node;
 * - remote end (destination): a service's ClusterIP → that service; else a
 *   pod IP → the pod (cluster-wide when `remote_pods`); else an EndpointSlice
 *   address → its service and the pod it names; else a node address → node.
 *
 * Indexes are rebuilt at most once per batch, when something changed
 * (`refresh()`); `generation` changes when they do.
 */
import type { PodRecord, EndpointSliceRecord, NodeRecord, ReplicaSetRecord, ServiceRecord } from './objects';

export type K8sAttributes = Readonly<Record<string, string>>;

export interface MetadataSources {
  readonly pods: ReadonlyMap<string, PodRecord>;
  readonly services: ReadonlyMap<string, ServiceRecord>;
  readonly endpointSlices: ReadonlyMap<string, EndpointSliceRecord>;
  readonly nodes: ReadonlyMap<string, NodeRecord>;
  readonly replicaSets: ReadonlyMap<string, ReplicaSetRecord>;
}

export interface IndexOptions {
  /** This node's name: local ends are only pods of this node. */
  readonly node?: string;
  /** Pod labels to report, as k8s.pod.label.<key>. */
  readonly podLabels: readonly string[];
}

const TERMINAL = new Set(['Succeeded', 'Failed']);

export class MetadataIndex {
  generation = 0;
  private dirty = true;
  private podByIp = new Map<string, K8sAttributes>();
  private localPodByIp = new Map<string, K8sAttributes>();
  private localPodByContainer = new Map<string, K8sAttributes>();
  private serviceByClusterIp = new Map<string, K8sAttributes>();
  private backendByIp = new Map<string, K8sAttributes>();
  private nodeByIp = new Map<string, K8sAttributes>();
  private nodeZones = new Map<string, string>();
  private nodeRegions = new Map<string, string>();

  constructor(
    private readonly sources: MetadataSources,
    private readonly options: IndexOptions,
  ) {}

  /** Something in the sources changed. */
  invalidate(): void {
    this.dirty = true;
  }

  /** Rebuild the indexes if the sources changed since the last call. */
  refresh(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.rebuild();
    this.generation++;
  }

  /** Attributes (unprefixed) of the local end. */
  local(address: string | undefined, containerId: string | undefined): K8sAttributes | undefined {
    if (containerId) {
      const p = this.localPodByContainer.get(containerId);
      if (p) return p;
    }
    if (!address) return undefined;
    return this.localPodByIp.get(address) ?? this.nodeByIp.get(address);
  }

  /** Attributes (unprefixed) of the remote end. */
  remote(address: string | undefined): K8sAttributes | undefined {
    if (!address) return undefined;
    return this.serviceByClusterIp.get(address) ?? this.podByIp.get(address) ?? this.backendByIp.get(address) ?? this.nodeByIp.get(address);
  }

  /** The zone label (topology.kubernetes.io/zone) of a node, for zone-aware processors. */
  nodeZone(node: string): string | undefined {
    return this.nodeZones.get(node);
  }

  /** The region label (topology.kubernetes.io/region) of a node. */
  nodeRegion(node: string): string | undefined {
    return this.nodeRegions.get(node);
  }

  private rebuild(): void {
    const { pods, services, endpointSlices, nodes, replicaSets } = this.sources;
    // Service of each backend address (the alphabetically first when several select it).
    const serviceOfBackend = new Map<string, { namespace: string; name: string }>();
    const backendByIp = new Map<string, K8sAttributes>();
    for (const slice of endpointSlices.values()) {
      if (!slice.service) continue;
      for (const e of slice.endpoints) {
        const prev = serviceOfBackend.get(e.ip);
        if (prev && prev.name <= slice.service) continue;
        serviceOfBackend.set(e.ip, { namespace: slice.namespace, name: slice.service });
        const a: Record<string, string> = { 'k8s.namespace.name': slice.namespace, 'k8s.service.name': slice.service };
        if (e.pod) {
          a['k8s.pod.name'] = e.pod.name;
          if (e.pod.uid) a['k8s.pod.uid'] = e.pod.uid;
        }
        if (e.node) a['k8s.node.name'] = e.node;
        backendByIp.set(e.ip, a);
      }
    }
    const podByIp = new Map<string, K8sAttributes>();
    const localPodByIp = new Map<string, K8sAttributes>();
    const localPodByContainer = new Map<string, K8sAttributes>();
    const running = new Set<string>();
    for (const pod of pods.values()) {
      if (TERMINAL.has(pod.phase ?? '')) continue;
      const service = pod.hostNetwork ? undefined : pod.ips.map((ip) => serviceOfBackend.get(ip)).find((s) => s !== undefined);
      const attributes = this.podAttributes(pod, replicaSets, service?.name);
      const local = this.options.node === undefined || pod.node === this.options.node;
      if (local) for (const id of pod.containerIds) localPodByContainer.set(id, attributes);
      if (pod.hostNetwork) continue; // its address is the node's
      for (const ip of pod.ips) {
        // Two pods with one address: the running one wins over a pending one.
        if (podByIp.has(ip) && running.has(ip) && pod.phase !== 'Running') continue;
        if (pod.phase === 'Running') running.add(ip);
        podByIp.set(ip, attributes);
        if (local) localPodByIp.set(ip, attributes);
      }
    }
    const serviceByClusterIp = new Map<string, K8sAttributes>();
    for (const s of services.values()) {
      for (const ip of s.clusterIps) serviceByClusterIp.set(ip, { 'k8s.namespace.name': s.namespace, 'k8s.service.name': s.name });
    }
    const nodeByIp = new Map<string, K8sAttributes>();
    const nodeZones = new Map<string, string>();
    const nodeRegions = new Map<string, string>();
    for (const n of nodes.values()) {
      for (const ip of n.addresses) nodeByIp.set(ip, { 'k8s.node.name': n.name });
      const zone = n.labels['topology.kubernetes.io/zone'];
      if (zone) nodeZones.set(n.name, zone);
      const region = n.labels['topology.kubernetes.io/region'];
      if (region) nodeRegions.set(n.name, region);
    }
    this.podByIp = podByIp;
    this.localPodByIp = localPodByIp;
    this.localPodByContainer = localPodByContainer;
    this.serviceByClusterIp = serviceByClusterIp;
    this.backendByIp = backendByIp;
    this.nodeByIp = nodeByIp;
    this.nodeZones = nodeZones;
    this.nodeRegions = nodeRegions;
  }

  private podAttributes(pod: PodRecord, replicaSets: ReadonlyMap<string, ReplicaSetRecord>, service: string | undefined): K8sAttributes {
    const a: Record<string, string> = {
      'k8s.namespace.name': pod.namespace,
      'k8s.pod.name': pod.name,
      'k8s.pod.uid': pod.uid,
    };
    if (pod.node) a['k8s.node.name'] = pod.node;
    const owner = pod.owner;
    switch (owner?.kind) {
      case 'ReplicaSet': {
        a['k8s.replicaset.name'] = owner.name;
        const rs = replicaSets.get(`${pod.namespace}/${owner.name}`);
        const deployment =
          rs?.deployment ??
          // Not listed yet (or no ReplicaSet watch): a Deployment's ReplicaSet is `<deployment>-<pod-template-hash>`.
          (rs === undefined && pod.templateHash && owner.name.endsWith(`-${pod.templateHash}`) ? owner.name.slice(0, -pod.templateHash.length - 1) : undefined);
        if (deployment) a['k8s.deployment.name'] = deployment;
        break;
      }
      case 'StatefulSet':
        a['k8s.statefulset.name'] = owner.name;
        break;
      case 'DaemonSet':
        a['k8s.daemonset.name'] = owner.name;
        break;
      case 'Job':
        a['k8s.job.name'] = owner.name;
        break;
      default:
        break;
    }
    if (service) a['k8s.service.name'] = service;
    for (const key of this.options.podLabels) {
      const v = pod.labels[key];
      if (v !== undefined) a[`k8s.pod.label.${key}`] = v;
    }
    return a;
  }
}
