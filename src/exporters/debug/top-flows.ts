/**
 * The `debug` exporter's top-flows table, as a pure function of the previous
 * state and the latest collection.
 *
 * Each distinct attribute set of the flow metrics is one flow. Values arrive
 * cumulative (per series since the agent started); the table shows what
 * happened since the previous export: the state keeps the last cumulative
 * value of every series. A series seen for the first time counts in full; a
 * value lower than before means the series restarted and counts in full; a
 * series that disappears is dropped from the state. Delta-temporality input
 * is used as is.
 */
import { AggregationTemporality, DataPointType, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { Attributes } from '@opentelemetry/api';
import { formatAddressPort, formatBytes, formatCount, formatMicros, renderTable, type Column } from './format';

/** Which metrics feed which column. */
export const TOP_FLOWS_METRICS = {
  bytesSent: ['tcp_bytes_sent', 'udp_bytes_sent'],
  bytesReceived: ['tcp_bytes_received', 'udp_bytes_received'],
  retransmits: ['tcp_retransmits'],
  rtt: ['tcp_rtt_us'],
  connectionsOpened: ['tcp_connections_opened'],
  connectionsClosed: ['tcp_connections_closed'],
  connectionFailures: ['tcp_connection_failures'],
} as const;

type CounterField = Exclude<keyof typeof TOP_FLOWS_METRICS, 'rtt'>;

const COUNTER_FIELD_OF: ReadonlyMap<string, CounterField> = new Map(
  (Object.keys(TOP_FLOWS_METRICS) as Array<keyof typeof TOP_FLOWS_METRICS>)
    .filter((field): field is CounterField => field !== 'rtt')
    .flatMap((field) => TOP_FLOWS_METRICS[field].map((name) => [name, field] as const)),
);
const RTT_METRICS: ReadonlySet<string> = new Set(TOP_FLOWS_METRICS.rtt);

export interface HistogramTotals {
  readonly sum: number;
  readonly count: number;
}

export interface TopFlowsState {
  /** `metric \0 attributes` → last cumulative value. */
  readonly counters: ReadonlyMap<string, number>;
  readonly histograms: ReadonlyMap<string, HistogramTotals>;
  /** When the previous table was rendered (ms since epoch). */
  readonly renderedAtMs: number;
}

export interface FlowRow {
  readonly attributes: Attributes;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly retransmits: number;
  /** Mean RTT over the interval's samples, µs; undefined without samples. */
  readonly rttMeanUs: number | undefined;
}

export interface IntervalTotals {
  readonly connectionsOpened: number;
  readonly connectionsClosed: number;
  readonly connectionFailures: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly retransmits: number;
  /** Flows with any traffic in the interval. */
  readonly activeFlows: number;
}

export interface TopFlowsOptions {
  /** Rows to show. Default 10. */
  readonly topN?: number;
  /** Render time, ms since epoch. Default Date.now(). */
  readonly nowMs?: number;
}

export interface TopFlowsResult {
  readonly text: string;
  readonly state: TopFlowsState;
  /** The rows shown, in order. */
  readonly rows: readonly FlowRow[];
  readonly totals: IntervalTotals;
}

interface FlowAccumulator {
  attributes: Attributes;
  bytesSent: number;
  bytesReceived: number;
  retransmits: number;
  rttSumUs: number;
  rttCount: number;
}

/** Canonical key of an attribute set (sorted keys). */
export function attributeSetKey(attributes: Attributes): string {
  return JSON.stringify(Object.keys(attributes).sort().map((k) => [k, attributes[k]]));
}

function counterDelta(previous: number | undefined, current: number): number {
  if (previous === undefined || current < previous) return current;
  return current - previous;
}

export function renderTopFlows(prev: TopFlowsState | undefined, resourceMetrics: ResourceMetrics, options: TopFlowsOptions = {}): TopFlowsResult {
  const topN = options.topN ?? 10;
  const nowMs = options.nowMs ?? Date.now();
  const counters = new Map<string, number>();
  const histograms = new Map<string, HistogramTotals>();
  const flows = new Map<string, FlowAccumulator>();
  const totals = { connectionsOpened: 0, connectionsClosed: 0, connectionFailures: 0, bytesSent: 0, bytesReceived: 0, retransmits: 0 };

  const flowOf = (attributes: Attributes, key: string): FlowAccumulator => {
    let flow = flows.get(key);
    if (!flow) {
      flow = { attributes, bytesSent: 0, bytesReceived: 0, retransmits: 0, rttSumUs: 0, rttCount: 0 };
      flows.set(key, flow);
    }
    return flow;
  };

  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      const name = metric.descriptor.name;
      if (metric.dataPointType === DataPointType.SUM) {
        const field = COUNTER_FIELD_OF.get(name);
        if (!field) continue;
        const isDelta = metric.aggregationTemporality === AggregationTemporality.DELTA;
        for (const point of metric.dataPoints) {
          const flowKey = attributeSetKey(point.attributes);
          const seriesKey = `${name}\u0000${flowKey}`;
          const delta = isDelta ? point.value : counterDelta(prev?.counters.get(seriesKey), point.value);
          if (!isDelta) counters.set(seriesKey, point.value);
          totals[field] += delta;
          if (field === 'bytesSent' || field === 'bytesReceived' || field === 'retransmits') {
            if (delta !== 0) flowOf(point.attributes, flowKey)[field] += delta;
          }
        }
      } else if (metric.dataPointType === DataPointType.HISTOGRAM && RTT_METRICS.has(name)) {
        const isDelta = metric.aggregationTemporality === AggregationTemporality.DELTA;
        for (const point of metric.dataPoints) {
          const flowKey = attributeSetKey(point.attributes);
          const seriesKey = `${name}\u0000${flowKey}`;
          const current: HistogramTotals = { sum: point.value.sum ?? 0, count: point.value.count };
          const previous = isDelta ? undefined : prev?.histograms.get(seriesKey);
          const restarted = previous !== undefined && current.count < previous.count;
          const delta = previous === undefined || restarted ? current : { sum: current.sum - previous.sum, count: current.count - previous.count };
          if (!isDelta) histograms.set(seriesKey, current);
          if (delta.count > 0) {
            const flow = flowOf(point.attributes, flowKey);
            flow.rttSumUs += delta.sum;
            flow.rttCount += delta.count;
          }
        }
      }
    }
  }

  const active = [...flows.values()].filter((f) => f.bytesSent > 0 || f.bytesReceived > 0 || f.retransmits > 0 || f.rttCount > 0);
  active.sort(
    (a, b) =>
      b.bytesSent + b.bytesReceived - (a.bytesSent + a.bytesReceived) ||
      b.retransmits - a.retransmits ||
      attributeSetKey(a.attributes).localeCompare(attributeSetKey(b.attributes)),
  );
  const rows: FlowRow[] = active.slice(0, topN).map((f) => ({
    attributes: f.attributes,
    bytesSent: f.bytesSent,
    bytesReceived: f.bytesReceived,
    retransmits: f.retransmits,
    rttMeanUs: f.rttCount > 0 ? f.rttSumUs / f.rttCount : undefined,
  }));
  const intervalTotals: IntervalTotals = { ...totals, activeFlows: active.length };
  const text = renderText(rows, intervalTotals, prev, nowMs, topN);
  return { text, state: { counters, histograms, renderedAtMs: nowMs }, rows, totals: intervalTotals };
}

