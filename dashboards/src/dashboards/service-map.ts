/**
 * Service map: a Node Graph of who connects to whom, built from the metrics.
 *
 * An edge is client → server, from the client's side of each connection
 * (destination.port is set only where this host connected), so a connection
 * between two monitored hosts is drawn once. A node's name is the best name
 * known: the Kubernetes service, else the process (client) or the
 * destination domain (server), else the address. PromQL's label_replace
 * only writes when its regex matches, so chaining them from the weakest name
 * to the strongest keeps the strongest one present.
 */
import type { DashboardSpec } from '../grafana';
import { FLOW, FLOW_VARIABLES, L, M, RANGE, sumAcross } from '../labels';

function named(expr: string, into: string, fromWeakToStrong: readonly string[]): string {
  let out = expr;
  for (const label of fromWeakToStrong) out = `label_replace(${out}, "${into}", "$1", "${label}", "(.+)")`;
  return out;
}

const CLIENT_SIDE = `${FLOW}, ${L.dstPort}!=""`;
const PAIR_LABELS = [L.srcAddr, L.process, L.srcService, L.dstAddr, L.dstPort, L.dstDomain, L.dstService];

/** `sum by (source, target)` of `fn(metric)` over the client side of each connection, with the best names. */
export function edgesOf(metrics: readonly string[], fn: (selector: string) => string): string {
  const byPair = sumAcross(metrics, PAIR_LABELS, (m) => fn(`${m}{${CLIENT_SIDE}}`));
  const withServer = `label_join(${byPair}, "server_endpoint", ":", "${L.dstAddr}", "${L.dstPort}")`;
  return `sum by (source, target) (${named(named(withServer, 'source', [L.srcAddr, L.process, L.srcService]), 'target', ['server_endpoint', L.dstDomain, L.dstService])})`;
}

const edgesRaw = edgesOf([M.tcpBytesSent, M.tcpBytesReceived], (sel) => `rate(${sel}[${RANGE}])`);
export const EDGES = `label_join(${edgesRaw}, "id", " → ", "source", "target")`;
export const NODES = `label_replace(sum by (id) (label_replace(${edgesRaw}, "id", "$1", "source", "(.*)")) or sum by (id) (label_replace(${edgesRaw}, "id", "$1", "target", "(.*)")), "title", "$1", "id", "(.*)")`;
const EDGE_COLUMNS = { excludeByName: { Time: true }, renameByName: { source: 'client', target: 'server' } };

export const serviceMap: DashboardSpec = {
  uid: 'flowtel-service-map',
  title: 'flowtel / Service map',
  description: 'Service-to-service TCP traffic as a graph: nodes are services (else processes, domains or addresses), edges go from client to server and carry bytes per second.',
  tags: ['flowtel', 'network', 'map'],
  variables: FLOW_VARIABLES,
  timeFrom: 'now-15m',
  rows: [
    {
      row: 'Map',
      panels: [
        {
          title: 'Service map',
          type: 'nodeGraph',
          unit: 'Bps',
          width: 24,
          height: 16,
          description: 'Nodes: services, else client processes, server domains or addresses. Edges: client → server, TCP bytes per second both ways over the selected range (main stat). Uses the client side of each connection only, so no connection is drawn twice.',
          queries: [
            { refId: 'nodes', expr: NODES, instant: true, format: 'table' },
            { refId: 'edges', expr: EDGES, instant: true, format: 'table' },
          ],
          transformations: [
            { id: 'organize', options: { excludeByName: { Time: true }, renameByName: { 'Value #nodes': 'mainstat', 'Value #edges': 'mainstat' } } },
          ],
          options: { nodes: { mainStatUnit: 'Bps' }, edges: { mainStatUnit: 'Bps' } },
        },
      ],
    },
    {
      row: 'Edges',
      panels: [
        { title: 'Edges by traffic', type: 'table', unit: 'Bps', width: 24, height: 10, description: 'The map\'s edges as a table: client, server, TCP bytes per second both ways over the selected range.', queries: [{ expr: `sort_desc(${EDGES})`, instant: true }], transformations: [{ id: 'organize', options: { excludeByName: { Time: true, id: true }, renameByName: { ...EDGE_COLUMNS.renameByName, Value: 'bytes/s' } } }] },
        { title: 'Edges by new connections', type: 'table', unit: 'short', description: 'Connections each client opened to each server over the selected range: many short connections on an edge is churn (no keep-alive or pool).', queries: [{ expr: `sort_desc(${edgesOf([M.tcpOpened], (sel) => `increase(${sel}[${RANGE}])`)})`, instant: true }], transformations: [{ id: 'organize', options: { ...EDGE_COLUMNS, renameByName: { ...EDGE_COLUMNS.renameByName, Value: 'connections' } } }] },
        { title: 'Edges with failed connections', type: 'table', unit: 'short', description: 'Failed connection attempts (refused, timed out, reset) from each client to each server over the selected range.', queries: [{ expr: `sort_desc(${edgesOf([M.tcpFailures], (sel) => `increase(${sel}[${RANGE}])`)} > 0)`, instant: true }], transformations: [{ id: 'organize', options: { ...EDGE_COLUMNS, renameByName: { ...EDGE_COLUMNS.renameByName, Value: 'failures' } } }] },
        { title: 'Worst edges by retransmit ratio', type: 'table', unit: 'percentunit', description: 'Retransmitted / sent segments per edge over the selected range, the 10 worst.', queries: [{ expr: `topk(10, ${edgesOf([M.tcpRetransmits], (sel) => `increase(${sel}[${RANGE}])`)} / ${edgesOf([M.tcpSegmentsSent], (sel) => `increase(${sel}[${RANGE}])`)} > 0)`, instant: true }], transformations: [{ id: 'organize', options: { ...EDGE_COLUMNS, renameByName: { ...EDGE_COLUMNS.renameByName, Value: 'retransmit ratio' } } }] },
      ],
    },
  ],
};
