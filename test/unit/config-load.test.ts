import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConfigValidationError,
  defaultConfigObject,
  defaultConfigText,
  EMBEDDED_DEFAULT_CONFIG,
  expandEnvReferences,
  loadConfig,
  loadConfigFromTexts,
  locate,
  splitSetKey,
} from '../../src/config';

const text = (source: string, body: string) => ({ source, text: body });

test('loadConfig parses YAML files and records file:line:col for every key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flowtel-config-'));
  const file = join(dir, 'a.yaml');
  writeFileSync(file, 'exporters:\n  otlp/backup:\n    endpoint: backend:4317\nservice:\n  pipelines:\n    metrics:\n      exporters: [otlp/backup]\n');
  const raw = loadConfig([file], [], { env: {} });
  assert.deepEqual(raw.data, {
    exporters: { 'otlp/backup': { endpoint: 'backend:4317' } },
    service: { pipelines: { metrics: { exporters: ['otlp/backup'] } } },
  });
  assert.deepEqual(raw.locations.get('exporters.otlp/backup.endpoint'), { source: file, line: 3, col: 5 });
  assert.deepEqual(raw.locations.get('service.pipelines.metrics.exporters[0]'), { source: file, line: 7, col: 19 });
  // Paths without their own entry resolve to the nearest ancestor.
  assert.deepEqual(locate(raw.locations, 'exporters.otlp/backup.tls.insecure'), { source: file, line: 2, col: 3 });
  assert.deepEqual(raw.sources, [file]);
});

test('env expansion: ${env:X}, defaults, $$ escapes, typed whole values', () => {
  const env = { PORT: '9000', HOST: 'collector', FLAG: 'true', EMPTY: '' };
  const raw = loadConfigFromTexts(
    [
      text(
        'c.yaml',
        [
          'a: ${env:HOST}:${env:PORT}',
          'port: ${env:PORT}',
          'quoted: "${env:PORT}"',
          'flag: ${env:FLAG}',
          'fallback: ${env:MISSING:-localhost}',
          'empty_fallback: ${env:EMPTY:-dflt}',
          'literal: $${env:HOST}',
          'dollars: price $$5',
          'unset: ${env:NOPE}',
        ].join('\n'),
      ),
    ],
    [],
    { env },
  );
  assert.deepEqual(raw.data, {
    a: 'collector:9000',
    port: 9000,
    quoted: '9000',
    flag: true,
    fallback: 'localhost',
    empty_fallback: 'dflt',
    literal: '${env:HOST}',
    dollars: 'price $5',
    unset: '',
  });
  assert.equal(raw.warnings.length, 1);
  assert.match(raw.warnings[0] as string, /^unset: environment variable NOPE is not set/);
});

test('env expansion rejects unknown providers with the location', () => {
  assert.throws(
    () => loadConfigFromTexts([text('c.yaml', 'exporters:\n  otlp:\n    endpoint: ${file:/etc/x}\n')], [], { env: {} }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigValidationError);
      assert.match(error.message, /c\.yaml:3:5: exporters\.otlp\.endpoint: unsupported reference "\$\{file:\/etc\/x\}"/);
      return true;
    },
  );
  assert.deepEqual(expandEnvReferences('x', {}), { value: 'x', unset: [] });
});

test('several files merge: maps deep-merged, lists and scalars replaced', () => {
  const base = text(
    'base.yaml',
    'exporters:\n  otlp:\n    endpoint: a:4317\n    headers:\n      x-a: "1"\n  debug:\n    verbosity: detailed\nservice:\n  pipelines:\n    metrics:\n      exporters: [otlp, debug]\n',
  );
  const over = text('over.yaml', 'exporters:\n  otlp:\n    headers:\n      x-b: "2"\n  debug:\nservice:\n  pipelines:\n    metrics:\n      exporters: [otlp]\n');
  const raw = loadConfigFromTexts([base, over], [], { env: {} });
  assert.deepEqual(raw.data, {
    exporters: { otlp: { endpoint: 'a:4317', headers: { 'x-a': '1', 'x-b': '2' } }, debug: { verbosity: 'detailed' } },
    service: { pipelines: { metrics: { exporters: ['otlp'] } } },
  });
  assert.equal(raw.locations.get('exporters.otlp.endpoint')?.source, 'base.yaml');
  assert.equal(raw.locations.get('exporters.otlp.headers.x-b')?.source, 'over.yaml');
  assert.equal(raw.locations.get('service.pipelines.metrics.exporters[0]')?.source, 'over.yaml');
  assert.equal(raw.locations.get('service.pipelines.metrics.exporters[1]'), undefined, 'replaced list forgets old items');
});

