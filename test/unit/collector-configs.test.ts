/**
 * The Collector configs in otel-config/collector*.yaml, checked without the
 * Collector binary: the structure the Collector validates at start (every
 * pipeline component defined, every defined component used, signals each
 * component supports, extensions listed), the component catalog of the
 * otelcol-contrib distribution they say they need, the recommended processor
 * order (memory_limiter first, batch last), and the naming decision of
 * docs/deploy.md (Prometheus pipelines clear the units and keep suffixes on).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { packageRoot } from '../../src/util/paths';

type Kind = 'receivers' | 'processors' | 'exporters' | 'extensions';
type Signal = 'metrics' | 'logs' | 'traces';

/** Components these configs use: the signals each takes, and whether the core distribution has it (contrib has all). */
const CATALOG: Record<Kind, Record<string, { signals: readonly Signal[]; core: boolean }>> = {
  receivers: { otlp: { signals: ['metrics', 'logs', 'traces'], core: true } },
  processors: {
    memory_limiter: { signals: ['metrics', 'logs', 'traces'], core: true },
    batch: { signals: ['metrics', 'logs', 'traces'], core: true },
    filter: { signals: ['metrics', 'logs', 'traces'], core: true },
    transform: { signals: ['metrics', 'logs', 'traces'], core: false },
    k8sattributes: { signals: ['metrics', 'logs', 'traces'], core: false },
    resource: { signals: ['metrics', 'logs', 'traces'], core: true },
  },
  exporters: {
    prometheus: { signals: ['metrics'], core: true },
    prometheusremotewrite: { signals: ['metrics'], core: true },
    otlp: { signals: ['metrics', 'logs', 'traces'], core: true },
    otlphttp: { signals: ['metrics', 'logs', 'traces'], core: true },
    debug: { signals: ['metrics', 'logs', 'traces'], core: true },
  },
  extensions: { health_check: { signals: [], core: true } },
};

interface Pipeline {
  receivers?: string[];
  processors?: string[];
  exporters?: string[];
}

interface CollectorConfig {
  receivers?: Record<string, unknown>;
  processors?: Record<string, unknown>;
  exporters?: Record<string, Record<string, unknown> | null>;
  extensions?: Record<string, unknown>;
  service: { extensions?: string[]; pipelines: Record<string, Pipeline> };
}

const dir = path.join(packageRoot(), 'otel-config');
const files = readdirSync(dir).filter((f) => f.startsWith('collector') && f.endsWith('.yaml'));

const typeOf = (id: string): string => id.split('/')[0]!;
const signalOf = (pipelineId: string): Signal => typeOf(pipelineId) as Signal;

test('there are the Collector configs docs/deploy.md names', () => {
  for (const f of ['collector.yaml', 'collector-remote-write.yaml', 'collector-gateway.yaml']) assert.ok(files.includes(f), f);
});

for (const file of files) {
  describe(`otel-config/${file}`, () => {
    const text = readFileSync(path.join(dir, file), 'utf8');
    const config = parse(text) as CollectorConfig;

    test('is commented and says which distribution it needs', () => {
      assert.match(text, /^# /);
      assert.match(text, /otelcol-contrib/);
    });

    test('every pipeline component is defined, known, and takes the pipeline\'s signal', () => {
      assert.ok(Object.keys(config.service.pipelines).length > 0);
      for (const [pid, p] of Object.entries(config.service.pipelines)) {
        assert.ok(['metrics', 'logs', 'traces'].includes(signalOf(pid)), `pipeline ${pid}`);
        assert.ok((p.receivers ?? []).length > 0 && (p.exporters ?? []).length > 0, `${pid} needs receivers and exporters`);
        for (const kind of ['receivers', 'processors', 'exporters'] as const) {
          for (const id of p[kind] ?? []) {
            assert.ok(config[kind] && id in config[kind]!, `${pid}: ${kind.slice(0, -1)} ${id} is not defined`);
            const known = CATALOG[kind][typeOf(id)];
            assert.ok(known, `${pid}: unknown ${kind.slice(0, -1)} type ${typeOf(id)}`);
            assert.ok(known.signals.includes(signalOf(pid)), `${pid}: ${id} does not take ${signalOf(pid)}`);
          }
        }
      }
    });

    test('every defined component is used; extensions are listed', () => {
      for (const kind of ['receivers', 'processors', 'exporters'] as const) {
        for (const id of Object.keys(config[kind] ?? {})) {
          assert.ok(Object.values(config.service.pipelines).some((p) => (p[kind] ?? []).includes(id)), `${kind.slice(0, -1)} ${id} is defined but in no pipeline`);
        }
      }
      for (const id of config.service.extensions ?? []) assert.ok(config.extensions && id in config.extensions, `extension ${id}`);
      for (const id of Object.keys(config.extensions ?? {})) {
        assert.ok(CATALOG.extensions[typeOf(id)], `unknown extension ${id}`);
        assert.ok((config.service.extensions ?? []).includes(id), `extension ${id} not in service.extensions`);
      }
    });

    test('memory_limiter first and batch last in every pipeline', () => {
      for (const [pid, p] of Object.entries(config.service.pipelines)) {
        const procs = p.processors ?? [];
        assert.equal(typeOf(procs[0] ?? ''), 'memory_limiter', `${pid}: ${procs.join(', ')}`);
        assert.equal(typeOf(procs[procs.length - 1] ?? ''), 'batch', `${pid}: ${procs.join(', ')}`);
      }
    });

    test('metrics to Prometheus: units cleared, suffixes on, resource attributes as labels, flowtel self-telemetry once', () => {
      for (const [pid, p] of Object.entries(config.service.pipelines)) {
        const prom = (p.exporters ?? []).filter((e) => ['prometheus', 'prometheusremotewrite'].includes(typeOf(e)));
        if (prom.length === 0) continue;
        const procs = p.processors ?? [];
        const transform = procs.find((id) => typeOf(id) === 'transform');
        assert.ok(transform, `${pid} exports to Prometheus without transform/prometheus_names`);
        const statements = JSON.stringify((config.processors![transform] as Record<string, unknown>).metric_statements);
        assert.match(statements, /set\(unit, \\"\\"\)/, `${transform} must clear the unit`);
        assert.ok(procs.some((id) => typeOf(id) === 'filter' && JSON.stringify(config.processors![id]).includes('^flowtel_')), `${pid}: flowtel_* come from the agent's self-telemetry endpoint`);
        for (const e of prom) {
          const options = config.exporters![e] ?? {};
          assert.notEqual(options.add_metric_suffixes, false, `${e}: add_metric_suffixes false would drop _total`);
          assert.equal(options.translation_strategy, undefined, `${e}: translation_strategy overrides the naming decision`);
          assert.deepEqual(options.resource_to_telemetry_conversion, { enabled: true }, `${e}: resource attributes as labels`);
        }
      }
    });

    test('environment references use the Collector syntax', () => {
      for (const m of text.matchAll(/\$\{([^}]*)\}/g)) assert.match(m[1]!, /^env:[A-Z_][A-Z0-9_]*(:-[^}]*)?$/, m[0]);
    });
  });
}
