/**
 * health_check: its config, and the status it serves as a Service built from
 * fake components goes through starting, running, a failed collection, an
 * exporter whose exports fail, stopping and stopped.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';
import { MetricReader } from '@opentelemetry/sdk-metrics';
import { loadConfigFromTexts, validateConfig, ConfigValidationError } from '../../src/config';
import { extensionFactories, healthCheckExtensionFactory, startExtensions, type RunningExtensions } from '../../src/extensions';
import type { ComponentFactory, MetricsExporter, MetricsReceiver, ReceiverContext } from '../../src/pipeline/component';
import { Service } from '../../src/pipeline/service';
import { aggregateStatus, StatusTracker, ZERO_TIME, type HealthReport } from '../../src/telemetry/component-status';
import { silentLogger } from '../../src/util/log';

class NullReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A receiver the test drives: start/shutdown wait on `gates`, collect fails while `failWith` is set. */
class FakeReceiver implements MetricsReceiver {
  static last?: FakeReceiver;
  startGate?: Deferred;
  stopGate?: Deferred;
  failWith?: Error;
  constructor(
    readonly id: string,
    private readonly ctx: ReceiverContext,
  ) {
    FakeReceiver.last = this;
  }
  async start(): Promise<void> {
    await this.startGate?.promise;
  }
  async collect(): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.ctx.next.consume({ timeMs: Date.now(), measurements: [{ metric: 'tcp_bytes_sent', value: 1, attributes: {} }], gaugesReplaced: [], source: this.id });
  }
  async shutdown(): Promise<void> {
    await this.stopGate?.promise;
  }
}

const fakeReceiverFactory: ComponentFactory<unknown, MetricsReceiver, ReceiverContext> = {
  kind: 'receiver',
  type: 'fake',
  stability: 'development',
  options: [],
  defaultConfig: () => ({}),
  validate: (raw) => raw ?? {},
  create: (_c, ctx) => new FakeReceiver(ctx.id, ctx),
};

/** An exporter that counts exports as the otlp exporter does (exportSuccesses / exportFailures). */
interface FakeExporter extends MetricsExporter {
  exportSuccesses: number;
  exportFailures: number;
}
const fakeExporterFactory: ComponentFactory<unknown, FakeExporter> = {
  kind: 'exporter',
  type: 'fakeexp',
  stability: 'development',
  options: [],
  defaultConfig: () => ({}),
  validate: () => ({}),
  create: (_c, ctx) => ({ id: ctx.id, reader: new NullReader(), exportSuccesses: 0, exportFailures: 0, start: async () => undefined, shutdown: async () => undefined }),
};

const FACTORIES = [fakeReceiverFactory, fakeExporterFactory, ...Object.values(extensionFactories)] as never[];

function configFor(yaml: string) {
  return validateConfig(loadConfigFromTexts([{ source: 'test.yaml', text: yaml }], [], { env: {} }), FACTORIES);
}

const running: Array<{ service: Service; ext?: RunningExtensions }> = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.service.shutdown().catch(() => undefined);
    await r.ext?.shutdown();
  }
});

const yamlFor = (receiverConfig: string, extra = ''): string => `
receivers: { fake: ${receiverConfig} }
exporters: { fakeexp: {} }
extensions:
  health_check: { endpoint: "127.0.0.1:0", path: /health }
service:
  extensions: [health_check]
  pipelines:
    metrics: { receivers: [fake], exporters: [fakeexp] }
${extra}`;

async function agent(extra = ''): Promise<{ service: Service; ext: RunningExtensions; url: string; receiver: FakeReceiver; exporter: FakeExporter }> {
  const config = configFor(yamlFor('{}', extra));
  const service = Service.build(config, silentLogger());
  const entry: { service: Service; ext?: RunningExtensions } = { service };
  running.push(entry);
  const ext = await startExtensions(config, service, silentLogger());
  entry.ext = ext;
  const hc = ext.extensions.get('health_check') as unknown as { url: string };
  return { service, ext, url: hc.url, receiver: FakeReceiver.last!, exporter: service.exporter('fakeexp') as FakeExporter };
}

async function get(url: string, init?: RequestInit): Promise<{ status: number; body: HealthReport }> {
  const r = await fetch(url, init);
  const text = await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : undefined) as HealthReport };
}

