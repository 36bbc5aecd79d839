/** TCP health: round-trip time, its variance, retransmissions, handshake time. */
import type { DashboardSpec } from '../grafana';
import { FLOW, FLOW_VARIABLES, K8S, L, M, RANGE, RATE } from '../labels';

const quantiles = (metric: string, by: string[] = []): { expr: string; legend: string }[] =>
  [0.5, 0.9, 0.99].map((q) => ({
    expr: `histogram_quantile(${q}, sum by (${['le', ...by].join(', ')}) (rate(${metric}_bucket{${FLOW}}[${RATE}])))`,
    legend: `p${q * 100}${by.map((l) => ` {{${l}}}`).join('')}`,
  }));

const PAIR = [L.process, L.srcService, L.dstService, L.dstAddr, L.dstPort];

export const tcpHealth: DashboardSpec = {
  uid: 'flowtel-tcp-health',
  title: 'flowtel / TCP health',
  description: 'Round-trip time percentiles and variance, retransmits and retransmit ratio, handshake time and the worst service pairs, from the kernel\'s own per-socket counters.',
  tags: ['flowtel', 'network', 'tcp'],
  variables: FLOW_VARIABLES,
  rows: [
    {
      row: 'Round-trip time',
      panels: [
        { title: 'RTT percentiles', type: 'timeseries', unit: 'µs', description: 'Smoothed RTT (srtt, as ss -ti shows it) of the open connections, sampled every collection and at close: 50th, 90th and 99th percentile.', queries: quantiles(M.tcpRtt) },
        { title: 'RTT variance (jitter)', type: 'timeseries', unit: 'µs', description: 'RTT variance (mdev, the second number of ss -ti rtt:x/y) percentiles: how much the RTT of a connection moves.', queries: quantiles(M.tcpRttVar) },
        { title: 'Mean RTT by destination', type: 'timeseries', unit: 'µs', description: 'Mean smoothed RTT per remote end (top 10 by RTT).', queries: [{ expr: `topk(10, sum by (${L.dstAddr}, ${L.dstPort}) (rate(${M.tcpRtt}_sum{${FLOW}}[${RATE}])) / sum by (${L.dstAddr}, ${L.dstPort}) (rate(${M.tcpRtt}_count{${FLOW}}[${RATE}])))`, legend: `{{${L.dstAddr}}}:{{${L.dstPort}}}` }] },
        { title: 'p99 RTT by service', type: 'timeseries', unit: 'µs', description: '99th percentile RTT per Kubernetes service of the local end.', requires: K8S, queries: [{ expr: `histogram_quantile(0.99, sum by (le, ${L.srcService}) (rate(${M.tcpRtt}_bucket{${FLOW}}[${RATE}])))`, legend: `{{${L.srcService}}}` }] },
      ],
    },
    {
      row: 'Retransmissions',
      panels: [
        { title: 'Retransmitted segments', type: 'timeseries', unit: 'pps', stack: true, description: 'TCP segments retransmitted per second (tcp_sock.total_retrans), by process.', queries: [{ expr: `sum by (${L.process}) (rate(${M.tcpRetransmits}{${FLOW}}[${RATE}]))`, legend: `{{${L.process}}}` }] },
        { title: 'Retransmit ratio', type: 'timeseries', unit: 'percentunit', description: 'Retransmitted segments / segments sent. Above ~1% throughput suffers; loss or congestion on the path.', queries: [{ expr: `sum(rate(${M.tcpRetransmits}{${FLOW}}[${RATE}])) / sum(rate(${M.tcpSegmentsSent}{${FLOW}}[${RATE}]))`, legend: 'all' }] },
        { title: 'Retransmit ratio by destination', type: 'timeseries', unit: 'percentunit', description: 'Retransmit ratio per remote end, the 10 worst.', queries: [{ expr: `topk(10, sum by (${L.dstAddr}, ${L.dstPort}) (rate(${M.tcpRetransmits}{${FLOW}}[${RATE}])) / sum by (${L.dstAddr}, ${L.dstPort}) (rate(${M.tcpSegmentsSent}{${FLOW}}[${RATE}])))`, legend: `{{${L.dstAddr}}}:{{${L.dstPort}}}` }] },
        { title: 'Handshake time', type: 'timeseries', unit: 'µs', description: 'Client-side TCP handshake time (SYN sent to established) percentiles; a lost SYN adds the SYN retransmission timeout (1 s and more).', queries: quantiles(M.tcpConnectLatency) },
      ],
    },
    {
      row: 'Worst pairs',
      panels: [
        { title: 'Worst pairs by RTT', type: 'table', unit: 'µs', description: 'The 10 (process or service, destination) pairs with the highest 99th percentile RTT over the selected range.', queries: [{ expr: `topk(10, histogram_quantile(0.99, sum by (le, ${PAIR.join(', ')}) (increase(${M.tcpRtt}_bucket{${FLOW}}[${RANGE}]))))`, instant: true }], transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'p99 RTT' } } }] },
        { title: 'Worst pairs by retransmits', type: 'table', unit: 'short', description: 'The 10 (process or service, destination) pairs with the most retransmitted segments over the selected range, and their ratio.', queries: [{ expr: `topk(10, sum by (${PAIR.join(', ')}) (increase(${M.tcpRetransmits}{${FLOW}}[${RANGE}])) > 0)`, instant: true, refId: 'A' }, { expr: `topk(10, sum by (${PAIR.join(', ')}) (increase(${M.tcpRetransmits}{${FLOW}}[${RANGE}])) / sum by (${PAIR.join(', ')}) (increase(${M.tcpSegmentsSent}{${FLOW}}[${RANGE}])) > 0)`, instant: true, refId: 'B' }], transformations: [{ id: 'merge', options: {} }, { id: 'organize', options: { excludeByName: { Time: true }, renameByName: { 'Value #A': 'retransmits', 'Value #B': 'ratio' } } }] },
      ],
    },
  ],
};
