/** `file` exporter: OTLP JSON lines, flush interval, append/truncate, rotation by size. */
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { fileExporterFactory, type FileMetricsExporter } from '../../src/exporters';
import { buildResource } from '../../src/telemetry/resource';
import { captureLogger } from '../helpers/capture-logger';
import { flattenMetrics, latestMetric, resourceAttributes } from '../helpers/otlp-receiver';
import { decodeExportMetricsServiceRequestJson, type DecodedExportMetricsServiceRequest } from '../helpers/otlp-proto';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'flowtel-file-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function pipeline(raw: Record<string, unknown>) {
  const { logger, lines } = captureLogger();
  const config = fileExporterFactory.validate({ export_interval: '1h', ...raw }, 'exporters.file');
  const exporter: FileMetricsExporter = fileExporterFactory.create(config, { id: 'file', logger });
  const provider = new MeterProvider({ resource: buildResource({ serviceName: 'flowtel-test' }), readers: [exporter.reader] });
  cleanups.push(() => exporter.shutdown());
  return { exporter, meter: provider.getMeter('flowtel', '0.1.0'), logs: lines };
}

/** Every line of a file, parsed as an OTLP JSON ExportMetricsServiceRequest. */
function readLines(path: string): DecodedExportMetricsServiceRequest[] {
  const text = readFileSync(path, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'whole lines only');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => decodeExportMetricsServiceRequestJson(JSON.parse(line)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('one OTLP JSON ExportMetricsServiceRequest per line, with the right names and values', async () => {
  const path = join(tempDir(), 'metrics.json');
  const { exporter, meter } = pipeline({ path });
  await exporter.start();
  const bytes = meter.createCounter('tcp_bytes_sent', { unit: 'By' });
  const rtt = meter.createHistogram('tcp_rtt_us', { advice: { explicitBucketBoundaries: [100, 1000] } });
  bytes.add(1000, { 'destination.port': 443 });
  rtt.record(250);
  await exporter.reader.forceFlush();
  bytes.add(24, { 'destination.port': 443 });
  await exporter.reader.forceFlush();

  const lines = readLines(path);
  assert.equal(lines.length, 2);
  assert.equal(exporter.written, 2);
  const first = latestMetric([lines[0]!], 'tcp_bytes_sent');
  assert.equal(first?.kind, 'sum');
  assert.equal(first?.unit, 'By');
  assert.equal(first?.temporality, 'cumulative');
  assert.deepEqual(first?.points[0]?.attributes, { 'destination.port': 443 });
  assert.equal(first?.points[0]?.value, 1000);
  assert.equal(latestMetric([lines[1]!], 'tcp_bytes_sent')?.points[0]?.value, 1024);
  const histogram = latestMetric([lines[0]!], 'tcp_rtt_us');
  assert.deepEqual([histogram?.points[0]?.count, histogram?.points[0]?.bucketCounts], [1, [0, 1, 0]]);
  assert.equal(resourceAttributes(lines[0]!)['service.name'], 'flowtel-test');
  // The OTLP JSON rules: lowerCamelCase names, 64-bit times as strings, temporality as a number.
  const raw = JSON.parse(readFileSync(path, 'utf8').split('\n')[0]!) as {
    resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: Array<{ name: string; sum?: { aggregationTemporality: number; dataPoints: Array<{ timeUnixNano: unknown }> } }> }> }>;
  };
  const sum = raw.resourceMetrics[0]?.scopeMetrics[0]?.metrics.find((m) => m.name === 'tcp_bytes_sent')?.sum;
  assert.equal(sum?.aggregationTemporality, 2);
  assert.equal(typeof sum?.dataPoints[0]?.timeUnixNano, 'string');
});

test('lines are written every flush_interval without a flush', async () => {
  const path = join(tempDir(), 'metrics.json');
  const { exporter, meter } = pipeline({ path, export_interval: '100ms', flush_interval: '50ms' });
  await exporter.start();
  meter.createCounter('c').add(1);
  const deadline = Date.now() + 3_000;
  while (readFileSync(path, 'utf8') === '' && Date.now() < deadline) await sleep(20);
  assert.ok(readLines(path).length >= 1);
  assert.equal(flattenMetrics(readLines(path)).at(0)?.name, 'c');
});

