/**
 * End to end: `node bin/flowtel run` as a child process against the real
 * kernel, known TCP traffic between two test network namespaces, and what
 * each exporter really delivers — decoded OTLP/gRPC, a scraped Prometheus
 * endpoint, the console table — with exact byte counts.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { after, afterEach, before, describe, test } from 'node:test';
import { Agent, TempDir, assertNothingAttached, assertProgramsAttached, freePort, promSelect, promSum, scrape, until, type PromScrape } from '../helpers/e2e';
import { TestNet, sh } from '../helpers/netns';
import { flattenMetrics, resourceAttributes, startOtlpReceiver, type DecodedRequest, type FlatMetric, type FlatPoint, type OtlpTestReceiver } from '../helpers/otlp-receiver';
import { containerFromCgroupFile } from '../../src/processors/enrich/cgroup';

const net = TestNet.create('e2ex', 31);
const { client: C, server: S } = net;
const tmp = new TempDir();
const servers: ChildProcess[] = [];
const agents: Agent[] = [];
const receivers: OtlpTestReceiver[] = [];

/** 10 µs … 10 s (docs/metrics.md: "Buckets 10 µs … 10 s"). */
const LATENCY_BOUNDS_US = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000];

function agent(args: string[], options: Parameters<typeof Agent.spawn>[1] = {}): Agent {
  const a = Agent.spawn(args, options);
  agents.push(a);
  return a;
}

async function otlpReceiver(): Promise<OtlpTestReceiver> {
  const r = await startOtlpReceiver();
  receivers.push(r);
  return r;
}

function config(text: string): string {
  return tmp.write(`config-${randomUUID()}.yaml`, text);
}

/** Client sends N bytes to a fresh server on `port`, which answers M and closes. */
async function exchange(port: number, N: number, M: number): Promise<{ clientPid: number; serverPid: number }> {
  const server = await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(port), '--reply', String(M)]);
  servers.push(server);
  const { pid, result } = await net.traffic<{ sent: number; received: number }>(C, ['tcp-client', '--host', S.ip4, '--port', String(port), '--send', String(N)]);
  assert.deepEqual([result.sent, result.received], [N, M]);
  return { clientPid: pid, serverPid: server.pid! };
}

/** The full attribute sets flowtel gives the two ends of one connection C → S:port. */
function flowAttributes(port: number, clientPid: number, serverPid: number): { client: Record<string, string | number>; server: Record<string, string | number> } {
  return {
    client: {
      'network.transport': 'tcp',
      'network.type': 'ipv4',
      'source.address': C.ip4,
      'destination.address': S.ip4,
      'destination.port': port,
      'flow.direction': 'outgoing',
      'process.pid': clientPid,
      'process.executable.name': 'node',
    },
    server: {
      'network.transport': 'tcp',
      'network.type': 'ipv4',
      'source.address': S.ip4,
      'source.port': port,
      'destination.address': C.ip4,
      'flow.direction': 'incoming',
      'process.pid': serverPid,
      'process.executable.name': 'node',
    },
  };
}

// ---------------------------------------------------------------------------
// OTLP views

function metricsOf(request: DecodedRequest): FlatMetric[] {
  return flattenMetrics([request]);
}

function metricIn(request: DecodedRequest, name: string): FlatMetric | undefined {
  const all = metricsOf(request).filter((m) => m.name === name);
  assert.ok(all.length <= 1, `${name} appears once per export`);
  return all[0];
}

/** The data point of `name` whose attributes are exactly `attrs`. */
function pointIn(request: DecodedRequest, name: string, attrs: Record<string, string | number>): FlatPoint | undefined {
  const want = JSON.stringify(Object.entries(attrs).sort());
  return metricIn(request, name)?.points.find((p) => JSON.stringify(Object.entries(p.attributes).sort()) === want);
}

function describeRequest(request: DecodedRequest | undefined, filter: (p: FlatPoint) => boolean): string {
  if (!request) return '(no request)';
  return metricsOf(request)
    .filter((m) => m.name.startsWith('tcp_'))
    .map((m) => `${m.name}: ${JSON.stringify(m.points.filter(filter).map((p) => ({ ...p.attributes, value: p.value ?? p.count })))}`)
    .join('\n');
}

