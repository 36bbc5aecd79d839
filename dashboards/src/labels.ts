/**
 * Prometheus names of the metrics and labels the dashboards query, in one
 * place. They are the OTLP names of docs/metrics.md put through the naming
 * both paths share (docs/deploy.md, "Names that line up"): `.` → `_`,
 * `_total` on monotonic counters, no unit suffix; histograms as
 * `_bucket`/`_sum`/`_count`.
 *
 * The Kubernetes, cloud and cross-AZ names are the ones the enrichment
 * processors add (docs/metrics.md): `source.`/`destination.` prefixes on the
 * k8s.* and cloud.* semantic-convention attributes, `network.io.direction` on
 * network_cross_az_*; `k8s.cluster.name` is a resource attribute, a label
 * with `resource_to_telemetry_conversion`.
 */
import type { Requirement, VariableSpec } from './grafana';

export const L = {
  cluster: 'k8s_cluster_name',
  host: 'host_name',
  process: 'process_executable_name',
  pid: 'process_pid',
  srcAddr: 'source_address',
  srcPort: 'source_port',
  dstAddr: 'destination_address',
  dstPort: 'destination_port',
  direction: 'flow_direction',
  transport: 'network_transport',
  state: 'network_connection_state',
  errorType: 'error_type',
  srcNamespace: 'source_k8s_namespace_name',
  dstNamespace: 'destination_k8s_namespace_name',
  srcService: 'source_k8s_service_name',
  dstService: 'destination_k8s_service_name',
  srcPod: 'source_k8s_pod_name',
  dstPod: 'destination_k8s_pod_name',
  dstDomain: 'destination_domain',
  ioDirection: 'network_io_direction',
  srcZone: 'source_cloud_availability_zone',
  dstZone: 'destination_cloud_availability_zone',
  dnsName: 'dns_question_name',
  dnsType: 'dns_question_type',
  dnsCode: 'dns_response_code',
  dnsServer: 'server_address',
  receiver: 'receiver',
  exporter: 'exporter',
  reason: 'reason',
  quantile: 'quantile',
} as const;

export const M = {
  tcpBytesSent: 'tcp_bytes_sent_total',
  tcpBytesReceived: 'tcp_bytes_received_total',
  tcpSegmentsSent: 'tcp_segments_sent_total',
  tcpRetransmits: 'tcp_retransmits_total',
  tcpRtt: 'tcp_rtt_us',
  tcpRttVar: 'tcp_rtt_var_us',
  tcpConnections: 'tcp_connections',
  tcpOpened: 'tcp_connections_opened_total',
  tcpClosed: 'tcp_connections_closed_total',
  tcpFailures: 'tcp_connection_failures_total',
  tcpConnectLatency: 'tcp_connect_latency_us',
  udpBytesSent: 'udp_bytes_sent_total',
  udpBytesReceived: 'udp_bytes_received_total',
  dnsQueries: 'dns_queries_total',
  dnsResponses: 'dns_responses_total',
  dnsTimeouts: 'dns_timeouts_total',
  dnsLatency: 'dns_latency_us',
  crossAzBytes: 'network_cross_az_bytes_total',
  crossAzCost: 'network_cross_az_cost_usd_total',
} as const;

export const K8S: Requirement = {
  feature: 'k8s',
  reason: 'needs the k8s processor (source/destination k8s.* attributes); without it the grouping labels are empty',
};
export const CLOUD: Requirement = {
  feature: 'cloud',
  reason: 'needs the cloud and zone processors (source.cloud.availability_zone, destination.cloud.availability_zone); without them the grouping labels are empty',
};
export const CROSS_AZ: Requirement = {
  feature: 'cross_az',
  reason: 'network_cross_az_bytes / network_cross_az_cost_usd exist only where both zones of a flow are known (cloud + k8s or a subnet table)',
};

/** Flow dashboards: cluster → namespace → service, then host and process (which work without Kubernetes). */
export const FLOW_VARIABLES: readonly VariableSpec[] = [
  { name: 'cluster', label: 'Cluster', labelName: L.cluster, metric: M.tcpOpened, description: 'k8s.cluster.name (resource attribute). All also matches series without it.' },
  { name: 'namespace', label: 'Namespace', labelName: L.srcNamespace, metric: M.tcpOpened, matchers: `${L.cluster}=~"$cluster"`, description: 'Kubernetes namespace of the local end (source.k8s.namespace.name).' },
  { name: 'service', label: 'Service', labelName: L.srcService, metric: M.tcpOpened, matchers: `${L.cluster}=~"$cluster", ${L.srcNamespace}=~"$namespace"`, description: 'Kubernetes service of the local end (source.k8s.service.name).' },
  { name: 'host', label: 'Host', labelName: L.host, metric: M.tcpOpened, matchers: `${L.cluster}=~"$cluster"`, description: 'host.name of the agent (resource attribute).' },
  { name: 'process', label: 'Process', labelName: L.process, metric: M.tcpOpened, matchers: `${L.cluster}=~"$cluster", ${L.host}=~"$host"`, description: 'process.executable.name of the local end.' },
];

