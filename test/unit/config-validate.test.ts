import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ConfigValidationError,
  createRegistry,
  describeSchema,
  loadConfig,
  loadConfigFromTexts,
  validateConfig,
  validateObject,
  type ComponentRegistry,
  type Schema,
  type SchemaValue,
} from '../../src/config';
import { exporterFactories } from '../../src/exporters';
import { processorFactories } from '../../src/processors';
import type { ComponentFactory } from '../../src/pipeline/component';

const receiverSchema = {
  collection_interval: { type: 'duration', default: '10s', description: 'how often' },
} as const satisfies Schema;
type StubReceiverConfig = SchemaValue<typeof receiverSchema>;

/** A receiver factory as other modules write them, using validateObject. */
const ebpfTcpStub: ComponentFactory<StubReceiverConfig, { started: boolean }> = {
  kind: 'receiver',
  type: 'ebpf_tcp',
  stability: 'alpha',
  options: describeSchema(receiverSchema),
  defaultConfig: () => validateObject(undefined, '', receiverSchema),
  validate: (raw, path) => validateObject(raw, path, receiverSchema),
  create: () => ({ started: false }),
};

const registry: ComponentRegistry = { receivers: { ebpf_tcp: ebpfTcpStub }, exporters: exporterFactories };
/** For the embedded default, which lists processors. */
const defaultRegistry: ComponentRegistry = { ...registry, processors: processorFactories };

/** otlp's retry_on_failure and sending_queue, always present with the Collector's defaults. */
const EXPORTER_HELPER_DEFAULTS = {
  retry_on_failure: { enabled: true, initial_interval: 5000, max_interval: 30_000, max_elapsed_time: 300_000, multiplier: 1.5, randomization_factor: 0.5 },
  sending_queue: { enabled: true, num_consumers: 10, queue_size: 1000 },
};

function load(yaml: string, env: NodeJS.ProcessEnv = {}) {
  return loadConfigFromTexts([{ source: 'flowtel.yaml', text: yaml }], [], { env });
}

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigValidationError, String(error));
    return error.message.split('\n').slice(1).map((l) => l.trim());
  }
  assert.fail('expected a ConfigValidationError');
}

