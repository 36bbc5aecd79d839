/**
 * The `cloud` processor against local HTTP servers that speak each metadata
 * protocol exactly: AWS IMDSv2 (a PUT for a token, then the token on every
 * read; nothing without it), GCP (Metadata-Flavor: Google both ways) and
 * Azure (Metadata: true and an api-version). And: a metadata service that
 * never answers delays start-up by the timeout, not more.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { defaultConfigObject } from '../../src/config/default-config';
import { CloudProcessor, cloudProcessorFactory, resolveDetectors, type CloudConfig } from '../../src/processors/netenrich/cloud';
import { cloudFromDmi } from '../../src/processors/netenrich/cloud/dmi';
import type { DetectorName } from '../../src/processors/netenrich/cloud/detectors';

const logger = pino({ level: 'silent' });
const cleanup: Array<() => void> = [];
after(() => {
  for (const c of cleanup) c();
});

interface Served {
  readonly endpoint: string;
  readonly requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }>;
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Served> {
  const requests: Served['requests'] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => server.close());
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain', ...headers });
  res.end(body);
}

const AWS_TOKEN = 'AQAEAFakeTokenForTheTest==';
const AWS_DOC = {
  accountId: '123456789012',
  architecture: 'x86_64',
  availabilityZone: 'us-east-1b',
  imageId: 'ami-0abcdef1234567890',
  instanceId: 'i-0123456789abcdef0',
  instanceType: 'm5.large',
  privateIp: '10.0.1.5',
  region: 'us-east-1',
  version: '2017-09-30',
};

/** IMDSv2 as AWS documents it: PUT /latest/api/token with a TTL header; reads need the token (401 without). */
function imdsV2(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/latest/api/token') {
    if (req.method !== 'PUT') return send(res, 405, '');
    const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
    if (!(ttl >= 1 && ttl <= 21600)) return send(res, 400, '');
    return send(res, 200, AWS_TOKEN, { 'X-Aws-Ec2-Metadata-Token-Ttl-Seconds': String(ttl) });
  }
  if (req.headers['x-aws-ec2-metadata-token'] !== AWS_TOKEN) return send(res, 401, '');
  if (req.method !== 'GET') return send(res, 405, '');
  if (req.url === '/latest/dynamic/instance-identity/document') return send(res, 200, JSON.stringify(AWS_DOC, null, 2));
  return send(res, 404, '');
}

/** The GCP metadata server: Metadata-Flavor: Google required, and sent back. */
function gcpMetadata(req: IncomingMessage, res: ServerResponse): void {
  const flavor = { 'Metadata-Flavor': 'Google' };
  if (req.headers['metadata-flavor'] !== 'Google') return send(res, 403, 'Missing Metadata-Flavor:Google header.', flavor);
  if (req.url === '/computeMetadata/v1/project/project-id') return send(res, 200, 'my-project-123', flavor);
  if (req.url === '/computeMetadata/v1/instance/id') return send(res, 200, '4520031799277581759', flavor);
  if (req.url === '/computeMetadata/v1/instance/?recursive=true&alt=json') {
    // As the server sends it: the id is a bare 64-bit number.
    const body =
      '{"hostname":"gke-node-1.c.my-project-123.internal","id":4520031799277581759,"machineType":"projects/123456789/machineTypes/e2-standard-4","name":"gke-node-1","zone":"projects/123456789/zones/europe-west1-c"}';
    return send(res, 200, body, { ...flavor, 'Content-Type': 'application/json' });
  }
  return send(res, 404, '', flavor);
}

/** Azure IMDS: Metadata: true and an api-version, else 400. */
function azureImds(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.headers.metadata !== 'true') return send(res, 400, JSON.stringify({ error: 'Bad request. Required metadata header not specified' }));
  if (!url.searchParams.get('api-version')) return send(res, 400, JSON.stringify({ error: 'Bad request. api-version was not specified in the request' }));
  if (url.pathname === '/metadata/instance/compute') {
    return send(
      res,
      200,
      JSON.stringify({
        location: 'westeurope',
        name: 'vm-1',
        resourceGroupName: 'rg-prod',
        subscriptionId: '8d10da13-8125-4ba9-a717-bf7490507b3d',
        vmId: '02aab8a4-74ef-476e-8182-f6d2ba4166a6',
        vmSize: 'Standard_D2s_v3',
        zone: '2',
      }),
      { 'Content-Type': 'application/json' },
    );
  }
  return send(res, 404, '');
}