/** The matchers every flow query carries. */
export const FLOW = `${L.cluster}=~"$cluster", ${L.srcNamespace}=~"$namespace", ${L.srcService}=~"$service", ${L.host}=~"$host", ${L.process}=~"$process"`;

/** DNS metrics carry no process yet: cluster and host only (namespace/service match series without them). */
export const DNS_VARIABLES: readonly VariableSpec[] = [
  { name: 'cluster', label: 'Cluster', labelName: L.cluster, metric: M.dnsQueries, description: 'k8s.cluster.name (resource attribute). All also matches series without it.' },
  { name: 'namespace', label: 'Namespace', labelName: L.srcNamespace, metric: M.dnsQueries, matchers: `${L.cluster}=~"$cluster"`, description: 'Kubernetes namespace of the querying pod (source.k8s.namespace.name), when DNS queries are attributed.' },
  { name: 'service', label: 'Service', labelName: L.srcService, metric: M.dnsQueries, matchers: `${L.cluster}=~"$cluster", ${L.srcNamespace}=~"$namespace"`, description: 'Kubernetes service of the querying pod, when DNS queries are attributed.' },
  { name: 'host', label: 'Host', labelName: L.host, metric: M.dnsQueries, matchers: `${L.cluster}=~"$cluster"`, description: 'host.name of the agent (resource attribute).' },
  { name: 'server', label: 'DNS server', labelName: L.dnsServer, metric: M.dnsQueries, matchers: `${L.cluster}=~"$cluster", ${L.host}=~"$host"`, description: 'server.address: the DNS server queried.' },
];

export const DNS = `${L.cluster}=~"$cluster", ${L.srcNamespace}=~"$namespace", ${L.srcService}=~"$service", ${L.host}=~"$host", ${L.dnsServer}=~"$server"`;

/**
 * Agent health: cluster → namespace → service → agent. The agent's own
 * metrics are scraped from the agent itself on both paths (its `prometheus`
 * exporter, or its self-telemetry endpoint `service.telemetry.metrics.address`,
 * which carries no resource labels), so an agent is Prometheus' `instance`.
 */
export const AGENT_KEY = 'instance';

export const AGENT_VARIABLES: readonly VariableSpec[] = [
  { name: 'cluster', label: 'Cluster', labelName: L.cluster, metric: 'flowtel_process_memory_rss', description: 'k8s.cluster.name (resource attribute, on the agent\'s own endpoint with resource_to_telemetry_conversion). All also matches series without it.' },
  { name: 'namespace', label: 'Namespace', labelName: 'k8s_namespace_name', metric: 'flowtel_process_memory_rss', matchers: `${L.cluster}=~"$cluster"`, description: 'Namespace the agent runs in (k8s.namespace.name resource attribute, or a relabelled scrape label).' },
  { name: 'service', label: 'Service', labelName: 'service_name', metric: 'flowtel_process_memory_rss', matchers: `${L.cluster}=~"$cluster"`, description: 'service.name of the agent (default flowtel; OTEL_SERVICE_NAME), where resource attributes are labels.' },
  { name: 'agent', label: 'Agent', labelName: AGENT_KEY, metric: 'flowtel_process_memory_rss', matchers: `${L.cluster}=~"$cluster", k8s_namespace_name=~"$namespace", service_name=~"$service"`, description: 'The scrape target of each agent (its :9464 or self-telemetry :9465 endpoint).' },
];

export const AGENT = `${L.cluster}=~"$cluster", k8s_namespace_name=~"$namespace", service_name=~"$service", ${AGENT_KEY}=~"$agent"`;

export const RATE = '$__rate_interval';
export const RANGE = '$__range';

/**
 * `sum by (labels)` of `fn(metric)` over several metrics. Prometheus 2 refuses
 * `rate({__name__=~"a|b"})` when a and b share label sets (rate drops the
 * name), so each metric is aggregated on its own, tagged, and summed.
 */
export function sumAcross(metrics: readonly string[], by: readonly string[], fn: (metric: string) => string): string {
  const group = by.length ? ` by (${by.join(', ')})` : '';
  if (metrics.length === 1) return `sum${group} (${fn(metrics[0]!)})`;
  const parts = metrics.map((m) => `label_replace(sum${by.length ? ` by (${by.join(', ')})` : ''} (${fn(m)}), "__metric", "${m}", "", "")`);
  return `sum${group} (${parts.join(' or ')})`;
}