test('append: false truncates the file at start; true keeps it', async () => {
  const dir = tempDir();
  const truncated = join(dir, 'a.json');
  const kept = join(dir, 'b.json');
  writeFileSync(truncated, 'old line\n');
  writeFileSync(kept, 'old line\n');
  const a = pipeline({ path: truncated });
  const b = pipeline({ path: kept, append: true });
  await a.exporter.start();
  await b.exporter.start();
  for (const p of [a, b]) {
    p.meter.createCounter('c').add(1);
    await p.exporter.reader.forceFlush();
  }
  assert.equal(readFileSync(truncated, 'utf8').split('\n')[0]?.startsWith('{'), true);
  assert.equal(readFileSync(kept, 'utf8').split('\n')[0], 'old line');
});

test('rotation by size: files stay under max_megabytes and only max_backups rotated files are kept', async () => {
  const dir = tempDir();
  const path = join(dir, 'metrics.json');
  const maxBytes = Math.floor(0.004 * 1024 * 1024); // 4194 bytes: a few lines per file
  const { exporter, meter } = pipeline({ path, rotation: { max_megabytes: 0.004, max_backups: 2 } });
  await exporter.start();
  const counter = meter.createCounter('c');
  for (let i = 1; i <= 30; i++) {
    counter.add(1);
    await exporter.reader.forceFlush();
    await sleep(2); // distinct millisecond timestamps in the backup names are not required, only nicer
  }
  const names = readdirSync(dir).sort();
  const backups = names.filter((n) => /^metrics-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}(-\d+)?\.json$/.test(n));
  assert.equal(backups.length, 2, `files: ${names.join(', ')}`);
  assert.deepEqual(names.filter((n) => !backups.includes(n)), ['metrics.json']);
  for (const name of names) assert.ok(statSync(join(dir, name)).size <= maxBytes, `${name} is ${statSync(join(dir, name)).size} bytes`);

  // Oldest first: the kept lines are the newest, consecutive values up to 30.
  const ordered = [...backups, 'metrics.json'].map((n) => join(dir, n));
  const values = ordered.flatMap((file) => readLines(file).map((r) => latestMetric([r], 'c')?.points[0]?.value));
  assert.equal(values.at(-1), 30);
  assert.deepEqual(values, values.map((_, i) => 30 - values.length + 1 + i));
  assert.ok(values.length < 30, 'older files were deleted');
});

test('rotation written without max_megabytes uses the Collector default (100 MiB); not written: no rotation', () => {
  const v = (raw: unknown) => fileExporterFactory.validate(raw, 'exporters.file');
  assert.equal(v({ path: 'x.json', rotation: { max_backups: 3 } }).rotation.max_megabytes, 100);
  assert.equal(v({ path: 'x.json' }).rotation.max_megabytes, undefined);
  assert.deepEqual(v({ path: 'x.json' }).rotation, { max_backups: 100, localtime: false });
  assert.equal(v({ path: 'x.json' }).flush_interval, 1000);
  assert.throws(() => v({}), /exporters\.file\.path: required option "path" is missing/);
  assert.throws(() => v({ path: 'x', format: 'proto' }), /exporters\.file\.format: expected one of "json"/);
  assert.throws(() => v({ path: 'x', rotation: { max_megabytes: 0 } }), /exporters\.file\.rotation\.max_megabytes: must be at least/);
});

test('a path whose directory does not exist fails at start with the path in the message', async () => {
  const path = join(tempDir(), 'missing', 'metrics.json');
  const { exporter } = pipeline({ path });
  await assert.rejects(exporter.start(), (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.match(error.message, /^exporter file: cannot open .*missing\/metrics\.json: ENOENT/);
    return true;
  });
  assert.equal(existsSync(path), false);
});

test('shutdown writes the last collection and closes the file', async () => {
  const path = join(tempDir(), 'metrics.json');
  const { exporter, meter } = pipeline({ path, flush_interval: '1h' });
  await exporter.start();
  meter.createCounter('c').add(5);
  await exporter.shutdown();
  const lines = readLines(path);
  assert.equal(lines.length, 1);
  assert.equal(latestMetric(lines, 'c')?.points[0]?.value, 5);
});
