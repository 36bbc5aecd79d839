/**
 * The `zone` processor on constructed flows: the subnet table, the local zone
 * from `cloud`, zones fed by another component (the interface the k8s
 * processor uses), network.cross_az, and the cross-AZ bytes and cost.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { FlowAttributes, Measurement, MeasurementBatch } from '../../src/pipeline/measurements';
import { zoneProcessorFactory, ZoneProcessor, type ZoneConfig } from '../../src/processors/netenrich/zone';
import { ZoneSourceRegistry } from '../../src/processors/netenrich/zone-source';

const dir = mkdtempSync(path.join(tmpdir(), 'flowtel-zone-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SUBNETS = [
  { cidr: '10.0.0.0/16', region: 'us-east-1', vpc: 'vpc-1' },
  { cidr: '10.0.1.0/24', availability_zone: 'us-east-1a' },
  { cidr: '10.0.2.0/24', availability_zone: 'us-east-1b', region: 'us-east-1' },
  { cidr: 'fd00:1::/64', availability_zone: 'us-east-1b' },
];

function processor(raw: Record<string, unknown> = {}, registry = new ZoneSourceRegistry()): ZoneProcessor {
  return new ZoneProcessor('zone', zoneProcessorFactory.validate({ subnets: SUBNETS, ...raw }, 'processors.zone') as ZoneConfig, registry);
}

function batch(...measurements: Measurement[]): MeasurementBatch {
  return { timeMs: 0, measurements, gaugesReplaced: [] };
}

const flow = (src: string, dst: string, extra: FlowAttributes = {}): FlowAttributes => ({
  'network.transport': 'tcp',
  'source.address': src,
  'destination.address': dst,
  'destination.port': 5432,
  'flow.direction': 'outgoing',
  'process.executable.name': 'app',
  ...extra,
});

describe('zones of both ends', () => {
  test('the subnet table, longest prefix first', () => {
    const p = processor();
    const [m] = p.process(batch({ metric: 'tcp_bytes_sent', value: 10, attributes: flow('10.0.1.5', '10.0.2.9') })).measurements;
    const a = m!.attributes;
    assert.equal(a['source.cloud.availability_zone'], 'us-east-1a');
    assert.equal(a['destination.cloud.availability_zone'], 'us-east-1b');
    assert.equal(a['destination.cloud.region'], 'us-east-1');
    assert.equal(a['network.cross_az'], true);
    const same = p.process(batch({ metric: 'tcp_bytes_sent', value: 10, attributes: flow('10.0.1.5', '10.0.1.6') })).measurements[0]!.attributes;
    assert.equal(same['network.cross_az'], false);
    const unknown = p.process(batch({ metric: 'tcp_bytes_sent', value: 10, attributes: flow('10.0.1.5', '192.0.2.1') })).measurements[0]!.attributes;
    assert.equal(unknown['network.cross_az'], undefined, 'unknown remote zone: no cross_az at all');
    assert.equal(unknown['destination.cloud.availability_zone'], undefined);
    const regionOnly = p.process(batch({ metric: 'tcp_bytes_sent', value: 10, attributes: flow('10.0.1.5', '10.0.9.9') })).measurements[0]!.attributes;
    assert.equal(regionOnly['destination.cloud.region'], 'us-east-1');
    assert.equal(regionOnly['destination.cloud.vpc.id'], 'vpc-1');
    assert.equal(regionOnly['network.cross_az'], undefined);
    const v6 = p.process(batch({ metric: 'tcp_bytes_sent', value: 1, attributes: flow('10.0.1.5', 'fd00:1::7') })).measurements[0]!.attributes;
    assert.equal(v6['network.cross_az'], true);
  });

  test("the local zone from cloud (cloud.availability_zone) wins over the subnet table for the local end", () => {
    const p = processor();
    const a = p.process(batch({ metric: 'tcp_bytes_sent', value: 1, attributes: flow('10.0.1.5', '10.0.2.9', { 'cloud.availability_zone': 'us-east-1b', 'cloud.region': 'us-east-1' }) })).measurements[0]!.attributes;
    assert.equal(a['source.cloud.availability_zone'], 'us-east-1b');
    assert.equal(a['network.cross_az'], false);
  });

  test('the remote end is the address really reached (destination.translated.address)', () => {
    const p = processor();
    const a = p.process(batch({ metric: 'tcp_bytes_sent', value: 1, attributes: flow('10.0.1.5', '10.96.0.10', { 'destination.translated.address': '10.0.2.9' }) })).measurements[0]!.attributes;
    assert.equal(a['destination.cloud.availability_zone'], 'us-east-1b');
    assert.equal(a['network.cross_az'], true);
  });

  test('a loopback flow is in the local zone at both ends', () => {
    const p = processor();
    const a = p.process(batch({ metric: 'tcp_bytes_sent', value: 1, attributes: flow('127.0.0.1', '127.0.0.1', { 'flow.direction': 'local', 'cloud.availability_zone': 'us-east-1a' }) })).measurements[0]!.attributes;
    assert.equal(a['network.cross_az'], false);
  });

  test('zones registered by another component (as the k8s processor does) come before the table, and changes are seen', () => {
    const registry = new ZoneSourceRegistry();
    const p = processor({}, registry);
    const attrs = flow('10.0.1.5', '10.0.1.77');
    assert.equal(p.process(batch({ metric: 'tcp_bytes_sent', value: 1, attributes: attrs })).measurements[0]!.attributes['network.cross_az'], false);
    let podZone = 'us-east-1c';
    const unregister = registry.register({ name: 'k8s', zoneOf: (a) => (a === '10.0.1.77' ? { availabilityZone: podZone } : undefined) });
    assert.equal(p.process(batch({ metric: 'tcp_bytes_sent', value: 1, attributes: attrs })).measurements[0]!.attributes['destination.cloud.availability_zone'], 'us-east-1c');
    podZone = 'us-east-1a';
    registry.changed();
    assert.equal(p.process(batch({ metric: 'tcp_bytes_sent', value: 1, attributes: attrs })).measurements[0]!.attributes['network.cross_az'], false);
    unregister();
    assert.equal(registry.size, 0);
  });

  test('zones set on the flow before (by k8s) are kept', () => {
    const p = processor();
    const a = p.process(batch({ metric: 'tcp_bytes_sent', value: 1, attributes: flow('10.0.1.5', '10.0.2.9', { 'destination.cloud.availability_zone': 'us-east-1a' }) })).measurements[0]!.attributes;
    assert.equal(a['network.cross_az'], false);
  });
});

describe('cross-AZ bytes and cost', () => {
  test('sent and received bytes of cross-zone flows, by direction, summed per attribute set, priced per GiB', () => {
    const p = processor();
    const cross = flow('10.0.1.5', '10.0.2.9');
    const cross2 = flow('10.0.1.6', '10.0.2.9'); // same zones, process, port: the same cross-AZ series
    const same = flow('10.0.1.5', '10.0.1.9');
    const out = p.process(
      batch(
        { metric: 'tcp_bytes_sent', value: 1_000_000, attributes: cross },
        { metric: 'tcp_bytes_received', value: 3_000, attributes: cross },
        { metric: 'tcp_bytes_sent', value: 500_000, attributes: cross2 },
        { metric: 'tcp_segments_sent', value: 700, attributes: cross },
        { metric: 'tcp_bytes_sent', value: 9_999, attributes: same },
        { metric: 'udp_bytes_sent', value: 100, attributes: { ...cross, 'network.transport': 'udp' } },
      ),
    ).measurements;
    const bytes = out.filter((m) => m.metric === 'network_cross_az_bytes');
    const cost = out.filter((m) => m.metric === 'network_cross_az_cost_usd');
    const tx = bytes.find((m) => m.attributes['network.io.direction'] === 'transmit' && m.attributes['network.transport'] === 'tcp')!;
    const rx = bytes.find((m) => m.attributes['network.io.direction'] === 'receive')!;
    assert.equal(tx.value, 1_500_000);
    assert.equal(rx.value, 3_000);
    assert.equal(bytes.length, 3, 'tcp transmit, tcp receive, udp transmit');
    assert.deepEqual(tx.attributes, {
      'source.cloud.availability_zone': 'us-east-1a',
      'destination.cloud.availability_zone': 'us-east-1b',
      'destination.cloud.region': 'us-east-1',
      'network.transport': 'tcp',
      'destination.port': 5432,
      'process.executable.name': 'app',
      'network.io.direction': 'transmit',
    });
    const txCost = cost.find((m) => m.attributes === tx.attributes)!;
    assert.equal(txCost.value, (1_500_000 * 0.01) / 2 ** 30);
    assert.equal(bytes.reduce((s, m) => s + m.value, 0), 1_503_100);
  });

  test('price, GB size and attributes are configurable; metrics can be off', () => {
    const p = processor({ cross_az: { price_per_gb: 0.02, bytes_per_gb: 1_000_000_000, attributes: ['destination.cloud.availability_zone'] } });
    const out = p.process(batch({ metric: 'tcp_bytes_sent', value: 2_000_000_000, attributes: flow('10.0.1.5', '10.0.2.9') })).measurements;
    const cost = out.find((m) => m.metric === 'network_cross_az_cost_usd')!;
    assert.equal(cost.value, 0.04);
    assert.deepEqual(cost.attributes, { 'destination.cloud.availability_zone': 'us-east-1b', 'network.io.direction': 'transmit' });
    const off = processor({ cross_az: { metrics: false } });
    assert.ok(!off.process(batch({ metric: 'tcp_bytes_sent', value: 5, attributes: flow('10.0.1.5', '10.0.2.9') })).measurements.some((m) => m.metric.startsWith('network_cross_az')));
  });

  test('the same cross-AZ series keeps one attribute object across batches', () => {
    const p = processor();
    const pick = (): FlowAttributes => p.process(batch({ metric: 'tcp_bytes_sent', value: 5, attributes: flow('10.0.1.5', '10.0.2.9') })).measurements.find((m) => m.metric === 'network_cross_az_bytes')!.attributes;
    assert.equal(pick(), pick());
  });
});

describe('logs', () => {
  test('connection records get the zones and network.cross_az; other records pass', () => {
    const p = processor();
    const record = { timeMs: 0, severityNumber: 13, severityText: 'WARN', body: 'x', eventName: 'flowtel.tcp.connection_failed', attributes: flow('10.0.1.5', '10.0.2.9', { 'source.port': 40000 }) };
    const dns = { ...record, eventName: 'flowtel.dns.query', attributes: { 'dns.question.name': 'a.example' } };
    const out = p.processLogs({ records: [record, dns] });
    assert.equal(out.records[0]!.attributes['network.cross_az'], true);
    assert.equal(out.records[0]!.attributes['destination.cloud.availability_zone'], 'us-east-1b');
    assert.equal(out.records[1], dns);
    assert.ok(!('measurements' in out));
  });
});

describe('config', () => {
  test('subnets are checked entry by entry', () => {
    assert.throws(() => zoneProcessorFactory.validate({ subnets: [{ cidr: '10.0.0.1/8', availability_zone: 'a' }] }, 'processors.zone'), /processors\.zone\.subnets\.0\.cidr: invalid CIDR .*did you mean "10\.0\.0\.0\/8"/);
    assert.throws(() => zoneProcessorFactory.validate({ subnets: [{ cidr: '10.0.0.0/8' }] }, 'processors.zone'), /names no availability_zone, region, vpc or provider/);
    assert.throws(() => zoneProcessorFactory.validate({ subnets: [{ cidr: '10.0.0.0/8', zone: 'a' }] }, 'processors.zone'), /subnets\.0\.zone: unknown option/);
    assert.throws(() => zoneProcessorFactory.validate({ subnet: [] }, 'processors.zone'), /unknown option "subnet"/);
    assert.deepEqual(zoneProcessorFactory.defaultConfig().subnets, []);
  });

  test('subnets_file adds entries; inline ones win for the same CIDR', async () => {
    const file = path.join(dir, 'subnets.yaml');
    writeFileSync(file, '- cidr: 10.9.0.0/16\n  availability_zone: eu-west-1c\n- cidr: 10.0.1.0/24\n  availability_zone: from-file\n');
    const p = processor({ subnets_file: file });
    await p.start();
    assert.equal(p.zoneOf('10.9.3.3')?.availabilityZone, 'eu-west-1c');
    assert.equal(p.zoneOf('10.0.1.3')?.availabilityZone, 'us-east-1a');
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, '- cidr: nonsense\n  availability_zone: x\n');
    await assert.rejects(processor({ subnets_file: bad }).start(), /subnets_file .*bad\.yaml.*invalid CIDR "nonsense"/);
  });
});
