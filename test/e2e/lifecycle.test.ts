/**
 * End to end: the life of the `flowtel` process — what it attaches to the
 * kernel while it runs, a clean stop on SIGTERM/SIGINT with a last export,
 * refusing to start without privileges or with a bad config, and in every
 * case nothing of ours left attached afterwards.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import {
  Agent,
  BIN,
  REPO,
  TempDir,
  assertNothingAttached,
  assertProgramsAttached,
  bpfPrograms,
  freePort,
  orphanedOurPrograms,
  ourNamedPrograms,
  runCli,
} from '../helpers/e2e';
import { TestNet, sh } from '../helpers/netns';
import { flattenMetrics, startOtlpReceiver, type DecodedRequest, type OtlpTestReceiver } from '../helpers/otlp-receiver';

const net = TestNet.create('e2el', 32);
const { client: C, server: S } = net;
const tmp = new TempDir();
const servers: ChildProcess[] = [];
const agents: Agent[] = [];
const receivers: OtlpTestReceiver[] = [];

function agent(args: string[], options: Parameters<typeof Agent.spawn>[1] = {}): Agent {
  const a = Agent.spawn(args, options);
  agents.push(a);
  return a;
}

function config(text: string): string {
  return tmp.write(`config-${randomUUID()}.yaml`, text);
}

async function otlpReceiver(): Promise<OtlpTestReceiver> {
  const r = await startOtlpReceiver();
  receivers.push(r);
  return r;
}

async function exchange(port: number, N: number, M: number): Promise<{ clientPid: number }> {
  servers.push(await net.startServer(S, ['tcp-server', '--host', S.ip4, '--port', String(port), '--reply', String(M)]));
  const { pid, result } = await net.traffic<{ sent: number; received: number }>(C, ['tcp-client', '--host', S.ip4, '--port', String(port), '--send', String(N)]);
  assert.deepEqual([result.sent, result.received], [N, M]);
  return { clientPid: pid };
}

/** The client end's value of `name` in one export (attributes matched on the flow, not the pid). */
function clientValue(request: DecodedRequest, name: string, port: number): number | undefined {
  const points = flattenMetrics([request])
    .filter((m) => m.name === name)
    .flatMap((m) => m.points)
    .filter((p) => p.attributes['source.address'] === C.ip4 && p.attributes['destination.address'] === S.ip4 && p.attributes['destination.port'] === port);
  assert.ok(points.length <= 1, `one ${name} series for the flow`);
  return points[0]?.value;
}

/** Rows of the console table for C → S:port: [sent, received] cells. */
function tableCells(stdout: string, port: number): string[][] {
  const dest = `${S.ip4}:${port}`;
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s{2,}/))
    .filter((cells) => cells[1] === C.ip4 && cells[2] === dest)
    .map((cells) => [cells[5]!, cells[6]!]);
}

/**
 * nobody must be able to load `node bin/flowtel` (the whole require graph:
 * dist/, node_modules/, the native addon). On this machine the checkout is
 * o+rX already; where it is not, the setup opens exactly that: o+x on the
 * directories above the checkout, o+rX on what the CLI loads (bin, dist,
 * node_modules, native/build, bpf/.output, package.json) — never anything else.
 */
function ensureRunnableByNobody(): void {
  const probe = (): string =>
    sh('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', process.execPath, BIN, '--version']);
  try {
    probe();
    return;
  } catch {
    /* open the path below */
  }
  for (let dir = REPO; ; dir = path.dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
    if (dir === path.dirname(dir)) break;
  }
  for (const p of ['bin', 'dist', 'node_modules', 'native/build', 'bpf/.output', 'package.json']) sh('chmod', ['-R', 'o+rX', path.join(REPO, p)]);
  try {
    probe();
  } catch (e) {
    assert.fail(`nobody cannot run ${BIN} even after opening the checkout for reading: ${(e as Error).message}`);
  }
}

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

