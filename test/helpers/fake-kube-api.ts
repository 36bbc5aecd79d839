/**
 * A Kubernetes API server for tests, on 127.0.0.1: list and watch of pods,
 * services, endpointslices, nodes and replicasets with the API's JSON shapes
 * (`PodList` with `metadata.resourceVersion`, watch streams of
 * `{"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":…}` lines),
 * resourceVersions that only grow, the `spec.nodeName=` field selector on pods,
 * and the two ways a real server says a resourceVersion is too old: an ERROR
 * event carrying a `Status` with code 410 on an open watch (`expireWatches()`)
 * and on a watch opened from a compacted version (`compact()`).
 *
 *   const api = await FakeKubeApi.start();
 *   api.upsert('pods', podJson);        // ADDED, or MODIFIED if it exists
 *   api.remove('pods', 'ns', 'name');   // DELETED
 *   api.kubeconfig(dir)                 // a kubeconfig file pointing here
 *   await api.stop(); await api.restart(); // the same port again
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export type Resource = 'pods' | 'services' | 'endpointslices' | 'nodes' | 'replicasets';

const PATHS: Readonly<Record<string, Resource>> = {
  '/api/v1/pods': 'pods',
  '/api/v1/services': 'services',
  '/apis/discovery.k8s.io/v1/endpointslices': 'endpointslices',
  '/api/v1/nodes': 'nodes',
  '/apis/apps/v1/replicasets': 'replicasets',
};

const KINDS: Readonly<Record<Resource, { kind: string; apiVersion: string }>> = {
  pods: { kind: 'Pod', apiVersion: 'v1' },
  services: { kind: 'Service', apiVersion: 'v1' },
  endpointslices: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
  nodes: { kind: 'Node', apiVersion: 'v1' },
  replicasets: { kind: 'ReplicaSet', apiVersion: 'apps/v1' },
};

type Json = Record<string, unknown>;
interface Event {
  rv: number;
  resource: Resource;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Json;
}
interface Watcher {
  resource: Resource;
  node?: string;
  res: ServerResponse;
}

function meta(o: Json): Json {
  return o.metadata as Json;
}
function keyOf(o: Json): string {
  const m = meta(o);
  return `${(m.namespace as string | undefined) ?? ''}/${m.name as string}`;
}
function nodeOf(o: Json): string | undefined {
  return (o.spec as Json | undefined)?.nodeName as string | undefined;
}

export class FakeKubeApi {
  private rv = 100;
  /** Oldest resourceVersion a watch may start from. */
  private minRv = 0;
  private readonly objects = new Map<Resource, Map<string, Json>>();
  private readonly history: Event[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private server?: Server;
  /** Requests seen: `list pods`, `watch pods rv=123`, … */
  readonly requests: string[] = [];
  port = 0;

  static async start(): Promise<FakeKubeApi> {
    const api = new FakeKubeApi();
    await api.listen(0);
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Write a kubeconfig for this server into `dir`; returns its path. */
  kubeconfig(dir: string): string {
    const file = path.join(dir, `kubeconfig-${this.port}`);
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: fake',
        '  cluster:',
        `    server: ${this.url}`,
        // The client refuses plain HTTP unless told so.
        '    insecure-skip-tls-verify: true',
        'users:',
        '- name: tester',
        '  user:',
        '    token: test-token',
        'contexts:',
        '- name: fake',
        '  context:',
        '    cluster: fake',
        '    user: tester',
        'current-context: fake',
        '',
      ].join('\n'),
    );
    return file;
  }

  /** Add or replace an object (namespace/name from its metadata); returns its resourceVersion. */
  upsert(resource: Resource, object: Json): string {
    const items = this.items(resource);
    const existed = items.has(keyOf(object));
    const rv = String(++this.rv);
    const stored: Json = { ...KINDS[resource], ...object, metadata: { ...meta(object), resourceVersion: rv } };
    items.set(keyOf(object), stored);
    this.publish({ rv: this.rv, resource, type: existed ? 'MODIFIED' : 'ADDED', object: stored });
    return rv;
  }

  remove(resource: Resource, namespace: string | undefined, name: string): void {
    const items = this.items(resource);
    const key = `${namespace ?? ''}/${name}`;
    const old = items.get(key);
    if (!old) return;
    items.delete(key);
    const rv = String(++this.rv);
    this.publish({ rv: this.rv, resource, type: 'DELETED', object: { ...old, metadata: { ...meta(old), resourceVersion: rv } } });
  }

  /** Forget history: watches from an older resourceVersion get 410. */
  compact(): void {
    this.minRv = this.rv;
    this.history.length = 0;
  }

  /** Every open watch gets an ERROR event with a 410 Status and is closed (etcd compacted under it). */
  expireWatches(): void {
    this.compact();
    for (const w of [...this.watchers]) {
      this.send(w.res, { type: 'ERROR', object: gone(this.rv) });
      w.res.end();
      this.watchers.delete(w);
    }
  }

  /** Stop answering: close the listener and every connection (watches see their stream end). */
  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listen again on the same port, with the same objects. */
  restart(): Promise<void> {
    return this.listen(this.port);
  }

  watchCount(resource?: Resource): number {
    return [...this.watchers].filter((w) => resource === undefined || w.resource === resource).length;
  }

  private items(resource: Resource): Map<string, Json> {
    let m = this.objects.get(resource);
    if (!m) {
      m = new Map();
      this.objects.set(resource, m);
    }
    return m;
  }

  private publish(e: Event): void {
    this.history.push(e);
    for (const w of this.watchers) {
      if (w.resource !== e.resource) continue;
      if (w.node !== undefined && nodeOf(e.object) !== w.node) continue;
      this.send(w.res, { type: e.type, object: e.object });
    }
  }

  private send(res: ServerResponse, event: Json): void {
    res.write(`${JSON.stringify(event)}\n`);
  }

  private listen(port: number): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        this.port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const resource = PATHS[url.pathname];
    if (req.method !== 'GET' || !resource) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
      return;
    }
    const selector = url.searchParams.get('fieldSelector') ?? '';
    const m = /^spec\.nodeName=(.*)$/.exec(selector);
    const node = m ? m[1] : undefined;
    if (url.searchParams.get('watch') === 'true') {
      const from = Number(url.searchParams.get('resourceVersion') ?? '0');
      this.requests.push(`watch ${resource} rv=${from}${node ? ` node=${node}` : ''}`);
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      // As the API server does: the answer starts at once, events follow when they happen.
      res.flushHeaders();
      if (from < this.minRv) {
        this.send(res, { type: 'ERROR', object: gone(this.rv) });
        res.end();
        return;
      }
      for (const e of this.history) {
        if (e.rv <= from || e.resource !== resource || (node !== undefined && nodeOf(e.object) !== node)) continue;
        this.send(res, { type: e.type, object: e.object });
      }
      const w: Watcher = { resource, res, ...(node !== undefined ? { node } : {}) };
      this.watchers.add(w);
      res.on('close', () => this.watchers.delete(w));
      return;
    }
    this.requests.push(`list ${resource}${node ? ` node=${node}` : ''}`);
    const items = [...this.items(resource).values()].filter((o) => node === undefined || nodeOf(o) === node);
    const { kind, apiVersion } = KINDS[resource];
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: `${kind}List`, apiVersion, metadata: { resourceVersion: String(this.rv) }, items }));
  }
}

