/**
 * The proof that the bundled dashboards work: a real Prometheus (Debian's
 * `prometheus`, started here on loopback) scrapes a real flowtel every
 * second while network-namespace traffic runs — TCP with induced
 * retransmits (nftables numgen drop), refused and timed-out connections,
 * UDP, DNS with NXDOMAIN and timeouts against dnsmasq — and then every
 * PromQL expression of every panel of every dashboard, with the variables
 * at All (`.*`), is evaluated through Prometheus' HTTP API. Each must
 * return data, except the queries marked `requires` (Kubernetes, cloud
 * zones, cross-AZ, or a loss that a healthy run does not have), which must
 * still be valid PromQL and are listed with their reason.
 *
 * The same agent also exports OTLP to a test receiver: the Collector's
 * Prometheus translation (test/helpers/prometheus-names.ts) applied to that
 * OTLP, after the unit-clearing transform of otel-config/collector.yaml,
 * must give exactly the names and labels the agent's own /metrics serves.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DASHBOARDS } from '../../dashboards/src/index';
import { queriesOf, type DashboardSpec, type QuerySpec } from '../../dashboards/src/grafana';
import { NODES, EDGES } from '../../dashboards/src/dashboards/service-map';
import { L } from '../../dashboards/src/labels';
import { METRICS } from '../../src/metrics/definitions';
import { DNS_METRICS } from '../../src/receivers/ebpf_dns/metrics';
import { selfTelemetryMetrics } from '../../src/telemetry/self-telemetry';
import { Agent, TempDir, freePort, parsePrometheus, sleep, until, type PromScrape } from '../helpers/e2e';
import { TestNet } from '../helpers/netns';
import { startOtlpReceiver, type OtlpTestReceiver } from '../helpers/otlp-receiver';
import type { DecodedMetric } from '../helpers/otlp-proto';
import type { DecodedRequest } from '../helpers/otlp-receiver';
import { collectorLabelName, collectorMetricName, sampleNames, type OtlpMetricShape } from '../helpers/prometheus-names';

const net = TestNet.create('da', 61);
const { client: C, server: S } = net;
const BLACKHOLE = '10.201.61.3';
const TCP_PORT = 8080;
const REFUSED_PORT = 8081;
const DROPPED_PORT = 8082;
const UDP_PORT = 9999;
const ROUNDS = 3;
const NX_PER_ROUND = 3;
const NX_QUERIES = ROUNDS * NX_PER_ROUND;
/** Unanswered DNS queries (one in each of the first rounds). */
const LOST_QUERIES = 2;
/**
 * Prometheus' scrape interval (and timeout). 3 s, not 1: on a machine shared
 * with other test runs a scrape can take over a second, and a failed scrape
 * marks every series stale. $__rate_interval is 4 of them, as in Grafana.
 */
const SCRAPE_SECONDS = 3;
const REFUSED_ATTEMPTS = 30;

const children: ChildProcess[] = [];
const tmp = new TempDir();
let promDir = '';
let agent: Agent | undefined;
let prometheus: ChildProcess | undefined;
let promUrl = '';
let agentMetricsUrl = '';
/** The agent's self-telemetry endpoint (what Prometheus scrapes for flowtel_* on the Collector path). */
let telemetryTarget = '';
let receiver: OtlpTestReceiver;
let startedAt = 0;
/**
 * The time queries are evaluated at (seconds): the last scrape that
 * succeeded. A scrape that times out on a busy machine marks every series
 * stale, and an instant query just after it would see nothing.
 */
let evalAt = 0;

function waitOutput(child: ChildProcess, what: string, marker: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const on = (d: Buffer): void => {
      out += d.toString();
      if (marker.test(out)) resolve();
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.on('exit', (code) => reject(new Error(`${what} exited ${code} before it was ready: ${out}`)));
  });
}

/** dig in the client namespace, without blocking the event loop (the OTLP test receiver runs in this process). */
function dig(args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', C.ns, 'dig', '+tries=1', '+time=1', ...args], (_error, stdout) => resolve(String(stdout ?? '')));
  });
}

