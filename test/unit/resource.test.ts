import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { buildResource, buildSettledResource, FLOWTEL_VERSION } from '../../src/telemetry/resource';

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

test('buildResource: service, host, os, sdk attributes', async () => {
  const resource = await withEnv({ OTEL_SERVICE_NAME: undefined, OTEL_RESOURCE_ATTRIBUTES: undefined }, () => buildSettledResource());
  const a = resource.attributes;
  assert.equal(a['service.name'], 'flowtel');
  assert.equal(a['service.version'], FLOWTEL_VERSION);
  assert.equal(FLOWTEL_VERSION, '0.1.0');
  assert.equal(a['host.name'], hostname());
  assert.equal(a['host.arch'], process.arch === 'x64' ? 'amd64' : process.arch);
  assert.equal(a['os.type'], 'linux');
  assert.equal(a['telemetry.sdk.language'], 'nodejs');
  assert.equal(resource.asyncAttributesPending, false);
});

test('buildResource: OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME override defaults and options', () => {
  const resource = withEnv({ OTEL_SERVICE_NAME: undefined, OTEL_RESOURCE_ATTRIBUTES: 'k8s.node.name=node-7,host.name=override,service.name=from-attrs' }, () =>
    buildResource({ serviceName: 'custom', attributes: { 'deployment.environment.name': 'prod', 'k8s.node.name': 'config' } }),
  );
  assert.equal(resource.attributes['service.name'], 'from-attrs');
  assert.equal(resource.attributes['k8s.node.name'], 'node-7');
  assert.equal(resource.attributes['host.name'], 'override');
  assert.equal(resource.attributes['deployment.environment.name'], 'prod');

  const named = withEnv({ OTEL_SERVICE_NAME: 'netmon', OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs' }, () => buildResource({ serviceName: 'custom' }));
  assert.equal(named.attributes['service.name'], 'netmon');

  const optionOnly = withEnv({ OTEL_SERVICE_NAME: undefined, OTEL_RESOURCE_ATTRIBUTES: undefined }, () => buildResource({ serviceName: 'custom' }));
  assert.equal(optionOnly.attributes['service.name'], 'custom');
});
