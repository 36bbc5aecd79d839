/** The reference docs name every metric and every component option there is. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { FACTORIES } from '../../src/cli/main';
import { METRICS } from '../../src/metrics/definitions';
import { packageRoot } from '../../src/util/paths';

const doc = (name: string): string => readFileSync(path.join(packageRoot(), 'docs', name), 'utf8');

test('docs/metrics.md lists every metric', () => {
  const text = doc('metrics.md');
  for (const name of METRICS.keys()) assert.ok(text.includes(`\`${name}\``), `docs/metrics.md does not mention ${name}`);
});

test('docs/configuration.md lists every component and option', () => {
  const text = doc('configuration.md');
  for (const f of FACTORIES) {
    assert.ok(text.includes(`### \`${f.type}\``), `docs/configuration.md has no section for ${f.type}`);
    for (const o of f.options) assert.ok(text.includes(`| \`${o.name}\` |`), `docs/configuration.md does not document ${f.type}.${o.name}`);
  }
});
