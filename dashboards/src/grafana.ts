/**
 * A small typed model of the Grafana dashboard JSON this project writes
 * (schemaVersion 39, Grafana 10/11), and the builders the dashboards use.
 *
 * Every panel carries a description and a unit; every query is PromQL
 * against the `${datasource}` variable; time-series queries use
 * `$__rate_interval`, range tables `$__range`. A panel or query that needs
 * data a plain host does not produce (Kubernetes names, cloud zones, the
 * cross-AZ metrics) says so in `requires`: the end-to-end test against a
 * real Prometheus lists those instead of demanding data from them.
 */

/** Features some panels need that a plain Linux host (and the test run) does not have. */
/** `occurrence`: a series that exists only once something happened (a loss, a duplicate) that a healthy run lacks. */
export type Feature = 'k8s' | 'cloud' | 'cross_az' | 'occurrence';

export interface Requirement {
  readonly feature: Feature;
  /** Why the query has no data without it: shown by the e2e test. */
  readonly reason: string;
}

export interface QuerySpec {
  readonly expr: string;
  readonly legend?: string;
  /** Instant query (tables, node graph, stats over the range). */
  readonly instant?: boolean;
  /** `table`: one column per label (tables, node graph). */
  readonly format?: 'time_series' | 'table';
  /** Fixed refId (node graph: `nodes`, `edges`); else A, B, C… */
  readonly refId?: string;
  readonly requires?: Requirement;
}

export type PanelType = 'timeseries' | 'stat' | 'table' | 'nodeGraph' | 'bargauge';

export interface PanelSpec {
  readonly title: string;
  readonly description: string;
  readonly type: PanelType;
  /** A Grafana unit id: Bps, µs, percentunit, pps, cps, short, currencyUSD, bytes, s… */
  readonly unit: string;
  readonly queries: readonly QuerySpec[];
  /** Grid width (of 24) and height; panels flow left to right. */
  readonly width?: number;
  readonly height?: number;
  readonly stack?: boolean;
  readonly decimals?: number;
  /** The whole panel needs this (applies to every query). */
  readonly requires?: Requirement;
  readonly transformations?: readonly Record<string, unknown>[];
  readonly options?: Record<string, unknown>;
}

export interface RowSpec {
  readonly row: string;
  readonly panels: readonly PanelSpec[];
}

export interface VariableSpec {
  readonly name: string;
  readonly label: string;
  readonly description: string;
  /** Label whose values are offered, read from `metric`. */
  readonly labelName: string;
  readonly metric: string;
  /** Selector of the variables before this one (chained filtering). */
  readonly matchers?: string;
}

export interface DashboardSpec {
  readonly uid: string;
  readonly title: string;
  readonly description: string;
  readonly tags: readonly string[];
  readonly variables: readonly VariableSpec[];
  readonly rows: readonly RowSpec[];
  /** Links to the other dashboards (by tag). */
  readonly refresh?: string;
  readonly timeFrom?: string;
}

// ---------------------------------------------------------------------------
// The JSON Grafana reads (only what we write).

export interface DatasourceRef {
  readonly type: 'prometheus';
  readonly uid: '${datasource}';
}

export const DATASOURCE: DatasourceRef = { type: 'prometheus', uid: '${datasource}' };

export interface GrafanaTarget {
  datasource: DatasourceRef;
  refId: string;
  expr: string;
  legendFormat: string;
  range: boolean;
  instant: boolean;
  format: 'time_series' | 'table';
  editorMode: 'code';
}

export interface GrafanaPanel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: DatasourceRef;
  gridPos: { x: number; y: number; w: number; h: number };
  collapsed?: boolean;
  panels?: GrafanaPanel[];
  targets?: GrafanaTarget[];
  fieldConfig?: { defaults: Record<string, unknown>; overrides: unknown[] };
  options?: Record<string, unknown>;
  transformations?: Record<string, unknown>[];
}

export interface GrafanaVariable {
  name: string;
  label: string;
  description: string;
  type: 'datasource' | 'query';
  query: string | { query: string; refId: string; qryType?: number };
  datasource?: DatasourceRef;
  current: Record<string, unknown>;
  hide: 0;
  includeAll: boolean;
  allValue?: string;
  multi: boolean;
  options: unknown[];
  refresh: number;
  regex: string;
  sort: number;
  definition?: string;
}

export interface GrafanaDashboard {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  editable: boolean;
  graphTooltip: number;
  schemaVersion: number;
  version: number;
  time: { from: string; to: string };
  refresh: string;
  timezone: string;
  links: Record<string, unknown>[];
  annotations: { list: Record<string, unknown>[] };
  templating: { list: GrafanaVariable[] };
  panels: GrafanaPanel[];
}

// ---------------------------------------------------------------------------
// Builders

const GRID_WIDTH = 24;

function refIdFor(index: number): string {
  return String.fromCharCode('A'.charCodeAt(0) + index);
}

