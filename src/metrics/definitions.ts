/**
 * Every metric flowtel emits: name (kept exactly as users asked for them),
 * instrument kind, unit and meaning. docs/metrics.md documents the same list.
 */

export type InstrumentKind = 'counter' | 'histogram' | 'gauge';

export interface MetricDefinition {
  readonly name: string;
  readonly kind: InstrumentKind;
  readonly unit: string;
  readonly description: string;
  /** Histogram bucket boundaries. */
  readonly buckets?: readonly number[];
}

/** 10 µs to 10 s, roughly ×2 (with 2.5×/2× steps to stay on round numbers). */
export const LATENCY_BUCKETS_US: readonly number[] = [
  10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
  1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

const defs: MetricDefinition[] = [
  { name: 'tcp_bytes_sent', kind: 'counter', unit: 'By', description: 'TCP payload bytes sent from source to destination (new data, retransmissions not counted twice).' },
  { name: 'tcp_bytes_received', kind: 'counter', unit: 'By', description: 'TCP payload bytes received by source from destination.' },
  { name: 'tcp_segments_sent', kind: 'counter', unit: '{segment}', description: 'TCP segments sent, as the kernel counts them (tcp_sock.segs_out: data, control and retransmitted segments).' },
  { name: 'tcp_segments_received', kind: 'counter', unit: '{segment}', description: 'TCP segments received (tcp_sock.segs_in).' },
  { name: 'tcp_retransmits', kind: 'counter', unit: '{segment}', description: 'TCP segments retransmitted (tcp_sock.total_retrans).' },
  { name: 'tcp_rtt_us', kind: 'histogram', unit: 'us', description: "Smoothed round-trip time of each connection, sampled once per collection interval and at close.", buckets: LATENCY_BUCKETS_US },
  { name: 'tcp_rtt_var_us', kind: 'histogram', unit: 'us', description: 'RTT variance (jitter) of each connection, sampled like tcp_rtt_us.', buckets: LATENCY_BUCKETS_US },
  { name: 'tcp_connections', kind: 'gauge', unit: '{connection}', description: 'TCP connections open at the last collection, by network.connection.state.' },
  { name: 'tcp_connections_opened', kind: 'counter', unit: '{connection}', description: 'TCP connections established (both directions).' },
  { name: 'tcp_connections_closed', kind: 'counter', unit: '{connection}', description: 'Established TCP connections that closed (normally or not).' },
  { name: 'tcp_connection_failures', kind: 'counter', unit: '{connection}', description: 'Connection attempts that failed and established connections that were reset or timed out, by error.type.' },
  { name: 'tcp_connect_latency_us', kind: 'histogram', unit: 'us', description: 'Client-side handshake time: SYN sent to connection established.', buckets: LATENCY_BUCKETS_US },
  { name: 'udp_bytes_sent', kind: 'counter', unit: 'By', description: 'UDP payload bytes sent from source to destination.' },
  { name: 'udp_bytes_received', kind: 'counter', unit: 'By', description: 'UDP payload bytes received by source from destination.' },
  { name: 'udp_datagrams_sent', kind: 'counter', unit: '{datagram}', description: 'UDP datagrams sent.' },
  { name: 'udp_datagrams_received', kind: 'counter', unit: '{datagram}', description: 'UDP datagrams received.' },
  // Self-telemetry of the kernel side.
  { name: 'flowtel_ebpf_records', kind: 'counter', unit: '{record}', description: 'Connection records from the kernel, by kind: event (open/close/failed, written to the ring buffer), snapshot (a full record read by a socket walk) or alive (a short walk record: a connection idle since its last full one).' },
  { name: 'flowtel_ebpf_dropped', kind: 'counter', unit: '{event}', description: 'What the kernel side could not deliver or track, by reason: ringbuf_full, storage_alloc_failed, udp_map_full, listener_map_full, program_recursion.' },
  { name: 'flowtel_ebpf_recovered', kind: 'counter', unit: '{event}', description: 'TCP connection changes the kernel ran no program for, made up in user space, by reason: close_unseen (a tracked socket gone from two walks is counted closed), open_unseen (a socket closing with no per-socket state after the start-up sweep is counted opened), failure_unseen (a connect last seen in SYN_SENT whose end left no record is counted as a failure of error.type unknown).' },
  { name: 'flowtel_ebpf_filtered', kind: 'counter', unit: '{connection}', description: 'Connections the in-kernel filter excluded at their start (never reported, cost nothing more).' },
  { name: 'flowtel_tracked_connections', kind: 'gauge', unit: '{connection}', description: 'TCP connections the agent holds counters for.' },
  { name: 'flowtel_collection_duration_us', kind: 'histogram', unit: 'us', description: 'Time one collection took (ring buffer drain, iter/tcp walk, UDP map read, deltas).', buckets: LATENCY_BUCKETS_US },
  { name: 'flowtel_processor_refused_measurements', kind: 'counter', unit: '{measurement}', description: 'Flow measurements a processor refused, by processor: the memory_limiter above its soft limit.' },
  // Self-telemetry of the agent (src/telemetry/self-telemetry.ts): observed when read, never sent through a pipeline.
  { name: 'flowtel_receiver_accepted_measurements', kind: 'counter', unit: '{measurement}', description: 'Measurements in the batches a receiver sent down its pipelines, by receiver.' },
  { name: 'flowtel_receiver_failed_collections', kind: 'counter', unit: '{collection}', description: 'Collections of a receiver that failed (nothing was sent), by receiver.' },
  { name: 'flowtel_exporter_sent_batches', kind: 'counter', unit: '{batch}', description: 'Batches (one per collection) an exporter delivered, by exporter (exporters with a sending queue).' },
  { name: 'flowtel_exporter_send_failed_batches', kind: 'counter', unit: '{batch}', description: 'Batches an exporter gave up on: a permanent error or retries exhausted, by exporter (exporters with a sending queue).' },
  { name: 'flowtel_exporter_dropped_batches', kind: 'counter', unit: '{batch}', description: 'Batches an exporter discarded unsent (queue full, or still queued at shutdown), by exporter (exporters with a sending queue).' },
  { name: 'flowtel_exporter_retries', kind: 'counter', unit: '{retry}', description: 'Export attempts after the first, by exporter (exporters that retry).' },
  { name: 'flowtel_exporter_queue_size', kind: 'gauge', unit: '{batch}', description: "Batches held in an exporter's sending queue (waiting, backing off or in flight), by exporter." },
  { name: 'flowtel_exporter_sent_requests', kind: 'counter', unit: '{request}', description: 'Export attempts that succeeded, by exporter (push exporters: otlp).' },
  { name: 'flowtel_exporter_send_failed_requests', kind: 'counter', unit: '{request}', description: 'Export attempts that failed (backend down, rejected, timed out; each failed retry counts), by exporter (push exporters: otlp).' },
  { name: 'flowtel_receiver_accepted_log_records', kind: 'counter', unit: '{record}', description: 'Log records a receiver handed to its logs pipelines, by receiver.' },
  { name: 'flowtel_receiver_refused_log_records', kind: 'counter', unit: '{record}', description: "Log records of a receiver that a logs pipeline's memory_limiter refused (once per pipeline), by receiver." },
  { name: 'flowtel_receiver_dropped_log_records', kind: 'counter', unit: '{record}', description: "Log records of a receiver that a logs pipeline's processors dropped on purpose (filter; once per pipeline), by receiver." },
  { name: 'flowtel_exporter_sent_log_records', kind: 'counter', unit: '{record}', description: 'Log records an exporter delivered, by exporter (exporters with a sending queue).' },
  { name: 'flowtel_exporter_send_failed_log_records', kind: 'counter', unit: '{record}', description: 'Log records an exporter gave up on (permanent error, retries exhausted), by exporter.' },
  { name: 'flowtel_exporter_dropped_log_records', kind: 'counter', unit: '{record}', description: 'Log records an exporter discarded unsent (queue full, or still queued at shutdown), by exporter.' },
  { name: 'flowtel_exporter_log_queue_size', kind: 'gauge', unit: '{batch}', description: "Batches of log records held in an exporter's logs sending queue (and its buffer), by exporter." },
  { name: 'flowtel_processor_batch_sent_batches', kind: 'counter', unit: '{batch}', description: 'Batches of log records a batch processor handed on, by processor, pipeline and trigger (size, timeout, shutdown).' },
  { name: 'flowtel_processor_batch_sent_log_records', kind: 'counter', unit: '{record}', description: 'Log records a batch processor handed on, by processor and pipeline.' },
  { name: 'flowtel_processor_batch_held_log_records', kind: 'gauge', unit: '{record}', description: 'Log records a batch processor holds now, by processor and pipeline.' },
  { name: 'flowtel_process_memory_rss', kind: 'gauge', unit: 'By', description: 'Resident set size of the agent process.' },
  { name: 'flowtel_process_heap_used', kind: 'gauge', unit: 'By', description: 'V8 heap in use by the agent (process.memoryUsage().heapUsed).' },
  { name: 'flowtel_process_cpu_seconds', kind: 'counter', unit: 's', description: 'CPU time the agent process used, user and system.' },
  { name: 'flowtel_process_uptime', kind: 'counter', unit: 's', description: 'Seconds since the agent process started.' },
  { name: 'flowtel_event_loop_delay', kind: 'gauge', unit: 's', description: 'Node.js event-loop delay (perf_hooks.monitorEventLoopDelay) over the last 10 s window, by quantile (0.5, 0.99; detailed: also 0.9 and 1 = max).' },
];

const registry = new Map<string, MetricDefinition>(defs.map((d) => [d.name, d]));

/** Every metric flowtel can emit (receivers with configurable metric sets register theirs). */
export const METRICS: ReadonlyMap<string, MetricDefinition> = registry;

/** Add a metric whose name depends on configuration (e.g. a netstat counter). Same name twice must mean the same thing. */
export function registerMetric(def: MetricDefinition): void {
  const old = registry.get(def.name);
  if (old && (old.kind !== def.kind || old.unit !== def.unit)) throw new Error(`metric ${def.name} registered twice with different kinds or units`);
  if (!old) registry.set(def.name, def);
}

export function metricDefinition(name: string): MetricDefinition {
  const d = METRICS.get(name);
  if (!d) throw new Error(`unknown metric ${name}`);
  return d;
}
