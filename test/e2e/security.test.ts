/**
 * End to end, security: the agent runs as an ordinary user with exactly the
 * capabilities the docs list (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN) and
 * collects real flows with exact numbers; secrets set in the config (OTLP
 * headers, endpoint passwords and tokens) appear nowhere in what the agent
 * prints, logs, serves or exports, except where they are meant to go.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';
import {
  Agent,
  TempDir,
  assertNothingAttached,
  assertProgramsAttached,
  ensureRunnableByNobody,
  freePort,
  parsePrometheus,
  promSum,
  runCli,
  until,
  type PromScrape,
} from '../helpers/e2e';
import { TRAFFIC, TestNet } from '../helpers/netns';
import { startOtlpHttpReceiver, startOtlpReceiver, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const net = TestNet.create('rlsec', 71);
/**
 * The agent sees the whole host, and on a shared machine other work may churn
 * thousands of connections a second: a filter on this test's addresses,
 * pushed into the kernel, keeps the agent's work to this test's traffic.
 */
const SUBNET = '10.201.71.0/24';
const { client: C, server: S } = net;
const tmp = new TempDir();
const servers: ChildProcess[] = [];
const agents: Agent[] = [];
const receivers: OtlpTestReceiver[] = [];

before(() => assertNothingAttached());
afterEach(async () => {
  for (const a of agents.splice(0)) await a.kill();
  for (const s of servers.splice(0)) s.kill();
  for (const r of receivers.splice(0)) await r.close();
});
after(() => {
  net.destroy();
  tmp.cleanup();
});

async function scrapeWith(url: string, headers: Record<string, string> = {}): Promise<PromScrape> {
  const response = await fetch(url, { headers });
  assert.equal(response.status, 200, `GET ${url}`);
  return parsePrometheus(await response.text());
}

/** Effective capability bits of a process. */
function capEff(pid: number): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return BigInt(`0x${m![1]}`);
}

const CAP_NET_ADMIN = 12n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

describe('capabilities', () => {
  test('as nobody with exactly CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN: TCP and UDP flows with exact bytes, connections from before the start found, nothing left attached', async () => {
    ensureRunnableByNobody();
    const promPort = await freePort();
    const file = tmp.write(
      `caps-${randomUUID()}.yaml`,
      `
receivers: { ebpf_tcp: { collection_interval: 1s } }
processors: { filter: { include: { cidrs: ["${SUBNET}", "127.0.0.0/8"] } } }
exporters: { prometheus: { endpoint: "127.0.0.1:${promPort}" } }
service: { pipelines: { metrics: { receivers: [ebpf_tcp], processors: [filter], exporters: [prometheus] } } }
`,
    );
    // A loopback connection of root's, open before the agent starts: found by the walk of the agent's own namespace.
    const loPort = await freePort();
    const loServer = spawn(process.execPath, [TRAFFIC, 'tcp-server', '--host', '127.0.0.1', '--port', String(loPort), '--mode', 'hold'], { stdio: ['ignore', 'pipe', 'ignore'] });
    servers.push(loServer);
    await new Promise<void>((resolve) => loServer.stdout!.once('data', () => resolve()));
    const loClient = spawn(process.execPath, [TRAFFIC, 'tcp-client', '--host', '127.0.0.1', '--port', String(loPort), '--send', '10', '--hold-ms', '90000'], { stdio: 'ignore' });
    servers.push(loClient);
    await new Promise((r) => setTimeout(r, 300));
    const a = Agent.spawn(['run', '--config', file], { unprivileged: true, capabilities: ['bpf', 'perfmon', 'net_admin'] });
    agents.push(a);
    await a.ready(60_000);
    // The agent process itself: uid nobody, and these three capabilities and no other.
    const status = readFileSync(`/proc/${a.pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m, 'runs as nobody');
    assert.equal(capEff(a.pid), (1n << CAP_NET_ADMIN) | (1n << CAP_PERFMON) | (1n << CAP_BPF), 'CapEff: exactly BPF, PERFMON, NET_ADMIN');
    const ids = assertProgramsAttached(a);

    await until(
      'the connection from before the start, in tcp_connections',
      async () => promSum(await scrapeWith(`http://127.0.0.1:${promPort}/metrics`), 'tcp_connections', { destination_port: String(loPort), network_connection_state: 'established' }) === 1,
      30_000,
      () => a.describe(),
    );
    loClient.kill();

    const port = 7101;
    const N = 123_457;
    const M = 76_543;
    servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(port), '--reply', String(M)]));
    const { result } = await net.traffic<{ sent: number; received: number }>(C, ['tcp-client', '--host', S.ip4, '--port', String(port), '--send', String(N)]);
    assert.deepEqual([result.sent, result.received], [N, M]);
    servers.push(await net.startServer(S, ['udp-server', '--host', S.ip4, '--port', '7102']));
    await net.traffic(C, ['udp-client', '--host', S.ip4, '--port', '7102', '--count', '10', '--size', '300']);

    const url = `http://127.0.0.1:${promPort}/metrics`;
    const flow = { source_address: C.ip4, destination_address: S.ip4, destination_port: String(port) };
    const udp = { source_address: C.ip4, destination_address: S.ip4, destination_port: '7102' };
    let s: PromScrape | undefined;
    await until(
      'exact TCP and UDP numbers',
      async () => {
        s = await scrapeWith(url);
        return promSum(s, 'tcp_bytes_sent_total', flow) === N && promSum(s, 'udp_bytes_sent_total', udp) === 3000;
      },
      30_000,
      () => `${a.describe()}\n${s?.text.split('\n').filter((l) => l.includes(C.ip4)).join('\n')}`,
    );
    assert.equal(promSum(s!, 'tcp_bytes_received_total', flow), M);
    assert.equal(promSum(s!, 'tcp_connections_closed_total', flow), 1);
    assert.equal(promSum(s!, 'udp_datagrams_received_total', udp), 10);

    // Without CAP_SYS_ADMIN the agent cannot enter other namespaces: one warning line, and its own namespace is still walked.
    const warnings = a.logs().filter((l) => l.level === 'warn');
    assert.ok(warnings.length <= 1, `at most one warning:\n${a.describe()}`);
    for (const w of warnings) {
      assert.match(String(w.msg), /cannot enter \d+ other network namespace\(s\) without CAP_SYS_ADMIN/);
      assert.ok(!JSON.stringify(w).includes('/proc/self/ns/net'), 'the own namespace needs no setns');
    }
    assert.deepEqual(a.logs().filter((l) => l.level === 'error'), [], a.describe());

    const exit = await a.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, a.describe());
    await assertNothingAttached(ids);
  });
});