function target(q: QuerySpec, index: number): GrafanaTarget {
  const instant = q.instant ?? false;
  return {
    datasource: DATASOURCE,
    refId: q.refId ?? refIdFor(index),
    expr: q.expr,
    legendFormat: q.legend ?? '__auto',
    range: !instant,
    instant,
    format: q.format ?? (instant ? 'table' : 'time_series'),
    editorMode: 'code',
  };
}

function fieldDefaults(p: PanelSpec): Record<string, unknown> {
  const defaults: Record<string, unknown> = { unit: p.unit };
  if (p.decimals !== undefined) defaults.decimals = p.decimals;
  if (p.type === 'timeseries') {
    defaults.custom = {
      drawStyle: 'line',
      lineWidth: 1,
      fillOpacity: p.stack ? 30 : 10,
      showPoints: 'never',
      spanNulls: false,
      stacking: { mode: p.stack ? 'normal' : 'none', group: 'A' },
    };
    defaults.min = 0;
  }
  if (p.type === 'stat' || p.type === 'bargauge') {
    defaults.color = { mode: 'thresholds' };
    defaults.thresholds = { mode: 'absolute', steps: [{ color: 'green', value: null }] };
  }
  return defaults;
}

function panelOptions(p: PanelSpec): Record<string, unknown> {
  const base: Record<string, unknown> = (() => {
    switch (p.type) {
      case 'timeseries':
        return { legend: { displayMode: 'table', placement: 'right', calcs: ['mean', 'max', 'lastNotNull'], showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } };
      case 'stat':
        return { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area', textMode: 'auto' };
      case 'bargauge':
        return { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, displayMode: 'gradient', orientation: 'horizontal' };
      case 'table':
        return { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], fields: '' } };
      case 'nodeGraph':
        return {};
    }
  })();
  return { ...base, ...(p.options ?? {}) };
}

/** Lays the rows out on Grafana's 24-column grid; ids are stable (position in the dashboard). */
export function buildDashboard(spec: DashboardSpec): GrafanaDashboard {
  const panels: GrafanaPanel[] = [];
  let id = 1;
  let y = 0;
  for (const row of spec.rows) {
    panels.push({ id: id++, type: 'row', title: row.row, collapsed: false, panels: [], gridPos: { x: 0, y, w: GRID_WIDTH, h: 1 } });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const p of row.panels) {
      const w = p.width ?? 12;
      const h = p.height ?? 8;
      if (x + w > GRID_WIDTH) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      const panel: GrafanaPanel = {
        id: id++,
        type: p.type,
        title: p.title,
        description: p.description,
        datasource: DATASOURCE,
        gridPos: { x, y, w, h },
        targets: p.queries.map(target),
        fieldConfig: { defaults: fieldDefaults(p), overrides: [] },
        options: panelOptions(p),
      };
      if (p.transformations) panel.transformations = [...p.transformations];
      panels.push(panel);
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: [...spec.tags],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    time: { from: spec.timeFrom ?? 'now-1h', to: 'now' },
    refresh: spec.refresh ?? '30s',
    timezone: 'browser',
    links: [{ title: 'flowtel', type: 'dashboards', tags: ['flowtel'], asDropdown: true, includeVars: true, keepTime: true }],
    annotations: { list: [] },
    templating: { list: variables(spec.variables) },
    panels,
  };
}

function variables(specs: readonly VariableSpec[]): GrafanaVariable[] {
  const list: GrafanaVariable[] = [
    {
      name: 'datasource',
      label: 'Data source',
      description: 'The Prometheus that scrapes flowtel (directly or through the OpenTelemetry Collector).',
      type: 'datasource',
      query: 'prometheus',
      current: {},
      hide: 0,
      includeAll: false,
      multi: false,
      options: [],
      refresh: 1,
      regex: '',
      sort: 0,
    },
  ];
  for (const v of specs) {
    const definition = `label_values(${v.metric}${v.matchers ? `{${v.matchers}}` : ''}, ${v.labelName})`;
    list.push({
      name: v.name,
      label: v.label,
      description: v.description,
      type: 'query',
      datasource: DATASOURCE,
      query: { query: definition, refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 },
      definition,
      current: { selected: true, text: ['All'], value: ['$__all'] },
      hide: 0,
      includeAll: true,
      // `.*` also matches series without the label: a dashboard works before
      // the enrichment that adds the label is turned on.
      allValue: '.*',
      multi: true,
      options: [],
      refresh: 2,
      regex: '',
      sort: 1,
    });
  }
  return list;
}

/** Every query of a dashboard spec with its panel (for tests and docs). */
export function* queriesOf(spec: DashboardSpec): Generator<{ panel: PanelSpec; query: QuerySpec; requires?: Requirement }> {
  for (const row of spec.rows) {
    for (const panel of row.panels) {
      for (const query of panel.queries) yield { panel, query, requires: query.requires ?? panel.requires };
    }
  }
}