async function started(raw: Record<string, unknown>, dmi: () => DetectorName | undefined = () => undefined): Promise<CloudProcessor> {
  const config = cloudProcessorFactory.validate(raw, 'processors.cloud') as CloudConfig;
  const p = new CloudProcessor('cloud', config, logger, dmi);
  await p.start();
  return p;
}

describe('the metadata protocols', () => {
  test('AWS IMDSv2: a token first, then the identity document with it', async () => {
    const s = await serve(imdsV2);
    const p = await started({ detectors: ['ec2'], endpoints: { ec2: s.endpoint } });
    assert.deepEqual(p.cloudAttributes, {
      'cloud.provider': 'aws',
      'cloud.platform': 'aws_ec2',
      'cloud.region': 'us-east-1',
      'cloud.availability_zone': 'us-east-1b',
      'cloud.account.id': '123456789012',
      'host.id': 'i-0123456789abcdef0',
      'host.type': 'm5.large',
      'host.image.id': 'ami-0abcdef1234567890',
    });
    assert.equal(s.requests[0]!.method, 'PUT');
    assert.equal(s.requests[0]!.url, '/latest/api/token');
    assert.ok(s.requests.slice(1).every((r) => r.headers['x-aws-ec2-metadata-token'] === AWS_TOKEN), 'every read carries the token');
  });

  test('AWS: a service that gives no token (IMDSv1 only, or PUT blocked) is not used without one', async () => {
    const s = await serve((req, res) => (req.method === 'PUT' ? send(res, 403, '') : imdsV2(req, res)));
    const p = await started({ detectors: ['ec2'], endpoints: { ec2: s.endpoint } });
    assert.deepEqual(p.cloudAttributes, {});
    assert.match(p.detection!.failures.ec2!, /token request answered HTTP 403/);
    assert.equal(s.requests.length, 1, 'nothing read after the token was refused');
  });

  test('GCP: Metadata-Flavor both ways; zone and region from projects/N/zones/Z', async () => {
    const s = await serve(gcpMetadata);
    const p = await started({ detectors: ['gcp'], endpoints: { gcp: s.endpoint } });
    assert.deepEqual(p.cloudAttributes, {
      'cloud.provider': 'gcp',
      'cloud.platform': 'gcp_compute_engine',
      'cloud.availability_zone': 'europe-west1-c',
      'cloud.region': 'europe-west1',
      'cloud.account.id': 'my-project-123',
      'host.id': '4520031799277581759',
      'host.name': 'gke-node-1',
      'host.type': 'e2-standard-4',
    });
    assert.ok(s.requests.every((r) => r.headers['metadata-flavor'] === 'Google'));
  });

  test('GCP: an answer without the Metadata-Flavor header is not GCP', async () => {
    const s = await serve((req, res) => send(res, 200, '{"id": 1, "zone": "projects/1/zones/x-y1-a"}'));
    const p = await started({ detectors: ['gcp'], endpoints: { gcp: s.endpoint } });
    assert.deepEqual(p.cloudAttributes, {});
    assert.match(p.detection!.failures.gcp!, /Metadata-Flavor/);
  });

  test('Azure: Metadata: true and api-version; the zone is the logical zone number', async () => {
    const s = await serve(azureImds);
    const p = await started({ detectors: ['azure'], endpoints: { azure: s.endpoint } });
    assert.deepEqual(p.cloudAttributes, {
      'cloud.provider': 'azure',
      'cloud.platform': 'azure_vm',
      'cloud.region': 'westeurope',
      'cloud.availability_zone': '2',
      'cloud.account.id': '8d10da13-8125-4ba9-a717-bf7490507b3d',
      'host.id': '02aab8a4-74ef-476e-8182-f6d2ba4166a6',
      'host.name': 'vm-1',
      'host.type': 'Standard_D2s_v3',
      'azure.resourcegroup.name': 'rg-prod',
    });
    assert.equal(s.requests[0]!.headers.metadata, 'true');
  });

  test('each detector against the other providers\' servers finds nothing', async () => {
    const [aws, gcp, azure] = [await serve(imdsV2), await serve(gcpMetadata), await serve(azureImds)];
    const p = await started({ detectors: ['ec2', 'gcp', 'azure'], endpoints: { ec2: gcp.endpoint, gcp: azure.endpoint, azure: aws.endpoint } });
    assert.deepEqual(p.cloudAttributes, {});
    assert.deepEqual(p.detection!.found, []);
  });

  test('several found: for each attribute the first detector in the configured order wins', async () => {
    const [aws, gcp] = [await serve(imdsV2), await serve(gcpMetadata)];
    const p = await started({ detectors: ['gcp', 'ec2'], endpoints: { ec2: aws.endpoint, gcp: gcp.endpoint } });
    assert.equal(p.cloudAttributes['cloud.provider'], 'gcp');
    assert.equal(p.cloudAttributes['host.image.id'], 'ami-0abcdef1234567890', 'attributes only the second found are kept');
    assert.deepEqual(p.detection!.found, ['gcp', 'ec2']);
  });
});

