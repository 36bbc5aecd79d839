/**
 * pprof: its config, and that its endpoints return what Chrome DevTools
 * opens — a V8 heap snapshot and a CPU profile of the asked length — from a
 * server bound where the config says.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, test } from 'node:test';
import { ConfigError } from '../../src/config';
import { DEFAULT_PPROF_ENDPOINT, pprofExtensionFactory, profileSeconds, type PprofExtension } from '../../src/extensions';
import { silentLogger } from '../../src/util/log';
import type { HealthReport } from '../../src/telemetry/component-status';

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function pprof(endpoint = '127.0.0.1:0', extra: Record<string, unknown> = {}): Promise<PprofExtension> {
  const config = pprofExtensionFactory.validate({ endpoint, ...extra }, 'extensions.pprof');
  const ext = pprofExtensionFactory.create(config, { id: 'pprof', logger: silentLogger(), host: { health: () => ({}) as HealthReport } }) as PprofExtension;
  await ext.start();
  stops.push(() => ext.shutdown());
  return ext;
}

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(url: string, method = 'GET'): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('config: default endpoint localhost:1777 as in the Collector; bad endpoints and unknown options are errors', () => {
  assert.equal(DEFAULT_PPROF_ENDPOINT, 'localhost:1777');
  assert.deepEqual(pprofExtensionFactory.defaultConfig(), { endpoint: 'localhost:1777', tls: { min_version: '1.2' }, auth: { basic: {} } });
  assert.throws(() => pprofExtensionFactory.validate({ endpoint: 'nope' }, 'extensions.pprof'), (e: unknown) => e instanceof ConfigError && /extensions\.pprof\.endpoint: expected host:port/.test(e.message));
  assert.throws(
    () => pprofExtensionFactory.validate({ block_profile_fraction: 1 }, 'extensions.pprof'),
    (e: unknown) => e instanceof ConfigError && /unknown option "block_profile_fraction".*known options: endpoint/.test(e.message),
  );
  assert.equal(profileSeconds(new URLSearchParams('')), 30);
  assert.equal(profileSeconds(new URLSearchParams('seconds=5')), 5);
  assert.match(String(profileSeconds(new URLSearchParams('seconds=0'))), /whole number from 1 to 300/);
  assert.match(String(profileSeconds(new URLSearchParams('seconds=1.5'))), /whole number/);
  assert.match(String(profileSeconds(new URLSearchParams('seconds=301'))), /whole number/);
});

test('bound to the configured address; index, 404 and 405', async () => {
  const ext = await pprof('127.0.0.1:0');
  assert.match(ext.url, /^http:\/\/127\.0\.0\.1:\d+\/debug\/pprof\/$/);
  const index = await get(ext.url);
  assert.equal(index.status, 200);
  assert.match(index.body, /heap/);
  assert.match(index.body, /profile\?seconds=N/);
  assert.equal((await get(`${ext.url}goroutine`)).status, 404);
  assert.equal((await get(ext.url.replace('/debug/pprof/', '/metrics'))).status, 404);
  assert.equal((await get(`${ext.url}heap`, 'POST')).status, 405);
  // Bound to 127.0.0.1 only: the same port on another local address is not served.
  const port = new URL(ext.url).port;
  await assert.rejects(get(`http://127.0.0.2:${port}/debug/pprof/`), /ECONNREFUSED/);
});

test('a second pprof on the same port fails to start with a clear message', async () => {
  const ext = await pprof();
  const port = new URL(ext.url).port;
  const config = pprofExtensionFactory.validate({ endpoint: `127.0.0.1:${port}` }, 'extensions.pprof');
  const other = pprofExtensionFactory.create(config, { id: 'pprof/2', logger: silentLogger(), host: { health: () => ({}) as HealthReport } });
  await assert.rejects(other.start(), /extension pprof\/2: cannot listen on 127\.0\.0\.1:\d+: the port is already in use/);
});

test('/debug/pprof/heap is a V8 heap snapshot that holds this process\'s objects', async () => {
  const ext = await pprof();
  // Something recognisable on the heap: instances of a class of ours (the snapshot names objects by constructor).
  class FlowtelPprofMarker {
    constructor(readonly n: number) {}
  }
  const markers = Array.from({ length: 3 }, (_, i) => new FlowtelPprofMarker(i));
  const res = await get(`${ext.url}heap`);
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.match(String(res.headers['content-disposition']), /attachment; filename="flowtel-\d+-[\dT-]+Z\.heapsnapshot"/);
  const snapshot = JSON.parse(res.body) as {
    snapshot: { meta: { node_fields: string[]; node_types: unknown[]; edge_fields: string[] }; node_count: number; edge_count: number };
    nodes: number[];
    edges: number[];
    strings: string[];
  };
  const meta = snapshot.snapshot.meta;
  assert.ok(meta.node_fields.includes('name') && meta.node_fields.includes('self_size'));
  assert.ok(snapshot.snapshot.node_count > 1000, `${snapshot.snapshot.node_count} nodes`);
  assert.equal(snapshot.nodes.length, snapshot.snapshot.node_count * meta.node_fields.length);
  assert.equal(snapshot.edges.length, snapshot.snapshot.edge_count * meta.edge_fields.length);
  const nameIndex = snapshot.strings.indexOf('FlowtelPprofMarker');
  assert.ok(nameIndex >= 0, 'the marker class is in the snapshot');
  // Count objects named FlowtelPprofMarker: nodes are flat tuples of node_fields.
  const width = meta.node_fields.length;
  const typeAt = meta.node_fields.indexOf('type');
  const nameAt = meta.node_fields.indexOf('name');
  const objectType = (meta.node_types[typeAt] as string[]).indexOf('object');
  let instances = 0;
  for (let i = 0; i < snapshot.nodes.length; i += width) if (snapshot.nodes[i + nameAt] === nameIndex && snapshot.nodes[i + typeAt] === objectType) instances++;
  assert.equal(instances, markers.length, 'exactly the three live instances');
});

test('/debug/pprof/profile?seconds=1 is a CPU profile of about one second; one at a time; bad seconds is 400', async () => {
  const ext = await pprof();
  assert.equal((await get(`${ext.url}profile?seconds=abc`)).status, 400);
  const pending = get(`${ext.url}profile?seconds=1`);
  await new Promise((r) => setTimeout(r, 100));
  const busy = await get(`${ext.url}profile?seconds=1`);
  assert.equal(busy.status, 409);
  // Burn some CPU in a named function so the profile has a sample of it.
  const deadline = Date.now() + 300;
  function flowtelBusyLoop(): number {
    let x = 0;
    while (Date.now() < deadline) x += Math.sqrt(x + 1);
    return x;
  }
  flowtelBusyLoop();
  const res = await pending;
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-disposition']), /\.cpuprofile"/);
  const profile = JSON.parse(res.body) as {
    nodes: Array<{ id: number; callFrame: { functionName: string } }>;
    startTime: number;
    endTime: number;
    samples: number[];
    timeDeltas: number[];
  };
  assert.ok(profile.nodes.length > 1);
  const span = profile.endTime - profile.startTime;
  assert.ok(span >= 950_000 && span < 30_000_000, `profile spans ${span} µs`);
  assert.equal(profile.samples.length, profile.timeDeltas.length);
  const ids = new Set(profile.nodes.map((n) => n.id));
  assert.ok(profile.samples.every((s) => ids.has(s)), 'every sample names a node');
  assert.ok(profile.nodes.some((n) => n.callFrame.functionName === 'flowtelBusyLoop'), 'the busy function was sampled');
  // Free again once it is done.
  assert.equal((await get(`${ext.url}profile?seconds=abc`)).status, 400);
});

test('save_to_file: a CPU profile of the whole run is written when the extension stops; an unwritable file fails the start', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'flowtel-pprof-'));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'run.cpuprofile');
  const ext = await pprof('127.0.0.1:0', { save_to_file: file });
  const deadline = Date.now() + 200;
  function flowtelWholeRunLoop(): number {
    let x = 0;
    while (Date.now() < deadline) x += Math.sqrt(x + 1);
    return x;
  }
  flowtelWholeRunLoop();
  // The endpoint works meanwhile (a second, concurrent profiler session).
  const res = await get(`${ext.url}profile?seconds=1`);
  assert.equal(res.status, 200);
  await ext.shutdown();
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Array<{ callFrame: { functionName: string } }>; startTime: number; endTime: number };
  assert.ok(profile.nodes.some((n) => n.callFrame.functionName === 'flowtelWholeRunLoop'));
  assert.ok(profile.endTime - profile.startTime >= 1_000_000, 'covers the whole run (more than the 1 s profile inside it)');

  const config = pprofExtensionFactory.validate({ endpoint: '127.0.0.1:0', save_to_file: path.join(dir, 'missing', 'x.cpuprofile') }, 'extensions.pprof');
  const bad = pprofExtensionFactory.create(config, { id: 'pprof', logger: silentLogger(), host: { health: () => ({}) as HealthReport } });
  await assert.rejects(bad.start(), /extension pprof: save_to_file: cannot write .*missing\/x\.cpuprofile: ENOENT/);
  assert.equal(existsSync(path.join(dir, 'missing')), false);
});
