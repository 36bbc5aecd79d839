/** Network overview: who talks to whom, how much, and how connections come and go. */
import type { DashboardSpec } from '../grafana';
import { FLOW, FLOW_VARIABLES, K8S, L, M, RANGE, RATE, sumAcross } from '../labels';

const ALL_BYTES = [M.tcpBytesSent, M.tcpBytesReceived, M.udpBytesSent, M.udpBytesReceived];
const SENT = [M.tcpBytesSent, M.udpBytesSent];
const RECEIVED = [M.tcpBytesReceived, M.udpBytesReceived];
/** Bytes per second of `metrics`, summed by `by`. */
const rateOf = (metrics: readonly string[], by: readonly string[] = []): string => sumAcross(metrics, by, (m) => `rate(${m}{${FLOW}}[${RATE}])`);
const increaseOf = (metrics: readonly string[], by: readonly string[]): string => sumAcross(metrics, by, (m) => `increase(${m}{${FLOW}}[${RANGE}])`);

export const networkOverview: DashboardSpec = {
  uid: 'flowtel-network-overview',
  title: 'flowtel / Network overview',
  description: 'Throughput by source and destination, top talkers, connection churn and failures, from flowtel (eBPF).',
  tags: ['flowtel', 'network'],
  variables: FLOW_VARIABLES,
  rows: [
    {
      row: 'Totals',
      panels: [
        { title: 'Sent', type: 'stat', unit: 'Bps', width: 6, height: 5, description: 'TCP and UDP payload bytes per second sent by the selected local ends (retransmissions counted once).', queries: [{ expr: rateOf(SENT), legend: 'sent' }] },
        { title: 'Received', type: 'stat', unit: 'Bps', width: 6, height: 5, description: 'TCP and UDP payload bytes per second received by the selected local ends.', queries: [{ expr: rateOf(RECEIVED), legend: 'received' }] },
        { title: 'Connections opened', type: 'stat', unit: 'cps', width: 6, height: 5, description: 'TCP connections established per second, client and server side each counting theirs.', queries: [{ expr: `sum(rate(${M.tcpOpened}{${FLOW}}[${RATE}]))`, legend: 'opened' }] },
        { title: 'Connection failures', type: 'stat', unit: 'cps', width: 6, height: 5, description: 'Failed connection attempts (refused, timed out) and established connections reset or timed out, per second.', queries: [{ expr: `sum(rate(${M.tcpFailures}{${FLOW}}[${RATE}]))`, legend: 'failures' }] },
      ],
    },
    {
      row: 'Throughput',
      panels: [
        { title: 'Throughput by process', type: 'timeseries', unit: 'Bps', stack: true, description: 'Bytes per second sent plus received (TCP and UDP) by the owning process of the local end.', queries: [{ expr: rateOf(ALL_BYTES, [L.process]), legend: `{{${L.process}}}` }] },
        { title: 'Throughput by destination', type: 'timeseries', unit: 'Bps', description: 'Top 10 remote ends (address and server port) by bytes per second sent plus received.', queries: [{ expr: `topk(10, ${rateOf(ALL_BYTES, [L.dstAddr, L.dstPort])})`, legend: `{{${L.dstAddr}}}:{{${L.dstPort}}}` }] },
        { title: 'Throughput by source address', type: 'timeseries', unit: 'Bps', description: 'Bytes per second sent plus received, by the local address of each flow.', queries: [{ expr: `topk(10, ${rateOf(ALL_BYTES, [L.srcAddr])})`, legend: `{{${L.srcAddr}}}` }] },
        { title: 'Sent and received by direction', type: 'timeseries', unit: 'Bps', description: 'Bytes per second by flow.direction: outgoing (this host connected), incoming (it accepted), local (loopback). Received is drawn below zero.', queries: [{ expr: rateOf(SENT, [L.direction]), legend: 'sent {{flow_direction}}' }, { expr: `-${rateOf(RECEIVED, [L.direction])}`, legend: 'received {{flow_direction}}' }] },
        { title: 'Throughput by service', type: 'timeseries', unit: 'Bps', stack: true, description: 'Bytes per second sent plus received by Kubernetes service of the local end.', requires: K8S, queries: [{ expr: rateOf(ALL_BYTES, [L.srcNamespace, L.srcService]), legend: `{{${L.srcNamespace}}}/{{${L.srcService}}}` }] },
        { title: 'Throughput by pod', type: 'timeseries', unit: 'Bps', description: 'Top 10 local pods by bytes per second sent plus received.', requires: K8S, queries: [{ expr: `topk(10, ${rateOf(ALL_BYTES, [L.srcNamespace, L.srcPod])})`, legend: `{{${L.srcNamespace}}}/{{${L.srcPod}}}` }] },
        { title: 'UDP throughput by process', type: 'timeseries', unit: 'Bps', description: 'UDP payload bytes per second sent plus received, by process.', queries: [{ expr: rateOf([M.udpBytesSent, M.udpBytesReceived], [L.process]), legend: `{{${L.process}}}` }] },
        { title: 'Traffic between namespaces', type: 'timeseries', unit: 'Bps', description: 'TCP bytes per second sent from each namespace to each namespace.', requires: K8S, queries: [{ expr: `sum by (${L.srcNamespace}, ${L.dstNamespace}) (rate(${M.tcpBytesSent}{${FLOW}}[${RATE}]))`, legend: `{{${L.srcNamespace}}} → {{${L.dstNamespace}}}` }] },
      ],
    },
    {
      row: 'Top talkers',
      panels: [
        { title: 'Top talkers', type: 'table', unit: 'bytes', width: 24, height: 10, description: 'The 20 flows (process, local address, remote address and port) that moved the most bytes, sent plus received, over the selected time range.', queries: [{ expr: `topk(20, ${increaseOf(ALL_BYTES, [L.process, L.srcAddr, L.dstAddr, L.dstPort, L.transport])})`, instant: true }], transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'bytes' } } }], options: { sortBy: [{ displayName: 'bytes', desc: true }] } },
      ],
    },
    {
      row: 'Connections',
      panels: [
        { title: 'Connection churn', type: 'timeseries', unit: 'cps', description: 'TCP connections established and closed per second: a high rate of both is connection churn (no keep-alive, no pooling).', queries: [{ expr: `sum(rate(${M.tcpOpened}{${FLOW}}[${RATE}]))`, legend: 'opened' }, { expr: `sum(rate(${M.tcpClosed}{${FLOW}}[${RATE}]))`, legend: 'closed' }] },
        { title: 'Open connections', type: 'timeseries', unit: 'short', description: 'TCP connections open at the last collection, by state.', queries: [{ expr: `sum by (${L.state}) (${M.tcpConnections}{${FLOW}})`, legend: `{{${L.state}}}` }] },
        { title: 'Connection failures by reason', type: 'timeseries', unit: 'cps', stack: true, description: 'Failed connections per second by error.type: refused (RST to the SYN), timeout (SYN unanswered, or retransmissions gave up), reset (RST on an established connection), or an errno name.', queries: [{ expr: `sum by (${L.errorType}) (rate(${M.tcpFailures}{${FLOW}}[${RATE}]))`, legend: `{{${L.errorType}}}` }] },
        { title: 'Failing destinations', type: 'table', unit: 'short', description: 'Remote ends with the most failed connections over the selected range, with the reason and the process.', queries: [{ expr: `topk(20, sum by (${L.process}, ${L.dstAddr}, ${L.dstPort}, ${L.errorType}) (increase(${M.tcpFailures}{${FLOW}}[${RANGE}])) > 0)`, instant: true }], transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'failures' } } }] },
      ],
    },
  ],
};
