/** The attributes processor: each Collector action, in order, copy-on-write. */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { test } from 'node:test';
import type { FlowAttributes, Measurement, MeasurementBatch } from '../../src/pipeline/measurements';
import { attributesProcessorFactory, AttributesProcessor } from '../../src/processors';
import { translateNamedGroups } from '../../src/processors/actions';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function processor(config: unknown): AttributesProcessor {
  return attributesProcessorFactory.create(attributesProcessorFactory.validate(config, 'processors.attributes'), {
    id: 'attributes',
    logger: undefined as never,
  }) as AttributesProcessor;
}

function run(actions: unknown[], attributes: FlowAttributes, extra: Record<string, unknown> = {}): FlowAttributes {
  const input: MeasurementBatch = deepFreeze({ timeMs: 1, measurements: [{ metric: 'tcp_bytes_sent', value: 3, attributes }], gaugesReplaced: [] });
  const out = processor({ actions, ...extra }).process(input);
  assert.equal(out.measurements.length, 1);
  assert.equal(out.measurements[0]?.value, 3);
  return out.measurements[0]?.attributes as FlowAttributes;
}

const base: FlowAttributes = deepFreeze({ 'source.address': '10.0.1.50', 'destination.address': '10.0.2.100', 'destination.port': 5432, 'process.pid': 42 });

test('insert, update, upsert with value (type kept) and from_attribute', () => {
  assert.deepEqual(run([{ key: 'env', action: 'insert', value: 'prod' }], base), { ...base, env: 'prod' });
  assert.deepEqual(run([{ key: 'process.pid', action: 'insert', value: 1 }], base), base, 'insert does not overwrite');
  assert.deepEqual(run([{ key: 'process.pid', action: 'update', value: 1 }], base), { ...base, 'process.pid': 1 });
  assert.deepEqual(run([{ key: 'env', action: 'update', value: 'x' }], base), base, 'update does not create');
  assert.deepEqual(run([{ key: 'env', action: 'upsert', value: true }, { key: 'process.pid', action: 'upsert', value: '7' }], base), {
    ...base,
    env: true,
    'process.pid': '7',
  });
  assert.deepEqual(run([{ key: 'peer', action: 'insert', from_attribute: 'destination.address' }], base), { ...base, peer: '10.0.2.100' });
  assert.deepEqual(run([{ key: 'peer', action: 'upsert', from_attribute: 'nope' }], base), base, 'absent from_attribute: no change');
});

test('delete by key and by pattern on names', () => {
  assert.deepEqual(run([{ key: 'process.pid', action: 'delete' }], base), {
    'source.address': '10.0.1.50',
    'destination.address': '10.0.2.100',
    'destination.port': 5432,
  });
  assert.deepEqual(run([{ pattern: '\\.address$', action: 'delete' }], base), { 'destination.port': 5432, 'process.pid': 42 });
  assert.deepEqual(run([{ key: 'missing', action: 'delete' }], base), base);
});

test('hash: full hex SHA-256 of the string form; HMAC-SHA256 with hash_key; by key or pattern', () => {
  const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
  const out = run([{ key: 'source.address', action: 'hash' }, { key: 'destination.port', action: 'hash' }], base);
  assert.equal(out['source.address'], sha('10.0.1.50'));
  assert.equal(out['source.address']?.toString().length, 64);
  assert.equal(out['destination.port'], sha('5432'));
  assert.equal(out['destination.address'], '10.0.2.100');
  const both = run([{ pattern: '^(source|destination)\\.address$', action: 'hash' }], base);
  assert.equal(both['destination.address'], sha('10.0.2.100'));
  assert.equal(both['source.address'], sha('10.0.1.50'));
  const keyed = run([{ key: 'source.address', action: 'hash' }], base, { hash_key: 's3cret' });
  assert.equal(keyed['source.address'], createHmac('sha256', 's3cret').update('10.0.1.50').digest('hex'));
  assert.notEqual(keyed['source.address'], out['source.address']);
  assert.deepEqual(run([{ key: 'missing', action: 'hash' }], base), base);
});

