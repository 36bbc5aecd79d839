import { validateObject, describeSchema, type Schema, type SchemaValue } from '../../config/schema';
import { ConfigError } from '../../pipeline/component';

/** Ports a receiver may watch (the kernel's port set has room for all 65535; more than this is a config mistake). */
export const MAX_DNS_PORTS = 64;

export const ebpfDnsSchema = {
  collection_interval: { type: 'duration', default: '10s', minMs: 100, description: 'How often the DNS counts, latencies and timeouts since the last collection are sent down the pipelines.' },
  ports: { type: 'string[]', default: ['53'], description: 'UDP and TCP ports that carry DNS (either end of a packet), e.g. ["53", "5353"]. At most 64.' },
  network_namespaces: {
    type: 'string[]',
    default: [],
    description: "Network namespaces to capture in, as paths that open them (`/run/netns/NAME`, `/proc/PID/ns/net`). Empty: the agent's own. A packet captured in two of them (the two ends of a veth pair) is counted once.",
  },
  include_interfaces: { type: 'string[]', default: [], description: 'Capture only on interfaces whose name matches one of these globs (`eth*`; `*` any characters, `?` one). Empty: every interface, one socket per namespace.' },
  exclude_interfaces: { type: 'string[]', default: [], description: 'Do not capture on interfaces whose name matches one of these globs (e.g. `veth*` to see container traffic only once, on the host side).' },
  snap_length: { type: 'number', default: 4096, min: 128, max: 65535, integer: true, description: 'Bytes of each DNS packet copied to the agent (from the IP header). Answers beyond it are not decoded (the response is still counted).' },
  query_timeout: { type: 'duration', default: '5s', minMs: 10, description: 'A query with no response after this long is counted in dns_timeouts.' },
  max_inflight: { type: 'number', default: 10000, min: 1, integer: true, description: 'Queries waiting for their response at most; more are counted (flowtel_dns_dropped{reason="inflight_full"}) but not correlated.' },
  top_names: { type: 'number', default: 100, min: 0, integer: true, description: 'The N question names with the most queries keep their name in dns.question.name; all others are reported as `other` (0: always `other`).' },
  tcp: { type: 'boolean', default: true, description: 'Follow DNS over TCP (length-prefixed messages, reassembled per connection).' },
  max_tcp_flows: { type: 'number', default: 4096, min: 1, integer: true, description: 'TCP DNS connections reassembled at once; the oldest is forgotten beyond it.' },
  ring_buffer_size: { type: 'number', default: 4 * 1024 * 1024, min: 512 * 1024, integer: true, description: 'Bytes of the kernel receive ring of each capture socket (TPACKET_V3, blocks of 256 KiB). Packets that find it full are counted in flowtel_dns_capture_drops.' },
  process_attribution: {
    type: 'boolean',
    default: true,
    description:
      'Attribute each query to the process whose socket sent it (process.pid, process.executable.name): cgroup programs on the cgroup v2 root mark sockets that connect() or send to a DNS port and record their owner, and the receiver looks it up once per query. False: no cgroup programs, no lookups.',
  },
  name_cache_size: { type: 'number', default: 65536, min: 0, integer: true, description: 'Addresses the IP → name cache (from A/AAAA answers) holds at most (0: off).' },
  log_records: {
    type: 'object',
    description:
      'Log records (when the receiver is in a logs pipeline): one per query and its response (flowtel.dns.query) and per timeout (flowtel.dns.timeout), with the attributes of docs/metrics.md, "Log records", timestamped with the query\'s capture time. Timeouts are found at each collection.',
    schema: {
      enabled: { type: 'boolean', default: true, description: 'Send the records (false: none, even in a logs pipeline).' },
      answers: { type: 'boolean', default: true, description: 'Include dns.answers (the answer records as JSON: name, type, ttl, data).' },
      hash_names: {
        type: 'boolean',
        default: false,
        description: 'Replace the question name, answer names and the data of answers other than A/AAAA by their SHA-256 in hex (HMAC-SHA256 with hash_key if set). Metrics are not affected.',
      },
      hash_key: { type: 'string', description: 'Key for hash_names (HMAC-SHA256), so that hashes cannot be recomputed from a list of names. Use ${env:...}.' },
    },
  },
  name_cache_min_ttl: { type: 'duration', default: '1m', minMs: 0, description: 'Keep an address → name entry at least this long even if the answer\'s TTL is shorter (connections follow answers after their TTL).' },
} as const satisfies Schema;

/** Durations are in milliseconds once validated; `ports` are numbers in `portNumbers`. */
export type EbpfDnsConfig = SchemaValue<typeof ebpfDnsSchema> & { portNumbers: number[] };

export function validateEbpfDnsConfig(raw: unknown, path: string): EbpfDnsConfig {
  const v = validateObject(raw, path, ebpfDnsSchema);
  const ports: number[] = [];
  v.ports.forEach((p, i) => {
    const n = Number(p);
    if (!/^\d+$/.test(p.trim()) || n < 1 || n > 65535) throw new ConfigError(`${path}.ports.${i}`, `"${p}" is not a port number (1-65535)`);
    if (!ports.includes(n)) ports.push(n);
  });
  if (ports.length === 0) throw new ConfigError(`${path}.ports`, 'at least one port is needed');
  if (ports.length > MAX_DNS_PORTS) throw new ConfigError(`${path}.ports`, `at most ${MAX_DNS_PORTS} ports (got ${ports.length})`);
  return { ...v, portNumbers: ports };
}

export const ebpfDnsOptions = describeSchema(ebpfDnsSchema);
