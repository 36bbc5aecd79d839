/** Config validation of every processor factory: defaults, options docs, and each error message. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, ConfigErrorList } from '../../src/config';
import {
  aggregateProcessorFactory,
  attributesProcessorFactory,
  filterProcessorFactory,
  processorFactories,
  samplingProcessorFactory,
} from '../../src/processors';

const P = 'processors.x';

/** The message of the error `fn` throws (a ConfigError), for regex checks. */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('expected a ConfigError');
}

test('processorFactories lists the processors, each a processor factory with documented options', () => {
  assert.deepEqual(Object.keys(processorFactories).sort(), ['aggregate', 'attributes', 'batch', 'cloud', 'cloud_services', 'filter', 'memory_limiter', 'nat', 'resource', 'sampling', 'zone']);
  for (const [type, f] of Object.entries(processorFactories)) {
    assert.equal(f.type, type);
    assert.equal(f.kind, 'processor');
    assert.ok(f.options.length > 0);
    for (const o of f.options) assert.ok(o.description.length > 10, `${type}.${o.name} has a description`);
    const names = f.options.map((o) => o.name);
    assert.equal(new Set(names).size, names.length, `${type} option names are unique`);
  }
  assert.ok(filterProcessorFactory.options.some((o) => o.name === 'include.ports'));
  assert.ok(filterProcessorFactory.options.some((o) => o.name === 'exclude.source_cidrs'));
  assert.ok(attributesProcessorFactory.options.some((o) => o.name === 'actions[].pattern'));
  assert.ok(attributesProcessorFactory.options.some((o) => o.name === 'hash_key'));
});

test('default configs', () => {
  assert.deepEqual(filterProcessorFactory.defaultConfig(), { include: {}, exclude: {} });
  assert.deepEqual(samplingProcessorFactory.defaultConfig(), {
    sampling_rate: 1,
    hash_seed: 0,
    ignore_attributes: ['network.connection.state', 'error.type'],
  });
  assert.deepEqual(aggregateProcessorFactory.defaultConfig(), { cardinality_limit: 10000 });
  assert.deepEqual(attributesProcessorFactory.defaultConfig(), { actions: [] });
  // Null/absent config is the default for the processors whose default is useful.
  assert.deepEqual(filterProcessorFactory.validate(null, P), filterProcessorFactory.defaultConfig());
  assert.deepEqual(samplingProcessorFactory.validate(undefined, P), samplingProcessorFactory.defaultConfig());
});

test('filter: a full config validates into criteria', () => {
  const c = filterProcessorFactory.validate(
    {
      include: { ports: [443, '8000-8100'], cidrs: ['10.0.0.0/8', 'fd00::/8'], processes: ['nginx', 'postgres*'], directions: ['Outgoing'], transports: ['TCP'] },
      exclude: { ports: [22], cidrs: ['169.254.0.0/16'], processes: ['sshd'], directions: ['local'], interfaces: ['docker*'] },
    },
    P,
  );
  assert.deepEqual(c.include.ports, [
    [443, 443],
    [8000, 8100],
  ]);
  assert.deepEqual(
    c.include.cidrs?.map((x) => x.text),
    ['10.0.0.0/8', 'fd00::/8'],
  );
  assert.deepEqual(c.include.directions, ['outgoing']);
  assert.deepEqual(c.include.transports, ['tcp']);
  assert.equal(c.include.sourceCidrs, undefined);
  assert.deepEqual(c.exclude.interfaces, ['docker*']);
});

test('filter: unknown option, with a suggestion', () => {
  assert.equal(
    errorOf(() => filterProcessorFactory.validate({ includ: {} }, P)),
    'processors.x.includ: unknown option "includ"; did you mean "include"? (known options: include, exclude)',
  );
  assert.match(
    errorOf(() => filterProcessorFactory.validate({ include: { prots: [80] } }, P)),
    /^processors\.x\.include\.prots: unknown option "prots"; did you mean "ports"\?/,
  );
  assert.match(
    errorOf(() => filterProcessorFactory.validate({ exclude: { source_cidr: ['10.0.0.0/8'] } }, P)),
    /^processors\.x\.exclude\.source_cidr: unknown option "source_cidr"; did you mean "source_cidrs"\?/,
  );
});

