/**
 * The committed dashboards/*.json are exactly what dashboards/src generates,
 * and every dashboard follows the conventions: a datasource variable, then
 * cluster/namespace/service with All (matching series without the label),
 * every panel with a description and a unit, every query on the datasource
 * variable, filtered by the variables, with $__rate_interval (or $__range for
 * range tables) and no hard-coded window, stable unique uids and ids.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { DASHBOARDS, renderDashboard } from '../../dashboards/src/index';
import { buildDashboard, queriesOf, type GrafanaPanel } from '../../dashboards/src/grafana';
import { packageRoot } from '../../src/util/paths';

const dir = path.join(packageRoot(), 'dashboards');

test('dashboards/ holds exactly the generated dashboards', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  assert.deepEqual(files, DASHBOARDS.map((d) => d.file).sort());
});

test('uids are unique, stable and short (Grafana allows 40 characters)', () => {
  const uids = DASHBOARDS.map((d) => d.spec.uid);
  assert.equal(new Set(uids).size, uids.length);
  for (const uid of uids) assert.match(uid, /^flowtel-[a-z0-9-]+$/);
  for (const uid of uids) assert.ok(uid.length <= 40, uid);
  assert.deepEqual(uids, ['flowtel-network-overview', 'flowtel-tcp-health', 'flowtel-dns', 'flowtel-cross-az', 'flowtel-service-map', 'flowtel-agent-health']);
});

for (const { file, spec } of DASHBOARDS) {
  describe(`dashboards/${file}`, () => {
    const json = buildDashboard(spec);
    const panels = json.panels.filter((p) => p.type !== 'row');

    test('is the committed file (npm run dashboards regenerates it)', () => {
      assert.equal(readFileSync(path.join(dir, file), 'utf8'), renderDashboard(spec), `dashboards/${file} is stale: run npm run dashboards`);
    });

    test('variables: datasource first, then cluster, namespace, service with All matching everything', () => {
      const vars = json.templating.list;
      assert.equal(vars[0]?.name, 'datasource');
      assert.equal(vars[0]?.type, 'datasource');
      assert.equal(vars[0]?.query, 'prometheus');
      assert.deepEqual(vars.slice(1, 4).map((v) => v.name), ['cluster', 'namespace', 'service']);
      for (const v of vars.slice(1)) {
        assert.equal(v.type, 'query', v.name);
        assert.equal(v.includeAll, true, v.name);
        assert.equal(v.allValue, '.*', `${v.name}: All must also match series without the label`);
        assert.equal(v.datasource?.uid, '${datasource}', v.name);
        assert.ok(v.description.length > 10, `${v.name} has a description`);
        assert.match(String(v.definition), /^label_values\([a-z0-9_]+(\{.*\})?, [a-z0-9_]+\)$/, v.name);
      }
    });

    test('every panel has a title, a description, a unit and the datasource variable', () => {
      assert.ok(panels.length >= 4);
      for (const p of panels) {
        assert.ok(p.title.length > 0);
        assert.ok((p.description ?? '').length >= 20, `${p.title}: description`);
        assert.ok(typeof p.fieldConfig?.defaults.unit === 'string' && p.fieldConfig.defaults.unit !== '', `${p.title}: unit`);
        assert.equal(p.datasource?.uid, '${datasource}', `${p.title}: datasource`);
        for (const t of p.targets ?? []) assert.equal(t.datasource.uid, '${datasource}', `${p.title}: target datasource`);
      }
    });

    test('every query is filtered by every variable, windows are $__rate_interval or $__range', () => {
      const variables = json.templating.list.slice(1).map((v) => `$${v.name}`);
      for (const p of panels) {
        for (const t of p.targets ?? []) {
          for (const v of variables) assert.ok(t.expr.includes(`"${v}"`), `${p.title}: ${t.expr} does not use ${v}`);
          for (const m of t.expr.matchAll(/\[([^\]]+)\]/g)) assert.ok(m[1] === '$__rate_interval' || m[1] === '$__range', `${p.title}: window [${m[1]}]`);
          if (/\b(rate|increase)\(/.test(t.expr)) assert.match(t.expr, /\$__(rate_interval|range)/, p.title);
          if (t.instant) assert.doesNotMatch(t.expr, /\$__rate_interval/, `${p.title}: an instant query over $__rate_interval shows only the last moments`);
          assert.equal((t.expr.match(/\(/g) ?? []).length, (t.expr.match(/\)/g) ?? []).length, `${p.title}: parentheses`);
        }
      }
    });

    test('panel ids are unique and the layout fits the 24-column grid without overlaps', () => {
      const ids = json.panels.map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length);
      const cells = new Set<string>();
      for (const p of json.panels) {
        const { x, y, w, h } = p.gridPos;
        assert.ok(x >= 0 && w > 0 && x + w <= 24, `${p.title}: x ${x} w ${w}`);
        for (let i = x; i < x + w; i++) {
          for (let j = y; j < y + h; j++) {
            const key = `${i},${j}`;
            assert.ok(!cells.has(key), `${p.title} overlaps at ${key}`);
            cells.add(key);
          }
        }
      }
    });

    test('units are Grafana unit ids', () => {
      const known = new Set(['Bps', 'bytes', 'µs', 's', 'percentunit', 'pps', 'cps', 'reqps', 'short', 'currencyUSD']);
      for (const p of panels) assert.ok(known.has(String(p.fieldConfig?.defaults.unit)), `${p.title}: ${String(p.fieldConfig?.defaults.unit)}`);
    });
  });
}

test('the service map is a Node Graph fed by a nodes and an edges query', () => {
  const map = DASHBOARDS.find((d) => d.spec.uid === 'flowtel-service-map')!;
  const graph = buildDashboard(map.spec).panels.find((p: GrafanaPanel) => p.type === 'nodeGraph');
  assert.ok(graph);
  assert.deepEqual(graph.targets?.map((t) => [t.refId, t.instant, t.format]), [['nodes', true, 'table'], ['edges', true, 'table']]);
  const edges = graph.targets![1]!.expr;
  // Edge frames need id, source and target fields; node frames id (and title).
  for (const field of ['"id"', '"source"', '"target"']) assert.ok(edges.includes(field), field);
  assert.ok(graph.targets![0]!.expr.includes('"title"'));
  assert.deepEqual((graph.transformations?.[0]?.options as { renameByName: Record<string, string> }).renameByName, { 'Value #nodes': 'mainstat', 'Value #edges': 'mainstat' });
});

test('docs/deploy.md lists every panel that needs a feature the test host lacks', () => {
  const doc = readFileSync(path.join(packageRoot(), 'docs', 'deploy.md'), 'utf8');
  const section = doc.slice(doc.indexOf('### Panels that need more than a plain host'), doc.indexOf('## On a host with systemd'));
  for (const { spec } of DASHBOARDS) {
    for (const { panel, requires } of queriesOf(spec)) {
      if (requires) assert.ok(section.includes(panel.title), `docs/deploy.md does not list "${panel.title}" (${spec.title})`);
    }
  }
});