/** Wait for an export in which both ends of the connection (as one of `flows` describes them) are closed; return it. */
async function exportWithClosedFlow(receiver: OtlpTestReceiver, flows: ReadonlyArray<ReturnType<typeof flowAttributes>>, timeoutMs = 10_000): Promise<DecodedRequest> {
  const closed = (r: DecodedRequest): boolean => flows.some((flow) => closedIn(r, flow));
  const flow = flows[0]!;
  try {
    const reqs = await receiver.waitFor((rs) => rs.length > 0 && closed(rs[rs.length - 1]!), timeoutMs);
    return reqs[reqs.length - 1]!;
  } catch (e) {
    const last = receiver.requests.at(-1);
    const port = flow.client['destination.port'];
    throw new Error(
      `${(e as Error).message}\nlast export, points of port ${port}:\n${describeRequest(last, (p) => p.attributes['destination.port'] === port || p.attributes['source.port'] === port)}`,
    );
  }
}

function closedIn(r: DecodedRequest, flow: ReturnType<typeof flowAttributes>): boolean {
  return pointIn(r, 'tcp_connections_closed', flow.client)?.value === 1 && pointIn(r, 'tcp_connections_closed', flow.server)?.value === 1;
}

function assertBytes(request: DecodedRequest, flow: ReturnType<typeof flowAttributes>, N: number, M: number): void {
  for (const [side, attrs, sent, received] of [
    ['client', flow.client, N, M],
    ['server', flow.server, M, N],
  ] as const) {
    assert.equal(pointIn(request, 'tcp_bytes_sent', attrs)?.value, sent, `${side} tcp_bytes_sent`);
    assert.equal(pointIn(request, 'tcp_bytes_received', attrs)?.value, received, `${side} tcp_bytes_received`);
    assert.equal(pointIn(request, 'tcp_connections_opened', attrs)?.value, 1, `${side} tcp_connections_opened`);
    assert.equal(pointIn(request, 'tcp_connections_closed', attrs)?.value, 1, `${side} tcp_connections_closed`);
  }
}

// ---------------------------------------------------------------------------
// The console table

interface TableRow {
  process: string;
  source: string;
  destination: string;
  proto: string;
  dir: string;
  sent: string;
  received: string;
}

/** Every row of every top-flows table printed so far. */
function tableRows(stdout: string): TableRow[] {
  const rows: TableRow[] = [];
  let inTable = false;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('── flowtel top flows')) {
      inTable = false;
      continue;
    }
    if (/^PROCESS\s+SOURCE\s+DESTINATION\s+PROTO\s+DIR\s+SENT\s+RECEIVED\s+RETRANS\s+RTT$/.test(line)) {
      inTable = true;
      continue;
    }
    if (!inTable || line.trim() === '') continue;
    const cells = line.trim().split(/\s{2,}/);
    assert.equal(cells.length, 9, `a table row has 9 columns: ${JSON.stringify(line)}`);
    const [process, source, destination, proto, dir, sent, received] = cells as [string, string, string, string, string, string, string];
    rows.push({ process, source, destination, proto, dir, sent, received });
  }
  return rows;
}