describe('stopping', () => {
  test('SIGTERM: exit 0, the traffic of the last moment is in the one final export and table, every program detached', async () => {
    const receiver = await otlpReceiver();
    // Intervals far longer than the test: whatever arrives was collected and exported by the shutdown itself.
    const a = agent([
      'run',
      '--config',
      config(`
receivers:
  ebpf_tcp:
    collection_interval: 1h
exporters:
  otlp:
    endpoint: http://${receiver.endpoint}
    export_interval: 1h
  debug:
    export_interval: 1h
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [otlp, debug]
`),
    ]);
    await a.ready();
    const ids = assertProgramsAttached(a);
    const port = 7401;
    const N = 900;
    const M = 500;
    await exchange(port, N, M);
    assert.equal(receiver.requests.length, 0, 'nothing exported before the signal');
    assert.equal(a.stdout, '', 'no table before the signal');

    const exit = await a.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, a.describe());
    assert.equal(receiver.requests.length, 1, 'exactly one final OTLP export');
    const [last] = receiver.requests;
    assert.equal(clientValue(last!, 'tcp_bytes_sent', port), N);
    assert.equal(clientValue(last!, 'tcp_bytes_received', port), M);
    assert.equal(clientValue(last!, 'tcp_connections_closed', port), 1);
    assert.deepEqual(tableCells(a.stdout, port), [[`${N} B`, `${M} B`]], `one final table with the flow:\n${a.stdout}`);
    assert.equal(a.stdout.match(/── flowtel top flows/g)?.length, 1, 'one final table');
    const msgs = a.logs().map((l) => l.msg);
    assert.ok(msgs.includes('stopping: last export, then detaching probes') && msgs.at(-1) === 'flowtel stopped', msgs.join('\n'));
    await assertNothingAttached(ids);
  });

  test('SIGINT with 1 s intervals: exit 0, the last export has the bytes of a connection made just before, every program detached', async () => {
    const receiver = await otlpReceiver();
    const a = agent([
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
    ]);
    await a.ready();
    const ids = assertProgramsAttached(a);
    const port = 7402;
    const N = 400_000;
    const M = 33_333;
    await exchange(port, N, M);
    const exit = await a.stop('SIGINT');
    assert.deepEqual(exit, { code: 0, signal: null }, a.describe());
    const last = receiver.requests.at(-1);
    assert.ok(last, 'an export');
    assert.equal(clientValue(last, 'tcp_bytes_sent', port), N);
    assert.equal(clientValue(last, 'tcp_bytes_received', port), M);
    assert.equal(clientValue(last, 'tcp_connections_opened', port), 1);
    assert.equal(clientValue(last, 'tcp_connections_closed', port), 1);
    await assertNothingAttached(ids);
  });

  test('SIGTERM while it is still starting: exit 0 once started, nothing left attached', async () => {
    const promPort = await freePort();
    const a = agent([
      'run',
      '--config',
      config(`
receivers: { ebpf_tcp: { collection_interval: 1s } }
exporters: { prometheus: { endpoint: "127.0.0.1:${promPort}" }, debug: { export_interval: 1s } }
service: { pipelines: { metrics: { receivers: [ebpf_tcp], exporters: [prometheus, debug] } } }
`),
    ]);
    // Exporters start first: the signal is sent while the receiver loads its programs. (Signal handlers
    // installed only once everything had started let the default action kill the agent here.)
    await a.waitFor('the Prometheus exporter to start', () => a.stderr.includes('serving Prometheus metrics'));
    const exit = await a.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, a.describe());
    assert.equal(a.logs().at(-1)?.msg, 'flowtel stopped', a.describe());
    await assertNothingAttached();
  });
});