test('health_check config: Collector defaults, checked endpoint and path', () => {
  const noSecurity = { tls: { min_version: '1.2' }, auth: { basic: {} } };
  assert.deepEqual(healthCheckExtensionFactory.defaultConfig(), { endpoint: '0.0.0.0:13133', path: '/', ...noSecurity });
  assert.deepEqual(healthCheckExtensionFactory.validate({ endpoint: '127.0.0.1:8080', path: '/healthz' }, 'extensions.health_check'), {
    endpoint: '127.0.0.1:8080',
    path: '/healthz',
    ...noSecurity,
  });
  assert.throws(() => healthCheckExtensionFactory.validate({ endpoint: 'nope' }, 'extensions.health_check'), /extensions\.health_check\.endpoint: expected host:port/);
  assert.throws(() => healthCheckExtensionFactory.validate({ path: 'health' }, 'extensions.health_check'), /extensions\.health_check\.path: must start with "\/"/);
  assert.throws(() => healthCheckExtensionFactory.validate({ port: 1 }, 'extensions.health_check'), /unknown option "port"/);
});

test('service.extensions must name defined extensions; a defined one not listed is a warning', () => {
  const base = 'receivers: { fake: {} }\nexporters: { fakeexp: {} }\n';
  const pipelines = '  pipelines:\n    metrics: { receivers: [fake], exporters: [fakeexp] }\n';
  assert.throws(() => configFor(`${base}service:\n  extensions: [health_check]\n${pipelines}`), (e: unknown) => e instanceof ConfigValidationError && /extension "health_check" is not defined/.test(e.message));
  const c = configFor(`${base}extensions: { health_check: {} }\nservice:\n${pipelines}`);
  assert.ok(c.warnings.some((w) => /extension "health_check" is defined but not listed in service.extensions/.test(w)));
});

test('status transitions: 503 starting, 200 running, 503 after a failed collection until one succeeds, 503 stopping, port closed after', async () => {
  const { service, ext, url, receiver, exporter } = await agent();

  // Extensions run before the pipelines start: the agent answers, not yet healthy.
  let r = await get(url);
  assert.equal(r.status, 503);
  assert.equal(r.body.status, 'Server not available');
  assert.equal(r.body.state, 'starting');
  assert.equal(r.body.upSince, ZERO_TIME);
  assert.equal(r.body.uptime, '');
  assert.equal(r.body.components.extensions?.components['extension:health_check']?.status, 'StatusOK');

  receiver.startGate = deferred();
  const starting = service.start();
  await new Promise((res) => setTimeout(res, 10));
  r = await get(url);
  assert.equal(r.status, 503);
  assert.equal(r.body.components['pipeline:metrics']?.components['receiver:fake']?.status, 'StatusStarting');
  assert.equal(r.body.components['pipeline:metrics']?.components['exporter:fakeexp']?.status, 'StatusOK');
  receiver.startGate.resolve();
  await starting;

  r = await get(url);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.status, 'Server available');
  assert.equal(r.body.healthy, true);
  assert.equal(r.body.state, 'running');
  assert.notEqual(r.body.upSince, ZERO_TIME);
  assert.match(r.body.uptime, /^\d+\.\d{3}s$/);
  assert.deepEqual(
    Object.fromEntries(Object.entries(r.body.components['pipeline:metrics']!.components).map(([k, v]) => [k, [v.healthy, v.status]])),
    { 'receiver:fake': [true, 'StatusOK'], 'exporter:fakeexp': [true, 'StatusOK'] },
  );

  // Exports failing (backend down) is the data path: still healthy, the counts are shown.
  exporter.exportFailures = 3;
  r = await get(url);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.components['pipeline:metrics']?.components['exporter:fakeexp']?.exports, { succeeded: 0, failed: 3 });

  // A failed collection: 503 with the error, until the next one succeeds.
  receiver.failWith = new Error('cannot read /proc/net/snmp');
  await assert.rejects(service.collect(), /cannot read/);
  r = await get(url);
  assert.equal(r.status, 503);
  assert.equal(r.body.state, 'running');
  assert.deepEqual(r.body.components['pipeline:metrics']?.components['receiver:fake'] && {
    status: r.body.components['pipeline:metrics'].components['receiver:fake'].status,
    error: r.body.components['pipeline:metrics'].components['receiver:fake'].error,
  }, { status: 'StatusRecoverableError', error: 'cannot read /proc/net/snmp' });
  assert.equal(r.body.components['pipeline:metrics']?.status, 'StatusRecoverableError');
  assert.equal(ext.status.collectionFailures('fake'), 1);
  receiver.failWith = undefined;
  await service.collect();
  r = await get(url);
  assert.equal(r.status, 200);

  // HEAD, other paths and methods.
  const head = await fetch(url, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-type'), 'application/json');
  assert.equal((await fetch(url.replace('/health', '/other'))).status, 404);
  assert.equal((await fetch(url, { method: 'POST' })).status, 405);

  // Stopping: 503 while the receivers stop, then stopped.
  receiver.stopGate = deferred();
  const stopping = service.shutdown();
  await new Promise((res) => setTimeout(res, 10));
  r = await get(url);
  assert.equal(r.status, 503);
  assert.equal(r.body.state, 'stopping');
  receiver.stopGate.resolve();
  await stopping;
  r = await get(url);
  assert.equal(r.status, 503);
  assert.equal(r.body.state, 'stopped');
  assert.equal(r.body.components['pipeline:metrics']?.status, 'StatusStopped');

  await ext.shutdown();
  await assert.rejects(fetch(url), 'the port is closed after the extensions stop');
});

