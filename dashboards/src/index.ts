/** Every dashboard flowtel ships, and the file each is written to (dashboards/<file>). */
import { buildDashboard, type DashboardSpec, type GrafanaDashboard } from './grafana';
import { agentHealth } from './dashboards/agent-health';
import { crossAz } from './dashboards/cross-az';
import { dns } from './dashboards/dns';
import { networkOverview } from './dashboards/network-overview';
import { serviceMap } from './dashboards/service-map';
import { tcpHealth } from './dashboards/tcp-health';

export interface DashboardFile {
  readonly file: string;
  readonly spec: DashboardSpec;
}

export const DASHBOARDS: readonly DashboardFile[] = [
  { file: 'network-overview.json', spec: networkOverview },
  { file: 'tcp-health.json', spec: tcpHealth },
  { file: 'dns.json', spec: dns },
  { file: 'cross-az-cost.json', spec: crossAz },
  { file: 'service-map.json', spec: serviceMap },
  { file: 'agent-health.json', spec: agentHealth },
];

/** The committed text of a dashboard file: 2-space JSON and a final newline. */
export function renderDashboard(spec: DashboardSpec): string {
  const json: GrafanaDashboard = buildDashboard(spec);
  return `${JSON.stringify(json, null, 2)}\n`;
}
