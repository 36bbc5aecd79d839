/**
 * End to end: the health_check extension and self-telemetry of the `flowtel`
 * process — 200 while the pipelines run, 503 while a receiver's collections
 * fail, still 200 with the OTLP backend down, the port closed after SIGTERM;
 * the agent's Prometheus endpoint serving flowtel_process_*, the event-loop
 * delay and growing accepted-measurement counts, and the self-telemetry
 * endpoint (`service.telemetry.metrics.address`) serving only flowtel_*.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { Agent, TempDir, assertNothingAttached, freePort, promSelect, promSum, scrape, until, type PromScrape } from '../helpers/e2e';
import type { HealthReport } from '../../src/telemetry/component-status';

const tmp = new TempDir();
const agents: Agent[] = [];

function agent(yaml: string): Agent {
  const a = Agent.spawn(['run', '--config', tmp.write(`config-${randomUUID()}.yaml`, yaml)]);
  agents.push(a);
  return a;
}

async function health(url: string): Promise<{ status: number; body: HealthReport }> {
  const r = await fetch(url);
  return { status: r.status, body: (await r.json()) as HealthReport };
}

/** Fetch fails: nothing listens any more. */
async function refused(url: string): Promise<boolean> {
  try {
    await fetch(url);
    return false;
  } catch {
    return true;
  }
}

before(() => assertNothingAttached());

afterEach(async () => {
  for (const a of agents.splice(0)) await a.kill();
});

after(() => tmp.cleanup());

describe('health_check', () => {
  test('200 with the Collector-like body while the pipelines run; the port closes after SIGTERM', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/`;
    const a = agent(`
receivers:
  ebpf_tcp:
    collection_interval: 500ms
exporters:
  debug:
    export_interval: 1h
    output: stderr
extensions:
  health_check:
    endpoint: 127.0.0.1:${port}
service:
  extensions: [health_check]
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [debug]
`);
    await a.ready();
    let r = await health(url);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, 'Server available');
    assert.equal(r.body.state, 'running');
    assert.match(r.body.upSince, /^\d{4}-\d\d-\d\dT/);
    assert.match(r.body.uptime, /^\d+\.\d{3}s$/);
    const pipeline = r.body.components['pipeline:metrics']!;
    assert.deepEqual(
      Object.fromEntries(Object.entries(pipeline.components).map(([k, v]) => [k, v.status])),
      { 'receiver:ebpf_tcp': 'StatusOK', 'exporter:debug': 'StatusOK' },
    );
    assert.equal(r.body.components.extensions?.components['extension:health_check']?.status, 'StatusOK');

    // Still healthy after a few collections.
    await new Promise((res) => setTimeout(res, 1_200));
    r = await health(url);
    assert.equal(r.status, 200, JSON.stringify(r.body));

    // Component logs carry the Collector-like fields.
    const line = a.logs().find((l) => /health check at/.test(String(l.msg)));
    assert.equal(line?.['component.id'], 'health_check', a.describe());
    assert.equal(line?.['component.kind'], 'extension');

    assert.equal((await a.stop('SIGTERM')).code, 0);
    assert.ok(await refused(url), 'nothing listens on the health port after the exit');
    await assertNothingAttached();
  });

  test('a receiver whose collections fail: 503 with its error, 200 again once they succeed', async () => {
    // A copy of /proc/self/net/{snmp,netstat} the test can take away.
    const procDir = path.join(tmp.dir, `proc-${randomUUID()}`);
    mkdirSync(path.join(procDir, 'net'), { recursive: true, mode: 0o755 });
    for (const f of ['snmp', 'netstat']) copyFileSync(`/proc/self/net/${f}`, path.join(procDir, 'net', f));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/health`;
    const a = agent(`
receivers:
  netstat:
    collection_interval: 200ms
    proc_path: ${procDir}
exporters:
  debug:
    export_interval: 1h
    output: stderr
extensions:
  health_check:
    endpoint: 127.0.0.1:${port}
    path: /health
service:
  extensions: [health_check]
  pipelines:
    metrics:
      receivers: [netstat]
      exporters: [debug]
`);
    await a.ready();
    await until('health 200', async () => (await health(url)).status === 200, 5_000);
    renameSync(path.join(procDir, 'net'), path.join(procDir, 'net.gone'));
    let r: { status: number; body: HealthReport } | undefined;
    await until(
      'health 503 after a failed collection',
      async () => {
        r = await health(url);
        return r.status === 503;
      },
      5_000,
      () => JSON.stringify(r?.body),
    );
    assert.equal(r!.body.status, 'Server not available');
    assert.equal(r!.body.state, 'running');
    const rec = r!.body.components['pipeline:metrics']?.components['receiver:netstat'];
    assert.equal(rec?.status, 'StatusRecoverableError');
    assert.match(rec?.error ?? '', /ENOENT/);
    renameSync(path.join(procDir, 'net.gone'), path.join(procDir, 'net'));
    await until('health 200 again', async () => (await health(url)).status === 200, 5_000);
    assert.equal((await a.stop('SIGTERM')).code, 0);
    assert.ok(await refused(url));
  });

  test('the OTLP backend down: exports fail, the agent stays healthy (200)', async () => {
    const [port, deadPort] = [await freePort(), await freePort()];
    const url = `http://127.0.0.1:${port}/`;
    const a = agent(`
receivers:
  netstat:
    collection_interval: 200ms
exporters:
  otlp:
    endpoint: http://127.0.0.1:${deadPort}
    export_interval: 500ms
    timeout: 500ms
extensions:
  health_check:
    endpoint: 127.0.0.1:${port}
service:
  extensions: [health_check]
  pipelines:
    metrics:
      receivers: [netstat]
      exporters: [otlp]
`);
    await a.ready();
    const statuses = new Set<number>();
    let last: HealthReport | undefined;
    const poll = async (): Promise<number> => {
      const r = await health(url);
      statuses.add(r.status);
      last = r.body;
      return r.body.components['pipeline:metrics']?.components['exporter:otlp']?.exports?.failed ?? 0;
    };
    await until('a failed export in the health body', async () => (await poll()) >= 1, 8_000, () => JSON.stringify(last));
    // Keep watching while the exporter backs off and fails again.
    const deadline = Date.now() + 1_500;
    while (Date.now() < deadline) {
      await poll();
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.deepEqual([...statuses], [200], 'healthy the whole time');
    assert.equal(last!.components['pipeline:metrics']?.components['exporter:otlp']?.status, 'StatusOK');
    const t0 = Date.now();
    assert.equal((await a.stop('SIGTERM')).code, 0);
    assert.ok(Date.now() - t0 < 5_000, `stopped in ${Date.now() - t0} ms`);
    assert.ok(await refused(url));
  });
});

