/**
 * End to end: the container deploy, for real. deploy/docker/smoke-test.sh
 * builds the image with deploy/docker/Dockerfile on this machine (no container
 * registry: a debootstrap'd Debian 12 base with this machine's Node 20, cached
 * after the first run), runs it with docker-compose as
 * deploy/docker-compose/docker-compose.yaml says (its capabilities, not
 * privileged, host network and PID, its mounts), makes TCP connections
 * between two network namespaces of its own and compares the agent's
 * Prometheus endpoint with them, stops the container with SIGTERM and checks
 * that no BPF program is left, then brings up the agent with its compose
 * config and a Prometheus on the compose network that scrapes it.
 *
 * The script makes every check itself and stops at the first that fails; this
 * test runs it and requires each step's "ok" line and the exact counts it read.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/e2e';

const SCRIPT = path.join(REPO, 'deploy', 'docker', 'smoke-test.sh');
const CONNECTIONS = 25;

interface Run {
  code: number | null;
  output: string;
}

function runScript(env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

// A cold run (debootstrap, the image build, npm ci inside it) takes minutes; later runs reuse the cache.
test('the image builds from deploy/docker/Dockerfile and runs as docker-compose.yaml runs it: eBPF loaded, exact connection counts, clean SIGTERM, scraped by the compose Prometheus', { timeout: 20 * 60_000 }, async () => {
  const run = await runScript({
    FLOWTEL_SMOKE_NETNS: 'imgsmoke',
    FLOWTEL_SMOKE_SUBNET: '92',
    FLOWTEL_SMOKE_CONNECTIONS: String(CONNECTIONS),
  });
  assert.equal(run.code, 0, run.output);
  const oks = run.output.split('\n').filter((l) => / ok - /.test(l));
  const step = (re: RegExp): string => {
    const line = oks.find((l) => re.test(l));
    assert.ok(line, `no "ok" line matching ${re}\n${run.output}`);
    return line;
  };
  step(/ok - base image flowtel-local\/node:20\.\S+-bookworm/);
  step(/ok - image flowtel:0\.1\.0 built/);
  step(/ok - container \w+: not privileged, network host, pid host, read-only root, security_opt .*seccomp=unconfined/);
  // Exactly the compose file's cap_add (less what root lacks on the machine), no CAP_SYS_ADMIN.
  const caps = step(/ok - the agent \(host pid \d+\) holds exactly: /).replace(/.*holds exactly: ([A-Z_ ]+?)( \(.*)?$/, '$1').split(' ');
  for (const c of ['BPF', 'PERFMON', 'NET_ADMIN', 'NET_RAW', 'SYS_PTRACE', 'DAC_READ_SEARCH']) assert.ok(caps.includes(c), `${c} in ${caps.join(' ')}`);
  assert.ok(!caps.includes('SYS_ADMIN'), caps.join(' '));
  const programs = step(/ok - eBPF programs loaded by the agent in the container/);
  for (const p of ['handle_set_state', 'dump_tcp', 'udp_sock_create', 'dns_filter']) assert.match(programs, new RegExp(`\\b${p}\\b`));
  // The counts as the script read them from the agent's /metrics.
  const value = (metric: string, direction: string): number => {
    const m = new RegExp(`${metric}\\{[^}]*flow_direction=${direction}\\} = (\\d+)`).exec(run.output);
    assert.ok(m, `${metric} ${direction} in the output`);
    return Number(m[1]);
  };
  assert.equal(value('tcp_connections_opened_total', 'outgoing'), CONNECTIONS);
  assert.equal(value('tcp_connections_closed_total', 'outgoing'), CONNECTIONS);
  assert.equal(value('tcp_connections_opened_total', 'incoming'), CONNECTIONS);
  assert.equal(value('tcp_connections_closed_total', 'incoming'), CONNECTIONS);
  step(new RegExp(`ok - exactly the ${CONNECTIONS} connections made`));
  step(/ok - health_check extension: 200/);
  step(/ok - docker stop \(SIGTERM\): exit code 0 after \d+ s, "flowtel stopped", none of its \d+ BPF programs left loaded, none named like flowtel's held by nobody/);
  step(/ok - Prometheus \(compose network\) scrapes the agent at host\.docker\.internal:9465: up = 1/);
  step(/ok - docker stop with the compose config too .*: exit code 0/);
});