function attr(attributes: Attributes, key: string): string | undefined {
  const value = attributes[key];
  if (value === undefined || value === null) return undefined;
  return Array.isArray(value) ? value.join(',') : String(value);
}

const COLUMNS: readonly Column<FlowRow>[] = [
  {
    header: 'PROCESS',
    align: 'left',
    maxWidth: 24,
    cell: (r) => {
      const name = attr(r.attributes, 'process.executable.name');
      const pid = attr(r.attributes, 'process.pid');
      if (name && pid) return `${name}/${pid}`;
      return name ?? pid ?? '-';
    },
  },
  {
    header: 'SOURCE',
    align: 'left',
    maxWidth: 47,
    cell: (r) => formatAddressPort(attr(r.attributes, 'source.address'), attr(r.attributes, 'source.port')),
  },
  {
    header: 'DESTINATION',
    align: 'left',
    maxWidth: 47,
    cell: (r) => formatAddressPort(attr(r.attributes, 'destination.address'), attr(r.attributes, 'destination.port')),
  },
  { header: 'PROTO', align: 'left', cell: (r) => attr(r.attributes, 'network.transport') ?? '-' },
  { header: 'DIR', align: 'left', cell: (r) => attr(r.attributes, 'flow.direction') ?? '-' },
  { header: 'SENT', align: 'right', cell: (r) => formatBytes(r.bytesSent) },
  { header: 'RECEIVED', align: 'right', cell: (r) => formatBytes(r.bytesReceived) },
  { header: 'RETRANS', align: 'right', cell: (r) => formatCount(r.retransmits) },
  { header: 'RTT', align: 'right', cell: (r) => (r.rttMeanUs === undefined ? '-' : formatMicros(r.rttMeanUs)) },
];

function renderText(rows: readonly FlowRow[], totals: IntervalTotals, prev: TopFlowsState | undefined, nowMs: number, topN: number): string {
  const when = new Date(nowMs).toISOString();
  const span = prev ? `last ${((nowMs - prev.renderedAtMs) / 1000).toFixed(1)}s` : 'since start';
  const shown = totals.activeFlows > rows.length ? `, top ${Math.min(topN, rows.length)} shown` : '';
  const header =
    `── flowtel top flows ${when} (${span}) ──\n` +
    `connections: ${formatCount(totals.connectionsOpened)} opened, ${formatCount(totals.connectionsClosed)} closed, ` +
    `${formatCount(totals.connectionFailures)} failed | flows: ${formatCount(totals.activeFlows)} active${shown} | ` +
    `sent ${formatBytes(totals.bytesSent)}, received ${formatBytes(totals.bytesReceived)}, ${formatCount(totals.retransmits)} retransmits`;
  if (rows.length === 0) return `${header}\n(no flows with traffic in this interval)\n`;
  return `${header}\n${renderTable(COLUMNS, rows)}\n`;
}
