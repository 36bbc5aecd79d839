/** Cross-AZ traffic and its estimated cost (needs the cloud and cross-AZ enrichment). */
import type { DashboardSpec } from '../grafana';
import { CLOUD, CROSS_AZ, FLOW, FLOW_VARIABLES, L, M, RANGE, RATE, sumAcross } from '../labels';

const ZONES = `${L.srcZone}, ${L.dstZone}`;
const SERVICES = `${L.srcNamespace}, ${L.srcService}, ${L.dstNamespace}, ${L.dstService}`;

export const crossAz: DashboardSpec = {
  uid: 'flowtel-cross-az',
  title: 'flowtel / Cross-AZ & cost',
  description: 'Traffic that crosses availability zones, by zone pair and service pair, and what it costs at the configured price per GB (network_cross_az_bytes, network_cross_az_cost_usd).',
  tags: ['flowtel', 'network', 'cost'],
  variables: FLOW_VARIABLES,
  timeFrom: 'now-24h',
  rows: [
    {
      row: 'Cost',
      panels: [
        { title: 'Cross-AZ cost over the range', type: 'stat', unit: 'currencyUSD', width: 6, height: 5, decimals: 2, requires: CROSS_AZ, description: 'Estimated transfer cost of cross-zone traffic over the selected range, at the cross-AZ processor\'s price per GB and direction.', queries: [{ expr: `sum(increase(${M.crossAzCost}{${FLOW}}[${RANGE}]))`, instant: true, format: 'time_series', legend: 'cost' }] },
        { title: 'Projected cost per 30 days', type: 'stat', unit: 'currencyUSD', width: 6, height: 5, decimals: 0, requires: CROSS_AZ, description: 'The current cross-zone cost rate extrapolated to 30 days.', queries: [{ expr: `sum(rate(${M.crossAzCost}{${FLOW}}[${RATE}])) * 86400 * 30`, legend: '30 days' }] },
        { title: 'Cross-AZ throughput', type: 'stat', unit: 'Bps', width: 6, height: 5, requires: CROSS_AZ, description: 'Bytes per second that cross availability zones.', queries: [{ expr: `sum(rate(${M.crossAzBytes}{${FLOW}}[${RATE}]))`, legend: 'cross-AZ' }] },
        { title: 'Share of traffic that crosses zones', type: 'stat', unit: 'percentunit', width: 6, height: 5, requires: CROSS_AZ, description: 'Cross-AZ bytes / all TCP and UDP bytes sent.', queries: [{ expr: `sum(rate(${M.crossAzBytes}{${FLOW}}[${RATE}])) / ${sumAcross([M.tcpBytesSent, M.udpBytesSent], [], (m) => `rate(${m}{${FLOW}}[${RATE}])`)}`, legend: 'share' }] },
      ],
    },
    {
      row: 'By zone pair',
      panels: [
        { title: 'Cross-AZ bytes by zone pair', type: 'timeseries', unit: 'Bps', stack: true, requires: CROSS_AZ, description: 'Bytes per second between each pair of zones, by network.io.direction as the local end sees it (transmit: sent to the other zone, receive: received from it). Where both ends run flowtel each byte is counted by both: each side pays for it.', queries: [{ expr: `sum by (${ZONES}, ${L.ioDirection}) (rate(${M.crossAzBytes}{${FLOW}}[${RATE}]))`, legend: `{{${L.srcZone}}} → {{${L.dstZone}}} {{${L.ioDirection}}}` }] },
        { title: 'Cost rate by zone pair', type: 'timeseries', unit: 'currencyUSD', stack: true, requires: CROSS_AZ, description: 'Estimated USD per hour by zone pair.', queries: [{ expr: `sum by (${ZONES}) (rate(${M.crossAzCost}{${FLOW}}[${RATE}])) * 3600`, legend: `{{${L.srcZone}}} → {{${L.dstZone}}} per hour` }] },
        { title: 'All traffic by zone pair', type: 'timeseries', unit: 'Bps', requires: CLOUD, description: 'TCP bytes per second sent, by the zone of the local end (source.cloud.availability_zone) and of the remote end when known: same-zone traffic included.', queries: [{ expr: `sum by (${L.srcZone}, ${L.dstZone}) (rate(${M.tcpBytesSent}{${FLOW}}[${RATE}]))`, legend: `{{${L.srcZone}}} → {{${L.dstZone}}}` }] },
      ],
    },
    {
      row: 'By service pair',
      panels: [
        { title: 'Most expensive service pairs', type: 'table', unit: 'currencyUSD', width: 12, height: 10, requires: CROSS_AZ, description: 'The 20 service pairs whose cross-zone traffic cost the most over the selected range.', queries: [{ expr: `topk(20, sum by (${SERVICES}) (increase(${M.crossAzCost}{${FLOW}}[${RANGE}])))`, instant: true }], transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'USD' } } }] },
        { title: 'Cross-AZ bytes by service pair', type: 'table', unit: 'bytes', width: 12, height: 10, requires: CROSS_AZ, description: 'The 20 service pairs that moved the most bytes across zones over the selected range.', queries: [{ expr: `topk(20, sum by (${SERVICES}, ${ZONES}) (increase(${M.crossAzBytes}{${FLOW}}[${RANGE}])))`, instant: true }], transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'bytes' } } }] },
      ],
    },
  ],
};
