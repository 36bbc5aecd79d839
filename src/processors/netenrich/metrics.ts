/**
 * Metrics the network enrichment processors add to a pipeline (registered
 * with src/metrics/definitions.ts when this module loads; docs/metrics.md
 * documents them).
 */
import { registerMetric, type MetricDefinition } from '../../metrics/definitions';

export const CROSS_AZ_BYTES = 'network_cross_az_bytes';
export const CROSS_AZ_COST = 'network_cross_az_cost_usd';
export const NAT_CONNTRACK_ENTRIES = 'flowtel_nat_conntrack_entries';
export const NAT_ERRORS = 'flowtel_nat_errors';

export const NETENRICH_METRICS: readonly MetricDefinition[] = [
  {
    name: CROSS_AZ_BYTES,
    kind: 'counter',
    unit: 'By',
    description:
      'Bytes of flows whose two ends are in different availability zones (network.cross_az = true), by network.io.direction (transmit: sent by the local end, receive: received) and the zone processor\'s cross_az.attributes (zones, services).',
  },
  {
    name: CROSS_AZ_COST,
    kind: 'counter',
    unit: 'USD',
    description: 'network_cross_az_bytes priced at cross_az.price_per_gb (default 0.01 USD per GB in each direction): the cross-zone transfer cost this host\'s flows incur.',
  },
  {
    name: NAT_CONNTRACK_ENTRIES,
    kind: 'counter',
    unit: '{entry}',
    description: 'NAT conntrack entries (destination or source NAT) the nat processor learned, by source: dump (a table dump) or event (a conntrack NEW event).',
  },
  {
    name: NAT_ERRORS,
    kind: 'counter',
    unit: '{error}',
    description: 'Problems reading conntrack in the nat processor, by reason: events_lost (the event socket overflowed: a dump follows), dump_failed, socket_failed, malformed.',
  },
];

for (const d of NETENRICH_METRICS) registerMetric(d);
