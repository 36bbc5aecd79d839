import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closestMatch,
  ConfigError,
  ConfigErrorList,
  describeSchema,
  editDistance,
  schemaDefaults,
  validateObject,
  type Schema,
  type SchemaValue,
} from '../../src/config';

const schema = {
  endpoint: { type: 'string', description: 'where' },
  timeout: { type: 'duration', default: '5s', description: 'deadline' },
  retries: { type: 'number', integer: true, min: 0, default: 3, description: 'attempts' },
  enabled: { type: 'boolean', default: true, description: 'on/off' },
  tags: { type: 'string[]', default: [], description: 'labels' },
  headers: { type: 'map<string,string>', description: 'extra' },
  mode: { type: 'enum', values: ['fast', 'safe'], default: 'safe', description: 'how' },
  tls: {
    type: 'object',
    description: 'transport',
    schema: { insecure: { type: 'boolean', default: false, description: 'plaintext' }, ca_file: { type: 'string', description: 'CA' } },
  },
} as const satisfies Schema;

type Config = SchemaValue<typeof schema>;

test('validateObject fills defaults and leaves unset optional options undefined', () => {
  const config: Config = validateObject(null, 'exporters.x', schema);
  assert.deepEqual(config, { timeout: 5000, retries: 3, enabled: true, tags: [], mode: 'safe', tls: { insecure: false } });
  // Compile-time: required/defaulted keys are non-optional, enums are literal unions.
  const mode: 'fast' | 'safe' = config.mode;
  const timeoutMs: number = config.timeout;
  const endpoint: string | undefined = config.endpoint;
  assert.equal(mode, 'safe');
  assert.equal(timeoutMs, 5000);
  assert.equal(endpoint, undefined);
  assert.deepEqual(schemaDefaults(schema), config);
});

test('validateObject converts and coerces values', () => {
  const config = validateObject(
    {
      endpoint: 'h:1',
      timeout: '1m30s',
      retries: '7',
      enabled: 'false',
      tags: ['a', 5],
      headers: { 'x-n': 5, 'x-b': true, empty: null },
      mode: 'FAST',
      tls: { insecure: true, ca_file: 'ca.pem' },
    },
    'exporters.x',
    schema,
  );
  assert.deepEqual(config, {
    endpoint: 'h:1',
    timeout: 90_000,
    retries: 7,
    enabled: false,
    tags: ['a', '5'],
    headers: { 'x-n': '5', 'x-b': 'true', empty: '' },
    mode: 'fast',
    tls: { insecure: true, ca_file: 'ca.pem' },
  });
});

test('unknown options suggest the closest known name', () => {
  assert.throws(
    () => validateObject({ endpont: 'x' }, 'exporters.otlp', schema),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.path, 'exporters.otlp.endpont');
      assert.match(error.message, /^exporters\.otlp\.endpont: unknown option "endpont"; did you mean "endpoint"\? \(known options: endpoint, timeout, /);
      return true;
    },
  );
  assert.throws(() => validateObject({ tls: { insecur: true } }, 'e', schema), /e\.tls\.insecur: unknown option "insecur"; did you mean "insecure"\?/);
  assert.throws(() => validateObject({ zzzzzz: 1 }, 'e', schema), (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.doesNotMatch(error.message, /did you mean/);
    return true;
  });
});

test('type errors name the expected type; all problems are reported together', () => {
  assert.throws(
    () =>
      validateObject(
        { endpoint: ['x'], timeout: 10, retries: 1.5, enabled: 'yes', tags: 'a', headers: ['x'], mode: 'slow', tls: 'on' },
        'exporters.x',
        schema,
      ),
    (error: unknown) => {
      assert.ok(error instanceof ConfigErrorList);
      const byPath = new Map(error.errors.map((e) => [e.path, e.message]));
      assert.equal(error.errors.length, 8);
      assert.match(byPath.get('exporters.x.endpoint') ?? '', /expected a string, got a list/);
      assert.match(byPath.get('exporters.x.timeout') ?? '', /expected a duration with a unit \(e\.g\. 500ms, 10s, 1m\), got a number \(10\)/);
      assert.match(byPath.get('exporters.x.retries') ?? '', /expected an integer, got 1\.5/);
      assert.match(byPath.get('exporters.x.enabled') ?? '', /expected a boolean \(true or false\), got a string \("yes"\)/);
      assert.match(byPath.get('exporters.x.tags') ?? '', /expected a list of strings/);
      assert.match(byPath.get('exporters.x.headers') ?? '', /expected a map of strings, got a list/);
      assert.match(byPath.get('exporters.x.mode') ?? '', /expected one of "fast", "safe", got a string \("slow"\)/);
      assert.match(byPath.get('exporters.x.tls') ?? '', /expected a map of options, got a string/);
      return true;
    },
  );
  assert.throws(() => validateObject('nope', 'receivers.r', schema), /receivers\.r: expected a map of options, got a string/);
  assert.throws(() => validateObject({ timeout: '0s' }, 'x', schema), /x\.timeout: must be greater than 0/);
  assert.throws(() => validateObject({ retries: -1 }, 'x', schema), /x\.retries: must be at least 0/);
});

test('required options', () => {
  const requiredSchema = { url: { type: 'string', required: true, description: 'u' } } as const satisfies Schema;
  assert.throws(() => validateObject({}, 'x', requiredSchema), /x\.url: required option "url" is missing/);
  const value: { url: string } = validateObject({ url: 'a' }, 'x', requiredSchema);
  assert.equal(value.url, 'a');
});

test('describeSchema flattens nested options into OptionDocs', () => {
  const docs = describeSchema(schema);
  assert.deepEqual(
    docs.map((d) => [d.name, d.type, d.default]),
    [
      ['endpoint', 'string', undefined],
      ['timeout', 'duration', '5s'],
      ['retries', 'number', 3],
      ['enabled', 'boolean', true],
      ['tags', 'string[]', []],
      ['headers', 'map<string,string>', undefined],
      ['mode', 'fast | safe', 'safe'],
      ['tls', 'object', undefined],
      ['tls.insecure', 'boolean', false],
      ['tls.ca_file', 'string', undefined],
    ],
  );
});

test('edit distance and closest match', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(closestMatch('promethues', ['otlp', 'prometheus', 'debug']), 'prometheus');
  assert.equal(closestMatch('OTLP', ['otlp']), 'otlp');
  assert.equal(closestMatch('kafka', ['otlp', 'prometheus', 'debug']), undefined);
});
