/**
 * The official Kubernetes JavaScript client (@kubernetes/client-node, the 1.x
 * line: 2.x needs Node 22) behind the reflector's ResourceClient: paged lists
 * with the generated API classes, watches with its Watch. The package is an
 * ES module loaded on first use, so an agent without a `k8s` processor never
 * loads it.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type * as K8s from '@kubernetes/client-node';
import type { ResourceClient, WatchHandle } from './reflector';

export type AuthType = 'serviceAccount' | 'kubeConfig';

export interface ConnectionOptions {
  readonly authType: AuthType;
  /** kubeConfig: the file (default $KUBECONFIG, else ~/.kube/config). */
  readonly kubeconfig?: string;
  readonly context?: string;
  /** Deadline of one list request. */
  readonly requestTimeoutMs: number;
  readonly env?: NodeJS.ProcessEnv;
}

const TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** The kubeconfig file `options` mean, for kubeConfig auth. */
export function kubeconfigPath(options: Pick<ConnectionOptions, 'kubeconfig' | 'env'>): string {
  const env = options.env ?? process.env;
  return options.kubeconfig ?? env.KUBECONFIG?.split(path.delimiter)[0] ?? path.join(homedir(), '.kube', 'config');
}

/** A KubeConfig for `options`, or an Error that says what is missing. */
export async function loadKubeConfig(options: ConnectionOptions): Promise<K8s.KubeConfig> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  const env = options.env ?? process.env;
  if (options.authType === 'serviceAccount') {
    if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) {
      throw new Error('k8s: auth_type serviceAccount, but KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set (not running in a pod?); use auth_type: kubeConfig outside a cluster');
    }
    if (!existsSync(TOKEN_FILE)) throw new Error(`k8s: auth_type serviceAccount, but there is no service account token at ${TOKEN_FILE} (automountServiceAccountToken off?)`);
    kc.loadFromCluster();
  } else {
    const file = kubeconfigPath(options);
    if (!existsSync(file)) throw new Error(`k8s: auth_type kubeConfig, but the kubeconfig file ${file} does not exist (set kubeconfig or KUBECONFIG)`);
    kc.loadFromFile(file);
    if (options.context) {
      if (!kc.getContexts().some((c) => c.name === options.context)) throw new Error(`k8s: context "${options.context}" is not in ${file}`);
      kc.setCurrentContext(options.context);
    }
  }
  if (!kc.getCurrentCluster()) throw new Error('k8s: the kubeconfig names no current cluster');
  return kc;
}

interface Page {
  items: readonly unknown[];
  metadata?: { resourceVersion?: string; _continue?: string };
}

/**
 * `p`, or a rejection after `ms` or when `signal` aborts — whichever comes
 * first. A value that arrives too late is handed to `late` (to close it).
 */
function bounded<T>(p: Promise<T>, ms: number, what: string, signal: AbortSignal | undefined, late?: (value: T) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      return true;
    };
    const onAbort = (): void => {
      if (finish()) reject(Object.assign(new Error(`${what}: stopped`), { name: 'AbortError' }));
    };
    const timer = setTimeout(() => {
      if (finish()) reject(Object.assign(new Error(`${what}: no answer within ${ms} ms`), { code: 'ETIMEDOUT' }));
    }, ms);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        if (finish()) resolve(v);
        else late?.(v);
      },
      (e: unknown) => {
        if (finish()) reject(e);
      },
    );
  });
}

export type ResourceName = 'pods' | 'services' | 'endpointslices' | 'nodes' | 'replicasets';

/** The watch path of each resource, and its list call. */
export async function resourceClients(kc: K8s.KubeConfig, options: ConnectionOptions, podFieldSelector: string | undefined): Promise<Record<ResourceName, ResourceClient>> {
  const k8s = await import('@kubernetes/client-node');
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
  const watch = new k8s.Watch(kc);
  const limit = 500;

  const make = (watchPath: string, listPage: (cont: string | undefined) => Promise<Page>, fieldSelector?: string): ResourceClient => ({
    async list(signal) {
      const items: unknown[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      do {
        const page = await bounded(listPage(cont), options.requestTimeoutMs, `list ${watchPath}`, signal);
        items.push(...page.items);
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        cont = page.metadata?._continue || undefined;
      } while (cont);
      return { items, resourceVersion };
    },
    async watch(resourceVersion, onEvent, signal): Promise<WatchHandle> {
      let settle!: { resolve: () => void; reject: (e: unknown) => void };
      const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      // Handled by whoever awaits it; a watch abandoned before it opened (stopped, timed out) ends unheard.
      done.catch(() => undefined);
      // Watches end on the server's side after 5 to 10 minutes (as client-go's do) and are opened again.
      const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
      const query: Record<string, string | number | boolean> = { resourceVersion, allowWatchBookmarks: true, timeoutSeconds };
      if (fieldSelector) query.fieldSelector = fieldSelector;
      // The answer's headers must come within the request timeout (a hung server must not hold the reflector).
      const controller = await bounded(
        watch.watch(
          watchPath,
          query,
          (type: string, object: unknown) => onEvent(type, object),
          (err: unknown) => (err ? settle.reject(err) : settle.resolve()),
        ),
        options.requestTimeoutMs,
        `watch ${watchPath}`,
        signal,
        (late) => late.abort(),
      );
      return { done, abort: () => controller.abort() };
    },
  });

  return {
    pods: make('/api/v1/pods', (cont) => core.listPodForAllNamespaces({ fieldSelector: podFieldSelector, limit, _continue: cont }) as Promise<Page>, podFieldSelector),
    services: make('/api/v1/services', (cont) => core.listServiceForAllNamespaces({ limit, _continue: cont }) as Promise<Page>),
    endpointslices: make('/apis/discovery.k8s.io/v1/endpointslices', (cont) => discovery.listEndpointSliceForAllNamespaces({ limit, _continue: cont }) as Promise<Page>),
    nodes: make('/api/v1/nodes', (cont) => core.listNode({ limit, _continue: cont }) as Promise<Page>),
    replicasets: make('/apis/apps/v1/replicasets', (cont) => apps.listReplicaSetForAllNamespaces({ limit, _continue: cont }) as Promise<Page>),
  };
}
