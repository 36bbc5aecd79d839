/** The embedded default: `process` always, `k8s` only in a Kubernetes pod; it validates either way. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FACTORIES } from '../../src/cli/main';
import { defaultConfigObject, loadConfig, validateConfig } from '../../src/config';
import { inKubernetes } from '../../src/config/default-config';

test('default config: process on; k8s only when KUBERNETES_SERVICE_HOST is set', () => {
  const plain = defaultConfigObject({});
  assert.deepEqual(plain.processors, { process: {} });
  assert.deepEqual((plain.service as { pipelines: { metrics: { processors: string[] } } }).pipelines.metrics.processors, ['process']);
  const pod = defaultConfigObject({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' });
  assert.deepEqual(pod.processors, { process: {}, k8s: {} });
  assert.deepEqual((pod.service as { pipelines: { metrics: { processors: string[] } } }).pipelines.metrics.processors, ['process', 'k8s']);
  assert.equal(inKubernetes({ KUBERNETES_SERVICE_HOST: ' ' }), false);
});

test('default config validates on this machine and in a pod', () => {
  for (const env of [{}, { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', KUBERNETES_SERVICE_HOST: '10.96.0.1' }]) {
    const cfg = validateConfig(loadConfig([], [], { env }), FACTORIES);
    const types = [...cfg.processors.values()].map((p) => p.type);
    assert.deepEqual(types, 'KUBERNETES_SERVICE_HOST' in env ? ['process', 'k8s'] : ['process']);
    assert.deepEqual(cfg.warnings, []);
  }
});
