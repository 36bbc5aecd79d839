/**
 * End to end, the logs pipeline: `flowtel run` with a `logs` pipeline from
 * ebpf_tcp (connection_events) and ebpf_dns (log_records) to `otlp` (gRPC, to
 * the test OTLP receiver, which decodes LogsService/Export requests with the
 * official field numbers) and `debug` (one line per record on stdout).
 *
 * A refused connection between two test namespaces is exactly one
 * flowtel.tcp.connection_failed record with error.type=refused and the right
 * addresses; a DNS query answered by dnsmasq in the server namespace is
 * exactly one flowtel.dns.query record with the reference sample event's
 * attributes.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { Agent, TempDir, sleep } from '../helpers/e2e';
import { TestNet } from '../helpers/netns';
import { flattenLogRecords, startOtlpReceiver, type FlatLogRecord, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const net = TestNet.create('elog', 35);
const { client: C, server: S } = net;
const tmp = new TempDir();
const children: ChildProcess[] = [];
let agent: Agent | undefined;
let otlp: OtlpTestReceiver;

function waitReady(child: ChildProcess, what: string, marker: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const on = (d: Buffer): void => {
      out += d.toString();
      if (marker.test(out)) resolve();
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.on('exit', (code) => reject(new Error(`${what} exited ${code} before it was ready: ${out}`)));
  });
}

before(async () => {
  const dnsmasq = net.spawn(S, 'dnsmasq', [
    '--keep-in-foreground', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--user=root', '--pid-file=',
    '--log-facility=-', '--bind-interfaces', '--port=53', '--cache-size=0', `--listen-address=${S.ip4}`,
    '--host-record=api.logs.test,10.9.1.100', '--host-record=api.logs.test,10.9.1.101',
  ]);
  children.push(dnsmasq);
  await waitReady(dnsmasq, 'dnsmasq', /started, version/);
  otlp = await startOtlpReceiver();
  const file = tmp.write(
    'logs.yaml',
    `receivers:
  ebpf_tcp:
    collection_interval: 500ms
    connection_events: { failures: true, closed: false }
  ebpf_dns:
    collection_interval: 500ms
    network_namespaces: [/run/netns/${C.ns}]
exporters:
  otlp: { endpoint: "http://${otlp.endpoint}", export_interval: 1h }
  debug: { export_interval: 1h }
service:
  pipelines:
    logs:
      receivers: [ebpf_tcp, ebpf_dns]
      exporters: [otlp, debug]
`,
  );
  agent = Agent.spawn(['run', '--config', file]);
  await agent.ready();
});

after(async () => {
  await agent?.kill();
  await otlp?.close();
  for (const c of children) c.kill();
  net.destroy();
  tmp.cleanup();
});

const records = (): FlatLogRecord[] => flattenLogRecords(otlp.logRequests);
const matching = (event: string, match: Record<string, string | number>): FlatLogRecord[] =>
  records().filter((r) => r.eventName === event && Object.entries(match).every(([k, v]) => r.attributes[k] === v));

/** Exactly `n` records, also after waiting a little longer than one export batch (1 s). */
async function exactly(event: string, match: Record<string, string | number>, n: number): Promise<FlatLogRecord[]> {
  await otlp.waitForLogs(() => matching(event, match).length >= n, 10_000).catch(() => undefined);
  await sleep(1_500);
  const got = matching(event, match);
  assert.equal(got.length, n, `${event} records matching ${JSON.stringify(match)}: ${got.map((r) => r.body).join(' | ')}\n${agent!.describe()}`);
  return got;
}

const nanos = (ms: number): bigint => BigInt(ms) * 1_000_000n;

