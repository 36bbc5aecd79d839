/** Every example agent config in otel-config/ is valid (collector*.yaml are Collector configs). */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { FACTORIES } from '../../src/cli/main';
import { loadConfig, validateConfig } from '../../src/config';
import { packageRoot } from '../../src/util/paths';

const dir = path.join(packageRoot(), 'otel-config');
const examples = readdirSync(dir).filter((f) => f.endsWith('.yaml') && !f.startsWith('collector'));

test('there are example configs', () => assert.ok(examples.length >= 3));

for (const f of examples) {
  test(`otel-config/${f} is a valid flowtel config`, () => {
    const cfg = validateConfig(loadConfig([path.join(dir, f)], [], { env: {} }), FACTORIES);
    assert.ok(cfg.pipelines.length > 0);
    assert.deepEqual(cfg.warnings.filter((w) => w.includes('not used')), []);
  });
}

test('all-components.yaml shows every component type', () => {
  const cfg = validateConfig(loadConfig([path.join(dir, 'all-components.yaml')], [], { env: {} }), FACTORIES);
  const used = new Set([...cfg.receivers.values(), ...cfg.processors.values(), ...cfg.exporters.values(), ...cfg.extensions.values()].map((c) => c.type));
  for (const f of FACTORIES) assert.ok(used.has(f.type), `all-components.yaml does not show ${f.kind} ${f.type}`);
});