test('extract: named groups become attributes, Go (?P<...>) syntax and dotted names accepted', () => {
  const url = { ...base, 'url.full': 'https://api.example.com:8443/v1/users/17' };
  const out = run([{ key: 'url.full', action: 'extract', pattern: '^(?P<url.scheme>[a-z]+)://(?<server.address>[^/:]+)(?::(?<server_port>\\d+))?/(?<path>.*)$' }], url);
  assert.deepEqual(out, { ...url, 'url.scheme': 'https', 'server.address': 'api.example.com', server_port: '8443', path: 'v1/users/17' });
  const noPort = run([{ key: 'url.full', action: 'extract', pattern: '^(?<scheme>[a-z]+)://[^/:]+(?::(?<port>\\d+))?/' }], { 'url.full': 'http://h/x' });
  assert.deepEqual(noPort, { 'url.full': 'http://h/x', scheme: 'http' }, 'a group that did not take part sets nothing');
  assert.deepEqual(run([{ key: 'url.full', action: 'extract', pattern: '^(?<x>ftp)' }], url), url, 'no match: no change');
  assert.deepEqual(run([{ key: 'destination.port', action: 'extract', pattern: '(?<x>.*)' }], base), base, 'only string values');
  // Overwrites an existing attribute of the same name.
  assert.deepEqual(run([{ key: 'a', action: 'extract', pattern: '(?<b>\\d+)' }], { a: 'x12', b: 'old' }), { a: 'x12', b: '12' });
});

test('translateNamedGroups leaves escapes, classes and lookbehinds alone', () => {
  assert.deepEqual(translateNamedGroups('\\(?<a>x)'), { source: '\\(?<a>x)', names: new Map() });
  assert.deepEqual(translateNamedGroups('[(?<a>]'), { source: '[(?<a>]', names: new Map() });
  assert.deepEqual(translateNamedGroups('(?<=a)(?<!b)'), { source: '(?<=a)(?<!b)', names: new Map() });
  const t = translateNamedGroups('(?P<a.b>x)\\k<a.b>(?<c>y)');
  assert.equal(t.source, '(?<__flowtel_g0>x)\\k<__flowtel_g0>(?<c>y)');
  assert.deepEqual([...t.names], [
    ['__flowtel_g0', 'a.b'],
    ['c', 'c'],
  ]);
  // The back-reference really works after renaming.
  assert.deepEqual(run([{ key: 's', action: 'extract', pattern: '^(?<x.y>ab)-\\k<x.y>$' }], { s: 'ab-ab' }), { s: 'ab-ab', 'x.y': 'ab' });
});

test('convert to int, double and string; values that do not convert are left alone', () => {
  const a = { p: '443', f: '1.5', b: true, bad: 'eighty', n: 7.9 };
  assert.deepEqual(
    run(
      [
        { key: 'p', action: 'convert', converted_type: 'int' },
        { key: 'f', action: 'convert', converted_type: 'double' },
        { key: 'b', action: 'convert', converted_type: 'int' },
        { key: 'bad', action: 'convert', converted_type: 'int' },
        { key: 'n', action: 'convert', converted_type: 'int' },
        { key: 'missing', action: 'convert', converted_type: 'string' },
      ],
      a,
    ),
    { p: 443, f: 1.5, b: 1, bad: 'eighty', n: 7 },
  );
  assert.deepEqual(run([{ key: 'p', action: 'convert', converted_type: 'string' }], { p: 443 }), { p: '443' });
});

test('actions run in order, on every measurement, and never touch the (frozen) input', () => {
  const p = processor({
    actions: [
      { key: 'peer', action: 'upsert', from_attribute: 'destination.address' },
      { key: 'destination.address', action: 'delete' },
      { key: 'peer', action: 'hash' },
      { key: 'env', action: 'insert', value: 'prod' },
    ],
  });
  const measurements: Measurement[] = [
    { metric: 'tcp_bytes_sent', value: 1, attributes: base },
    { metric: 'flowtel_ebpf_dropped', value: 2, attributes: { receiver: 'ebpf_tcp' } },
  ];
  const input: MeasurementBatch = deepFreeze({ timeMs: 9, measurements, gaugesReplaced: ['tcp_connections'] });
  const snapshot = JSON.stringify(input);
  const out = p.process(input);
  assert.equal(JSON.stringify(input), snapshot);
  assert.deepEqual(out.measurements[0]?.attributes, {
    'source.address': '10.0.1.50',
    'destination.port': 5432,
    'process.pid': 42,
    peer: createHash('sha256').update('10.0.2.100').digest('hex'),
    env: 'prod',
  });
  assert.deepEqual(out.measurements[1]?.attributes, { receiver: 'ebpf_tcp', env: 'prod' }, 'self-telemetry too, as in the Collector');
  assert.deepEqual(out.gaugesReplaced, ['tcp_connections']);
  assert.equal(out.timeMs, 9);
  // Nothing to change: the measurement object itself passes.
  const untouched = processor({ actions: [{ key: 'x', action: 'delete' }] }).process(input);
  assert.equal(untouched.measurements[0], input.measurements[0]);
  assert.notEqual(untouched.measurements, input.measurements);
});
