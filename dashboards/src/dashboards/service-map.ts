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
const byPair = sumAcross([M.tcpBytesSent, M.tcpBytesReceived], [L.srcAddr, L.process, L.srcService, L.dstAddr, L.dstPort, L.dstDomain, L.dstService], (m) => `rate(${m}{${CLIENT_SIDE}}[${RANGE}])`);
const withServer = `label_join(${byPair}, "server_endpoint", ":", "${L.dstAddr}", "${L.dstPort}")`;
const edgesRaw = `sum by (source, target) (${named(named(withServer, 'source', [L.srcAddr, L.process, L.srcService]), 'target', ['server_endpoint', L.dstDomain, L.dstService])})`;
export const EDGES = `label_join(${edgesRaw}, "id", " → ", "source", "target")`;
export const NODES = `label_replace(sum by (id) (label_replace(${edgesRaw}, "id", "$1", "source", "(.*)")) or sum by (id) (label_replace(${edgesRaw}, "id", "$1", "target", "(.*)")), "title", "$1", "id", "(.*)")`;

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
        { title: 'Edges', type: 'table', unit: 'Bps', width: 24, height: 10, description: 'The map\'s edges as a table: client, server, TCP bytes per second over the selected range.', queries: [{ expr: `sort_desc(${EDGES})`, instant: true }], transformations: [{ id: 'organize', options: { excludeByName: { Time: true, id: true }, renameByName: { source: 'client', target: 'server', Value: 'bytes/s' } } }] },
      ],
    },
  ],
};
