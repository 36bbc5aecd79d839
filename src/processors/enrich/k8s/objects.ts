/**
 * The parts of Kubernetes objects the `k8s` processor keeps, taken from the
 * API's JSON (watch events) or the client's deserialized list items (same
 * field names). Everything else of an object is dropped at once, so a
 * cluster's pods cost a few hundred bytes each, not their whole spec.
 * Objects that lack what makes them usable (a name, a uid) give undefined.
 */

export interface PodRecord {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly node?: string;
  readonly hostNetwork: boolean;
  readonly ips: readonly string[];
  /** Container ids without the runtime prefix (`containerd://`, `docker://`, `cri-o://`). */
  readonly containerIds: readonly string[];
  /** Pending, Running, Succeeded, Failed, Unknown. */
  readonly phase?: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The controller owner (ownerReferences with controller: true). */
  readonly owner?: { readonly kind: string; readonly name: string };
  /** The label pod-template-hash: a ReplicaSet is named `<deployment>-<hash>`. */
  readonly templateHash?: string;
}

export interface ServiceRecord {
  readonly namespace: string;
  readonly name: string;
  /** spec.clusterIPs (or clusterIP), without "None". */
  readonly clusterIps: readonly string[];
}

export interface EndpointRecord {
  readonly ip: string;
  readonly node?: string;
  readonly pod?: { readonly namespace: string; readonly name: string; readonly uid?: string };
}

export interface EndpointSliceRecord {
  readonly namespace: string;
  readonly name: string;
  /** The label kubernetes.io/service-name. */
  readonly service?: string;
  readonly endpoints: readonly EndpointRecord[];
}

export interface NodeRecord {
  readonly name: string;
  readonly addresses: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
}

export interface ReplicaSetRecord {
  readonly namespace: string;
  readonly name: string;
  /** The Deployment that owns it. */
  readonly deployment?: string;
}

type Json = Record<string, unknown>;

function obj(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}
function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function stringMap(v: unknown, keep?: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  const o = obj(v);
  if (!o) return out;
  for (const [k, x] of Object.entries(o)) if (typeof x === 'string' && (!keep || keep.has(k))) out[k] = x;
  return out;
}

export function metadataOf(o: unknown): { name?: string; namespace?: string; uid?: string; resourceVersion?: string } {
  const m = obj(obj(o)?.metadata);
  return { name: str(m?.name), namespace: str(m?.namespace), uid: str(m?.uid), resourceVersion: str(m?.resourceVersion) };
}

function controllerOf(metadata: Json | undefined): { kind: string; name: string } | undefined {
  for (const r of arr(metadata?.ownerReferences)) {
    const ref = obj(r);
    if (ref?.controller === true && str(ref.kind) && str(ref.name)) return { kind: ref.kind as string, name: ref.name as string };
  }
  return undefined;
}

/** `containerd://abc…` → `abc…`. */
export function stripRuntimePrefix(containerId: string): string {
  const i = containerId.indexOf('://');
  return i >= 0 ? containerId.slice(i + 3) : containerId;
}

export function toPod(o: unknown, keepLabels: ReadonlySet<string>): PodRecord | undefined {
  const m = obj(obj(o)?.metadata);
  const spec = obj(obj(o)?.spec);
  const status = obj(obj(o)?.status);
  const uid = str(m?.uid);
  const name = str(m?.name);
  const namespace = str(m?.namespace);
  if (!uid || !name || !namespace) return undefined;
  const ips = new Set<string>();
  for (const p of arr(status?.podIPs)) {
    const ip = str(obj(p)?.ip);
    if (ip) ips.add(ip);
  }
  const podIp = str(status?.podIP);
  if (podIp) ips.add(podIp);
  const containerIds: string[] = [];
  for (const list of [status?.containerStatuses, status?.initContainerStatuses, status?.ephemeralContainerStatuses]) {
    for (const c of arr(list)) {
      const id = str(obj(c)?.containerID);
      if (id) containerIds.push(stripRuntimePrefix(id));
    }
  }
  const pod: { -readonly [K in keyof PodRecord]: PodRecord[K] } = {
    uid,
    namespace,
    name,
    hostNetwork: spec?.hostNetwork === true,
    ips: [...ips],
    containerIds,
    labels: stringMap(m?.labels, keepLabels),
  };
  const node = str(spec?.nodeName);
  if (node) pod.node = node;
  const phase = str(status?.phase);
  if (phase) pod.phase = phase;
  const owner = controllerOf(m);
  if (owner) pod.owner = owner;
  // The template hash names a ReplicaSet's Deployment even before the ReplicaSet is known.
  const hash = str(obj(m?.labels)?.['pod-template-hash']);
  if (hash) pod.templateHash = hash;
  return pod;
}

export function toService(o: unknown): ServiceRecord | undefined {
  const { name, namespace } = metadataOf(o);
  if (!name || !namespace) return undefined;
  const spec = obj(obj(o)?.spec);
  const ips = new Set<string>();
  for (const ip of arr(spec?.clusterIPs)) if (str(ip) && ip !== 'None') ips.add(ip as string);
  const one = str(spec?.clusterIP);
  if (one && one !== 'None') ips.add(one);
  return { namespace, name, clusterIps: [...ips] };
}

export function toEndpointSlice(o: unknown): EndpointSliceRecord | undefined {
  const m = obj(obj(o)?.metadata);
  const name = str(m?.name);
  const namespace = str(m?.namespace);
  if (!name || !namespace) return undefined;
  const endpoints: EndpointRecord[] = [];
  for (const e of arr(obj(o)?.endpoints)) {
    const ep = obj(e);
    const ref = obj(ep?.targetRef);
    const pod =
      ref && ref.kind === 'Pod' && str(ref.name)
        ? { namespace: str(ref.namespace) ?? namespace, name: ref.name as string, ...(str(ref.uid) ? { uid: ref.uid as string } : {}) }
        : undefined;
    const node = str(ep?.nodeName);
    for (const a of arr(ep?.addresses)) {
      const ip = str(a);
      if (!ip) continue;
      endpoints.push({ ip, ...(node ? { node } : {}), ...(pod ? { pod } : {}) });
    }
  }
  const service = str(obj(m?.labels)?.['kubernetes.io/service-name']);
  return service ? { namespace, name, service, endpoints } : { namespace, name, endpoints };
}

export function toNode(o: unknown, keepLabels: ReadonlySet<string>): NodeRecord | undefined {
  const m = obj(obj(o)?.metadata);
  const name = str(m?.name);
  if (!name) return undefined;
  const addresses: string[] = [];
  for (const a of arr(obj(obj(o)?.status)?.addresses)) {
    const address = obj(a);
    // InternalIP and ExternalIP; Hostname and InternalDNS are names, not addresses.
    if ((address?.type === 'InternalIP' || address?.type === 'ExternalIP') && str(address.address)) addresses.push(address.address as string);
  }
  return { name, addresses, labels: stringMap(m?.labels, keepLabels) };
}

export function toReplicaSet(o: unknown): ReplicaSetRecord | undefined {
  const m = obj(obj(o)?.metadata);
  const name = str(m?.name);
  const namespace = str(m?.namespace);
  if (!name || !namespace) return undefined;
  const owner = controllerOf(m);
  return owner?.kind === 'Deployment' ? { namespace, name, deployment: owner.name } : { namespace, name };
}