/** "700 B" → 700 (the table prints exact bytes below 1 KiB). */
function exactBytes(cell: string): number {
  const m = /^(\d+) B$/.exec(cell);
  assert.ok(m, `an exact byte count below 1 KiB: ${cell}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------

before(() => {
  // Nothing of ours may be left over from an earlier run.
  return assertNothingAttached();
});

afterEach(async () => {
  for (const a of agents.splice(0)) await a.kill();
  for (const s of servers.splice(0)) s.kill();
  for (const r of receivers.splice(0)) await r.close();
});

after(() => {
  net.destroy();
  tmp.cleanup();
});

describe('otlp exporter', () => {
  test('a connection of N and M bytes arrives as cumulative monotonic Sums of exactly N and M, with its attributes and the resource', async () => {
    const receiver = await otlpReceiver();
    const runId = randomUUID();
    const a = agent(
      [
        'run',
        '--config',
        config(`
receivers:
  ebpf_tcp:
    collection_interval: 1s
exporters:
  otlp:
    endpoint: http://${receiver.endpoint}
    export_interval: 1s
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [otlp]
`),
      ],
      { env: { OTEL_RESOURCE_ATTRIBUTES: `deployment.environment.name=e2e,flowtel.e2e.run=${runId}` } },
    );
    await a.ready();
    const port = 7301;
    const N = 1_234_567;
    const M = 54_321;
    const { clientPid, serverPid } = await exchange(port, N, M);
    const flow = flowAttributes(port, clientPid, serverPid);
    const request = await exportWithClosedFlow(receiver, [flow]);

    assertBytes(request, flow, N, M);
    for (const name of ['tcp_bytes_sent', 'tcp_bytes_received']) {
      const m = metricIn(request, name)!;
      assert.equal(m.kind, 'sum', name);
      assert.equal(m.monotonic, true, `${name} is monotonic`);
      assert.equal(m.temporality, 'cumulative', name);
      assert.equal(m.unit, 'By', `${name} unit`);
      assert.equal(m.scope, 'flowtel');
    }
    for (const name of ['tcp_connections_opened', 'tcp_connections_closed']) {
      const m = metricIn(request, name)!;
      assert.deepEqual([m.kind, m.monotonic, m.temporality, m.unit], ['sum', true, 'cumulative', '{connection}'], name);
    }

    // RTT: sampled at close at least, for both ends; explicit buckets 10 µs … 10 s.
    const rtt = metricIn(request, 'tcp_rtt_us')!;
    assert.equal(rtt.kind, 'histogram');
    assert.equal(rtt.unit, 'us');
    assert.equal(rtt.temporality, 'cumulative');
    for (const attrs of [flow.client, flow.server]) {
      const p = pointIn(request, 'tcp_rtt_us', attrs);
      assert.ok(p, `tcp_rtt_us point for ${JSON.stringify(attrs)}`);
      assert.deepEqual(p.explicitBounds, LATENCY_BOUNDS_US);
      assert.equal(p.bucketCounts!.length, LATENCY_BOUNDS_US.length + 1);
      assert.ok(p.count! >= 1, 'at least the sample at close');
      assert.equal(p.bucketCounts!.reduce((s, n) => s + n, 0), p.count);
      assert.ok(p.min! > 0 && p.max! < 1_000_000, `a veth RTT is above 0 and far below 1 s: ${p.min}..${p.max}`);
    }
    // One handshake, timed on the client side only.
    const connect = pointIn(request, 'tcp_connect_latency_us', flow.client);
    assert.equal(connect?.count, 1, 'one tcp_connect_latency_us sample for one connect()');
    assert.equal(metricIn(request, 'tcp_connect_latency_us')!.unit, 'us');
    assert.equal(pointIn(request, 'tcp_connect_latency_us', flow.server), undefined, 'the server side has no connect latency');

    const resource = resourceAttributes(request);
    assert.equal(resource['service.name'], 'flowtel');
    assert.equal(resource['host.name'], hostname());
    assert.equal(resource['deployment.environment.name'], 'e2e');
    assert.equal(resource['flowtel.e2e.run'], runId, 'OTEL_RESOURCE_ATTRIBUTES of the agent environment');
    assert.equal(resource['os.type'], 'linux');

    // Cumulative: later exports repeat the same totals, nothing is counted twice.
    const seen = receiver.requests.length;
    await receiver.waitFor((rs) => rs.length >= seen + 2, 5_000);
    assertBytes(receiver.requests.at(-1)!, flow, N, M);

    assert.deepEqual(a.logs().filter((l) => l.level === 'error' || l.level === 'fatal' || (l.level === 'warn' && l.component === 'otlp')), [], 'no errors, no export failures');
    assert.equal((await a.stop()).code, 0);
  });
});

describe('prometheus exporter', () => {
  test('scraped /metrics: _total counters with exactly N and M, dots in labels become underscores, histograms with le buckets', async () => {
    const promPort = await freePort();
    const a = agent([
      'run',
      '--config',
      config(`
receivers:
  ebpf_tcp:
    collection_interval: 1s
exporters:
  prometheus:
    endpoint: 127.0.0.1:${promPort}
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [prometheus]
`),
    ]);
    await a.ready();
    const url = `http://127.0.0.1:${promPort}/metrics`;
    const port = 7302;
    const N = 765_432;
    const M = 12_345;
    const { clientPid, serverPid } = await exchange(port, N, M);
    const client = {
      network_transport: 'tcp',
      network_type: 'ipv4',
      source_address: C.ip4,
      destination_address: S.ip4,
      destination_port: String(port),
      flow_direction: 'outgoing',
      process_pid: String(clientPid),
      process_executable_name: 'node',
      otel_scope_name: 'flowtel',
    };
    const server = {
      network_transport: 'tcp',
      network_type: 'ipv4',
      source_address: S.ip4,
      source_port: String(port),
      destination_address: C.ip4,
      flow_direction: 'incoming',
      process_pid: String(serverPid),
      process_executable_name: 'node',
      otel_scope_name: 'flowtel',
    };
    let s: PromScrape | undefined;
    await until(
      'both ends closed in /metrics',
      async () => {
        s = await scrape(url);
        return promSum(s, 'tcp_connections_closed_total', client) === 1 && promSum(s, 'tcp_connections_closed_total', server) === 1;
      },
      10_000,
      () => s!.samples.filter((x) => x.labels.destination_port === String(port) || x.labels.source_port === String(port)).map((x) => `${x.name}${JSON.stringify(x.labels)} ${x.value}`).join('\n'),
    );
    s = s!;

    // Each series once, with exactly these labels.
    const one = (name: string, labels: Record<string, string>): number => {
      const found = promSelect(s!, name, labels);
      assert.equal(found.length, 1, `one ${name} series for ${JSON.stringify(labels)}`);
      assert.deepEqual(found[0]!.labels, labels, `${name} labels`);
      return found[0]!.value;
    };
    assert.equal(one('tcp_bytes_sent_total', client), N);
    assert.equal(one('tcp_bytes_received_total', client), M);
    assert.equal(one('tcp_bytes_sent_total', server), M);
    assert.equal(one('tcp_bytes_received_total', server), N);
    for (const side of [client, server]) {
      assert.equal(one('tcp_connections_opened_total', side), 1);
      assert.equal(one('tcp_connections_closed_total', side), 1);
    }
    for (const name of ['tcp_bytes_sent_total', 'tcp_bytes_received_total', 'tcp_connections_opened_total', 'tcp_connections_closed_total', 'tcp_segments_sent_total']) {
      assert.equal(s.types.get(name), 'counter', `# TYPE ${name}`);
    }
    assert.equal(s.units.get('tcp_bytes_sent_total'), 'By');
    // No unit suffix and no unsuffixed counter names.
    assert.equal(s.samples.filter((x) => /^tcp_bytes_sent(?!_total$)/.test(x.name)).length, 0, 'tcp_bytes_sent is only served as tcp_bytes_sent_total');

    // Histograms: _bucket per bound (+Inf), _count, _sum.
    assert.equal(s.types.get('tcp_rtt_us'), 'histogram');
    assert.equal(s.units.get('tcp_rtt_us'), 'us');
    const buckets = promSelect(s, 'tcp_rtt_us_bucket', client);
    assert.deepEqual(
      buckets.map((b) => b.labels.le),
      [...LATENCY_BOUNDS_US.map(String), '+Inf'],
    );
    const count = one('tcp_rtt_us_count', client);
    assert.ok(count >= 1);
    assert.equal(buckets.at(-1)!.value, count, 'le="+Inf" equals _count');
    assert.ok(buckets.every((b, i) => i === 0 || b.value >= buckets[i - 1]!.value), 'buckets are cumulative');
    assert.ok(one('tcp_rtt_us_sum', client) > 0);
    assert.equal(one('tcp_connect_latency_us_count', client), 1);

    // The resource is target_info.
    const [target] = promSelect(s, 'target_info', {});
    assert.ok(target, 'target_info');
    assert.equal(target.labels.service_name, 'flowtel');
    assert.equal(target.labels.host_name, hostname());
    assert.equal(target.value, 1);
    // Self-telemetry: one series each, labelled with the receiver id.
    one('flowtel_tracked_connections', { receiver: 'ebpf_tcp', otel_scope_name: 'flowtel' });
    assert.equal(s.types.get('flowtel_tracked_connections'), 'gauge');
    assert.equal(s.types.get('flowtel_ebpf_records_total'), 'counter');
    assert.ok(one('flowtel_ebpf_records_total', { receiver: 'ebpf_tcp', kind: 'event', otel_scope_name: 'flowtel' }) >= 4, 'at least the open and close events of both ends');

    assert.equal((await a.stop()).code, 0);
  });

  test('an open connection is in the tcp_connections gauge while it lasts, and its bytes are counted before it closes', async () => {
    const promPort = await freePort();
    const a = agent([
      'run',
      '--config',
      config(`
receivers: { ebpf_tcp: { collection_interval: 1s } }
exporters: { prometheus: { endpoint: "127.0.0.1:${promPort}" } }
service: { pipelines: { metrics: { receivers: [ebpf_tcp], exporters: [prometheus] } } }
`),
    ]);
    await a.ready();
    const url = `http://127.0.0.1:${promPort}/metrics`;
    const port = 7303;
    servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(port), '--mode', 'hold']));
    // 50,000 bytes echoed back, then the connection stays open 4 s.
    const held = net.traffic<{ received: number }>(C, ['tcp-client', '--host', S.ip4, '--port', String(port), '--send', '50000', '--chunk', '10000', '--hold-ms', '4000']);
    const client = { source_address: C.ip4, destination_address: S.ip4, destination_port: String(port), flow_direction: 'outgoing' };
    let s: PromScrape | undefined;
    await until(
      'the open connection with all its bytes in /metrics',
      async () => {
        s = await scrape(url);
        return promSum(s, 'tcp_bytes_received_total', client) === 50_000;
      },
      8_000,
      () => s!.samples.filter((x) => x.labels.destination_port === String(port)).map((x) => `${x.name}${JSON.stringify(x.labels)} ${x.value}`).join('\n'),
    );
    assert.equal(promSum(s!, 'tcp_bytes_sent_total', client), 50_000);
    assert.equal(promSum(s!, 'tcp_connections', { ...client, network_connection_state: 'established' }), 1);
    assert.equal(promSum(s!, 'tcp_connections_closed_total', client), 0);
    assert.equal(s!.types.get('tcp_connections'), 'gauge');
    const { result } = await held;
    assert.equal(result.received, 50_000);
    await until('the closed connection to leave the gauge', async () => {
      s = await scrape(url);
      return promSum(s, 'tcp_connections_closed_total', client) === 1;
    });
    // Gone from the gauge: its series reads 0 (the SDK would otherwise repeat the last value, 1, forever).
    const gone = promSelect(s!, 'tcp_connections', { ...client, network_connection_state: 'established' });
    assert.deepEqual(gone.map((x) => x.value), [0], 'no longer open');
    await new Promise((r) => setTimeout(r, 1_500));
    s = await scrape(url);
    assert.equal(promSum(s, 'tcp_connections', client), 0, 'and stays at 0');
    assert.equal(promSum(s!, 'tcp_bytes_sent_total', client), 50_000, 'no byte counted twice at close');
    assert.equal((await a.stop()).code, 0);
  });
});