describe('refusing to start', () => {
  test('as nobody without capabilities: non-zero exit, one stderr line naming the missing capabilities, nothing attached', async () => {
    ensureRunnableByNobody();
    const promPort = await freePort();
    const before = new Set(bpfPrograms().map((p) => p.id));
    const { exit, stderr, stdout } = await runCli(
      [
        'run',
        '--config',
        config(`
receivers: { ebpf_tcp: { collection_interval: 1s } }
exporters: { prometheus: { endpoint: "127.0.0.1:${promPort}" }, debug: { export_interval: 1s } }
service: { pipelines: { metrics: { receivers: [ebpf_tcp], exporters: [prometheus, debug] } } }
`),
      ],
      { unprivileged: true },
    );
    assert.equal(exit.code, 1, `exit code\n${stderr}`);
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line on stderr:\n${stderr}`);
    assert.match(lines[0]!, /^flowtel: missing capabilities CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN: run flowtel as root, or grant them/);
    assert.equal(stdout, '');
    // Nothing was loaded by nobody, nothing is left.
    assert.deepEqual(ourNamedPrograms().filter((p) => !before.has(p.id) && p.uid === 65534), []);
    assert.deepEqual(await orphanedOurPrograms(), []);
    await assert.rejects(fetch(`http://127.0.0.1:${promPort}/metrics`), 'no endpoint left serving');
  });
});

describe('invalid config', () => {
  const bad = `receivers:
  ebpf_tcp:
    collection_interval: 1s
exporters:
  otlp:
    endpont: http://127.0.0.1:4317
  kafka: {}
  prometheus:
    endpoint: 127.0.0.1:PORT
service:
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [otlp, prometheus, promethus]
`;

  function assertReported(stderr: string, file: string): void {
    const lines = stderr.split('\n');
    assert.equal(lines[0], 'flowtel: invalid configuration:', stderr);
    const has = (text: string): void => assert.ok(lines.some((l) => l.trim() === text), `stderr has the line\n  ${text}\ngot:\n${stderr}`);
    has(`${file}:6:5: exporters.otlp.endpont: unknown option "endpont"; did you mean "endpoint"? (known options: endpoint, tls, headers, compression, timeout, export_interval, temporality, retry_on_failure, sending_queue)`);
    has(`${file}:7:3: exporters.kafka: unknown exporter type "kafka" (known exporter types: debug, file, otlp, otlphttp, prometheus)`);
    assert.ok(lines.some((l) => l.trim().startsWith(`${file}:14:37: service.pipelines.metrics.exporters[2]: exporter "promethus" is not defined`)), stderr);
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
    assert.doesNotMatch(stderr, /^\{/m, 'no log lines: nothing was started');
  }

  test('validate and run: exit 2, every error with file:line:col, unknown exporter type lists the known ones, nothing attached', async () => {
    const promPort = await freePort();
    const file = config(bad.replace('PORT', String(promPort)));

    const v = await runCli(['validate', '--config', file]);
    assert.equal(v.exit.code, 2, v.stderr);
    assert.equal(v.stdout, '');
    assertReported(v.stderr, file);

    const r = await runCli(['run', '--config', file]);
    assert.equal(r.exit.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assertReported(r.stderr, file);
    await assert.rejects(fetch(`http://127.0.0.1:${promPort}/metrics`), 'no exporter was started');
    assert.deepEqual(await orphanedOurPrograms(), []);
  });

  test('a YAML syntax error: exit 2 with file:line:col; a good file still validates', async () => {
    const broken = config('receivers:\n  ebpf_tcp: {\nexporters:\n  debug: {}\n');
    const r = await runCli(['run', '--config', broken]);
    assert.equal(r.exit.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^flowtel: invalid configuration:\n.*${broken.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: YAML: `, 'm'));
    assert.doesNotMatch(r.stderr, /^\s+at /m);

    const good = config('receivers: { ebpf_tcp: {} }\nexporters: { debug: {} }\nservice: { pipelines: { metrics: { receivers: [ebpf_tcp], exporters: [debug] } } }\n');
    const v = await runCli(['validate', '--config', good]);
    assert.deepEqual([v.exit.code, v.stdout, v.stderr], [0, `${good}: valid\n`, '']);
    assert.deepEqual(await orphanedOurPrograms(), []);
  });

  test('usage errors exit 2', async () => {
    const r = await runCli(['run', '--bogus']);
    assert.equal(r.exit.code, 2);
    assert.match(r.stderr, /^flowtel: unknown option --bogus\n/);
    const v = await runCli(['validate']);
    assert.equal(v.exit.code, 2);
    assert.match(v.stderr, /^flowtel: validate needs --config FILE\n/);
  });
});