describe('self-telemetry', () => {
  test('the Prometheus exporter serves flowtel_process_*, the event-loop delay and growing accepted counts; address serves only flowtel_*', async () => {
    const [promPort, selfPort] = [await freePort(), await freePort()];
    const a = agent(`
receivers:
  ebpf_tcp:
    collection_interval: 300ms
  netstat:
    collection_interval: 200ms
exporters:
  prometheus:
    endpoint: 127.0.0.1:${promPort}
service:
  telemetry:
    metrics:
      address: 127.0.0.1:${selfPort}
  pipelines:
    metrics:
      receivers: [ebpf_tcp, netstat]
      exporters: [prometheus]
`);
    await a.ready();
    const promUrl = `http://127.0.0.1:${promPort}/metrics`;
    const accepted = (s: PromScrape, receiver: string): number => promSum(s, 'flowtel_receiver_accepted_measurements_total', { receiver });
    let first: PromScrape | undefined;
    await until('accepted measurements of both receivers', async () => {
      first = await scrape(promUrl);
      return accepted(first, 'ebpf_tcp') > 0 && accepted(first, 'netstat') > 0 && promSelect(first, 'flowtel_event_loop_delay', {}).length > 0;
    });
    const rss = promSelect(first!, 'flowtel_process_memory_rss', {});
    assert.equal(rss.length, 1);
    assert.ok(rss[0]!.value > 10 * 1024 * 1024, `rss ${rss[0]!.value}`);
    assert.ok(promSum(first!, 'flowtel_process_heap_used', {}) > 0);
    assert.ok(promSum(first!, 'flowtel_process_cpu_seconds_total', {}) > 0);
    assert.ok(promSum(first!, 'flowtel_process_uptime_total', {}) > 0);
    assert.deepEqual(promSelect(first!, 'flowtel_event_loop_delay', {}).map((x) => x.labels.quantile).sort(), ['0.5', '0.99']);
    for (const x of promSelect(first!, 'flowtel_event_loop_delay', {})) assert.ok(x.value >= 0 && x.value < 1, `event-loop delay ${x.value} s`);
    assert.equal(first!.types.get('flowtel_process_memory_rss'), 'gauge');
    assert.equal(first!.types.get('flowtel_receiver_accepted_measurements_total'), 'counter');

    await until('accepted measurements to grow', async () => {
      const s = await scrape(promUrl);
      return accepted(s, 'ebpf_tcp') > accepted(first!, 'ebpf_tcp') && accepted(s, 'netstat') > accepted(first!, 'netstat');
    });

    // The dedicated endpoint: self-telemetry only, the receivers' own flowtel_* included.
    const own = await scrape(`http://127.0.0.1:${selfPort}/metrics`);
    const names = new Set(own.samples.map((x) => x.name));
    for (const n of names) assert.ok(n.startsWith('flowtel_') || n === 'target_info', `${n} on the self-telemetry endpoint`);
    for (const n of ['flowtel_process_memory_rss', 'flowtel_event_loop_delay', 'flowtel_receiver_accepted_measurements_total', 'flowtel_tracked_connections', 'flowtel_collection_duration_us_count']) {
      assert.ok(names.has(n), `${n} on the self-telemetry endpoint:\n${own.text}`);
    }
    assert.ok(promSum(own, 'flowtel_collection_duration_us_count', { receiver: 'ebpf_tcp' }) > 0);

    assert.equal((await a.stop('SIGTERM')).code, 0);
    assert.ok(await refused(`http://127.0.0.1:${selfPort}/metrics`));
    await assertNothingAttached();
  });
});