test('filter: bad CIDRs say what is wrong and where', () => {
  const cases: [string, RegExp][] = [
    ['10.0.0.0/33', /include\.cidrs\[0\]: invalid CIDR "10\.0\.0\.0\/33": the prefix length must be a number from 0 to 32$/],
    ['fd00::/129', /the prefix length must be a number from 0 to 128$/],
    ['10.0.0/8', /invalid CIDR "10\.0\.0\/8": "10\.0\.0" is not an IPv4 or IPv6 address$/],
    ['010.0.0.0/8', /"010\.0\.0\.0" is not an IPv4 or IPv6 address$/],
    ['fd00:::/8', /"fd00:::" is not an IPv4 or IPv6 address$/],
    ['10.1.2.3/8', /host bits are set after the \/8 prefix; did you mean "10\.0\.0\.0\/8"\?$/],
    ['fd12::/8', /did you mean "fd00::\/8"\?$/],
    ['10.0.0.0/', /the prefix length must be a number/],
    ['fe80::%eth0/64', /a zone \(%\.\.\.\) is not allowed$/],
  ];
  for (const [cidr, expected] of cases) {
    assert.match(errorOf(() => filterProcessorFactory.validate({ include: { cidrs: [cidr] } }, P)), expected, cidr);
  }
  assert.match(
    errorOf(() => filterProcessorFactory.validate({ exclude: { source_cidrs: ['10.0.0.0/8', 'nope'] } }, P)),
    /^processors\.x\.exclude\.source_cidrs\[1\]: invalid CIDR "nope"/,
  );
});

test('filter: bad ports and port ranges', () => {
  const cases: [unknown, RegExp][] = [
    ['8100-8000', /include\.ports\[0\]: invalid port range "8100-8000": the start \(8100\) is greater than the end \(8000\); did you mean "8000-8100"\?$/],
    [0, /invalid port "0": ports are 1–65535$/],
    [70000, /invalid port "70000": ports are 1–65535$/],
    ['1-70000', /invalid port range "1-70000": ports are 1–65535$/],
    ['http', /invalid port or port range "http": expected a port \(443\) or a range \("8000-8100"\)$/],
    ['80-', /invalid port or port range "80-"/],
    [-1, /invalid port or port range "-1"/],
  ];
  for (const [port, expected] of cases) {
    assert.match(errorOf(() => filterProcessorFactory.validate({ include: { ports: [port] } }, P)), expected, String(port));
  }
  assert.match(errorOf(() => filterProcessorFactory.validate({ include: { ports: 443 } }, P)), /include\.ports: expected a list of strings, got a number \(443\)/);
});

test('filter: directions, transports and process names are checked', () => {
  assert.match(
    errorOf(() => filterProcessorFactory.validate({ include: { directions: ['outgong'] } }, P)),
    /include\.directions\[0\]: unknown direction "outgong"; did you mean "outgoing"\? \(one of: outgoing, incoming, local\)$/,
  );
  assert.match(
    errorOf(() => filterProcessorFactory.validate({ exclude: { transports: ['sctp'] } }, P)),
    /exclude\.transports\[0\]: unknown transport "sctp"; did you mean "tcp"\? \(one of: tcp, udp\)$/,
  );
  assert.match(
    errorOf(() => filterProcessorFactory.validate({ include: { processes: ['kube-controller-manager'] } }, P)),
    /include\.processes\[0\]: "kube-controller-manager" can never match: process\.executable\.name is the kernel's comm, at most 15 characters; use "kube-controller" or "kube-controller\*"$/,
  );
  // A glob whose fixed part fits is fine.
  filterProcessorFactory.validate({ include: { processes: ['kube-controller*'] } }, P);
});

