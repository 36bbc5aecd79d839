/**
 * deploy/: the Kubernetes manifests and the Helm chart's rendered output
 * (rendered by a real `helm` 4, see deploy/tools/fetch-helm.sh) validated
 * against the Kubernetes API schemas (test/helpers/k8s-schema.ts: the
 * OpenAPI schemas of `kubernetes-models` plus strict field names from
 * `@kubernetes/client-node`); values.yaml against values.schema.json with
 * ajv; the configs embedded in ConfigMaps and the chart's presets equal to
 * their source files and valid (deploy/config/flowtel-kubernetes.yaml with
 * its enrichment processors for Kubernetes, flowtel-otlp.yaml without), and
 * consistent with the DaemonSet (what the processors read is mounted); the DaemonSet's security posture (capabilities, not
 * privileged; read-only host mounts; downward API; probes on the
 * health_check port); docker-compose through Debian's docker-compose
 * `config`; the systemd unit through `systemd-analyze verify`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import Ajv from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { FACTORIES } from '../../src/cli/main';
import { loadConfig, validateConfig } from '../../src/config';
import { packageRoot } from '../../src/util/paths';
import { validateManifest, type Manifest } from '../helpers/k8s-schema';

const ROOT = packageRoot();
const K8S_DIR = path.join(ROOT, 'deploy', 'kubernetes');
const CHART = path.join(ROOT, 'deploy', 'helm', 'flowtel');

const CAPABILITIES = ['BPF', 'PERFMON', 'NET_ADMIN', 'NET_RAW', 'SYS_RESOURCE', 'SYS_PTRACE', 'DAC_READ_SEARCH'];

function docs(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest | null)
    .filter((d): d is Manifest => d !== null && typeof d === 'object');
}

function helmBinary(): string {
  const local = path.join(ROOT, '.tools', 'helm', 'helm');
  if (existsSync(local)) return local;
  const which = spawnSync('sh', ['-c', 'command -v helm'], { encoding: 'utf8' });
  if (which.status === 0) return which.stdout.trim();
  assert.fail('helm not found: run `bash deploy/install.sh --test-tools` (deploy/tools/fetch-helm.sh puts it at .tools/helm/helm)');
}

function helmTemplate(sets: readonly string[] = []): Manifest[] {
  const args = ['template', 'flowtel', CHART, '--namespace', 'flowtel', ...sets.flatMap((s) => ['--set', s])];
  return docs(execFileSync(helmBinary(), args, { encoding: 'utf8' }));
}

async function assertValid(manifests: readonly Manifest[], where: string): Promise<void> {
  assert.ok(manifests.length > 0, `${where}: no manifests`);
  for (const m of manifests) {
    const problems = await validateManifest(m);
    assert.deepEqual(problems, [], `${where}: ${m.kind} ${m.metadata?.name}`);
  }
}

type Obj = Record<string, unknown>;
const at = (o: unknown, ...keys: (string | number)[]): unknown => keys.reduce<unknown>((v, k) => (v as Obj | undefined)?.[k as string], o);
const configText = (name: string): string => readFileSync(path.join(ROOT, 'deploy', 'config', name), 'utf8');
/** The agent config of Kubernetes (the DaemonSet's ConfigMap, the chart's default preset). */
const kubernetesConfigText = (): string => configText('flowtel-kubernetes.yaml');
/** The agent config of docker-compose and the chart's `otlp` preset: no enrichment. */
const otlpConfigText = (): string => configText('flowtel-otlp.yaml');
const gatewayConfigText = (): string => readFileSync(path.join(ROOT, 'otel-config', 'collector-gateway.yaml'), 'utf8');

