/** The embedded default: `process` always, `k8s` only in a Kubernetes pod; it validates either way. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FACTORIES } from '../../src/cli/main';
import { defaultConfigObject, loadConfig, validateConfig } from '../../src/config';
import { inKubernetes } from '../../src/config/default-config';

test('default config: process on; k8s only when KUBERNETES_SERVICE_HOST is set', () => {
  const plain = defaultConfigObject({});
  assert.deepEqual(Object.keys(plain.processors as object), ['process', 'cloud']);
  assert.deepEqual((plain.processors as Record<string, unknown>).process, {});
  assert.deepEqual((plain.service as { pipelines: { metrics: { processors: string[] } } }).pipelines.metrics.processors, ['process', 'cloud']);
  const pod = defaultConfigObject({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' });
  assert.deepEqual(Object.keys(pod.processors as object), ['process', 'cloud', 'k8s']);
  assert.deepEqual((pod.processors as Record<string, unknown>).k8s, {});
  assert.deepEqual((pod.service as { pipelines: { metrics: { processors: string[] } } }).pipelines.metrics.processors, ['process', 'cloud', 'k8s']);
  assert.equal(inKubernetes({ KUBERNETES_SERVICE_HOST: ' ' }), false);
});

test('default config validates on this machine and in a pod', () => {
  for (const env of [{}, { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', KUBERNETES_SERVICE_HOST: '10.96.0.1' }]) {
    const cfg = validateConfig(loadConfig([], [], { env }), FACTORIES);
    const types = [...cfg.processors.values()].map((p) => p.type);
    assert.deepEqual(types, 'KUBERNETES_SERVICE_HOST' in env ? ['process', 'cloud', 'k8s'] : ['process', 'cloud']);
    assert.deepEqual(cfg.warnings, []);
  }
});
