/** Agent health: flowtel's own telemetry (flowtel_*). */
import type { DashboardSpec, Requirement } from '../grafana';
import { AGENT, AGENT_KEY, AGENT_VARIABLES, L, RATE } from '../labels';

const HEALTHY_EMPTY: Requirement = {
  feature: 'occurrence',
  reason: 'the series exists only once something was lost; a healthy run (the test) loses nothing',
};
const K8S_PROCESSOR: Requirement = {
  feature: 'k8s',
  reason: 'flowtel_k8s_* exist only when the k8s processor runs (in a cluster)',
};
const DUPLICATES: Requirement = {
  feature: 'occurrence',
  reason: 'the series exists only once a DNS packet was captured twice (loopback, both ends of a veth pair, a bridge); the test captures one namespace',
};

export const agentHealth: DashboardSpec = {
  uid: 'flowtel-agent-health',
  title: 'flowtel / Agent health',
  description: 'Is flowtel itself well: events lost in the kernel, export failures and queue, memory, CPU, event-loop delay, collection time.',
  tags: ['flowtel', 'agent'],
  variables: AGENT_VARIABLES,
  rows: [
    {
      row: 'Agents',
      panels: [
        { title: 'Agents up', type: 'stat', unit: 'short', width: 6, height: 5, description: 'Agents reporting (one series of flowtel_process_uptime per agent).', queries: [{ expr: `count(flowtel_process_uptime_total{${AGENT}})`, legend: 'agents' }] },
        { title: 'Memory (RSS)', type: 'timeseries', unit: 'bytes', width: 9, description: 'Resident set size and V8 heap in use per agent.', queries: [{ expr: `max by (${AGENT_KEY}) (flowtel_process_memory_rss{${AGENT}})`, legend: 'rss {{instance}}' }, { expr: `max by (${AGENT_KEY}) (flowtel_process_heap_used{${AGENT}})`, legend: 'heap {{instance}}' }] },
        { title: 'CPU', type: 'timeseries', unit: 'percentunit', width: 9, description: 'CPU used by each agent (user + system), as a share of one core.', queries: [{ expr: `sum by (${AGENT_KEY}) (rate(flowtel_process_cpu_seconds_total{${AGENT}}[${RATE}]))`, legend: '{{instance}}' }] },
      ],
    },
    {
      row: 'Kernel side',
      panels: [
        { title: 'Events lost in the kernel', type: 'timeseries', unit: 'short', description: 'What the eBPF side could not deliver or track, per second, by reason: ringbuf_full (raise ring_buffer_size), udp_map_full, storage_alloc_failed, program_recursion; and DNS packets dropped by a full capture ring.', queries: [{ expr: `sum by (${AGENT_KEY}, ${L.reason}) (rate(flowtel_ebpf_dropped_total{${AGENT}}[${RATE}]))`, legend: '{{instance}} {{reason}}', requires: HEALTHY_EMPTY }, { expr: `sum by (${AGENT_KEY}) (rate(flowtel_dns_capture_drops_total{${AGENT}}[${RATE}]))`, legend: '{{instance}} dns capture', requires: HEALTHY_EMPTY }] },
        { title: 'Records from the kernel', type: 'timeseries', unit: 'short', description: 'Connection records per second: event (ring buffer), snapshot (full socket-walk records) and alive (short walk records of idle connections).', queries: [{ expr: `sum by (${AGENT_KEY}, kind) (rate(flowtel_ebpf_records_total{${AGENT}}[${RATE}]))`, legend: '{{instance}} {{kind}}' }] },
        { title: 'Tracked connections', type: 'timeseries', unit: 'short', description: 'TCP connections the agent holds counters for.', queries: [{ expr: `sum by (${AGENT_KEY}) (flowtel_tracked_connections{${AGENT}})`, legend: '{{instance}}' }] },
        { title: 'Collection time', type: 'timeseries', unit: 'µs', description: '99th percentile time of one collection (ring-buffer drain, socket walk, UDP map read, deltas).', queries: [{ expr: `histogram_quantile(0.99, sum by (le, ${AGENT_KEY}) (rate(flowtel_collection_duration_us_bucket{${AGENT}}[${RATE}])))`, legend: 'p99 {{instance}}' }] },
        { title: 'DNS capture', type: 'timeseries', unit: 'pps', description: 'Packets the DNS socket filter passed, and duplicates counted once (a packet seen on both ends of a veth, on loopback, …).', queries: [{ expr: `sum by (${AGENT_KEY}) (rate(flowtel_dns_capture_packets_total{${AGENT}}[${RATE}]))`, legend: 'captured {{instance}}' }, { expr: `sum by (${AGENT_KEY}) (rate(flowtel_dns_duplicates_total{${AGENT}}[${RATE}]))`, legend: 'duplicates {{instance}}', requires: DUPLICATES }] },
        { title: 'Kubernetes API', type: 'timeseries', unit: 'short', requires: K8S_PROCESSOR, description: 'The k8s processor\'s view of the API server: 1 while reachable (the last known metadata is used during an outage), and failed lists and watches per second by resource and reason (http_403: RBAC).', queries: [{ expr: `min by (${AGENT_KEY}) (flowtel_k8s_api_reachable{${AGENT}})`, legend: 'reachable {{instance}}' }, { expr: `sum by (${AGENT_KEY}, resource, ${L.reason}) (rate(flowtel_k8s_api_errors_total{${AGENT}}[${RATE}]))`, legend: 'errors {{instance}} {{resource}} {{reason}}' }] },
        { title: 'Collections failed', type: 'timeseries', unit: 'short', description: 'Failed collections per second by receiver (nothing was sent for them).', queries: [{ expr: `sum by (${AGENT_KEY}, ${L.receiver}) (rate(flowtel_receiver_failed_collections_total{${AGENT}}[${RATE}]))`, legend: '{{instance}} {{receiver}}' }] },
      ],
    },
    {
      row: 'Pipeline and export',
      panels: [
        { title: 'Measurements accepted', type: 'timeseries', unit: 'short', description: 'Measurements per second each receiver sent down its pipelines.', queries: [{ expr: `sum by (${AGENT_KEY}, ${L.receiver}) (rate(flowtel_receiver_accepted_measurements_total{${AGENT}}[${RATE}]))`, legend: '{{instance}} {{receiver}}' }] },
        { title: 'Export requests', type: 'timeseries', unit: 'reqps', description: 'Export attempts per second that succeeded and that failed (backend down, rejected, timed out; every failed retry counts), by exporter.', queries: [{ expr: `sum by (${AGENT_KEY}, ${L.exporter}) (rate(flowtel_exporter_sent_requests_total{${AGENT}}[${RATE}]))`, legend: 'ok {{instance}} {{exporter}}' }, { expr: `sum by (${AGENT_KEY}, ${L.exporter}) (rate(flowtel_exporter_send_failed_requests_total{${AGENT}}[${RATE}]))`, legend: 'failed {{instance}} {{exporter}}' }] },
        { title: 'Batches lost', type: 'timeseries', unit: 'short', description: 'Batches given up (retries exhausted, permanent error) or dropped unsent (queue full) per second: lost data.', queries: [{ expr: `sum by (${AGENT_KEY}, ${L.exporter}) (rate(flowtel_exporter_send_failed_batches_total{${AGENT}}[${RATE}]))`, legend: 'failed {{instance}} {{exporter}}' }, { expr: `sum by (${AGENT_KEY}, ${L.exporter}) (rate(flowtel_exporter_dropped_batches_total{${AGENT}}[${RATE}]))`, legend: 'dropped {{instance}} {{exporter}}' }] },
        { title: 'Sending queue', type: 'timeseries', unit: 'short', description: 'Batches held in each exporter\'s sending queue; a queue that grows means the backend is slower than the agent.', queries: [{ expr: `max by (${AGENT_KEY}, ${L.exporter}) (flowtel_exporter_queue_size{${AGENT}})`, legend: '{{instance}} {{exporter}}' }] },
        { title: 'Event-loop delay', type: 'timeseries', unit: 's', description: 'Node.js event-loop delay over the last 10 s window (p50, p99): a delay here delays ring-buffer draining and collections.', queries: [{ expr: `max by (${AGENT_KEY}, ${L.quantile}) (flowtel_event_loop_delay{${AGENT}})`, legend: '{{instance}} q{{quantile}}' }] },
        { title: 'Retries', type: 'timeseries', unit: 'short', description: 'Export attempts after the first, per second, by exporter.', queries: [{ expr: `sum by (${AGENT_KEY}, ${L.exporter}) (rate(flowtel_exporter_retries_total{${AGENT}}[${RATE}]))`, legend: '{{instance}} {{exporter}}' }] },
      ],
    },
  ],
};
