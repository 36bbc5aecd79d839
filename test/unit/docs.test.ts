/** The reference docs name every metric and every component option there is. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { FACTORIES, componentsMarkdown } from '../../src/cli/main';
import { METRICS } from '../../src/metrics/definitions';
import { packageRoot } from '../../src/util/paths';

const doc = (name: string): string => readFileSync(path.join(packageRoot(), 'docs', name), 'utf8');

test('docs/metrics.md lists every metric', () => {
  const text = doc('metrics.md');
  for (const name of METRICS.keys()) assert.ok(text.includes(`\`${name}\``), `docs/metrics.md does not mention ${name}`);
});

test('docs/configuration.md lists every component and option, as the code defines them', () => {
  const text = doc('configuration.md');
  const m = /<!-- components:begin[^>]*-->\n([\s\S]*)<!-- components:end -->/.exec(text);
  assert.ok(m, 'docs/configuration.md has the generated components section');
  for (const f of FACTORIES) assert.ok(m[1]!.includes(`### \`${f.type}\``), `docs/configuration.md has no section for ${f.type}`);
  assert.equal(m[1], componentsMarkdown(), 'regenerate it: ./bin/flowtel components markdown');
});