describe('capabilities of ebpf_dns', () => {
  test('ebpf_dns without CAP_NET_RAW: exit 1 with one line naming it, nothing started', async () => {
    ensureRunnableByNobody();
    const promPort = await freePort();
    const file = tmp.write(
      `caps-dns-${randomUUID()}.yaml`,
      `
receivers: { ebpf_tcp: {}, ebpf_dns: {} }
exporters: { prometheus: { endpoint: "127.0.0.1:${promPort}" } }
service: { pipelines: { metrics: { receivers: [ebpf_tcp, ebpf_dns], exporters: [prometheus] } } }
`,
    );
    const { exit, stderr } = await runCli(['run', '--config', file], { unprivileged: true, capabilities: ['bpf', 'perfmon', 'net_admin'] });
    assert.equal(exit.code, 1, stderr);
    assert.equal(stderr.trimEnd().split('\n').length, 1, stderr);
    assert.match(stderr, /^flowtel: missing capability CAP_NET_RAW: the ebpf_dns receiver reads DNS packets through packet sockets/);
    await assert.rejects(fetch(`http://127.0.0.1:${promPort}/metrics`), 'nothing started');
  });
});

describe('secrets', () => {
  test('OTLP headers, endpoint passwords and tokens are sent where they belong and nowhere else: not in logs, validate output, metrics or health', async () => {
    const secret = (name: string): string => `${name}-${randomBytes(12).toString('hex')}`;
    const S1 = secret('otlpgrpc');
    const S2 = secret('otlphttp');
    const S3 = secret('prompass');
    const S4 = secret('promtoken');
    const S5 = secret('healthtoken');
    const S6 = secret('hashkey');
    const all = [S1, S2, S3, S4, S5, S6];
    const grpc = await startOtlpReceiver();
    receivers.push(grpc);
    const http = await startOtlpHttpReceiver();
    receivers.push(http);
    http.setBehavior('unauthenticated'); // 401: the agent logs its failures
    const promPort = await freePort();
    const selfPort = await freePort();
    const healthPort = await freePort();
    const config = `
receivers: { ebpf_tcp: { collection_interval: 1s } }
processors:
  filter: { include: { cidrs: ["${SUBNET}", "127.0.0.0/8"] } }
  attributes: { hash_key: "\${env:RL_S6}", actions: [{ key: destination.address, action: hash }] }
exporters:
  otlp:
    endpoint: http://${grpc.endpoint}
    export_interval: 1s
    headers: { authorization: "Bearer \${env:RL_S1}" }
  otlphttp:
    endpoint: ${http.baseUrl}
    export_interval: 1s
    headers: { x-api-key: "\${env:RL_S2}" }
    retry_on_failure: { initial_interval: 100ms, max_interval: 200ms }
  prometheus:
    endpoint: 127.0.0.1:${promPort}
    auth: { basic: { username: prom, password: "\${env:RL_S3}" }, bearer_token: "\${env:RL_S4}" }
extensions:
  health_check: { endpoint: "127.0.0.1:${healthPort}", auth: { bearer_token: "\${env:RL_S5}" } }
service:
  extensions: [health_check]
  telemetry: { logs: { level: debug }, metrics: { level: detailed, address: "127.0.0.1:${selfPort}" } }
  pipelines: { metrics: { receivers: [ebpf_tcp], processors: [filter, attributes], exporters: [otlp, otlphttp, prometheus] } }
`;
    const file = tmp.write(`secrets-${randomUUID()}.yaml`, config);
    const env = { RL_S1: S1, RL_S2: S2, RL_S3: S3, RL_S4: S4, RL_S5: S5, RL_S6: S6 };
    const a = Agent.spawn(['run', '--config', file], { env });
    agents.push(a);
    await a.ready(60_000);
    // Where they belong: the OTLP backends get their headers, the endpoints accept their credentials.
    const [req] = await grpc.waitFor((r) => r.length > 0, 30_000);
    assert.equal(req!.metadata.authorization, `Bearer ${S1}`);
    await a.waitFor('otlphttp failures logged', () => a.logs().some((l) => l.component === 'otlphttp' && /export failed/.test(String(l.msg))), 30_000);
    assert.ok(http.calls > 0);
    const served: string[] = [];
    const basicAuth = { authorization: `Basic ${Buffer.from(`prom:${S3}`).toString('base64')}` };
    served.push((await scrapeWith(`http://127.0.0.1:${promPort}/metrics`, basicAuth)).text);
    served.push((await scrapeWith(`http://127.0.0.1:${promPort}/metrics`, { authorization: `Bearer ${S4}` })).text);
    assert.equal((await fetch(`http://127.0.0.1:${promPort}/metrics`)).status, 401);
    served.push((await scrapeWith(`http://127.0.0.1:${selfPort}/metrics`)).text);
    const health = await fetch(`http://127.0.0.1:${healthPort}/`, { headers: { authorization: `Bearer ${S5}` } });
    assert.equal(health.status, 200);
    served.push(await health.text());
    assert.equal((await fetch(`http://127.0.0.1:${healthPort}/`)).status, 401);
    // Let a few more exports and failures happen, then stop.
    await until('a few more OTLP exports', () => grpc.requests.length >= 3, 30_000, () => a.describe());
    assert.deepEqual(await a.stop('SIGTERM'), { code: 0, signal: null }, a.describe());
    const exported = JSON.stringify(grpc.requests.map((r) => r.resourceMetrics), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));

    // validate: a valid config, and an invalid one where a secret sits in the wrong shape.
    const valid = await runCli(['validate', '--config', file], { env });
    assert.equal(valid.exit.code, 0, valid.stderr);
    const badFile = tmp.write(`secrets-bad-${randomUUID()}.yaml`, config.replace('hash_key: "${env:RL_S6}"', 'hash_key: { key: "${env:RL_S6}" }').replace(/headers: \{ authorization: "Bearer \$\{env:RL_S1\}" \}/, 'headers: "Bearer ${env:RL_S1}"').replace('bearer_token: "${env:RL_S4}"', 'bearer_token: ["${env:RL_S4}"]'));
    const invalid = await runCli(['validate', '--config', badFile], { env });
    assert.equal(invalid.exit.code, 2, invalid.stderr);
    assert.match(invalid.stderr, /exporters\.otlp\.headers.*expected a map of strings, got a string \(\d+ characters, not shown\)/);
    assert.match(invalid.stderr, /exporters\.prometheus\.auth\.bearer_token.*expected a string, got a list/);
    assert.match(invalid.stderr, /processors\.attributes\.hash_key.*expected a string, got a map/);

    // A secret given with --set, malformed: the error names the key, not the value.
    const badSet = await runCli(['validate', '--config', file, '--set', `exporters.otlp.headers.x-api-key=[${S2}`, '--set', `exporters.prometheus.auth.bearer_token={${S4}`], { env });
    assert.equal(badSet.exit.code, 2, badSet.stderr);
    assert.match(badSet.stderr, /--set exporters\.otlp\.headers\.x-api-key=…: exporters\.otlp\.headers\.x-api-key: YAML/);

    const everywhere: Record<string, string> = {
      'validate --set error output': badSet.stdout + badSet.stderr,
      'agent stdout': a.stdout,
      'agent stderr (logs)': a.stderr,
      'validate output': valid.stdout + valid.stderr,
      'validate error output': invalid.stdout + invalid.stderr,
      'scrapes and health': served.join('\n'),
      'exported OTLP data': exported,
    };
    assert.ok(a.logs().filter((l) => l.level === 'debug').length > 0, 'debug logging was on');
    for (const [where, text] of Object.entries(everywhere)) {
      for (const s of all) assert.ok(!text.includes(s), `${s.split('-')[0]} secret found in ${where}`);
      // Not even base64-encoded (basic auth).
      assert.ok(!text.includes(Buffer.from(`prom:${S3}`).toString('base64')), `basic credentials found in ${where}`);
    }
  });
});