interface PromResult {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

async function promQuery(pathname: string, params: Record<string, string>): Promise<{ status: string; data?: { resultType: string; result: PromResult[] }; error?: string }> {
  const body = new URLSearchParams(params);
  const response = await fetch(`${promUrl}${pathname}`, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  return (await response.json()) as { status: string; data?: { resultType: string; result: PromResult[] }; error?: string };
}

/** Grafana's substitutions for a query run at All over the test's time range. */
function substitute(expr: string, values: Record<string, string> = {}): string {
  const rangeSeconds = Math.ceil(evalAt - startedAt / 1000) + 5;
  return expr
    .replace(/\$__rate_interval/g, `${4 * SCRAPE_SECONDS}s`)
    .replace(/\$__range/g, `${rangeSeconds}s`)
    .replace(/\$(cluster|namespace|service|host|process|server|agent)\b/g, (_, name: string) => values[name] ?? '.*');
}

const finite = (v: string): boolean => v !== 'NaN' && v !== '+Inf' && v !== '-Inf';

/** Evaluates a panel query as Grafana would (range or instant); returns the series that have a finite value. */
async function evaluate(q: QuerySpec, values: Record<string, string> = {}): Promise<{ error?: string; series: PromResult[] }> {
  const expr = substitute(q.expr, values);
  const now = evalAt;
  const answer = q.instant
    ? await promQuery('/api/v1/query', { query: expr, time: String(now) })
    : await promQuery('/api/v1/query_range', { query: expr, start: String(startedAt / 1000), end: String(now), step: String(SCRAPE_SECONDS) });
  if (answer.status !== 'success') return { error: answer.error ?? answer.status, series: [] };
  const series = answer.data!.result.filter((r) => (r.value ? finite(r.value[1]) : (r.values ?? []).some(([, v]) => finite(v))));
  return { series };
}

/** One wave of TCP and UDP: bulk transfers through 5% loss (retransmits), churn, refused connections, UDP. */
async function wave(): Promise<void> {
  const bulk = Array.from({ length: 2 }, () => net.traffic(C, ['tcp-client', '--host', S.ip4, '--port', String(TCP_PORT), '--send', '2000000']));
  const churn = net.traffic(C, ['churn', '--host', S.ip4, '--port', String(TCP_PORT), '--count', '20', '--parallel', '4']);
  const udp = net.traffic(C, ['udp-client', '--host', S.ip4, '--port', String(UDP_PORT), '--count', '25', '--size', '600']);
  await Promise.all([...bulk, churn, udp]);
}

/**
 * A client that keeps retrying a port nobody listens on, every 400 ms: one
 * process (one process.pid, so one series) whose failures keep increasing.
 */
async function retryingClient(attempts: number): Promise<number> {
  const script = `const net = require('net'); let refused = 0, n = 0;
const t = setInterval(() => { const s = net.connect(${REFUSED_PORT}, '${S.ip4}');
  s.on('error', (e) => { if (e.code === 'ECONNREFUSED') refused++; }); s.on('connect', () => s.destroy());
  if (++n >= ${attempts}) { clearInterval(t); setTimeout(() => console.log(JSON.stringify({ refused })), 300); } }, 400);`;
  const child = net.spawn(C, process.execPath, ['-e', script]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((resolve) => child.once('exit', resolve));
  return (JSON.parse(out.trim() || '{}') as { refused?: number }).refused ?? 0;
}

/** DNS of one round: answered and NXDOMAIN queries, and (when `lost`) one that is never answered. */
async function dnsRound(lost: boolean): Promise<void> {
  for (let i = 0; i < NX_PER_ROUND; i++) {
    assert.match(await dig([`@${S.ip4}`, 'known.test', 'A']), /status: NOERROR/);
    assert.match(await dig([`@${S.ip4}`, 'nx.test', 'A']), /status: NXDOMAIN/);
    await sleep(300);
  }
  if (lost) await dig([`@${BLACKHOLE}`, 'lost.test', 'A']);
}

/**
 * Rounds of traffic a few scrapes apart, so that Prometheus sees every
 * counter and histogram increase (a series it first sees at its final value
 * has no rate), with a client retrying a refused port and a timed-out
 * connection (SYNs dropped; tcp_syn_retries=1: ~3 s) across them.
 */
async function runTraffic(): Promise<void> {
  const timedOut = net.traffic(C, ['connect', '--host', S.ip4, '--port', String(DROPPED_PORT)]);
  const refused = retryingClient(REFUSED_ATTEMPTS);
  for (let round = 0; round < ROUNDS; round++) {
    if (round > 0) await sleep(SCRAPE_SECONDS * 2_000);
    await Promise.all([wave(), dnsRound(round < LOST_QUERIES)]);
  }
  const [timeout, refusedCount] = await Promise.all([timedOut, refused]);
  assert.equal((timeout.result as { error?: string }).error, 'ETIMEDOUT');
  assert.equal(refusedCount, REFUSED_ATTEMPTS);
}

before(async () => {
  // The server namespace: a TCP server, a UDP echo, dnsmasq, a blackhole address, loss and drops.
  // The 5 % loss spares SYNs: with tcp_syn_retries=1, a SYN and its one retry both dropped
  // (1 in 400) failed a churn connection now and then, and the run with it.
  net.exec(S, 'ip', ['addr', 'add', `${BLACKHOLE}/24`, 'dev', S.dev]);
  net.nft(S, `table inet ftdaloss {
    chain input { type filter hook input priority 0;
      tcp dport ${TCP_PORT} tcp flags & (syn | ack) == syn accept;
      tcp dport ${TCP_PORT} numgen random mod 100 < 5 drop;
      tcp dport ${DROPPED_PORT} drop;
      ip daddr ${BLACKHOLE} udp dport 53 drop;
    }
  }`);
  children.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(TCP_PORT), '--reply', '50000']));
  children.push(await net.startServer(S, ['udp-server', '--host', S.ip4, '--port', String(UDP_PORT)]));
  const dnsmasq = net.spawn(S, 'dnsmasq', [
    '--keep-in-foreground', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--user=root', '--pid-file=',
    '--log-facility=-', '--bind-interfaces', '--port=53', '--cache-size=0', `--listen-address=${S.ip4}`,
    '--address=/known.test/10.9.9.9', '--address=/nx.test/',
  ]);
  children.push(dnsmasq);
  await waitOutput(dnsmasq, 'dnsmasq', /started, version/);

  receiver = await startOtlpReceiver();
  const agentPort = await freePort();
  const healthPort = await freePort();
  telemetryTarget = `127.0.0.1:${await freePort()}`;
  agentMetricsUrl = `http://127.0.0.1:${agentPort}/metrics`;
  const config = tmp.write('flowtel.yaml', `
receivers:
  ebpf_tcp:
    collection_interval: 1s
  ebpf_dns:
    collection_interval: 1s
    query_timeout: 500ms
    network_namespaces: [/run/netns/${C.ns}]
processors:
  # Only this test's hosts: other test runs and benchmarks on the machine may
  # open thousands of connections a second; pushed into the kernel, the
  # filter keeps them from costing this agent anything.
  filter:
    include:
      cidrs: [10.201.61.0/24]
  # As deploy/config does: one series per process name, not per pid. Every
  # traffic command is a new process; per pid, each would start a new series
  # that Prometheus first sees at its final value (no rate).
  aggregate:
    drop: [process.pid]
exporters:
  prometheus:
    endpoint: 127.0.0.1:${agentPort}
    resource_to_telemetry_conversion: { enabled: true }
  otlp:
    endpoint: http://${receiver.endpoint}
    export_interval: 1s
extensions:
  health_check: { endpoint: 127.0.0.1:${healthPort} }
service:
  extensions: [health_check]
  telemetry:
    metrics: { level: detailed, address: ${telemetryTarget} }
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      processors: [filter, aggregate]
      exporters: [prometheus, otlp]
    metrics/dns:                    # captured in the test's client namespace only
      receivers: [ebpf_dns]
      exporters: [prometheus, otlp]
`);
  agent = Agent.spawn(['run', '--config', config]);
  await agent.ready(60_000);
  // On a machine where other runs hold thousands of connections, the agent's
  // start-up (walking and attributing them) can keep it busy for a while:
  // start Prometheus once both endpoints answer promptly.
  const answers = async (url: string): Promise<boolean> => (await fetch(url, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined))?.ok === true;
  await until('the agent to answer scrapes within 1 s', async () => (await answers(agentMetricsUrl)) && answers(`http://${telemetryTarget}/metrics`), 90_000, () => agent?.describe() ?? '', 500);

  promDir = mkdtempSync(path.join(tmpdir(), 'flowtel-prom-'));
  const promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  writeFileSync(path.join(promDir, 'prometheus.yml'), `
global:
  scrape_interval: ${SCRAPE_SECONDS}s
  scrape_timeout: ${SCRAPE_SECONDS}s
  evaluation_interval: ${SCRAPE_SECONDS}s
scrape_configs:
  - job_name: flowtel
    static_configs:
      - targets: ['127.0.0.1:${agentPort}']
  # The Collector path's source of flowtel_*: the self-telemetry endpoint.
  - job_name: flowtel-self
    static_configs:
      - targets: ['${telemetryTarget}']
`);
  prometheus = spawn('prometheus', [
    `--config.file=${path.join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let promLog = '';
  prometheus.stderr!.on('data', (d: Buffer) => (promLog += d.toString()));
  await until('Prometheus to be ready', async () => (await fetch(`${promUrl}/-/ready`).catch(() => undefined))?.ok === true, 20_000, () => promLog);
  startedAt = Date.now();

  await runTraffic();
  // Everything the panels need has been scraped: the last counters of the
  // traffic (exact where the truth is exact: the DNS answers and timeouts
  // reach Prometheus a collection and a scrape after the last dig).
  const needed: Record<string, (v: number) => boolean> = {
    'sum(tcp_retransmits_total)': (v) => v > 0,
    [`sum(dns_timeouts_total{server_address="${BLACKHOLE}"})`]: (v) => v === LOST_QUERIES,
    'sum(tcp_connection_failures_total{error_type="timeout"})': (v) => v > 0,
    'sum(dns_responses_total{dns_question_name="nx.test", dns_response_code="NXDOMAIN"})': (v) => v === NX_QUERIES,
  };
  const have: Record<string, string> = {};
  await until('Prometheus to have the traffic', async () => {
    for (const q of Object.keys(needed)) have[q] = (await promQuery('/api/v1/query', { query: q })).data?.result[0]?.value?.[1] ?? 'none';
    const targets = (await (await fetch(`${promUrl}/api/v1/targets`)).json()) as { data: { activeTargets: { scrapeUrl: string; health: string; lastError: string; lastScrapeDuration: number }[] } };
    have.targets = JSON.stringify(targets.data.activeTargets.map((t) => [t.scrapeUrl, t.health, t.lastError, t.lastScrapeDuration]));
    return Object.entries(needed).every(([q, ok]) => ok(Number(have[q])));
  }, 60_000, () => `${JSON.stringify(have)}\n${agent?.describe() ?? ''}\n${promLog}`, 500);
  await sleep(3_000);
  const up = await promQuery('/api/v1/query', { query: 'up{job="flowtel"}[30s]' });
  const good = (up.data?.result[0]?.values ?? []).filter(([, v]) => v === '1').map(([t]) => Number(t));
  assert.ok(good.length > 0, `no successful scrape: ${JSON.stringify(up)}`);
  evalAt = good[good.length - 1]!;
  const failed = (up.data?.result[0]?.values ?? []).filter(([, v]) => v !== '1').length;
  if (failed) process.stderr.write(`dashboards.test: ${failed} of the last 30 s of scrapes failed (busy machine); queries are evaluated at the last good one\n`);
});

after(async () => {
  prometheus?.kill('SIGTERM');
  if (agent) await agent.stop().catch(() => agent?.kill());
  await receiver?.close();
  for (const c of children) c.kill();
  net.destroy();
  tmp.cleanup();
  if (promDir) rmSync(promDir, { recursive: true, force: true });
});

for (const { file, spec } of DASHBOARDS) {
  describe(`dashboards/${file} against a real Prometheus`, () => {
    test('every panel query returns data, except those that need a feature the test host lacks', async (t) => {
      const missing: string[] = [];
      const listed: string[] = [];
      for (const { panel, query, requires } of queriesOf(spec as DashboardSpec)) {
        const { error, series } = await evaluate(query);
        assert.equal(error, undefined, `${panel.title}: Prometheus rejected ${query.expr}: ${error}`);
        if (requires) {
          const enriched = series.some((r) => Object.entries(r.metric).some(([k, v]) => /_(k8s|cloud)_/.test(k) && v !== ''));
          const state = series.length === 0 ? 'no data' : enriched ? 'data' : 'one series, enrichment labels empty';
          listed.push(`${panel.title} [${requires.feature}: ${state}] — ${requires.reason}`);
        } else if (series.length === 0) {
          missing.push(`${panel.title}: ${substitute(query.expr)}`);
        }
      }
      for (const line of listed) t.diagnostic(`listed: ${line}`);
      assert.deepEqual(missing, [], 'panel queries without data');
    });

    test('variables: host, process, DNS server and agent have values; cluster/namespace/service are empty without Kubernetes', async (t) => {
      for (const v of spec.variables) {
        const match = `${v.metric}${v.matchers ? `{${v.matchers}}` : ''}`.replace(/\$\w+/g, '.*');
        const r = await fetch(`${promUrl}/api/v1/label/${v.labelName}/values?${new URLSearchParams({ 'match[]': match, start: String(startedAt / 1000 - 60) })}`);
        const body = (await r.json()) as { status: string; data: string[] };
        assert.equal(body.status, 'success', `${v.name}: ${JSON.stringify(body)}`);
        t.diagnostic(`$${v.name} = ${JSON.stringify(body.data.slice(0, 8))}`);
        if (['host', 'process', 'server', 'agent'].includes(v.name)) assert.ok(body.data.length > 0, `$${v.name} (${v.labelName} of ${v.metric}) has no values`);
      }
    });
  });
}

describe('dashboards/agent-health.json on the Collector path (the self-telemetry endpoint alone)', () => {
  test('every query returns data with $agent = the self-telemetry endpoint, except the listed ones', async (t) => {
    const health = DASHBOARDS.find((d) => d.spec.uid === 'flowtel-agent-health')!.spec;
    const missing: string[] = [];
    for (const { panel, query, requires } of queriesOf(health)) {
      const { error, series } = await evaluate(query, { agent: telemetryTarget.replace(/\./g, '\\\\.') });
      assert.equal(error, undefined, `${panel.title}: ${error}`);
      if (requires) t.diagnostic(`listed: ${panel.title} [${series.length ? 'has data' : 'no data'}]`);
      else if (series.length === 0) missing.push(`${panel.title}: ${substitute(query.expr, { agent: telemetryTarget })}`);
    }
    assert.deepEqual(missing, [], 'agent health panels without data from the self-telemetry endpoint');
  });
});

describe('what the panels show is the traffic that ran', () => {
  const instant = async (expr: string): Promise<PromResult[]> => (await evaluate({ expr, instant: true })).series;

  test('service map: an edge from the client process to the TCP server, and both nodes', async () => {
    const edges = await instant(EDGES);
    const edge = edges.find((e) => e.metric.source === 'node' && e.metric.target === `${S.ip4}:${TCP_PORT}`);
    assert.ok(edge, `edges: ${JSON.stringify(edges.map((e) => e.metric))}`);
    assert.equal(edge.metric.id, `node → ${S.ip4}:${TCP_PORT}`);
    const nodes = (await instant(NODES)).map((n) => n.metric.id);
    assert.ok(nodes.includes('node') && nodes.includes(`${S.ip4}:${TCP_PORT}`), `nodes: ${JSON.stringify(nodes)}`);
  });

  test('failures by reason show refused and timeout; DNS shows NXDOMAIN for nx.test and timeouts', async () => {
    const reasons = (await instant(`sum by (error_type) (tcp_connection_failures_total{destination_address="${S.ip4}"})`)).map((r) => r.metric.error_type);
    const all = async (): Promise<string> => JSON.stringify((await promQuery('/api/v1/query', { query: 'tcp_connection_failures_total[30s]' })).data?.result.map((r) => [r.metric, r.values?.map((v) => v[1]).join(',')]));
    assert.ok(reasons.includes('refused') && reasons.includes('timeout'), `${JSON.stringify(reasons)}: ${await all()}`);
    const nx = await instant('sum(dns_responses_total{dns_question_name="nx.test", dns_response_code="NXDOMAIN"})');
    const nxSeries = async (): Promise<string> => JSON.stringify((await promQuery('/api/v1/query', { query: '{dns_question_name="nx.test"}' })).data?.result.map((r) => [r.metric.__name__, r.metric.network_transport, r.metric.server_address, r.metric.dns_response_code, r.value?.[1]]));
    assert.equal(Number(nx[0]?.value?.[1]), NX_QUERIES, await nxSeries());
    const timeouts = await instant(`sum(dns_timeouts_total{server_address="${BLACKHOLE}"})`);
    assert.equal(Number(timeouts[0]?.value?.[1]), LOST_QUERIES);
    const ratio = await instant(`sum(tcp_retransmits_total{destination_address="${S.ip4}"}) / sum(tcp_segments_sent_total{destination_address="${S.ip4}"})`);
    assert.ok(Number(ratio[0]?.value?.[1]) > 0, 'retransmit ratio through 5% loss is above 0');
  });
});

describe('names that line up: agent → Prometheus equals agent → OTLP → Collector → Prometheus', () => {
  let served: PromScrape;
  let shapes: Map<string, { shape: OtlpMetricShape; attributes: Set<string> }>;
  let resourceKeys: Set<string>;

  let before1: Set<string>;
  let labelsBefore: Map<string, Set<string>>;

  /** OTLP metric shapes and attribute keys of the requests received so far. */
  function collect(requests: readonly DecodedRequest[]): Map<string, { shape: OtlpMetricShape; attributes: Set<string> }> {
    const out = new Map<string, { shape: OtlpMetricShape; attributes: Set<string> }>();
    for (const request of requests) {
      for (const rm of request.resourceMetrics) {
        for (const key of Object.keys(rm.resource.attributes)) resourceKeys.add(key);
        for (const sm of rm.scopeMetrics) {
          for (const m of sm.metrics) {
            const entry = out.get(m.name) ?? { shape: shapeOf(m), attributes: new Set<string>() };
            const points = 'dataPoints' in m.data ? m.data.dataPoints : [];
            for (const p of points) for (const k of Object.keys(p.attributes)) entry.attributes.add(k);
            out.set(m.name, entry);
          }
        }
      }
    }
    return out;
  }

  // Series only ever appear (cumulative temporality): what OTLP carried before
  // the scrape must be served, and what is served must be in OTLP exported after it.
  before(async () => {
    resourceKeys = new Set();
    const earlier = collect([...receiver.requests]);
    before1 = new Set([...earlier.values()].map(({ shape }) => throughCollector(shape)));
    labelsBefore = new Map([...earlier].map(([name, e]) => [name, e.attributes]));
    served = parsePrometheus(await (await fetch(agentMetricsUrl)).text());
    const seen = receiver.requests.length;
    await receiver.waitFor((requests) => requests.length >= seen + 2, 10_000);
    shapes = collect([...receiver.requests]);
  });

  function shapeOf(m: DecodedMetric): OtlpMetricShape {
    const d = m.data;
    if (d.kind === 'sum') return { name: m.name, unit: m.unit, type: 'sum', monotonic: d.monotonic };
    if (d.kind === 'gauge' || d.kind === 'histogram') return { name: m.name, unit: m.unit, type: d.kind };
    throw new Error(`flowtel emitted ${m.name} as ${d.kind}`);
  }

  /** What the Collector serves for an OTLP metric after `transform/prometheus_names` cleared its unit. */
  const throughCollector = (s: OtlpMetricShape): string => collectorMetricName({ ...s, unit: '' });

  test('the OTLP carries every flow, DNS and kernel-side metric of the run', () => {
    for (const name of ['tcp_bytes_sent', 'tcp_retransmits', 'tcp_rtt_us', 'tcp_connection_failures', 'udp_bytes_sent', 'dns_queries', 'dns_timeouts', 'dns_latency_us', 'flowtel_ebpf_records']) {
      assert.ok(shapes.has(name), `${name} not in the OTLP export: ${[...shapes.keys()].join(', ')}`);
    }
  });

  test('every OTLP metric has the same family name on both paths', () => {
    const families = new Set(served.types.keys());
    for (const family of before1) assert.ok(families.has(family), `${family} (from OTLP, through the Collector) is not served by the agent (${[...families].join(', ')})`);
    // And the other way: everything the agent serves comes through the Collector too,
    // except the self-telemetry observed at scrape time (never pushed: see docs/deploy.md).
    const observedOnly = new Set(selfTelemetryMetrics('detailed').map((n) => (served.types.has(`${n}_total`) ? `${n}_total` : n)));
    const viaCollector = new Set([...shapes.values()].map(({ shape }) => throughCollector(shape)));
    const onlyServed = [...families].filter((f) => f !== 'target_info' && !observedOnly.has(f) && !viaCollector.has(f));
    assert.deepEqual(onlyServed, [], 'served by the agent but not produced through the Collector');
  });

  test('sample names and Prometheus types agree (counters _total, histograms _bucket/_sum/_count)', () => {
    const sampleSet = new Set(served.samples.map((s) => s.name));
    for (const { shape } of shapes.values()) {
      const family = throughCollector(shape);
      const type = shape.type === 'sum' ? (shape.monotonic ? 'counter' : 'gauge') : shape.type;
      assert.equal(served.types.get(family), type, `${family} type`);
      for (const n of sampleNames(family, shape.type)) assert.ok(sampleSet.has(n), `${n} not served`);
    }
  });

  test('label names agree (attributes, plus resource attributes with resource_to_telemetry_conversion)', () => {
    const resourceLabels = new Set([...resourceKeys].map(collectorLabelName));
    for (const [name, { shape, attributes }] of shapes) {
      const family = throughCollector(shape);
      const servedLabels = new Set<string>();
      for (const s of served.samples) {
        if (!sampleNames(family, shape.type).includes(s.name)) continue;
        for (const l of Object.keys(s.labels)) if (l !== 'le' && !l.startsWith('otel_scope_') && !resourceLabels.has(l)) servedLabels.add(l);
      }
      const after = new Set([...attributes].map(collectorLabelName));
      const earlier = new Set([...(labelsBefore.get(name) ?? [])].map(collectorLabelName));
      for (const l of earlier) assert.ok(servedLabels.has(l), `${name}: OTLP attribute → label ${l} is not served (${[...servedLabels].join(', ')})`);
      for (const l of servedLabels) assert.ok(after.has(l), `${name}: served label ${l} is no OTLP attribute (${[...after].join(', ')})`);
    }
  });

  test('without clearing units the Collector would add unit suffixes the agent does not (why the transform exists)', () => {
    const differ = [...shapes.values()].map(({ shape }) => shape).filter((s) => collectorMetricName(s) !== throughCollector(s)).map((s) => `${s.name} → ${collectorMetricName(s)}`);
    assert.ok(differ.some((d) => d.startsWith('tcp_rtt_us → tcp_rtt_us_microseconds')), differ.join(', '));
  });

  test('every metric a dashboard queries is served, or is a defined flowtel metric, or one of the cross-AZ metrics of the enrichment', () => {
    // Defined metrics not served in this run: counters that exist only once non-zero (flowtel_ebpf_dropped, …).
    const defined = [...METRICS.values(), ...DNS_METRICS].map((d) => collectorMetricName({ name: d.name, unit: '', type: d.kind === 'counter' ? 'sum' : d.kind, monotonic: d.kind === 'counter' }));
    const families = new Set([...served.types.keys(), ...defined]);
    // Metrics of the enrichment processors (issue 5), absent from this run.
    const enrichment = new Set(['network_cross_az_bytes_total', 'network_cross_az_cost_usd_total', 'flowtel_k8s_api_reachable', 'flowtel_k8s_api_errors_total']);
    const labelNames = new Set<string>(Object.values(L));
    const unknown: string[] = [];
    for (const { spec } of DASHBOARDS) {
      for (const { query } of queriesOf(spec)) {
        for (const m of query.expr.matchAll(/\b(?:tcp|udp|dns|flowtel|network)_[a-z0-9_]+/g)) {
          if (labelNames.has(m[0])) continue;
          const name = m[0].replace(/_(bucket|sum|count)$/, '');
          if (!families.has(name) && !enrichment.has(name)) unknown.push(`${spec.uid}: ${name}`);
        }
      }
    }
    assert.deepEqual([...new Set(unknown)], []);
  });
});