describe('debug exporter', () => {
  test('stdout shows the top-flows table with the destination address:port and the exact bytes of each end', async () => {
    const a = agent([
      'run',
      '--config',
      config(`
receivers:
  ebpf_tcp:
    collection_interval: 1s
exporters:
  debug:
    export_interval: 1s
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [debug]
`),
    ]);
    await a.ready();
    const port = 7304;
    // Below 1 KiB the table prints exact byte counts.
    const N = 1000;
    const M = 700;
    const { clientPid, serverPid } = await exchange(port, N, M);
    const dest = `${S.ip4}:${port}`;
    // The table shows per-interval deltas: a flow that straddles a collection is in two tables.
    const rowsOf = (pick: (r: TableRow) => boolean): TableRow[] => tableRows(a.stdout).filter(pick);
    const isClient = (r: TableRow): boolean => r.destination === dest && r.source === C.ip4;
    const isServer = (r: TableRow): boolean => r.source === dest && r.destination === C.ip4;
    const total = (rows: TableRow[], k: 'sent' | 'received'): number => rows.reduce((s, r) => s + exactBytes(r[k]), 0);
    await a.waitFor(`table rows for ${dest} with ${N}/${M} bytes`, () => total(rowsOf(isClient), 'sent') === N && total(rowsOf(isClient), 'received') === M && total(rowsOf(isServer), 'sent') === M, 10_000);

    for (const r of rowsOf(isClient)) assert.deepEqual([r.process, r.proto, r.dir], [`node/${clientPid}`, 'tcp', 'outgoing']);
    for (const r of rowsOf(isServer)) assert.deepEqual([r.process, r.proto, r.dir], [`node/${serverPid}`, 'tcp', 'incoming']);
    assert.equal(total(rowsOf(isServer), 'received'), N);
    assert.match(a.stdout, /── flowtel top flows \S+ \((since start|last \d+\.\ds)\) ──\nconnections: [\d,]+ opened, [\d,]+ closed, [\d,]+ failed \| flows: [\d,]+ active/);
    assert.equal((await a.stop()).code, 0);
  });
});

