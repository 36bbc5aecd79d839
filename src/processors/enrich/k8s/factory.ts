/**
 * `k8s`: Kubernetes names for both ends of every flow, like the Collector's
 * k8sattributes processor but for the two ends of a connection. Attributes
 * of the local end get the prefix `source.`, of the remote end
 * `destination.`: `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`,
 * `k8s.node.name`, the pod's controller (`k8s.replicaset.name` and
 * `k8s.deployment.name`, `k8s.statefulset.name`, `k8s.daemonset.name`,
 * `k8s.job.name`), `k8s.service.name` (the address is a service's ClusterIP,
 * or a backend of a service), and `k8s.pod.label.<key>` for the labels in
 * `pod_labels`. See ./metadata.ts for how an address is matched and
 * ./cluster.ts for what is watched.
 *
 * Start-up does not wait for the API server unless `wait_for_metadata`:
 * flows collected before the first lists arrive carry no names. When the API
 * server cannot be reached, the last known metadata stays in use, the
 * reflectors retry with backoff, and the outage shows in
 * flowtel_k8s_api_reachable / flowtel_k8s_api_errors.
 */
import type { Logger } from 'pino';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../../../config/schema';
import type { ProcessorFactory } from '../../../pipeline/component';
import type { FlowAttributes, Measurement } from '../../../pipeline/measurements';
import { Enricher } from '../enricher';
import type { AuthType } from './client';
import { acquireCluster, releaseCluster, type ClusterMetadata } from './cluster';
import type { K8sAttributes } from './metadata';
import { StatusReporter } from './status';

const k8sSchema = {
  auth_type: {
    type: 'enum',
    values: ['serviceAccount', 'kubeConfig'],
    default: 'serviceAccount',
    description: "How to reach the API server: serviceAccount (in a pod: KUBERNETES_SERVICE_HOST and the mounted service account token) or kubeConfig (a kubeconfig file). Needs get/list/watch on pods, services, nodes, replicasets (apps) and endpointslices (discovery.k8s.io).",
  },
  kubeconfig: { type: 'string', docDefault: '$KUBECONFIG, else ~/.kube/config', description: 'The kubeconfig file, with auth_type: kubeConfig.' },
  context: { type: 'string', description: "The kubeconfig context to use (default: the file's current context)." },
  node_from_env_var: {
    type: 'string',
    default: 'KUBE_NODE_NAME',
    description: "Environment variable holding this node's name (on a DaemonSet, from the downward API: fieldRef spec.nodeName). When set, only pods of this node are local ends of flows; unset, any pod can be.",
  },
  remote_pods: {
    type: 'boolean',
    default: true,
    description: "Watch every pod of the cluster, so a remote address is named as the pod it belongs to wherever it runs. false: watch only this node's pods (spec.nodeName field selector; much less API traffic on big clusters) and name remote pods only when they back a service (from EndpointSlices: pod name, uid, namespace, node and service, no controller or labels).",
  },
  pod_labels: { type: 'string[]', default: [], description: 'Pod labels to add as k8s.pod.label.<key> (e.g. app, team), on both ends.' },
  wait_for_metadata: { type: 'boolean', default: false, description: 'Start the pipeline only once every resource was listed (at most wait_for_metadata_timeout), so the first collections are named too.' },
  wait_for_metadata_timeout: { type: 'duration', default: '10s', description: 'The longest start-up waits for the first lists with wait_for_metadata.' },
  request_timeout: { type: 'duration', default: '30s', description: 'Deadline of one list request to the API server.' },
} as const satisfies Schema;

export type K8sConfig = SchemaValue<typeof k8sSchema>;

export function validateK8sConfig(raw: unknown, path: string): K8sConfig {
  return validateObject(raw, path, k8sSchema);
}

/** The attributes of one end, prefixed. */
function prefixed(prefix: string, attributes: K8sAttributes | undefined, into: Record<string, string>): void {
  if (!attributes) return;
  for (const [k, v] of Object.entries(attributes)) into[`${prefix}${k}`] = v;
}

export class K8sProcessor extends Enricher<number> {
  private cluster?: ClusterMetadata;
  private reporter?: StatusReporter;

  constructor(
    id: string,
    readonly config: K8sConfig,
    private readonly logger?: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    super(id);
  }

  /** This node's name, from node_from_env_var. */
  get node(): string | undefined {
    const v = this.env[this.config.node_from_env_var]?.trim();
    return v ? v : undefined;
  }

  async start(): Promise<void> {
    const c = this.config;
    this.cluster = acquireCluster(
      {
        connection: { authType: c.auth_type as AuthType, kubeconfig: c.kubeconfig, context: c.context, requestTimeoutMs: c.request_timeout, env: this.env },
        node: this.node,
        remotePods: c.remote_pods,
        podLabels: c.pod_labels,
      },
      this.logger,
    );
    this.reporter = new StatusReporter(this.cluster.status, this.id);
    try {
      await this.cluster.start();
    } catch (error) {
      await releaseCluster(this.cluster);
      this.cluster = undefined;
      throw error;
    }
    if (c.wait_for_metadata && !(await this.cluster.waitForSync(c.wait_for_metadata_timeout))) {
      this.logger?.warn(`k8s: not every resource was listed within ${c.wait_for_metadata_timeout} ms; starting without (names appear once it is)`);
    }
  }

  async shutdown(): Promise<void> {
    const cluster = this.cluster;
    this.cluster = undefined;
    if (cluster) await releaseCluster(cluster);
  }

  protected override beginBatch(): void {
    this.cluster?.refresh();
  }

  protected token(): number | undefined {
    return this.cluster?.index.generation;
  }

  protected enrich(attributes: FlowAttributes): FlowAttributes {
    const index = this.cluster!.index;
    const src = attributes['source.address'];
    const dst = attributes['destination.address'];
    const container = attributes['container.id'];
    const extra: Record<string, string> = {};
    prefixed('source.', index.local(typeof src === 'string' ? src : undefined, typeof container === 'string' ? container : undefined), extra);
    // A flow to a loopback address stays on this host: its remote end is the same pod or node.
    if (attributes['flow.direction'] !== 'local') prefixed('destination.', index.remote(typeof dst === 'string' ? dst : undefined), extra);
    if (Object.keys(extra).length === 0) return attributes;
    return { ...attributes, ...extra };
  }

  protected override telemetry(): Measurement[] {
    if (!this.cluster || !this.reporter) return [];
    return this.reporter.measurements(this.cluster.objectCounts());
  }
}

export const k8sProcessorFactory: ProcessorFactory<K8sConfig> = {
  kind: 'processor',
  type: 'k8s',
  stability: 'development',
  signals: ['metrics', 'logs'],
  options: describeSchema(k8sSchema),
  defaultConfig: () => validateK8sConfig(undefined, ''),
  validate: validateK8sConfig,
  create: (config, ctx) => new K8sProcessor(ctx.id, config, ctx.logger),
};