test('a refused connection: exactly one flowtel.tcp.connection_failed record, error.type=refused, the right addresses; debug prints it', async () => {
  const t0 = Date.now();
  const { pid, result } = await net.traffic<{ error: string }>(C, ['connect', '--host', S.ip4, '--port', '7350']);
  const t1 = Date.now();
  assert.equal(result.error, 'ECONNREFUSED');
  const [r] = await exactly('flowtel.tcp.connection_failed', { 'destination.address': S.ip4, 'destination.port': 7350 }, 1);
  assert.equal(r!.severityNumber, 13);
  assert.equal(r!.severityText, 'WARN');
  assert.equal(r!.attributes['event.name'], 'flowtel.tcp.connection_failed');
  assert.equal(r!.attributes['error.type'], 'refused');
  assert.equal(r!.attributes['network.connection.state'], 'syn_sent');
  assert.equal(r!.attributes['source.address'], C.ip4);
  assert.equal(r!.attributes['network.transport'], 'tcp');
  assert.equal(r!.attributes['network.type'], 'ipv4');
  assert.equal(r!.attributes['flow.direction'], 'outgoing');
  assert.equal(r!.attributes['process.pid'], pid);
  assert.equal(r!.attributes['process.executable.name'], 'node');
  assert.ok(r!.timeUnixNano >= nanos(t0 - 5) && r!.timeUnixNano <= nanos(t1 + 5), `the event's time (${r!.timeUnixNano}) is when it happened`);
  assert.ok(r!.observedTimeUnixNano >= r!.timeUnixNano);
  assert.match(r!.body, new RegExp(`→ ${S.ip4.replace(/\./g, '\\.')}:7350 .*refused`));
  assert.equal(r!.resource['service.name'], 'flowtel');
  assert.equal(r!.scope, 'flowtel');
  const lines = agent!.stdout.split('\n').filter((l) => l.includes('flowtel.tcp.connection_failed') && l.includes(`${S.ip4}:7350`));
  assert.equal(lines.length, 1, agent!.stdout.slice(-3000));
  assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\S+Z WARN  flowtel\.tcp\.connection_failed tcp .* refused/);
});

test('a DNS query: exactly one flowtel.dns.query record with the sample event\'s attributes; debug prints it', async () => {
  const t0 = Date.now();
  const out = net.exec(C, 'dig', ['+tries=1', '+time=2', `@${S.ip4}`, 'api.logs.test', 'A']);
  const t1 = Date.now();
  assert.match(out, /status: NOERROR/);
  const [r] = await exactly('flowtel.dns.query', { 'dns.question.name': 'api.logs.test' }, 1);
  const a = r!.attributes;
  assert.equal(a['dns.question.type'], 'A');
  assert.equal(a['dns.response_code'], 'NOERROR');
  const answers = JSON.parse(String(a['dns.answers'])) as Array<{ name: string; type: string; data: string }>;
  assert.deepEqual(answers.map((x) => x.data).sort(), ['10.9.1.100', '10.9.1.101']);
  assert.ok(answers.every((x) => x.name === 'api.logs.test' && x.type === 'A'));
  const latency = a['dns.latency_ms'] as number;
  assert.ok(latency > 0 && latency < t1 - t0 + 1, `dns.latency_ms ${latency}`);
  assert.equal(a['server.address'], S.ip4);
  assert.equal(a['server.port'], 53);
  assert.equal(a['client.address'], C.ip4);
  assert.equal(a['network.transport'], 'udp');
  assert.equal(r!.severityText, 'INFO');
  assert.ok(r!.timeUnixNano >= nanos(t0 - 5) && r!.timeUnixNano <= nanos(t1 + 5), 'the query\'s capture time');
  const lines = agent!.stdout.split('\n').filter((l) => l.includes('flowtel.dns.query') && l.includes('api.logs.test'));
  assert.equal(lines.length, 1, agent!.stdout.slice(-3000));
  assert.match(lines[0]!, /INFO  flowtel\.dns\.query DNS A api\.logs\.test → NOERROR in [\d.]+ ms: A 10\.9\.1\.10[01], A 10\.9\.1\.10[01]/);
});

test('the agent stops cleanly and sends what it holds', async () => {
  const exit = await agent!.stop();
  assert.equal(exit.code, 0, agent!.describe());
  assert.deepEqual(agent!.logs().filter((l) => l.level === 'error' || (typeof l.level === 'number' && l.level >= 50)), []);
  assert.equal(agent!.stdout.includes('flowtel top flows'), false, 'debug is in no metrics pipeline: no top-flows table, even at shutdown');
});