describe('embedded default config', () => {
  test('no --config: serves Prometheus on 0.0.0.0:9464 (in a namespace of its own, so nothing else has the port), no otlp exporter', async () => {
    const ns = 'fte2ex-default';
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      /* not there */
    }
    sh('ip', ['netns', 'add', ns]);
    try {
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      const a = agent(['run'], { netns: ns });
      await a.ready();
      const listening = sh('ip', ['netns', 'exec', ns, 'ss', '-Hltn']);
      assert.match(listening, /\s0\.0\.0\.0:9464\s/, `listening sockets in ${ns}:\n${listening}`);
      const ids = assertProgramsAttached(a);
      // Scrape from inside that namespace.
      const body = sh('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, '-e', "fetch('http://127.0.0.1:9464/metrics').then(r => r.text()).then(t => process.stdout.write(t))"]);
      assert.match(body, /^target_info\{.*service_name="flowtel".*\} 1$/m);
      // The default collects every 10 s: traffic now is collected by the shutdown and shown in the last table.
      const port = 7307;
      const { clientPid } = await exchange(port, 640, 320);
      assert.equal((await a.stop()).code, 0);
      await assertNothingAttached(ids);
      const rows = tableRows(a.stdout).filter((r) => r.destination === `${S.ip4}:${port}` && r.source === C.ip4);
      assert.deepEqual(
        rows.map((r) => [r.process, r.dir, exactBytes(r.sent), exactBytes(r.received)]),
        [[`node/${clientPid}`, 'outgoing', 640, 320]],
        a.stdout,
      );
      // The default without OTEL_EXPORTER_OTLP_ENDPOINT has no otlp exporter: nothing tried to send.
      assert.equal(a.logs().filter((l) => String(l.component ?? '').startsWith('otlp') || /otlp/i.test(String(l.msg))).length, 0, 'no otlp exporter without OTEL_EXPORTER_OTLP_ENDPOINT');
    } finally {
      for (const x of agents.splice(0)) await x.kill();
      sh('ip', ['netns', 'del', ns]);
    }
  });

  test('no --config with OTEL_EXPORTER_OTLP_ENDPOINT: also exports OTLP there (exact bytes), Prometheus moved with --set', async () => {
    const receiver = await otlpReceiver();
    const promPort = await freePort();
    const a = agent(['run', '--set', `exporters.prometheus.endpoint=127.0.0.1:${promPort}`, '--set', 'receivers.ebpf_tcp.collection_interval=1s'], {
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://${receiver.endpoint}`, OTEL_METRIC_EXPORT_INTERVAL: '1000' },
    });
    await a.ready();
    const port = 7305;
    const N = 300_000;
    const M = 4_096;
    const { clientPid, serverPid } = await exchange(port, N, M);
    // The default's `process` processor adds what /proc says of the node processes (children of this one: same user, same
    // cgroup) that are alive at a collection: the server; the client only if a collection ran before it exited.
    const containerId = containerFromCgroupFile(readFileSync('/proc/self/cgroup', 'utf8'))?.id;
    const described = { 'process.executable.path': realpathSync(process.execPath), 'process.owner': userInfo().username, ...(containerId ? { 'container.id': containerId } : {}) };
    const plain = flowAttributes(port, clientPid, serverPid);
    const candidates = [
      { client: plain.client, server: { ...plain.server, ...described } },
      { client: { ...plain.client, ...described }, server: { ...plain.server, ...described } },
    ];
    const request = await exportWithClosedFlow(receiver, candidates);
    const flow = candidates.find((f) => closedIn(request, f))!;
    assertBytes(request, flow, N, M);
    assert.equal(resourceAttributes(request)['service.name'], 'flowtel');
    const s = await scrape(`http://127.0.0.1:${promPort}/metrics`);
    assert.equal(promSum(s, 'tcp_bytes_sent_total', { source_address: C.ip4, destination_port: String(port) }), N);
    assert.equal((await a.stop()).code, 0);
  });
});