function validFlowtelConfig(text: string): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'flowtel-deploy-'));
  try {
    const file = path.join(dir, 'config.yaml');
    writeFileSync(file, text);
    const cfg = validateConfig(loadConfig([file], [], { env: {} }), FACTORIES);
    assert.ok(cfg.pipelines.length > 0);
    assert.deepEqual(cfg.warnings.filter((w) => w.includes('not used')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The security posture of the agent DaemonSet, wherever it comes from. */
function checkDaemonSet(ds: Manifest, sysAdmin = false): void {
  const pod = at(ds, 'spec', 'template', 'spec') as Obj;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.hostPID, true);
  assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet', 'hostNetwork pods need it to resolve the gateway service');
  const c = (pod.containers as Obj[])[0]!;
  const sc = c.securityContext as Obj;
  assert.equal(sc.privileged, false);
  assert.deepEqual(at(sc, 'capabilities', 'drop'), ['ALL']);
  assert.deepEqual(at(sc, 'capabilities', 'add'), sysAdmin ? [...CAPABILITIES, 'SYS_ADMIN'] : CAPABILITIES);
  assert.equal(sc.allowPrivilegeEscalation, sysAdmin, 'the API refuses allowPrivilegeEscalation: false with SYS_ADMIN');
  assert.equal(sc.readOnlyRootFilesystem, true);
  const env = c.env as Obj[];
  assert.deepEqual(env.find((e) => e.name === 'KUBE_NODE_NAME')?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
  assert.match(String(env.find((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES')?.value), /k8s\.pod\.uid=\$\(POD_UID\)/);
  const mounts = new Map((c.volumeMounts as Obj[]).map((m) => [m.mountPath as string, m]));
  for (const p of ['/sys/kernel/btf', '/sys/fs/cgroup', '/host/proc', '/etc/flowtel', '/run/containerd', '/run/crio']) assert.equal(mounts.get(p)?.readOnly, true, `${p} read-only`);
  const volumes = new Map((pod.volumes as Obj[]).map((v) => [v.name as string, v]));
  for (const [mountPath, hostPath] of [['/sys/kernel/btf', '/sys/kernel/btf'], ['/sys/fs/cgroup', '/sys/fs/cgroup'], ['/host/proc', '/proc'], ['/run/containerd', '/run/containerd'], ['/run/crio', '/run/crio']] as const) {
    assert.equal(at(volumes.get(mounts.get(mountPath)!.name as string), 'hostPath', 'path'), hostPath);
  }
  const health = (c.ports as Obj[]).find((p) => p.name === 'health')!;
  assert.equal(health.containerPort, 13133);
  assert.equal(at(c, 'livenessProbe', 'httpGet', 'port'), 'health');
  assert.equal(at(c, 'readinessProbe', 'httpGet', 'port'), 'health');
  assert.ok(at(c, 'resources', 'requests', 'memory') && at(c, 'resources', 'limits', 'memory'), 'requests and limits');
}

/**
 * The Kubernetes agent config against its DaemonSet: process → k8s through
 * the service account with this node's name from the downward API, and what
 * the processors read (the host's /proc, the runtime sockets) is mounted.
 */
function checkKubernetesConfig(configText: string, ds: Manifest): void {
  validFlowtelConfig(configText);
  const cfg = parse(configText) as Obj;
  const metrics = at(cfg, 'service', 'pipelines', 'metrics', 'processors') as string[];
  for (const p of ['process', 'container', 'nat', 'k8s', 'cloud', 'zone']) assert.ok(metrics.includes(p), `${p} in the metrics pipeline`);
  const order = (p: string): number => metrics.indexOf(p);
  assert.ok(order('memory_limiter') === 0, 'memory_limiter first');
  assert.ok(order('process') < order('container') && order('container') < order('k8s'), 'container.id (process) before container and k8s');
  assert.ok(order('nat') < order('k8s'), 'nat before k8s: the backend behind a ClusterIP gets named');
  assert.ok(order('k8s') < order('zone') && order('zone') < order('aggregate'), 'zone after k8s (node zones), aggregate last');
  assert.deepEqual(at(cfg, 'service', 'pipelines', 'logs', 'processors'), ['process', 'container', 'nat', 'k8s', 'cloud', 'zone'], 'log records named the same way');
  assert.equal(at(cfg, 'processors', 'k8s', 'auth_type'), 'serviceAccount');
  const nodeVar = at(cfg, 'processors', 'k8s', 'node_from_env_var') as string;
  assert.equal(nodeVar, 'KUBE_NODE_NAME');
  const c = at(ds, 'spec', 'template', 'spec', 'containers', 0) as Obj;
  assert.deepEqual((c.env as Obj[]).find((e) => e.name === nodeVar)?.valueFrom, { fieldRef: { fieldPath: 'spec.nodeName' } });
  assert.ok(at(ds, 'spec', 'template', 'spec', 'serviceAccountName'), 'a service account for auth_type serviceAccount');
  const mountPaths = (c.volumeMounts as Obj[]).map((m) => m.mountPath as string);
  const mounted = (p: string): boolean => mountPaths.some((m) => p === m || p.startsWith(`${m}/`));
  assert.ok(mounted(at(cfg, 'processors', 'process', 'proc_path') as string), 'process.proc_path is mounted');
  const endpoints = at(cfg, 'processors', 'container', 'endpoints') as string[];
  assert.ok(endpoints.length > 0);
  for (const e of endpoints) assert.ok(mounted(e.replace(/^[a-z]+:\/\//, '')), `${e}: its socket's directory is mounted`);
}

describe('deploy/kubernetes', () => {
  const files = readdirSync(K8S_DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  const all = files.flatMap((f) => docs(readFileSync(path.join(K8S_DIR, f), 'utf8')));

  test('every manifest is valid against the Kubernetes API schemas', async () => {
    await assertValid(all, 'deploy/kubernetes');
  });

  test('kustomization lists every manifest file', () => {
    const k = parse(readFileSync(path.join(K8S_DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    assert.deepEqual([...k.resources].sort(), [...files].sort());
  });

  test('the DaemonSet: host namespaces, capabilities instead of privileged, read-only host mounts, downward API, probes', () => {
    checkDaemonSet(all.find((m) => m.kind === 'DaemonSet')!);
  });

  test('the ConfigMaps hold deploy/config/flowtel-kubernetes.yaml and otel-config/collector-gateway.yaml', () => {
    const agent = all.find((m) => m.kind === 'ConfigMap' && m.metadata?.name === 'flowtel-config')!;
    assert.equal(at(agent, 'data', 'config.yaml'), kubernetesConfigText());
    checkKubernetesConfig(at(agent, 'data', 'config.yaml') as string, all.find((m) => m.kind === 'DaemonSet')!);
    const gateway = all.find((m) => m.kind === 'ConfigMap' && m.metadata?.name === 'flowtel-gateway-config')!;
    assert.equal(at(gateway, 'data', 'collector.yaml'), gatewayConfigText());
  });

  test('RBAC: get/list/watch on pods, services, endpointslices, nodes, replicasets, and nothing else', () => {
    const role = all.find((m) => m.kind === 'ClusterRole' && m.metadata?.name === 'flowtel')!;
    const granted = new Set<string>();
    for (const rule of role.rules as Obj[]) {
      assert.deepEqual(rule.verbs, ['get', 'list', 'watch']);
      for (const r of rule.resources as string[]) granted.add(r);
    }
    for (const r of ['pods', 'services', 'endpointslices', 'nodes', 'replicasets']) assert.ok(granted.has(r), r);
  });

  test('the agent points at the gateway service, which exposes OTLP/gRPC', () => {
    const ds = all.find((m) => m.kind === 'DaemonSet')!;
    const env = at(ds, 'spec', 'template', 'spec', 'containers', 0, 'env') as Obj[];
    const endpoint = String(env.find((e) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT')?.value);
    const svc = all.find((m) => m.kind === 'Service')!;
    assert.equal(endpoint, `http://${svc.metadata!.name}.${svc.metadata!.namespace}.svc.cluster.local:4317`);
    assert.equal(at(svc, 'spec', 'ports', 0, 'port'), 4317);
  });

  test('the validator is not vacuous: a misspelt field and a wrong type are caught', async () => {
    const ds = structuredClone(all.find((m) => m.kind === 'DaemonSet')!) as Obj;
    const c = at(ds, 'spec', 'template', 'spec', 'containers', 0) as Obj;
    c.readinesProbe = c.readinessProbe;
    (c.resources as Obj).limits = { memory: 5 } as unknown;
    (c as Obj).image = 7;
    const problems = await validateManifest(ds as Manifest);
    assert.ok(problems.some((p) => p.includes('unknown field DaemonSet.spec.template.spec.containers[0].readinesProbe')), problems.join('\n'));
    assert.ok(problems.some((p) => p.includes('image must be string')), problems.join('\n'));
  });
});

describe('deploy/helm/flowtel', () => {
  const values = parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as Obj;
  const schema = JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8')) as Obj;

  test('values.yaml is valid against values.schema.json (ajv)', () => {
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    const validate = ajv.compile(schema);
    assert.ok(validate(values), JSON.stringify(validate.errors, null, 2));
    const bad = structuredClone(values);
    (bad.image as Obj).pullPolicy = 'Sometimes';
    bad.unknownKey = 1;
    assert.equal(validate(bad), false, 'the schema rejects a bad pullPolicy and unknown keys');
  });

  test('the agent config presets are copies of deploy/config (kubernetes the default, no overrides), the gateway config otel-config/collector-gateway.yaml', () => {
    for (const f of ['flowtel-kubernetes.yaml', 'flowtel-otlp.yaml']) assert.equal(readFileSync(path.join(CHART, 'files', f), 'utf8'), configText(f), `files/${f}`);
    assert.equal(values.configPreset, 'kubernetes');
    assert.deepEqual(values.config, {});
    assert.deepEqual(at(values, 'gateway', 'config'), parse(gatewayConfigText()));
  });

  test('every values key is commented', () => {
    const lines = readFileSync(path.join(CHART, 'values.yaml'), 'utf8').split('\n');
    for (const key of Object.keys(values)) {
      const i = lines.findIndex((l) => l.startsWith(`${key}:`));
      const block = lines.slice(Math.max(0, i - 4), i + 4).join('\n');
      assert.match(block, /#/, `${key} has no comment near it`);
    }
  });

  test('helm lint passes (the schema is applied)', () => {
    const out = execFileSync(helmBinary(), ['lint', CHART, '--strict'], { encoding: 'utf8' });
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  test('helm refuses values outside the schema', () => {
    const r = spawnSync(helmBinary(), ['template', 'flowtel', CHART, '--set', 'securityContext.seccompProfile=Privileged'], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /seccompProfile/);
  });

  const variants: [string, string[], (ms: Manifest[]) => void][] = [
    ['defaults', [], (ms) => {
      checkDaemonSet(ms.find((m) => m.kind === 'DaemonSet')!);
      assert.deepEqual(ms.map((m) => m.kind).sort(), ['ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'ClusterRoleBinding', 'ConfigMap', 'ConfigMap', 'DaemonSet', 'Deployment', 'Service', 'ServiceAccount', 'ServiceAccount']);
      const cm = ms.find((m) => m.kind === 'ConfigMap' && m.metadata?.name === 'flowtel-config')!;
      assert.deepEqual(parse(at(cm, 'data', 'config.yaml') as string), parse(kubernetesConfigText()));
      checkKubernetesConfig(at(cm, 'data', 'config.yaml') as string, ms.find((m) => m.kind === 'DaemonSet')!);
      const gw = ms.find((m) => m.kind === 'ConfigMap' && m.metadata?.name === 'flowtel-gateway-config')!;
      assert.deepEqual(parse(at(gw, 'data', 'collector.yaml') as string), parse(gatewayConfigText()));
    }],
    ['sysAdmin', ['securityContext.sysAdmin=true'], (ms) => checkDaemonSet(ms.find((m) => m.kind === 'DaemonSet')!, true)],
    ['otlp preset, one key overridden', ['configPreset=otlp', 'config.processors.aggregate.cardinality_limit=5000'], (ms) => {
      const text = at(ms.find((m) => m.kind === 'ConfigMap' && m.metadata?.name === 'flowtel-config'), 'data', 'config.yaml') as string;
      const expected = parse(otlpConfigText()) as Obj;
      (at(expected, 'processors', 'aggregate') as Obj).cardinality_limit = 5000;
      assert.deepEqual(parse(text), expected, 'the preset with the one key replaced, nothing else');
      validFlowtelConfig(text);
      const checksum = (m: Manifest[]): unknown => at(m.find((x) => x.kind === 'DaemonSet'), 'spec', 'template', 'metadata', 'annotations', 'checksum/config');
      assert.notEqual(checksum(ms), checksum(helmTemplate()), 'another config restarts the agents');
    }],
    ['no preset: config is the whole agent config', ['configPreset=none', 'config.receivers.ebpf_tcp.collection_interval=5s', 'config.exporters.debug.verbosity=basic', 'config.extensions.health_check.endpoint=0.0.0.0:13133', 'config.service.extensions={health_check}', 'config.service.pipelines.metrics.receivers={ebpf_tcp}', 'config.service.pipelines.metrics.exporters={debug}'], (ms) => {
      const text = at(ms.find((m) => m.kind === 'ConfigMap' && m.metadata?.name === 'flowtel-config'), 'data', 'config.yaml') as string;
      assert.deepEqual(parse(text), {
        receivers: { ebpf_tcp: { collection_interval: '5s' } },
        exporters: { debug: { verbosity: 'basic' } },
        extensions: { health_check: { endpoint: '0.0.0.0:13133' } },
        service: { extensions: ['health_check'], pipelines: { metrics: { receivers: ['ebpf_tcp'], exporters: ['debug'] } } },
      }, 'nothing of a preset');
      validFlowtelConfig(text);
    }],
    ['kubernetes preset, a list replaced', ['config.processors.k8s.pod_labels={team}'], (ms) => {
      const text = at(ms.find((m) => m.kind === 'ConfigMap' && m.metadata?.name === 'flowtel-config'), 'data', 'config.yaml') as string;
      assert.deepEqual(at(parse(text), 'processors', 'k8s'), { auth_type: 'serviceAccount', node_from_env_var: 'KUBE_NODE_NAME', pod_labels: ['team'] });
      checkKubernetesConfig(text, ms.find((m) => m.kind === 'DaemonSet')!);
    }],
    ['no gateway, external endpoint, no RBAC', ['gateway.enabled=false', 'otlpEndpoint=http://otel.example:4317', 'rbac.create=false'], (ms) => {
      assert.deepEqual(ms.map((m) => m.kind).sort(), ['ConfigMap', 'DaemonSet', 'ServiceAccount']);
      const env = at(ms.find((m) => m.kind === 'DaemonSet'), 'spec', 'template', 'spec', 'containers', 0, 'env') as Obj[];
      assert.equal(env.find((e) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT')?.value, 'http://otel.example:4317');
    }],
  ];
  for (const [name, sets, check] of variants) {
    test(`helm template (${name}) renders manifests valid against the Kubernetes API schemas`, async () => {
      const ms = helmTemplate(sets);
      await assertValid(ms, `helm template ${sets.join(' ')}`);
      check(ms);
    });
  }

  test('the chart and deploy/kubernetes give the agent the same pod security and mounts', () => {
    const raw = docs(readFileSync(path.join(K8S_DIR, 'agent.yaml'), 'utf8')).find((m) => m.kind === 'DaemonSet')!;
    const rendered = helmTemplate().find((m) => m.kind === 'DaemonSet')!;
    for (const keys of [['securityContext'], ['volumeMounts'], ['livenessProbe'], ['readinessProbe'], ['resources'], ['args']]) {
      assert.deepEqual(at(rendered, 'spec', 'template', 'spec', 'containers', 0, ...keys), at(raw, 'spec', 'template', 'spec', 'containers', 0, ...keys), keys.join('.'));
    }
    const volumes = (m: Manifest): unknown => (at(m, 'spec', 'template', 'spec', 'volumes') as Obj[]).filter((v) => v.name !== 'config');
    assert.deepEqual(volumes(rendered), volumes(raw));
  });
});

describe('deploy/config, docker-compose, Dockerfile, systemd', () => {
  for (const f of readdirSync(path.join(ROOT, 'deploy', 'config'))) {
    test(`deploy/config/${f} is a valid flowtel config`, () => validFlowtelConfig(readFileSync(path.join(ROOT, 'deploy', 'config', f), 'utf8')));
  }

  test('the health_check and self-telemetry ports of the agent configs match the chart and the manifests', () => {
    for (const text of [kubernetesConfigText(), otlpConfigText()]) {
      const cfg = parse(text) as Obj;
      assert.match(String(at(cfg, 'extensions', 'health_check', 'endpoint')), /:13133$/);
      assert.match(String(at(cfg, 'service', 'telemetry', 'metrics', 'address')), /:9465$/);
    }
    const values = parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as Obj;
    assert.equal(at(values, 'healthCheck', 'port'), 13133);
    assert.equal(at(values, 'telemetry', 'port'), 9465);
  });

  test('docker-compose.yaml is valid (Debian docker-compose config) and provisions the dashboards', () => {
    const file = path.join(ROOT, 'deploy', 'docker-compose', 'docker-compose.yaml');
    const out = execFileSync('docker-compose', ['-f', file, 'config'], { encoding: 'utf8' });
    const compose = parse(out) as { services: Record<string, Obj> };
    assert.deepEqual(Object.keys(compose.services).sort(), ['collector', 'flowtel', 'grafana', 'loki', 'prometheus', 'tempo']);
    const agent = compose.services.flowtel!;
    assert.equal(agent.network_mode, 'host');
    assert.equal(agent.pid, 'host');
    assert.equal(agent.privileged, undefined);
    assert.deepEqual([...(agent.cap_add as string[])].sort(), [...CAPABILITIES].sort());
    const grafanaVolumes = (compose.services.grafana!.volumes as (string | Obj)[]).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`));
    assert.ok(grafanaVolumes.some((v) => v.startsWith(`${path.join(ROOT, 'dashboards')}:`)), grafanaVolumes.join(', '));
    // Every file the stack mounts from the repository exists.
    for (const s of Object.values(compose.services)) {
      for (const v of (s.volumes as (string | Obj)[] | undefined) ?? []) {
        const source = typeof v === 'string' ? v.split(':')[0]! : String(v.source);
        if (source.startsWith(ROOT)) assert.ok(existsSync(source), source);
      }
    }
    const prom = parse(readFileSync(path.join(ROOT, 'deploy', 'docker-compose', 'prometheus.yml'), 'utf8')) as { scrape_configs: { static_configs: { targets: string[] }[] }[] };
    const targets = prom.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    assert.deepEqual(targets.sort(), ['collector:8889', 'host.docker.internal:9465']);
  });

  test('the Dockerfile is multi-stage (Debian 12 Node 20 build, slim runtime) and copies what exists', () => {
    const text = readFileSync(path.join(ROOT, 'deploy', 'docker', 'Dockerfile'), 'utf8');
    const froms = [...text.matchAll(/^FROM (\S+) AS (\S+)$/gm)].map((m) => [m[1], m[2]]);
    assert.deepEqual(froms, [['${BUILD_IMAGE}', 'build'], ['${RUNTIME_IMAGE}', 'runtime']]);
    // The base images are build arguments (a registry-less builder passes local ones:
    // deploy/docker/smoke-test.sh); what users get by default is Docker Hub's Node 20 on Debian 12.
    const args = Object.fromEntries([...text.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
    assert.equal(args.NODE_VERSION, '20');
    assert.equal(args.BUILD_IMAGE, 'node:${NODE_VERSION}-bookworm');
    assert.equal(args.RUNTIME_IMAGE, 'node:${NODE_VERSION}-bookworm-slim');
    assert.ok(text.indexOf('ARG BUILD_IMAGE') < text.indexOf('FROM '), 'the base-image ARGs come before the first FROM');
    // No "# syntax=" directive: BuildKit would pull a frontend image for it (no registry, no build).
    assert.doesNotMatch(text, /^# *syntax=/m);
    // Everything the runtime loads at start: dist/src/telemetry/resource.js requires ../../package.json.
    for (const c of ['/src/dist/src', '/src/dist/package.json', '/src/bpf/.output/*.bpf.o', '/src/native/build/Release/flowtel_native.node']) {
      assert.ok(text.includes(`COPY --from=build ${c} `), `runtime COPY of ${c}`);
    }
    for (const m of text.matchAll(/^COPY (?!--from)(\S+) /gm)) {
      for (const src of m[1]!.split(' ')) assert.ok(existsSync(path.join(ROOT, src)), `COPY ${src}`);
    }
    assert.match(text, /make -C bpf/);
    assert.match(text, /node-gyp rebuild/);
    assert.match(text, /tsc -p tsconfig\.json/);
  });

  test('the Dockerfile, the systemd unit and `npm start` start node with the V8 flags of bin/flowtel', () => {
    const shebang = readFileSync(path.join(ROOT, 'bin', 'flowtel'), 'utf8').split('\n')[0]!;
    const flags = shebang.split(' ').filter((w) => w.startsWith('--'));
    assert.ok(flags.length > 0, shebang);
    const dockerfile = readFileSync(path.join(ROOT, 'deploy', 'docker', 'Dockerfile'), 'utf8');
    const entrypoint = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(dockerfile)![1]!) as string[];
    assert.deepEqual(entrypoint, ['node', ...flags, '/opt/flowtel/dist/src/cli/main.js']);
    const unit = readFileSync(path.join(ROOT, 'deploy', 'systemd', 'flowtel.service'), 'utf8');
    assert.match(/^ExecStart=(.*)$/m.exec(unit)![1]!, new RegExp(`^/usr/bin/node ${flags.join(' ')} /opt/flowtel/dist/src/cli/main\\.js `));
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.start, `node ${flags.join(' ')} dist/src/cli/main.js run`);
  });

  test('systemd-analyze verify accepts the unit, which grants the capabilities the agent needs', () => {
    const unit = path.join(ROOT, 'deploy', 'systemd', 'flowtel.service');
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', r.stderr);
    const caps = /^CapabilityBoundingSet=(.*)$/m.exec(readFileSync(unit, 'utf8'))![1]!.split(' ');
    for (const c of CAPABILITIES) assert.ok(caps.includes(`CAP_${c}`), c);
  });
});