test('filter: several problems are reported together', () => {
  try {
    filterProcessorFactory.validate({ include: { cidrs: ['bad'], ports: ['9-1'] }, exclude: { directions: ['up'] } }, P);
    assert.fail('expected an error');
  } catch (error) {
    assert.ok(error instanceof ConfigErrorList);
    assert.deepEqual(
      error.errors.map((e) => e.path),
      ['processors.x.include.ports[0]', 'processors.x.include.cidrs[0]', 'processors.x.exclude.directions[0]'],
    );
  }
});

test('sampling: option errors', () => {
  assert.match(errorOf(() => samplingProcessorFactory.validate({ sampling_rate: 0 }, P)), /^processors\.x\.sampling_rate: must be at least 1, got 0$/);
  assert.match(errorOf(() => samplingProcessorFactory.validate({ sampling_rate: 2.5 }, P)), /sampling_rate: expected an integer, got 2\.5$/);
  assert.match(
    errorOf(() => samplingProcessorFactory.validate({ sampling_percentage: 10 }, P)),
    /^processors\.x\.sampling_percentage: unknown option "sampling_percentage"/,
  );
  assert.match(errorOf(() => samplingProcessorFactory.validate({ hash_sed: 1 }, P)), /unknown option "hash_sed"; did you mean "hash_seed"\?/);
  assert.match(errorOf(() => samplingProcessorFactory.validate({ hash_seed: -1 }, P)), /hash_seed: must be at least 0, got -1$/);
  assert.deepEqual(samplingProcessorFactory.validate({ sampling_rate: '10', hash_seed: 7 }, P).sampling_rate, 10);
});

test('aggregate: group_by and drop together is an error; other option errors', () => {
  assert.equal(
    errorOf(() => aggregateProcessorFactory.validate({ group_by: ['destination.port'], drop: ['process.pid'] }, P)),
    'processors.x: group_by and drop cannot be used together: group_by keeps only the attributes it lists, drop removes the ones it lists; use one',
  );
  assert.match(errorOf(() => aggregateProcessorFactory.validate({ group: ['a'] }, P)), /unknown option "group"; did you mean "drop"\?|unknown option "group"/);
  assert.match(errorOf(() => aggregateProcessorFactory.validate({ groupby: ['a'] }, P)), /unknown option "groupby"; did you mean "group_by"\?/);
  assert.match(errorOf(() => aggregateProcessorFactory.validate({ cardinality_limit: -5 }, P)), /cardinality_limit: must be at least 0, got -5$/);
  assert.match(errorOf(() => aggregateProcessorFactory.validate({ group_by: 'destination.port' }, P)), /group_by: expected a list of strings/);
  assert.deepEqual(aggregateProcessorFactory.validate({ group_by: ['destination.port'] }, P), { group_by: ['destination.port'], cardinality_limit: 10000 });
  assert.deepEqual(aggregateProcessorFactory.validate({ drop: ['process.pid'], cardinality_limit: 0 }, P), { drop: ['process.pid'], cardinality_limit: 0 });
});

test('attributes: a valid action list', () => {
  const c = attributesProcessorFactory.validate(
    {
      hash_key: 'secret',
      actions: [
        { key: 'env', action: 'insert', value: 'prod' },
        { key: 'port', action: 'UPSERT', value: 443 },
        { key: 'peer', action: 'upsert', from_attribute: 'destination.address' },
        { key: 'source.address', action: 'hash' },
        { pattern: '^process\\.', action: 'delete' },
        { key: 'url', action: 'extract', pattern: '^(?P<url.host>[^/]+)/(?<path>.*)$' },
        { key: 'destination.port', action: 'convert', converted_type: 'string' },
      ],
    },
    P,
  );
  assert.equal(c.hash_key, 'secret');
  assert.equal(c.actions.length, 7);
  assert.deepEqual(c.actions[1], { action: 'upsert', key: 'port', value: 443 });
  assert.deepEqual(c.actions[2], { action: 'upsert', key: 'peer', fromAttribute: 'destination.address' });
});