test('--set overrides: YAML-typed values, component ids with /, :: separator', () => {
  const raw = loadConfigFromTexts(
    [text('c.yaml', 'exporters:\n  otlp/backup:\n    endpoint: a:4317\n')],
    [
      'exporters.otlp/backup.endpoint=b:4317',
      'exporters.otlp/backup.timeout=5s',
      'exporters.debug.top_n=20',
      'exporters.prometheus.without_scope_info=true',
      'service.pipelines.metrics.exporters=[otlp/backup, debug]',
      'exporters::otlp/backup::headers::x.api.key=secret',
      'receivers.ebpf_tcp.collection_interval=${env:INTERVAL:-10s}',
    ],
    { env: {} },
  );
  assert.deepEqual(raw.data, {
    exporters: {
      'otlp/backup': { endpoint: 'b:4317', timeout: '5s', headers: { 'x.api.key': 'secret' } },
      debug: { top_n: 20 },
      prometheus: { without_scope_info: true },
    },
    service: { pipelines: { metrics: { exporters: ['otlp/backup', 'debug'] } } },
    receivers: { ebpf_tcp: { collection_interval: '10s' } },
  });
  assert.deepEqual(raw.locations.get('exporters.otlp/backup.endpoint'), { source: '--set exporters.otlp/backup.endpoint=b:4317' });
  assert.equal(raw.locations.get('exporters.otlp/backup')?.source, 'c.yaml', 'ancestors keep their file location');
  assert.deepEqual(splitSetKey('a.b'), ['a', 'b']);
  assert.deepEqual(splitSetKey('a::b.c'), ['a', 'b.c']);
});

test('malformed --set and YAML errors are all reported with positions', () => {
  assert.throws(
    () =>
      loadConfigFromTexts(
        [text('bad.yaml', 'exporters:\n  otlp:\n    endpoint: a\n    endpoint: b\n'), text('list.yaml', '- a\n- b\n')],
        ['novalue', 'a..b=1'],
        { env: {} },
      ),
    (error: unknown) => {
      assert.ok(error instanceof ConfigValidationError);
      const messages = error.issues.map((i) => i.message);
      assert.equal(error.issues.length, 4, error.message);
      assert.match(error.message, /bad\.yaml:4:5: YAML: Map keys must be unique/);
      assert.match(error.message, /list\.yaml: the top level of a config file must be a map/);
      assert.ok(messages.includes('expected key.path=value'));
      assert.ok(messages.some((m) => m.startsWith('empty key segment')));
      return true;
    },
  );
});

test('a missing file is an error naming the file', () => {
  assert.throws(() => loadConfig(['/nonexistent/flowtel.yaml'], [], { env: {} }), /\/nonexistent\/flowtel\.yaml: cannot read config file: no such file/);
});

test('no files: the embedded default config is loaded', () => {
  const raw = loadConfig([], [], { env: {} });
  assert.deepEqual(raw.sources, ['<embedded default>']);
  assert.deepEqual(raw.data, defaultConfigObject({}));
});

test('default config adds otlp only when an OTLP endpoint env var is set', () => {
  assert.equal(defaultConfigText({}), EMBEDDED_DEFAULT_CONFIG);
  const plain = defaultConfigObject({});
  assert.deepEqual(plain, {
    receivers: { ebpf_tcp: { collection_interval: '10s' } },
    processors: { cloud: { detectors: ['auto'] } },
    exporters: { debug: { verbosity: 'basic' }, prometheus: { endpoint: '0.0.0.0:9464' } },
    service: { pipelines: { metrics: { receivers: ['ebpf_tcp'], processors: ['cloud'], exporters: ['debug', 'prometheus'] } } },
  });
  for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT']) {
    const withOtlp = defaultConfigObject({ [name]: 'http://collector:4317' });
    assert.deepEqual((withOtlp.exporters as Record<string, unknown>).otlp, {});
    assert.deepEqual(withOtlp.service, { pipelines: { metrics: { receivers: ['ebpf_tcp'], processors: ['cloud'], exporters: ['debug', 'prometheus', 'otlp'] } } });
  }
  assert.deepEqual(defaultConfigObject({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }), plain);
});