test('after a reload the new instances are watched: a restarted receiver that fails its collection is seen', async () => {
  const { service, url } = await agent();
  await service.start();
  assert.equal((await get(url)).status, 200);
  const old = FakeReceiver.last!;
  await service.reload(configFor(yamlFor('{ n: 2 }')));
  const fresh = FakeReceiver.last!;
  assert.notEqual(fresh, old, 'the receiver was restarted');
  assert.equal((await get(url)).status, 200);
  fresh.failWith = new Error('broken after reload');
  await assert.rejects(service.collect());
  const r = await get(url);
  assert.equal(r.status, 503);
  assert.equal(r.body.components['pipeline:metrics']?.components['receiver:fake']?.error, 'broken after reload');
});

test('a component that fails to start: 503, state failed, its error shown', async () => {
  const { service, url, receiver } = await agent();
  receiver.startGate = deferred();
  receiver.startGate.reject(new Error('probes did not load'));
  await assert.rejects(service.start(), /probes did not load/);
  const r = await get(url);
  assert.equal(r.status, 503);
  assert.equal(r.body.state, 'failed');
  const rec = r.body.components['pipeline:metrics']?.components['receiver:fake'];
  assert.equal(rec?.status, 'StatusPermanentError');
  assert.equal(rec?.error, 'probes did not load');
  assert.equal(r.body.components['pipeline:metrics']?.status, 'StatusPermanentError');
});

test('a health_check that cannot listen fails the start with a message naming the option', async () => {
  const blocker = createServer();
  await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
  const port = (blocker.address() as AddressInfo).port;
  try {
    const config = configFor(`
receivers: { fake: {} }
exporters: { fakeexp: {} }
extensions:
  health_check: { endpoint: "127.0.0.1:${port}" }
service:
  extensions: [health_check]
  pipelines:
    metrics: { receivers: [fake], exporters: [fakeexp] }
`);
    const service = Service.build(config, silentLogger());
    await assert.rejects(
      startExtensions(config, service, silentLogger()),
      new RegExp(`extension health_check: cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use; set extensions\\.health_check\\.endpoint`),
    );
  } finally {
    blocker.close();
  }
});

test('StatusTracker without extensions, and how group statuses aggregate', () => {
  const t = new StatusTracker([{ id: 'metrics', receivers: ['r'], processors: ['p'], exporters: ['e'] }], []);
  const r = t.report();
  assert.equal(r.healthy, false);
  assert.equal(r.state, 'starting');
  assert.equal(r.components.extensions, undefined);
  assert.equal(r.components['pipeline:metrics']?.components['processor:p']?.status, 'StatusStarting');
  assert.equal(aggregateStatus(['StatusOK', 'StatusRecoverableError']), 'StatusRecoverableError');
  assert.equal(aggregateStatus(['StatusOK', 'StatusStopped']), 'StatusStopping');
  assert.equal(aggregateStatus(['StatusStopped', 'StatusStopped']), 'StatusStopped');
  assert.equal(aggregateStatus(['StatusStarting', 'StatusPermanentError']), 'StatusPermanentError');
  assert.equal(aggregateStatus(['StatusOK', 'StatusOK']), 'StatusOK');
});
