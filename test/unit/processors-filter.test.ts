/** The filter processor: include/exclude semantics, IPv4/IPv6 CIDRs, kernel pushdown, input never mutated. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FlowAttributes, Measurement, MeasurementBatch } from '../../src/pipeline/measurements';
import { cidrContains, filterProcessorFactory, FilterProcessor, formatIp, kernelFilterCriteria, parseCidr, parseIp } from '../../src/processors';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function batchOf(...attributes: FlowAttributes[]): MeasurementBatch {
  return deepFreeze({
    timeMs: 1_700_000_000_000,
    measurements: attributes.map((a, i): Measurement => ({ metric: 'tcp_bytes_sent', value: i + 1, attributes: a })),
    gaugesReplaced: ['tcp_connections'],
  });
}

function filter(config: unknown): FilterProcessor {
  return filterProcessorFactory.create(filterProcessorFactory.validate(config, 'processors.filter'), {
    id: 'filter',
    logger: undefined as never,
  }) as FilterProcessor;
}

const flow = (extra: FlowAttributes): FlowAttributes => ({
  'network.transport': 'tcp',
  'network.type': 'ipv4',
  'source.address': '10.0.1.50',
  'destination.address': '10.0.2.100',
  'flow.direction': 'outgoing',
  'process.pid': 4242,
  'process.executable.name': 'curl',
  ...extra,
});

test('an empty filter keeps everything and returns a new batch', () => {
  const f = filter(undefined);
  const input = batchOf(flow({ 'destination.port': 443 }), { receiver: 'ebpf_tcp' });
  const out = f.process(input);
  assert.notEqual(out, input);
  assert.notEqual(out.measurements, input.measurements);
  assert.deepEqual(out, input);
  assert.deepEqual(f.counters, { passed: 2, dropped: 0 });
});

test('include: every listed criterion must match, any value within one', () => {
  const f = filter({ include: { ports: [443, '8000-8100'], directions: ['outgoing'], transports: ['tcp'] } });
  assert.equal(f.keeps(flow({ 'destination.port': 443 })), true);
  assert.equal(f.keeps(flow({ 'destination.port': 8000 })), true);
  assert.equal(f.keeps(flow({ 'destination.port': 8100 })), true);
  assert.equal(f.keeps(flow({ 'destination.port': 8101 })), false);
  assert.equal(f.keeps(flow({ 'destination.port': '8050' })), true, 'a port written as a string');
  assert.equal(f.keeps(flow({ 'source.port': 443 })), true, 'either port attribute may match');
  assert.equal(f.keeps(flow({ 'source.port': 443, 'flow.direction': 'incoming' })), false, 'port matches but direction does not');
  assert.equal(f.keeps(flow({ 'destination.port': 443, 'network.transport': 'udp' })), false, 'transport does not match');
  assert.equal(f.keeps(flow({})), false, 'a flow with no port does not match a port criterion');
  const g = filter({ include: { ports: [5432] } });
  assert.equal(g.keeps(flow({ 'source.port': 5432, 'flow.direction': 'incoming' })), true, 'source.port is the server port of accepted flows');
  // With include_ephemeral_ports both ports are present: either may match.
  assert.equal(g.keeps(flow({ 'source.port': 40000, 'destination.port': 5432 })), true);
});

test('exclude: each listed criterion drops on its own', () => {
  const f = filter({ exclude: { ports: [22], cidrs: ['169.254.0.0/16'], processes: ['sshd'], directions: ['local'] } });
  assert.equal(f.keeps(flow({ 'destination.port': 443 })), true);
  assert.equal(f.keeps(flow({ 'destination.port': 22 })), false, 'port 22');
  assert.equal(f.keeps(flow({ 'destination.port': 80, 'destination.address': '169.254.169.254' })), false, 'link-local');
  assert.equal(f.keeps(flow({ 'source.port': 2222, 'process.executable.name': 'sshd', 'flow.direction': 'incoming' })), false, 'sshd');
  assert.equal(f.keeps(flow({ 'destination.port': 8080, 'flow.direction': 'local', 'destination.address': '127.0.0.1' })), false, 'local');
  const noProcess = flow({ 'destination.port': 53 });
  delete noProcess['process.executable.name'];
  assert.equal(f.keeps(noProcess), true, 'a flow without a process is not excluded by processes');
});

test('include and exclude together: kept iff all include criteria match and no exclude criterion does', () => {
  const f = filter({
    include: { ports: [443, '8000-8100'], cidrs: ['10.0.0.0/8', 'fd00::/8'], processes: ['nginx', 'postgres*'], directions: ['outgoing'], transports: ['tcp'] },
    exclude: { ports: [8080], cidrs: ['10.9.0.0/16'], processes: ['postgres-old'] },
  });
  const ok = flow({ 'destination.port': 443, 'process.executable.name': 'nginx' });
  assert.equal(f.keeps(ok), true);
  assert.equal(f.keeps({ ...ok, 'process.executable.name': 'postgres' }), true);
  assert.equal(f.keeps({ ...ok, 'process.executable.name': 'postgres: walw' }), true, 'glob * matches anything after');
  assert.equal(f.keeps({ ...ok, 'process.executable.name': 'postgres-old' }), false, 'excluded process');
  assert.equal(f.keeps({ ...ok, 'process.executable.name': 'xnginx' }), false, 'globs are anchored');
  assert.equal(f.keeps({ ...ok, 'destination.port': 8080 }), false, 'excluded port inside an included range');
  assert.equal(f.keeps({ ...ok, 'destination.address': '10.9.1.1' }), false, 'excluded CIDR inside an included one');
  assert.equal(f.keeps({ ...ok, 'destination.address': '192.168.1.1' }), false, 'not in an included CIDR');
  assert.equal(f.keeps({ ...ok, 'destination.address': 'fd12:3456::1', 'network.type': 'ipv6' }), true, 'IPv6 in fd00::/8');
  assert.equal(f.keeps({ ...ok, 'destination.address': 'fe80::1', 'network.type': 'ipv6' }), false);
  assert.equal(f.keeps({ ...ok, 'destination.address': 'not an address' }), false);
});

test('? matches exactly one character', () => {
  const f = filter({ include: { processes: ['java?'] } });
  assert.equal(f.keeps(flow({ 'process.executable.name': 'java1' })), true);
  assert.equal(f.keeps(flow({ 'process.executable.name': 'java' })), false);
  assert.equal(f.keeps(flow({ 'process.executable.name': 'java12' })), false);
  const literal = filter({ include: { processes: ['a.b+(c)'] } });
  assert.equal(literal.keeps(flow({ 'process.executable.name': 'a.b+(c)' })), true, 'regex characters are literal');
  assert.equal(literal.keeps(flow({ 'process.executable.name': 'aXb+(c)' })), false);
});

test('source_cidrs match the local end, cidrs the remote end', () => {
  const f = filter({ include: { source_cidrs: ['10.0.1.0/24'] }, exclude: { cidrs: ['10.0.1.0/24'] } });
  assert.equal(f.keeps(flow({ 'source.address': '10.0.1.7', 'destination.address': '10.0.2.1' })), true);
  assert.equal(f.keeps(flow({ 'source.address': '10.0.3.7', 'destination.address': '10.0.2.1' })), false);
  assert.equal(f.keeps(flow({ 'source.address': '10.0.1.7', 'destination.address': '10.0.1.8' })), false);
});

test('IPv4-mapped IPv6 addresses are IPv4; a CIDR matches only its own family', () => {
  const v4 = filter({ include: { cidrs: ['10.0.0.0/8'] } });
  assert.equal(v4.keeps(flow({ 'destination.address': '::ffff:10.1.2.3' })), true);
  assert.equal(v4.keeps(flow({ 'destination.address': '::ffff:0a01:0203' })), true);
  assert.equal(v4.keeps(flow({ 'destination.address': '::ffff:11.1.2.3' })), false);
  const all6 = filter({ include: { cidrs: ['::/0'] } });
  assert.equal(all6.keeps(flow({ 'destination.address': '2001:db8::1' })), true);
  assert.equal(all6.keeps(flow({ 'destination.address': '10.1.2.3' })), false, '::/0 does not cover IPv4');
  assert.equal(all6.keeps(flow({ 'destination.address': '::ffff:10.1.2.3' })), false, 'nor IPv4-mapped');
  const mapped = filter({ include: { cidrs: ['::ffff:10.0.0.0/104'] } });
  assert.equal(mapped.keeps(flow({ 'destination.address': '10.200.0.1' })), true, 'a mapped CIDR is the IPv4 CIDR');
});

test('IPv6 CIDR matching at every kind of boundary', () => {
  const cases: [string, string, boolean][] = [
    ['fd00::/8', 'fd00::1', true],
    ['fd00::/8', 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', true],
    ['fd00::/8', 'fe00::', false],
    ['fd00::/8', 'fc00::1', false],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['2001:db8:abcd:12::/63', '2001:db8:abcd:13::1', true],
    ['2001:db8:abcd:12::/63', '2001:db8:abcd:14::1', false],
    ['2001:db8::/127', '2001:db8::1', true],
    ['2001:db8::/127', '2001:db8::2', false],
    ['2001:db8::1/128', '2001:db8::1', true],
    ['2001:db8::1/128', '2001:db8::1%eth0', true],
    ['2001:db8::1/128', '2001:0db8:0000:0000:0000:0000:0000:0001', true],
    ['2001:db8::1/128', '2001:db8::2', false],
    ['::1/128', '::1', true],
    ['::/0', 'ffff::', true],
    ['fe80::/10', 'febf::1', true],
    ['fe80::/10', 'fec0::1', false],
    ['64:ff9b::/96', '64:ff9b::192.0.2.1', true],
    ['0.0.0.0/0', '255.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['192.168.0.0/23', '192.168.1.255', true],
    ['192.168.0.0/23', '192.168.2.0', false],
    ['10.0.0.1', '10.0.0.1', true],
    ['10.0.0.1', '10.0.0.2', false],
  ];
  for (const [cidr, address, expected] of cases) {
    const a = parseIp(address);
    assert.ok(a, address);
    assert.equal(cidrContains(parseCidr(cidr), a), expected, `${cidr} ∋ ${address}`);
  }
});

test('IPv6 text forms parse strictly and format canonically', () => {
  const good: [string, string][] = [
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:DB8::8:800:200C:417A', '2001:db8::8:800:200c:417a'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['0:0:0:0:0:ffff:c000:0201', '192.0.2.1'],
  ];
  for (const [text, formatted] of good) {
    const a = parseIp(text);
    assert.ok(a, text);
    assert.equal(formatIp(a), formatted, text);
  }
  for (const bad of ['1::2::3', ':1::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', '::ffff:1.2.3', '::1.2.3.4:5', 'g::1', '1.2.3.4.5', '1.2.3.256', '01.2.3.4', '']) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

test('interfaces judge only flows that carry network.interface.name', () => {
  const f = filter({ include: { interfaces: ['eth*'] }, exclude: { interfaces: ['eth9'] } });
  assert.equal(f.keeps(flow({ 'destination.port': 1 })), true, 'no interface attribute: not judged');
  assert.equal(f.keeps(flow({ 'network.interface.name': 'eth0' })), true);
  assert.equal(f.keeps(flow({ 'network.interface.name': 'docker0' })), false);
  assert.equal(f.keeps(flow({ 'network.interface.name': 'eth9' })), false);
});

test('self-telemetry always passes, whatever the criteria', () => {
  const f = filter({ include: { ports: [443], processes: ['nginx'] }, exclude: { cidrs: ['0.0.0.0/0', '::/0'] } });
  const input = batchOf({ receiver: 'ebpf_tcp', reason: 'ringbuf_full' }, flow({ 'destination.port': 443 }), {});
  const out = f.process(input);
  assert.deepEqual(
    out.measurements.map((m) => m.attributes),
    [{ receiver: 'ebpf_tcp', reason: 'ringbuf_full' }, {}],
  );
  assert.deepEqual(f.counters, { passed: 2, dropped: 1 });
});

test('process keeps order, counts, and never touches the (frozen) input', () => {
  const f = filter({ include: { ports: [443] } });
  const input = batchOf(
    flow({ 'destination.port': 443 }),
    flow({ 'destination.port': 80 }),
    flow({ 'destination.port': 443, 'destination.address': '10.0.0.9' }),
  );
  const snapshot = JSON.stringify(input);
  const out = f.process(input);
  assert.equal(JSON.stringify(input), snapshot);
  assert.deepEqual(
    out.measurements.map((m) => m.value),
    [1, 3],
  );
  assert.equal(out.timeMs, input.timeMs);
  assert.deepEqual(out.gaugesReplaced, ['tcp_connections']);
  assert.notEqual(out.gaugesReplaced, input.gaugesReplaced);
  f.process(input);
  assert.deepEqual(f.counters, { passed: 4, dropped: 2 });
});

test('kernelPushdown describes the criteria as plain data', () => {
  const f = filter({
    include: { ports: [443, '8000-8100'], cidrs: ['10.0.0.0/8', 'fd00::/8'], processes: ['nginx', 'postgres*'], directions: ['outgoing'], transports: ['tcp'] },
    exclude: { ports: [22], cidrs: ['169.254.0.0/16'], source_cidrs: ['::ffff:192.168.0.0/112'], processes: ['sshd'], directions: ['local'] },
  });
  const p = f.kernelPushdown();
  assert.deepEqual(p, {
    includePorts: [
      [443, 443],
      [8000, 8100],
    ],
    excludePorts: [[22, 22]],
    includeCidrs: [
      { family: 4, prefixLength: 8, cidr: '10.0.0.0/8', bytes: [10, 0, 0, 0] },
      { family: 6, prefixLength: 8, cidr: 'fd00::/8', bytes: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] },
    ],
    excludeCidrs: [{ family: 4, prefixLength: 16, cidr: '169.254.0.0/16', bytes: [169, 254, 0, 0] }],
    excludeSourceCidrs: [{ family: 4, prefixLength: 16, cidr: '192.168.0.0/16', bytes: [192, 168, 0, 0] }],
    includeProcesses: ['nginx', 'postgres*'],
    excludeProcesses: ['sshd'],
    includeDirections: ['outgoing'],
    excludeDirections: ['local'],
    includeTransports: ['tcp'],
  });
  // Plain data: survives JSON, and changing it does not change the filter.
  assert.deepEqual(JSON.parse(JSON.stringify(p)), p);
  p.includePorts?.push([1, 65535]);
  assert.equal(f.kernelPushdown().includePorts?.length, 2);
  assert.deepEqual(filter(undefined).kernelPushdown(), {});
});

test('kernelFilterCriteria keeps only what a kernel of exact ports, CIDRs and names can apply without changing results', () => {
  const k = kernelFilterCriteria(
    filter({
      include: { ports: [443, '8000-8002'], cidrs: ['10.0.0.0/8', '::ffff:192.168.0.0/112'], processes: ['nginx', 'postgres*'], directions: ['outgoing'] },
      exclude: { ports: ['20-22'], cidrs: ['fd00::/8'], processes: ['sshd', 'cron*'], source_cidrs: ['10.1.0.0/16'] },
    }).kernelPushdown(),
  );
  assert.deepEqual(k, {
    ports: { include: [443, 8000, 8001, 8002], exclude: [20, 21, 22] },
    cidrs: { include: ['10.0.0.0/8', '192.168.0.0/16'], exclude: ['fd00::/8'] },
    // A glob in include: the whole include list stays in userspace; exclude keeps its exact names.
    processes: { include: [], exclude: ['sshd'] },
  });
  // An include list that does not fit is not pushed at all; an exclude list is cut to what fits.
  const big = kernelFilterCriteria(filter({ include: { ports: ['1-5000'] }, exclude: { ports: ['6000-7000'] } }).kernelPushdown(), 4096);
  assert.deepEqual(big.ports.include, []);
  assert.equal(big.ports.exclude.length, 1001);
  const tight = kernelFilterCriteria(filter({ include: { ports: ['1-10'] }, exclude: { ports: ['20-30'] } }).kernelPushdown(), 15);
  assert.equal(tight.ports.include.length, 10);
  assert.deepEqual(tight.ports.exclude, [20, 21, 22, 23, 24]);
  assert.deepEqual(kernelFilterCriteria({}), { ports: { include: [], exclude: [] }, cidrs: { include: [], exclude: [] }, processes: { include: [], exclude: [] } });
});