describe('start-up time', () => {
  test('a metadata service that accepts and never answers delays start by the timeout, not more', async () => {
    const sockets: Socket[] = [];
    const silent = createTcpServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanup.push(() => {
      for (const s of sockets) s.destroy();
      silent.close();
    });
    const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const timeoutMs = 400;
    const t0 = performance.now();
    const p = await started({ detectors: ['ec2', 'gcp', 'azure'], timeout: `${timeoutMs}ms`, endpoints: { ec2: endpoint, gcp: endpoint, azure: endpoint }, attributes: { 'cloud.availability_zone': 'zone-x' } });
    const elapsed = performance.now() - t0;
    assert.ok(sockets.length >= 3, 'every detector connected and waited');
    assert.ok(elapsed >= timeoutMs - 20, `waited ${elapsed.toFixed(0)} ms: the timeout, since nobody answered`);
    assert.ok(elapsed < timeoutMs + 1500, `start took ${elapsed.toFixed(0)} ms with a ${timeoutMs} ms timeout`);
    assert.deepEqual(p.cloudAttributes, { 'cloud.availability_zone': 'zone-x' }, 'only the configured attributes');
    assert.match(p.detection!.failures.ec2!, /timeout after 400 ms/);
  });

  test('nothing listening: start does not wait for the timeout at all', async () => {
    const probe = createTcpServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const t0 = performance.now();
    const p = await started({ detectors: ['ec2'], timeout: '5s', endpoints: { ec2: `http://127.0.0.1:${port}` } });
    assert.ok(performance.now() - t0 < 4000, 'a refused connection ends detection well before the timeout');
    assert.match(p.detection!.failures.ec2!, /ECONNREFUSED/);
  });

  test('auto on a machine whose firmware names no cloud asks nothing', async () => {
    const s = await serve(imdsV2);
    const p = await started({ detectors: ['auto'], endpoints: { ec2: s.endpoint } }, () => undefined);
    assert.equal(p.detection, undefined);
    assert.equal(s.requests.length, 0);
    const q = await started({ detectors: ['auto'], endpoints: { ec2: s.endpoint } }, () => 'ec2');
    assert.equal(q.cloudAttributes['host.id'], 'i-0123456789abcdef0', 'auto on an EC2 firmware asks IMDS');
  });

  test('this machine: the default config has cloud with auto, and auto resolves to what its firmware says', () => {
    const d = defaultConfigObject({}) as { processors: { cloud: { detectors: string[] } }; service: { pipelines: { metrics: { processors: string[] } } } };
    assert.deepEqual(d.processors.cloud.detectors, ['auto']);
    assert.ok(d.service.pipelines.metrics.processors.includes('cloud'));
    const dmi = cloudFromDmi();
    assert.deepEqual(resolveDetectors(['auto']), dmi === undefined ? [] : [dmi]);
  });
});