function gone(rv: number): Json {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `too old resource version: 1 (${rv})`,
    reason: 'Expired',
    code: 410,
  };
}

// ---------------------------------------------------------------------------
// Objects in the API's shapes

export interface PodSpec {
  namespace: string;
  name: string;
  uid: string;
  node: string;
  ip?: string;
  labels?: Record<string, string>;
  owner?: { kind: string; name: string };
  containerIds?: string[];
  hostNetwork?: boolean;
  phase?: string;
}

export function pod(p: PodSpec): Json {
  const ownerApi = p.owner?.kind === 'Job' ? 'batch/v1' : 'apps/v1';
  return {
    metadata: {
      name: p.name,
      namespace: p.namespace,
      uid: p.uid,
      creationTimestamp: '2026-11-21T06:00:00Z',
      labels: p.labels ?? {},
      ...(p.owner ? { ownerReferences: [{ apiVersion: ownerApi, kind: p.owner.kind, name: p.owner.name, uid: `uid-${p.owner.name}`, controller: true, blockOwnerDeletion: true }] } : {}),
    },
    spec: {
      nodeName: p.node,
      ...(p.hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'main', image: 'example/app:1.0' }],
    },
    status: {
      phase: p.phase ?? 'Running',
      hostIP: '10.201.51.250',
      ...(p.ip ? { podIP: p.ip, podIPs: [{ ip: p.ip }] } : {}),
      containerStatuses: (p.containerIds ?? []).map((id, i) => ({
        name: i === 0 ? 'main' : `c${i}`,
        containerID: `containerd://${id}`,
        image: 'docker.io/example/app:1.0',
        imageID: 'docker.io/example/app@sha256:0000000000000000000000000000000000000000000000000000000000000000',
        ready: true,
        restartCount: 0,
        started: true,
        state: { running: { startedAt: '2026-11-21T06:00:01Z' } },
      })),
    },
  };
}

export function service(namespace: string, name: string, clusterIp: string): Json {
  return {
    metadata: { name, namespace, uid: `uid-svc-${name}`, creationTimestamp: '2026-11-21T06:00:00Z' },
    spec: { type: 'ClusterIP', clusterIP: clusterIp, clusterIPs: [clusterIp], ipFamilies: ['IPv4'], ports: [{ name: 'main', port: 80, protocol: 'TCP', targetPort: 8080 }], selector: { app: name } },
    status: { loadBalancer: {} },
  };
}

export function endpointSlice(namespace: string, serviceName: string, endpoints: Array<{ ip: string; pod: string; uid: string; node: string }>): Json {
  return {
    metadata: {
      name: `${serviceName}-abcde`,
      namespace,
      uid: `uid-eps-${serviceName}`,
      labels: { 'kubernetes.io/service-name': serviceName, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: serviceName, uid: `uid-svc-${serviceName}`, controller: true, blockOwnerDeletion: true }],
    },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: e.node,
      targetRef: { kind: 'Pod', namespace, name: e.pod, uid: e.uid },
    })),
    ports: [{ name: 'main', port: 8080, protocol: 'TCP' }],
  };
}

export function node(name: string, internalIp: string, zone?: string): Json {
  return {
    metadata: { name, uid: `uid-node-${name}`, labels: { 'kubernetes.io/hostname': name, ...(zone ? { 'topology.kubernetes.io/zone': zone } : {}) } },
    spec: {},
    status: { addresses: [{ type: 'InternalIP', address: internalIp }, { type: 'Hostname', address: name }] },
  };
}

export function replicaSet(namespace: string, name: string, deployment: string): Json {
  return {
    metadata: {
      name,
      namespace,
      uid: `uid-${name}`,
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment, uid: `uid-${deployment}`, controller: true, blockOwnerDeletion: true }],
    },
    spec: { replicas: 1, selector: { matchLabels: { app: deployment } } },
    status: { replicas: 1 },
  };
}