test('attributes: every action error names its field', () => {
  const one = (action: unknown): string => errorOf(() => attributesProcessorFactory.validate({ actions: [action] }, P));
  assert.match(errorOf(() => attributesProcessorFactory.validate({}, P)), /^processors\.x\.actions: at least one action is required/);
  assert.match(errorOf(() => attributesProcessorFactory.validate({ actions: [] }, P)), /^processors\.x\.actions: at least one action is required/);
  assert.match(errorOf(() => attributesProcessorFactory.validate({ actions: { key: 'a' } }, P)), /actions: expected a list of actions, got a map$/);
  // The misspelled option and the then missing actions, reported together.
  assert.match(
    errorOf(() => attributesProcessorFactory.validate({ action: [] }, P)),
    /processors\.x\.action: unknown option "action"; did you mean "actions"\? \(known options: hash_key, actions\); processors\.x\.actions: at least one action is required/,
  );
  assert.equal(errorOf(() => attributesProcessorFactory.validate('hash', P)), 'processors.x: expected a map of options, got a string ("hash")');
  assert.match(one('hash'), /actions\[0\]: expected a map with key and action, got a string/);
  assert.match(one({ key: 'a' }), /actions\[0\]\.action: required field "action" is missing \(one of: insert, update, upsert, delete, hash, extract, convert\)$/);
  assert.match(one({ key: 'a', action: 'upsret', value: 1 }), /actions\[0\]\.action: unknown action "upsret"; did you mean "upsert"\?/);
  assert.match(one({ key: 'a', action: 'insert', vaule: 1 }), /actions\[0\]\.vaule: unknown field "vaule"; did you mean "value"\?/);
  assert.match(one({ action: 'insert', value: 1 }), /actions\[0\]\.key: required field "key" is missing \(the insert action needs it\)$/);
  assert.match(one({ key: 'a', action: 'update' }), /actions\[0\]: the update action needs a value or a from_attribute$/);
  assert.match(one({ key: 'a', action: 'upsert', value: 1, from_attribute: 'b' }), /actions\[0\]: set either value or from_attribute, not both$/);
  assert.match(one({ key: 'a', action: 'upsert', value: [1] }), /actions\[0\]\.value: expected a string, number or boolean, got a list$/);
  assert.match(one({ key: 'a', action: 'delete', value: 1 }), /actions\[0\]\.value: "value" does not apply to the delete action$/);
  assert.match(one({ action: 'hash' }), /actions\[0\]: the hash action needs a key, a pattern \(a regex on attribute names\), or both$/);
  assert.match(one({ action: 'delete', pattern: '(' }), /actions\[0\]\.pattern: invalid regular expression "\(": /);
  assert.match(one({ key: 'a', action: 'extract', pattern: 'a[' }), /actions\[0\]\.pattern: invalid regular expression "a\[": .*[Uu]nterminated/);
  assert.match(one({ key: 'a', action: 'extract' }), /actions\[0\]\.pattern: required field "pattern" is missing/);
  assert.match(one({ key: 'a', action: 'extract', pattern: '^(\\d+)$' }), /actions\[0\]\.pattern: "\^\(\\d\+\)\$" has no named groups: write \(\?<attribute\.name>\.\.\.\) for each attribute to create$/);
  assert.match(one({ key: 'a', action: 'convert' }), /actions\[0\]\.converted_type: required field "converted_type" is missing \(one of: int, double, string\)$/);
  assert.match(one({ key: 'a', action: 'convert', converted_type: 'integer' }), /converted_type: unknown type "integer"/);
  assert.match(one({ key: 'a', action: 'insert', value: 1, pattern: 'x' }), /actions\[0\]\.pattern: "pattern" does not apply to the insert action$/);
  // All problems of a list at once.
  try {
    attributesProcessorFactory.validate({ actions: [{ key: 'a', action: 'nope' }, { action: 'delete', pattern: '[' }] }, P);
    assert.fail('expected an error');
  } catch (error) {
    assert.ok(error instanceof ConfigErrorList);
    assert.deepEqual(
      error.errors.map((e) => e.path),
      ['processors.x.actions[0].action', 'processors.x.actions[1].pattern'],
    );
  }
});