test('the embedded default config validates (with and without OTLP env)', () => {
  const plain = validateConfig(loadConfig([], [], { env: {} }), defaultRegistry);
  assert.deepEqual([...plain.receivers.keys()], ['ebpf_tcp']);
  assert.deepEqual([...plain.exporters.keys()], ['debug', 'prometheus']);
  assert.deepEqual(plain.pipelines, [{ id: 'metrics', signal: 'metrics', receivers: ['ebpf_tcp'], processors: ['cloud'], exporters: ['debug', 'prometheus'] }]);
  assert.deepEqual(plain.receivers.get('ebpf_tcp')?.config, { collection_interval: 10_000 });
  assert.equal(plain.service.telemetry.logs.level, 'info');
  assert.deepEqual(plain.warnings, []);

  const withOtlp = validateConfig(loadConfig([], [], { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317' } }), defaultRegistry);
  assert.deepEqual(withOtlp.pipelines[0]?.exporters, ['debug', 'prometheus', 'otlp']);
  // Empty otlp config: nothing set, so the SDK reads the OTEL_* variables.
  assert.deepEqual(withOtlp.exporters.get('otlp')?.config, { tls: {}, ...EXPORTER_HELPER_DEFAULTS });
});

test('component ids, factories and typed configs', () => {
  const config = validateConfig(
    load(`
receivers:
  ebpf_tcp:
    collection_interval: 5s
exporters:
  otlp/primary:
    endpoint: https://a:4317
    headers: { authorization: "Bearer x" }
    temporality: delta
  otlp/backup:
    endpoint: b:4317
    tls: { insecure: true }
service:
  telemetry:
    logs:
      level: DEBUG
  pipelines:
    metrics:
      receivers: [ebpf_tcp]
      exporters: [otlp/primary]
    metrics/backup:
      receivers: [ebpf_tcp]
      exporters: [otlp/backup]
`),
    registry,
  );
  const primary = config.exporters.get('otlp/primary');
  assert.equal(primary?.type, 'otlp');
  assert.equal(primary?.name, 'primary');
  assert.equal(primary?.kind, 'exporter');
  assert.equal(primary?.factory, exporterFactories.otlp);
  assert.deepEqual(primary?.config, { endpoint: 'https://a:4317', headers: { authorization: 'Bearer x' }, temporality: 'delta', tls: {}, ...EXPORTER_HELPER_DEFAULTS });
  assert.deepEqual(config.pipelines.map((p) => p.id), ['metrics', 'metrics/backup']);
  assert.equal(config.service.telemetry.logs.level, 'debug');
});

test('every problem is reported, with file:line:col', () => {
  const lines = issuesOf(() =>
    validateConfig(
      load(`receivers:
  ebpf_tcp:
    colection_interval: 5s
  kafka:
exporters:
  otlp:
    endpoint: grpc://x:4317
    compression: brotli
  promethues:
  debug/x y: {}
processors:
  batch:
connectors: {}
service:
  extensions: [health_check]
  pipelines:
    metrics:
      receivers: [ebpf_tcp, ebpf_tcp]
      exporters: [otlp, prometheus]
      procesors: []
    traces:
      receivers: [ebpf_tcp]
    metrics/empty:
      receivers: []
`),
      registry,
    ),
  );
  assert.deepEqual(lines, [
    'flowtel.yaml:13:1: connectors: unknown top-level key "connectors" (flowtel has no connectors) (expected receivers, processors, exporters, extensions, service)',
    'flowtel.yaml:3:5: receivers.ebpf_tcp.colection_interval: unknown option "colection_interval"; did you mean "collection_interval"? (known options: collection_interval)',
    'flowtel.yaml:4:3: receivers.kafka: unknown receiver type "kafka" (known receiver types: ebpf_tcp)',
    'flowtel.yaml:12:3: processors.batch: unknown processor type "batch" (no processor types are available)',
    'flowtel.yaml:7:5: exporters.otlp.endpoint: unsupported scheme "grpc://" (use host:port, http://host:port for plaintext or https://host:port for TLS)',
    'flowtel.yaml:8:5: exporters.otlp.compression: expected one of "gzip", "none", got a string ("brotli")',
    'flowtel.yaml:9:3: exporters.promethues: unknown exporter type "promethues"; did you mean "prometheus"? (known exporter types: debug, file, otlp, otlphttp, prometheus)',
    'flowtel.yaml:10:3: exporters.debug/x y: invalid component id "debug/x y": the name after "/" must be non-empty and contain no spaces',
    'flowtel.yaml:15:16: service.extensions[0]: extension "health_check" is not defined under extensions: (no extensions are defined)',
    'flowtel.yaml:20:7: service.pipelines.metrics.procesors: unknown key "procesors"; did you mean "processors"? (expected receivers, processors, exporters)',
    'flowtel.yaml:18:29: service.pipelines.metrics.receivers[1]: "ebpf_tcp" is listed more than once',
    'flowtel.yaml:19:25: service.pipelines.metrics.exporters[1]: exporter "prometheus" is not defined under exporters:; did you mean "promethues"? (defined exporters: otlp, promethues, debug/x y)',
    'flowtel.yaml:21:5: service.pipelines.traces: flowtel produces metrics and logs; "traces" pipelines are not supported',
    'flowtel.yaml:23:5: service.pipelines.metrics/empty: pipeline has no receivers',
    'flowtel.yaml:23:5: service.pipelines.metrics/empty: pipeline has no exporters',
  ]);
});

test('references suggest defined components; unused components are warnings', () => {
  // A single error fits on one line.
  try {
    validateConfig(
      load('receivers:\n  ebpf_tcp:\nexporters:\n  prometheus:\n  debug:\nservice:\n  pipelines:\n    metrics:\n      receivers: [ebpf_tcp]\n      exporters: [prometheus, debgu]\n'),
      registry,
    );
    assert.fail('expected an error');
  } catch (error) {
    assert.ok(error instanceof ConfigValidationError);
    assert.equal(
      error.message,
      'invalid configuration: flowtel.yaml:10:31: service.pipelines.metrics.exporters[1]: exporter "debgu" is not defined under exporters:; did you mean "debug"? (defined exporters: prometheus, debug)',
    );
  }

  const ok = validateConfig(
    load('receivers:\n  ebpf_tcp:\nexporters:\n  prometheus:\n  debug:\n  otlp/unused:\nservice:\n  pipelines:\n    metrics:\n      receivers: [ebpf_tcp]\n      exporters: [prometheus]\n'),
    registry,
  );
  assert.deepEqual(ok.warnings, [
    'exporters.debug: exporter "debug" is defined but not used in any pipeline',
    'exporters.otlp/unused: exporter "otlp/unused" is defined but not used in any pipeline',
  ]);
});

test('missing pipelines and bad service sections', () => {
  assert.throws(() => validateConfig(load('receivers:\n  ebpf_tcp:\n'), registry), /service: no pipelines/);
  const lines = issuesOf(() =>
    validateConfig(
      load('exporters: [debug]\nservice:\n  telemetry:\n    logs:\n      level: loud\n  pipeline: {}\n  pipelines:\n    metrics: nope\n'),
      registry,
    ),
  );
  assert.deepEqual(lines, [
    'flowtel.yaml:1:1: exporters: expected a map, got a list',
    'flowtel.yaml:6:3: service.pipeline: unknown key "pipeline"; did you mean "pipelines"? (expected pipelines, telemetry, extensions)',
    'flowtel.yaml:5:7: service.telemetry.logs.level: expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got a string ("loud")',
    'flowtel.yaml:8:5: service.pipelines.metrics: expected a map, got a string ("nope")',
    'flowtel.yaml:8:5: service.pipelines.metrics: pipeline has no receivers',
    'flowtel.yaml:8:5: service.pipelines.metrics: pipeline has no exporters',
  ]);
});

test('registry inputs: per-kind object, flat Map, list of factories', () => {
  const raw = loadConfig([], [], { env: {} });
  const factories = [ebpfTcpStub, ...Object.values(processorFactories), ...Object.values(exporterFactories)];
  for (const input of [defaultRegistry, createRegistry(factories), new Map(factories.map((f) => [f.type, f])), factories]) {
    assert.deepEqual([...validateConfig(raw, input).exporters.keys()], ['debug', 'prometheus']);
  }
  assert.throws(() => createRegistry([ebpfTcpStub, ebpfTcpStub]), /two receiver factories for type "ebpf_tcp"/);
});

test('--set values are validated and located', () => {
  const raw = loadConfig([], ['exporters.debug.top_n=many'], { env: {} });
  assert.throws(
    () => validateConfig(raw, defaultRegistry),
    (error: unknown) =>
      error instanceof ConfigValidationError &&
      error.message === 'invalid configuration: --set exporters.debug.top_n=many: exporters.debug.top_n: expected a number, got a string ("many")',
  );
});
