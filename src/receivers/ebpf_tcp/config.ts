import { validateObject, describeSchema, type Schema, type SchemaValue } from '../../config/schema';

export const ebpfTcpSchema = {
  collection_interval: { type: 'duration', default: '10s', minMs: 100, description: 'How often open connections are read (a BPF iterator walk) and the deltas since the last collection are sent down the pipelines.' },
  udp: { type: 'boolean', default: true, description: 'Count UDP bytes and datagrams per flow (cgroup_skb programs on the cgroup v2 root).' },
  include_ephemeral_ports: { type: 'boolean', default: false, description: "Keep the client's ephemeral port as an attribute: one series per connection instead of per server." },
  ring_buffer_size: { type: 'number', default: 2 * 1024 * 1024, min: 4096, integer: true, description: "Bytes of the kernel ring buffer that carries open/close events (a power of two; 160 bytes an event). The agent's reader thread empties it whatever the rest of the agent is doing, so it only has to hold what arrives between two reads (at most 50 ms). Mapped twice into the agent, it counts twice in its RSS." },
  wakeup_batch: { type: 'number', default: 4096, min: 1, integer: true, description: 'Wake the agent when this many events are waiting (it also drains every 50 ms, and before each collection). A wake-up is an interrupt raised from inside the kernel program: few of them keep the per-connection cost low under churn. Above the ring buffer\'s capacity (ring_buffer_size / 160), only the 50 ms drain remains.' },
  max_udp_flows: { type: 'number', default: 65536, min: 1, integer: true, description: 'Capacity of the kernel UDP flow map; flows beyond it are counted in flowtel_ebpf_dropped{reason="udp_map_full"}.' },
  disabled_hooks: { type: 'string[]', default: [], description: 'Tracepoints not to attach (e.g. sock_send_length); their metrics are off, as on a kernel without them.' },
  connection_events: {
    type: 'object',
    description:
      'Log records (when the receiver is in a logs pipeline), one per connection at most: flowtel.tcp.connection_failed (WARN) and flowtel.tcp.connection_closed (INFO), with the flow\'s attributes and both ports, timestamped with the kernel\'s time of the event. See docs/metrics.md, "Log records".',
    schema: {
      failures: {
        type: 'boolean',
        default: true,
        description: 'A record per failed connection: an attempt refused, timed out or reset during the handshake, or an established connection ended by a reset or a timeout (error.type, network.connection.state before the close).',
      },
      closed: {
        type: 'boolean',
        default: false,
        description: 'A record per connection that closed (otherwise), with tcp.bytes_sent, tcp.bytes_received, tcp.retransmits, tcp.rtt_us and tcp.duration_ms. Busy hosts close many connections: this can be a lot of records.',
      },
    },
  },
} as const satisfies Schema;

/** collection_interval is in milliseconds once validated. */
export type EbpfTcpConfig = SchemaValue<typeof ebpfTcpSchema>;

export function validateEbpfTcpConfig(raw: unknown, path: string): EbpfTcpConfig {
  const v = validateObject(raw, path, ebpfTcpSchema);
  const size = v.ring_buffer_size;
  if ((size & (size - 1)) !== 0) {
    // Not an error a person should have to fix by hand: round up.
    v.ring_buffer_size = 2 ** Math.ceil(Math.log2(size));
  }
  return v;
}

export const ebpfTcpOptions = describeSchema(ebpfTcpSchema);