describe('DMI', () => {
  function sysRoot(files: Record<string, string>): string {
    const root = mkdtempSync(path.join(tmpdir(), 'flowtel-dmi-'));
    cleanup.push(() => rmSync(root, { recursive: true, force: true }));
    for (const [name, content] of Object.entries(files)) {
      const file = path.join(root, name);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, `${content}\n`);
    }
    return root;
  }
  test('names EC2, GCE and Azure from their firmware strings, nothing otherwise', () => {
    assert.equal(cloudFromDmi(sysRoot({ 'class/dmi/id/sys_vendor': 'Amazon EC2', 'class/dmi/id/product_name': 'm5.large' })), 'ec2');
    assert.equal(cloudFromDmi(sysRoot({ 'class/dmi/id/bios_version': '4.11.amazon' })), 'ec2');
    assert.equal(cloudFromDmi(sysRoot({ 'hypervisor/uuid': 'ec2e1916-9099-7caf-fd21-012345abcdef' })), 'ec2');
    assert.equal(cloudFromDmi(sysRoot({ 'class/dmi/id/product_name': 'Google Compute Engine', 'class/dmi/id/sys_vendor': 'Google' })), 'gcp');
    assert.equal(cloudFromDmi(sysRoot({ 'class/dmi/id/sys_vendor': 'Microsoft Corporation', 'class/dmi/id/chassis_asset_tag': '7783-7084-3265-9085-8269-3286-77' })), 'azure');
    assert.equal(cloudFromDmi(sysRoot({ 'class/dmi/id/sys_vendor': 'Microsoft Corporation', 'class/dmi/id/product_name': 'Virtual Machine' })), undefined, 'Hyper-V on premises is not Azure');
    assert.equal(cloudFromDmi(sysRoot({ 'class/dmi/id/sys_vendor': 'QEMU' })), undefined);
    assert.equal(cloudFromDmi(sysRoot({})), undefined);
  });
});

describe('attributes on measurements and config', () => {
  test('added to every measurement; override decides who wins; configured attributes win over detection', async () => {
    const s = await serve(imdsV2);
    const over = await started({ detectors: ['ec2'], endpoints: { ec2: s.endpoint }, attributes: { 'cloud.availability_zone': 'use1-az4' } });
    const m = { metric: 'tcp_bytes_sent', value: 5, attributes: { 'source.address': '10.0.0.1', 'host.id': 'mine' } };
    const a = over.process({ timeMs: 0, measurements: [m], gaugesReplaced: [] }).measurements[0]!.attributes;
    assert.equal(a['host.id'], 'i-0123456789abcdef0');
    assert.equal(a['cloud.availability_zone'], 'use1-az4');
    assert.equal(a['source.address'], '10.0.0.1');
    const keep = await started({ detectors: ['ec2'], endpoints: { ec2: s.endpoint }, override: false });
    assert.equal(keep.process({ timeMs: 0, measurements: [m], gaugesReplaced: [] }).measurements[0]!.attributes['host.id'], 'mine');
  });

  test('log records get the same attributes', async () => {
    const s = await serve(imdsV2);
    const p = await started({ detectors: ['ec2'], endpoints: { ec2: s.endpoint } });
    const record = { timeMs: 0, severityNumber: 9, severityText: 'INFO', body: 'x', eventName: 'flowtel.dns.query', attributes: { 'dns.question.name': 'a.example' } };
    const [r] = p.processLogs({ records: [record] }).records;
    assert.equal(r!.attributes['cloud.availability_zone'], 'us-east-1b');
    assert.equal(r!.attributes['dns.question.name'], 'a.example');
    assert.deepEqual(cloudProcessorFactory.signals, ['metrics', 'logs']);
  });

  test('config errors say what is wrong', () => {
    assert.throws(() => cloudProcessorFactory.validate({ detectors: ['aws'] }, 'processors.cloud'), /processors\.cloud\.detectors\.0: unknown detector "aws" \(known: ec2, gcp, azure, auto\)/);
    assert.throws(() => cloudProcessorFactory.validate({ endpoints: { ec2: 'http://169.254.169.254/latest' } }, 'processors.cloud'), /endpoints\.ec2.*no path/);
    assert.throws(() => cloudProcessorFactory.validate({ detectors: ['gcp', 'gcp'] }, 'processors.cloud'), /listed twice/);
    assert.deepEqual(cloudProcessorFactory.defaultConfig().detectors, ['auto']);
  });
});
