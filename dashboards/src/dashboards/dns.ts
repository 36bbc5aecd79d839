/** DNS: query rate, latency, errors, top names, per server. */
import type { DashboardSpec } from '../grafana';
import { DNS, DNS_VARIABLES, K8S, L, M, RANGE, RATE } from '../labels';

export const dns: DashboardSpec = {
  uid: 'flowtel-dns',
  title: 'flowtel / DNS',
  description: 'Every DNS query the hosts send or answer, seen on the wire: rate, latency from kernel capture timestamps, NXDOMAIN/SERVFAIL/timeouts, top names and servers.',
  tags: ['flowtel', 'network', 'dns'],
  variables: DNS_VARIABLES,
  rows: [
    {
      row: 'Overview',
      panels: [
        { title: 'Queries', type: 'stat', unit: 'reqps', width: 6, height: 5, description: 'DNS queries per second (a client retry is a new query).', queries: [{ expr: `sum(rate(${M.dnsQueries}{${DNS}}[${RATE}]))`, legend: 'queries' }] },
        { title: 'Error responses', type: 'stat', unit: 'percentunit', width: 6, height: 5, description: 'Share of responses whose code is not NOERROR (NXDOMAIN, SERVFAIL, REFUSED, …).', queries: [{ expr: `sum(rate(${M.dnsResponses}{${DNS}, ${L.dnsCode}!="NOERROR"}[${RATE}])) / sum(rate(${M.dnsResponses}{${DNS}}[${RATE}]))`, legend: 'errors' }] },
        { title: 'Timeouts', type: 'stat', unit: 'reqps', width: 6, height: 5, description: 'Queries per second with no response within the receiver\'s query_timeout.', queries: [{ expr: `sum(rate(${M.dnsTimeouts}{${DNS}}[${RATE}]))`, legend: 'timeouts' }] },
        { title: 'p99 latency', type: 'stat', unit: 'µs', width: 6, height: 5, description: '99th percentile of query → response time (kernel capture timestamps of both packets).', queries: [{ expr: `histogram_quantile(0.99, sum by (le) (rate(${M.dnsLatency}_bucket{${DNS}}[${RATE}])))`, legend: 'p99' }] },
      ],
    },
    {
      row: 'Rate and errors',
      panels: [
        { title: 'Queries by type', type: 'timeseries', unit: 'reqps', stack: true, description: 'Queries per second by question type (A, AAAA, SRV, …).', queries: [{ expr: `sum by (${L.dnsType}) (rate(${M.dnsQueries}{${DNS}}[${RATE}]))`, legend: `{{${L.dnsType}}}` }] },
        { title: 'Responses by code', type: 'timeseries', unit: 'reqps', stack: true, description: 'Responses per second by response code: NOERROR, NXDOMAIN (no such name), SERVFAIL (the server failed), REFUSED, …', queries: [{ expr: `sum by (${L.dnsCode}) (rate(${M.dnsResponses}{${DNS}}[${RATE}]))`, legend: `{{${L.dnsCode}}}` }] },
        { title: 'NXDOMAIN, SERVFAIL and timeouts', type: 'timeseries', unit: 'reqps', description: 'The failures that matter, per second: names that do not exist (often a search-domain expansion), server failures, and queries never answered.', queries: [{ expr: `sum by (${L.dnsCode}) (rate(${M.dnsResponses}{${DNS}, ${L.dnsCode}=~"NXDOMAIN|SERVFAIL"}[${RATE}]))`, legend: `{{${L.dnsCode}}}` }, { expr: `sum(rate(${M.dnsTimeouts}{${DNS}}[${RATE}]))`, legend: 'timeout' }] },
        { title: 'Latency percentiles', type: 'timeseries', unit: 'µs', description: 'Query → response time, 50th, 90th and 99th percentile.', queries: [0.5, 0.9, 0.99].map((q) => ({ expr: `histogram_quantile(${q}, sum by (le) (rate(${M.dnsLatency}_bucket{${DNS}}[${RATE}])))`, legend: `p${q * 100}` })) },
      ],
    },
    {
      row: 'Names, clients and servers',
      panels: [
        { title: 'Top names', type: 'table', unit: 'short', width: 8, height: 10, description: 'The 20 most queried names over the selected range (the receiver keeps top_names names; the rest are "other").', queries: [{ expr: `topk(20, sum by (${L.dnsName}) (increase(${M.dnsQueries}{${DNS}}[${RANGE}])))`, instant: true }], transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'queries' } } }] },
        { title: 'Top failing names', type: 'table', unit: 'short', width: 8, height: 10, description: 'Names with the most NXDOMAIN or SERVFAIL responses over the selected range.', queries: [{ expr: `topk(20, sum by (${L.dnsName}, ${L.dnsCode}) (increase(${M.dnsResponses}{${DNS}, ${L.dnsCode}=~"NXDOMAIN|SERVFAIL"}[${RANGE}])) > 0)`, instant: true }], transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'responses' } } }] },
        { title: 'Top clients', type: 'table', unit: 'short', width: 8, height: 10, description: 'Pods that query the most over the selected range.', requires: { feature: 'k8s', reason: 'DNS metrics carry no client yet (docs/metrics.md: process attribution of DNS queries is to come); with the k8s processor the client pod becomes source.k8s.*' }, queries: [{ expr: `topk(20, sum by (${L.srcNamespace}, ${L.srcPod}) (increase(${M.dnsQueries}{${DNS}}[${RANGE}])))`, instant: true }], transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'queries' } } }] },
        { title: 'Queries by server', type: 'timeseries', unit: 'reqps', description: 'Queries per second per DNS server (server.address).', queries: [{ expr: `sum by (${L.dnsServer}) (rate(${M.dnsQueries}{${DNS}}[${RATE}]))`, legend: `{{${L.dnsServer}}}` }] },
        { title: 'p99 latency by server', type: 'timeseries', unit: 'µs', description: '99th percentile query → response time per DNS server.', queries: [{ expr: `histogram_quantile(0.99, sum by (le, ${L.dnsServer}) (rate(${M.dnsLatency}_bucket{${DNS}}[${RATE}])))`, legend: `{{${L.dnsServer}}}` }] },
        { title: 'Queries by namespace', type: 'timeseries', unit: 'reqps', description: 'Queries per second by the Kubernetes namespace of the querying pod.', requires: K8S, queries: [{ expr: `sum by (${L.srcNamespace}) (rate(${M.dnsQueries}{${DNS}}[${RATE}]))`, legend: `{{${L.srcNamespace}}}` }] },
      ],
    },
  ],
};