describe('backend down', () => {
  test('otlp endpoint with nothing listening: the agent keeps running, Prometheus serves exact values, failures are logged', async () => {
    const deadPort = await freePort(); // free, and nothing will listen on it
    const promPort = await freePort();
    const a = agent([
      'run',
      '--config',
      config(`
receivers:
  ebpf_tcp:
    collection_interval: 1s
exporters:
  otlp:
    endpoint: http://127.0.0.1:${deadPort}
    export_interval: 1s
    timeout: 1s
  prometheus:
    endpoint: 127.0.0.1:${promPort}
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [otlp, prometheus]
`),
    ]);
    await a.ready();
    const failed = (): boolean => a.logs().some((l) => l.level === 'warn' && l.component === 'otlp' && /export failed/.test(String(l.msg)));
    await a.waitFor('an export failure in the log', failed, 8_000);
    const port = 7306;
    const N = 222_222;
    const M = 3_333;
    await exchange(port, N, M);
    const client = { source_address: C.ip4, destination_address: S.ip4, destination_port: String(port) };
    let s: PromScrape | undefined;
    await until('the flow in /metrics', async () => {
      s = await scrape(`http://127.0.0.1:${promPort}/metrics`);
      return promSum(s, 'tcp_connections_closed_total', client) === 1;
    });
    assert.equal(promSum(s!, 'tcp_bytes_sent_total', client), N);
    assert.equal(promSum(s!, 'tcp_bytes_received_total', client), M);
    // Still up after several failed exports; the failures are rate-limited, not one line each.
    await new Promise((r) => setTimeout(r, 2_000));
    assert.ok(a.running, a.describe());
    const warnings = a.logs().filter((l) => l.component === 'otlp' && /export failed/.test(String(l.msg)));
    assert.equal(warnings.length, 1, 'one failure message per minute at most');
    assert.match(String(warnings[0]!.msg), /exporter otlp: export failed: .+/);
    assert.equal(a.logs().filter((l) => l.level === 'error' || l.level === 'fatal').length, 0);
    const t0 = Date.now();
    assert.equal((await a.stop('SIGTERM', 10_000)).code, 0);
    assert.ok(Date.now() - t0 < 5_000, `a down backend does not hold up the exit: ${Date.now() - t0} ms`);
  });
});
