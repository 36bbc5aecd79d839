/** `flowtel components` (and its markdown) says which pipelines each component can be in. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { componentsMarkdown, componentSignals, FACTORIES } from '../../src/cli/main';
import { packageRoot } from '../../src/util/paths';

const BIN = path.join(packageRoot(), 'bin', 'flowtel');

test('every receiver, processor and exporter names its signals; extensions none', () => {
  for (const f of FACTORIES) {
    const signals = componentSignals(f);
    if (f.kind === 'extension') assert.deepEqual(signals, []);
    else assert.ok(signals.length > 0 && signals.every((s) => s === 'metrics' || s === 'logs'), `${f.kind} ${f.type}`);
  }
});

test('flowtel components: one header line per component with its pipelines', () => {
  const out = spawnSync(process.execPath, [BIN, 'components'], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  const headers = out.stdout.split('\n').filter((l) => l !== '' && !l.startsWith(' '));
  assert.equal(headers.length, FACTORIES.length);
  for (const line of [
    'receiver ebpf_tcp (alpha) [metrics, logs]',
    'receiver netstat (alpha) [metrics]',
    'processor sampling (alpha) [metrics]',
    'processor memory_limiter (alpha) [metrics, logs]',
    'processor batch (beta) [metrics, logs]',
    'processor resource (alpha) [metrics, logs]',
    'exporter otlphttp (alpha) [metrics, logs]',
    'exporter prometheus (beta) [metrics]',
    'extension pprof (development)',
    'extension health_check (beta)',
  ]) {
    assert.ok(headers.includes(line), `missing: ${line}\n${headers.join('\n')}`);
  }
});

test('flowtel components markdown: a "Pipelines:" line under each heading but the extensions\'', () => {
  const md = componentsMarkdown();
  assert.match(md, /### `ebpf_tcp` \(receiver, alpha\)\n\nPipelines: `metrics`, `logs`\.\n\n\| option/);
  assert.match(md, /### `aggregate` \(processor, alpha\)\n\nPipelines: `metrics`\.\n\n\| option/);
  assert.match(md, /### `pprof` \(extension, development\)\n\n\| option/);
  const out = spawnSync(process.execPath, [BIN, 'components', 'markdown'], { encoding: 'utf8' });
  assert.equal(out.stdout, md);
});
