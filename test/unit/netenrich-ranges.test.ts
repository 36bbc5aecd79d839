/**
 * Provider IP-range files in their real published formats (small excerpts
 * with the real field names and nesting), the prefix table under them, the
 * network scope of addresses, and the `cloud_services` processor.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { parseCidr, parseIp } from '../../src/util/ip';
import { CloudServicesProcessor, cloudServicesProcessorFactory } from '../../src/processors/netenrich/cloud-services';
import { detectRangeFormat, parseRanges } from '../../src/processors/netenrich/ip-ranges';
import { PrefixTable } from '../../src/processors/netenrich/prefix-table';
import { addressScope } from '../../src/processors/netenrich/scope';

const dir = mkdtempSync(path.join(tmpdir(), 'flowtel-ranges-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const AWS = {
  syncToken: '1700000000',
  createDate: '2026-11-20-22-13-07',
  prefixes: [
    { ip_prefix: '52.94.0.0/22', region: 'us-east-1', service: 'AMAZON', network_border_group: 'us-east-1' },
    { ip_prefix: '52.94.0.0/22', region: 'us-east-1', service: 'DYNAMODB', network_border_group: 'us-east-1' },
    { ip_prefix: '52.216.0.0/15', region: 'us-east-1', service: 'AMAZON', network_border_group: 'us-east-1' },
    { ip_prefix: '52.216.0.0/15', region: 'us-east-1', service: 'S3', network_border_group: 'us-east-1' },
    { ip_prefix: '3.5.140.0/22', region: 'ap-northeast-2', service: 'AMAZON', network_border_group: 'ap-northeast-2' },
    { ip_prefix: '13.32.0.0/15', region: 'GLOBAL', service: 'CLOUDFRONT', network_border_group: 'GLOBAL' },
    { ip_prefix: '13.32.0.0/15', region: 'GLOBAL', service: 'AMAZON', network_border_group: 'GLOBAL' },
    { ip_prefix: 'not-a-prefix', region: 'us-east-1', service: 'AMAZON', network_border_group: 'us-east-1' },
  ],
  ipv6_prefixes: [
    { ipv6_prefix: '2600:1f18::/33', region: 'us-east-1', service: 'AMAZON', network_border_group: 'us-east-1' },
    { ipv6_prefix: '2600:1f18::/33', region: 'us-east-1', service: 'EC2', network_border_group: 'us-east-1' },
    { ipv6_prefix: '2600:1fa0:4000::/40', region: 'us-west-2', service: 'S3', network_border_group: 'us-west-2' },
  ],
};

const GCP = {
  syncToken: '1700000000000',
  creationTime: '2026-11-20T10:07:08.180089',
  prefixes: [
    { ipv4Prefix: '34.1.208.0/20', service: 'Google Cloud', scope: 'africa-south1' },
    { ipv4Prefix: '35.190.0.0/17', service: 'Google Cloud', scope: 'global' },
    { ipv6Prefix: '2600:1900:8000::/44', service: 'Google Cloud', scope: 'us-central1' },
  ],
};

const AZURE = {
  changeNumber: 312,
  cloud: 'Public',
  values: [
    {
      name: 'AzureCloud',
      id: 'AzureCloud',
      properties: { changeNumber: 300, region: '', regionId: 0, platform: 'Azure', systemService: '', addressPrefixes: ['20.38.96.0/19', '13.64.0.0/11'], networkFeatures: ['API', 'NSG'] },
    },
    {
      name: 'AzureCloud.westeurope',
      id: 'AzureCloud.westeurope',
      properties: { changeNumber: 50, region: 'westeurope', regionId: 18, platform: 'Azure', systemService: '', addressPrefixes: ['20.38.96.0/19'], networkFeatures: ['API', 'NSG'] },
    },
    {
      name: 'Storage',
      id: 'Storage',
      properties: { changeNumber: 200, region: '', regionId: 0, platform: 'Azure', systemService: 'AzureStorage', addressPrefixes: ['20.38.96.0/19', '2603:1020:203::/48'], networkFeatures: ['API', 'NSG'] },
    },
    {
      name: 'Storage.WestEurope',
      id: 'Storage.WestEurope',
      properties: { changeNumber: 20, region: 'westeurope', regionId: 18, platform: 'Azure', systemService: 'AzureStorage', addressPrefixes: ['20.38.96.0/19', '2603:1020:203::/48'], networkFeatures: ['API', 'NSG'] },
    },
    {
      name: 'Sql.WestEurope',
      id: 'Sql.WestEurope',
      properties: { changeNumber: 9, region: 'westeurope', regionId: 18, platform: 'Azure', systemService: 'AzureSQL', addressPrefixes: ['13.69.105.0/25'], networkFeatures: ['API', 'NSG'] },
    },
  ],
};

function write(name: string, doc: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

describe('file formats', () => {
  test('each format is recognized from its content', () => {
    assert.equal(detectRangeFormat(AWS), 'aws');
    assert.equal(detectRangeFormat(GCP), 'gcp');
    assert.equal(detectRangeFormat(AZURE), 'azure');
    assert.equal(detectRangeFormat({ hello: 1 }), undefined);
    assert.throws(() => parseRanges('{"hello": 1}', 'x.json'), /x\.json: not an AWS ip-ranges\.json .* Google cloud\.json .* Azure Service Tags/);
    assert.throws(() => parseRanges('{"prefixes": [', 'y.json'), /y\.json: not JSON/);
  });

  test('AWS: prefixes and ipv6_prefixes, a specific service over AMAZON, GLOBAL is no region, bad prefixes counted', () => {
    const r = parseRanges(JSON.stringify(AWS), 'aws');
    assert.equal(r.entries.length, 10);
    assert.equal(r.skipped, 1);
  });
});

describe('the prefix table', () => {
  test('longest prefix wins, both families, /0 and /32', () => {
    const t = new PrefixTable<string>();
    t.set(parseCidr('10.0.0.0/8'), 'eight');
    t.set(parseCidr('10.1.0.0/16'), 'sixteen');
    t.set(parseCidr('10.1.2.3/32'), 'host');
    t.set(parseCidr('0.0.0.0/0'), 'any');
    t.set(parseCidr('2001:db8::/32'), 'v6');
    t.set(parseCidr('2001:db8:0:2::/63'), 'v6-63');
    const at = (a: string): string | undefined => t.lookup(parseIp(a)!);
    assert.equal(at('10.1.2.3'), 'host');
    assert.equal(at('10.1.2.4'), 'sixteen');
    assert.equal(at('10.200.0.1'), 'eight');
    assert.equal(at('192.0.2.1'), 'any');
    assert.equal(at('2001:db8:0:3:ffff::1'), 'v6-63');
    assert.equal(at('2001:db8:0:4::1'), 'v6');
    assert.equal(at('2001:db9::1'), undefined, 'IPv4 /0 does not match IPv6');
    assert.equal(at('::ffff:10.1.2.3'), 'host', 'IPv4-mapped is IPv4');
    assert.equal(t.size, 6);
  });

  test('tens of thousands of prefixes: every one found by an address inside it, outside ones not', () => {
    const n = 40_000;
    const t2 = new PrefixTable<number>();
    for (let i = 0; i < n; i++) {
      const a = 0x2c000000 + i * 256; // 44.0.0.0 + i /24s
      t2.set(parseCidr(`${a >>> 24}.${(a >> 16) & 0xff}.${(a >> 8) & 0xff}.0/24`), i);
    }
    assert.equal(t2.size, n);
    for (let i = 0; i < n; i += 997) {
      const a = 0x2c000000 + i * 256 + 77;
      assert.equal(t2.lookup(parseIp(`${a >>> 24}.${(a >> 16) & 0xff}.${(a >> 8) & 0xff}.${a & 0xff}`)!), i);
    }
    assert.equal(t2.lookup(parseIp('43.255.255.255')!), undefined);
  });
});

describe('network scope', () => {
  test('by address class', () => {
    const cases: Array<[string, string]> = [
      ['127.0.0.1', 'loopback'],
      ['::1', 'loopback'],
      ['169.254.169.254', 'link_local'],
      ['fe80::1', 'link_local'],
      ['224.0.0.251', 'multicast'],
      ['ff02::fb', 'multicast'],
      ['255.255.255.255', 'broadcast'],
      ['10.1.2.3', 'private'],
      ['172.31.255.1', 'private'],
      ['172.32.0.1', 'external'],
      ['192.168.1.1', 'private'],
      ['100.64.0.1', 'private'],
      ['fd12:3456::1', 'private'],
      ['8.8.8.8', 'external'],
      ['2001:4860:4860::8888', 'external'],
    ];
    for (const [address, scope] of cases) assert.equal(addressScope(parseIp(address)!), scope, address);
  });
});

describe('the cloud_services processor', () => {
  async function started(files: string[], scope = true): Promise<CloudServicesProcessor> {
    const p = new CloudServicesProcessor('cloud_services', cloudServicesProcessorFactory.validate({ files, scope }, 'processors.cloud_services'));
    await p.start();
    return p;
  }

  test('AWS, GCP and Azure files together: service, provider, region and scope of each address', async () => {
    const p = await started([write('ip-ranges.json', AWS), write('cloud.json', GCP), write('ServiceTags_Public_20261116.json', AZURE)]);
    await p.shutdown();
    const c = (a: string): unknown => p.classify(a);
    assert.deepEqual(c('52.94.1.10'), { range: { provider: 'aws', service: 'DYNAMODB', region: 'us-east-1' }, scope: 'cloud' });
    assert.deepEqual(c('52.217.3.4'), { range: { provider: 'aws', service: 'S3', region: 'us-east-1' }, scope: 'cloud' });
    assert.deepEqual(c('3.5.141.1'), { range: { provider: 'aws', region: 'ap-northeast-2' }, scope: 'cloud' }, 'AMAZON only: no service');
    assert.deepEqual(c('13.33.0.1'), { range: { provider: 'aws', service: 'CLOUDFRONT' }, scope: 'cloud' });
    assert.deepEqual(c('2600:1f18::10'), { range: { provider: 'aws', service: 'EC2', region: 'us-east-1' }, scope: 'cloud' });
    assert.deepEqual(c('2600:1fa0:4000:1::1'), { range: { provider: 'aws', service: 'S3', region: 'us-west-2' }, scope: 'cloud' });
    assert.deepEqual(c('34.1.209.1'), { range: { provider: 'gcp', service: 'Google Cloud', region: 'africa-south1' }, scope: 'cloud' });
    assert.deepEqual(c('35.190.1.1'), { range: { provider: 'gcp', service: 'Google Cloud' }, scope: 'cloud' });
    assert.deepEqual(c('2600:1900:8000::1'), { range: { provider: 'gcp', service: 'Google Cloud', region: 'us-central1' }, scope: 'cloud' });
    assert.deepEqual(c('20.38.100.1'), { range: { provider: 'azure', service: 'AzureStorage', region: 'westeurope' }, scope: 'cloud' });
    assert.deepEqual(c('13.69.105.5'), { range: { provider: 'azure', service: 'AzureSQL', region: 'westeurope' }, scope: 'cloud' });
    assert.deepEqual(c('13.70.0.1'), { range: { provider: 'azure' }, scope: 'cloud' }, 'AzureCloud only: no service');
    assert.deepEqual(c('8.8.8.8'), { scope: 'external' });
    assert.deepEqual(c('10.0.0.1'), { scope: 'private' });
    assert.equal(p.counts.skipped, 1);
  });

  test('flows get destination.cloud.* and scope; the translated destination counts; other attributes stay', async () => {
    const p = await started([write('ip-ranges.json', AWS)]);
    await p.shutdown();
    const flow = (attrs: Record<string, string | number>) =>
      p.process({ timeMs: 0, measurements: [{ metric: 'tcp_bytes_sent', value: 1, attributes: { 'network.transport': 'tcp', 'source.address': '10.0.0.1', ...attrs } }], gaugesReplaced: [] }).measurements[0]!.attributes;
    const s3 = flow({ 'destination.address': '52.216.10.10', 'destination.port': 443 });
    assert.equal(s3['destination.cloud.service'], 'S3');
    assert.equal(s3['destination.cloud.provider'], 'aws');
    assert.equal(s3['destination.cloud.region'], 'us-east-1');
    assert.equal(s3['destination.network.scope'], 'cloud');
    const natted = flow({ 'destination.address': '10.96.0.10', 'destination.translated.address': '52.94.0.9' });
    assert.equal(natted['destination.cloud.service'], 'DYNAMODB');
    const kept = flow({ 'destination.address': '52.216.10.10', 'destination.cloud.region': 'set-before' });
    assert.equal(kept['destination.cloud.region'], 'set-before');
    assert.equal(flow({ 'destination.address': '1.1.1.1' })['destination.network.scope'], 'external');
    const own = { metric: 'flowtel_ebpf_records', value: 1, attributes: { receiver: 'ebpf_tcp' } };
    assert.equal(p.process({ timeMs: 0, measurements: [own], gaugesReplaced: [] }).measurements[0], own, 'self-telemetry passes untouched');
  });

  test('a file changed on disk is read again; a broken one keeps the old ranges', async () => {
    const file = write('reload.json', GCP);
    const p = await started([file]);
    await p.shutdown();
    assert.equal(p.classify('34.1.209.1').range?.region, 'africa-south1');
    assert.equal(await p.reloadIfChanged(), false);
    writeFileSync(file, JSON.stringify({ ...GCP, prefixes: [{ ipv4Prefix: '34.1.208.0/20', service: 'Google Cloud', scope: 'europe-west9' }] }));
    assert.equal(await p.reloadIfChanged(), true);
    assert.equal(p.classify('34.1.209.1').range?.region, 'europe-west9');
    writeFileSync(file, '{ broken');
    assert.equal(await p.reloadIfChanged(), false);
    assert.equal(p.classify('34.1.209.1').range?.region, 'europe-west9');
  });

  test('a missing or foreign file stops start with a message naming it', async () => {
    await assert.rejects(started([path.join(dir, 'nope.json')]), /cloud_services: cannot read IP-range file .*nope\.json/);
    await assert.rejects(started([write('other.json', { some: 'thing' })]), /other\.json: not an AWS ip-ranges\.json/);
  });
});
