/**
 * End-to-end helpers: the `flowtel` CLI as a child process (`node bin/flowtel
 * run --config FILE`), what it attached to the kernel (from /proc/PID/fdinfo
 * and `bpftool prog show`), and its Prometheus endpoint.
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The checkout: dist/test/helpers → three levels up. */
export const REPO = path.resolve(__dirname, '..', '..', '..');
export const BIN = path.join(REPO, 'bin', 'flowtel');

/** The programs of bpf/flowtel_tcp.bpf.c, by the names the kernel shows. */
export const OUR_PROGRAMS = [
  'handle_set_state',
  'set_state_spare',
  'handle_send_reset',
  'handle_receive_reset',
  'dump_tracked',
  'dump_tcp',
  'udp_egress',
  'udp_ingress',
  'udp_sock_create',
] as const;

/** Loaded instead of one of OUR_PROGRAMS on some kernels: dump_tracked's twin for kernels before 6.2 (no bpf_rdonly_cast). */
const OUR_ALTERNATES: Readonly<Record<string, (typeof OUR_PROGRAMS)[number]>> = { dump_tracked_compat: 'dump_tracked' };

/** The kernel keeps 15 characters of a program name; bpftool shows the BTF name when it has one. */
function isOurProgramName(name: string): boolean {
  return [...OUR_PROGRAMS, ...Object.keys(OUR_ALTERNATES)].some((p) => p === name || p.slice(0, 15) === name);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `check` every `everyMs` until it holds; fail with `what` (and `detail()`) after `timeoutMs`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, detail?: () => string, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail()}` : ''}`);
    await sleep(everyMs);
  }
}

/** Ports freePort() handed out in this process. */
const portsGiven = new Set<number>();

/**
 * A free TCP port on 127.0.0.1 (PrometheusExporter treats port 0 as unset, so
 * ask the kernel for one and release it). Never one it gave before in this
 * process: a port released here can come back from the next call, and two
 * calls for two servers then got the same port.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (portsGiven.has(port)) continue;
    portsGiven.add(port);
    return port;
  }
}

/** A scratch directory for config files, removed by `cleanup()`. World-readable so `nobody` can read the configs. */
export class TempDir {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'flowtel-e2e-'));
  constructor() {
    chmodSync(this.dir, 0o755);
  }
  write(name: string, text: string): string {
    const file = path.join(this.dir, name);
    writeFileSync(file, text, { mode: 0o644 });
    return file;
  }
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface AgentOptions {
  /** Extra environment (OTEL_* and FLOWTEL_* of the test process are never inherited). */
  readonly env?: Record<string, string>;
  /** Run as `nobody` with no capabilities at all (setpriv execs node, so the pid is the agent's). */
  readonly unprivileged?: boolean;
  /** With `unprivileged`: exactly these capabilities (e.g. ['bpf', 'perfmon', 'net_admin']), inherited, ambient and bounding. */
  readonly capabilities?: readonly string[];
  /** Run in this network namespace (`nsenter --net`, which keeps /sys and the cgroup mount as they are). */
  readonly netns?: string;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type LogLine = Record<string, unknown> & { level?: string; msg?: string };

/** `node bin/flowtel ARGS...` with its stdout and stderr kept. */
export class Agent {
  stdout = '';
  stderr = '';
  exit?: Exit;
  readonly exited: Promise<Exit>;
  readonly startedAtMs = Date.now();

  private constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => {
      // 'close': the process exited and its stdio is fully read.
      child.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  static spawn(args: readonly string[], options: AgentOptions = {}): Agent {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(OTEL_|FLOWTEL_)/.test(k)) env[k] = v;
    Object.assign(env, options.env ?? {});
    let argv = [process.execPath, BIN, ...args];
    if (options.unprivileged) {
      const caps = (options.capabilities ?? []).map((c) => `,+${c}`).join('');
      const ambient = caps === '' ? [] : [`--ambient-caps=-all${caps}`];
      argv = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', `--inh-caps=-all${caps}`, ...ambient, `--bounding-set=-all${caps}`, ...argv];
    }
    if (options.netns) argv = ['nsenter', `--net=/run/netns/${options.netns}`, '--', ...argv];
    const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    return new Agent(child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** The agent's JSON log lines (stderr). */
  logs(): LogLine[] {
    const out: LogLine[] = [];
    for (const line of this.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as LogLine);
      } catch {
        /* a partial line */
      }
    }
    return out;
  }

  /** stderr lines that are not JSON log lines. */
  plainStderrLines(): string[] {
    return this.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'));
  }

  describe(): string {
    return `agent pid ${this.pid} ${this.exit ? `exited ${JSON.stringify(this.exit)}` : 'running'}\n--- stderr ---\n${this.stderr}\n--- stdout (last 4000) ---\n${this.stdout.slice(-4000)}`;
  }

  /** Wait for a condition on the agent's output; fails at once if the agent exits first. */
  async waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
    await until(
      what,
      () => {
        if (check()) return true;
        if (!this.running) assert.fail(`the agent exited before ${what}\n${this.describe()}`);
        return false;
      },
      timeoutMs,
      () => this.describe(),
      50,
    );
  }

  /** Resolves once the agent logged "flowtel running" (everything started). */
  ready(timeoutMs = 15_000): Promise<void> {
    return this.waitFor('"flowtel running"', () => this.logs().some((l) => l.msg === 'flowtel running'), timeoutMs);
  }

  /** Send `signal` and wait for the exit (SIGKILL and fail after `timeoutMs`). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<Exit> {
    if (this.running) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    assert.ok(!(exit.signal === 'SIGKILL' && signal !== 'SIGKILL'), `the agent did not exit within ${timeoutMs} ms of ${signal}\n${this.describe()}`);
    return exit;
  }

  /** Last resort for cleanup: make sure this agent is gone. */
  async kill(): Promise<void> {
    if (this.running) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  /** BPF program ids this process holds (program and link fds), from /proc/PID/fdinfo. */
  heldProgramIds(): Set<number> {
    return programIdsHeldBy(this.pid);
  }
}

/** Run the CLI to completion (validate, components, …). */
export async function runCli(args: readonly string[], options: AgentOptions = {}, timeoutMs = 15_000): Promise<{ exit: Exit; stdout: string; stderr: string; agent: Agent }> {
  const agent = Agent.spawn(args, options);
  const timer = setTimeout(() => agent.child.kill('SIGKILL'), timeoutMs);
  const exit = await agent.exited;
  clearTimeout(timer);
  return { exit, stdout: agent.stdout, stderr: agent.stderr, agent };
}

// ---------------------------------------------------------------------------
// What is attached to the kernel

export interface BpfProgram {
  id: number;
  name: string;
  type: string;
  uid?: number;
}

export function bpfPrograms(): BpfProgram[] {
  const out = execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' });
  return (JSON.parse(out || '[]') as BpfProgram[]).map((p) => ({ id: p.id, name: p.name ?? '', type: p.type, uid: p.uid }));
}

/** Programs named like flowtel's, loaded by anyone. */
export function ourNamedPrograms(): BpfProgram[] {
  return bpfPrograms().filter((p) => isOurProgramName(p.name));
}

function programIdsFromFdinfo(dir: string, into: Set<number>): void {
  let fds: string[];
  try {
    fds = readdirSync(dir);
  } catch {
    return;
  }
  for (const fd of fds) {
    let text: string;
    try {
      text = readFileSync(path.join(dir, fd), 'utf8');
    } catch {
      continue;
    }
    const m = /^prog_id:\s*(\d+)$/m.exec(text);
    if (m) into.add(Number(m[1]));
  }
}

export function programIdsHeldBy(pid: number): Set<number> {
  const ids = new Set<number>();
  programIdsFromFdinfo(`/proc/${pid}/fdinfo`, ids);
  return ids;
}

function programIdsHeldByAnyProcess(): Set<number> {
  const ids = new Set<number>();
  for (const entry of readdirSync('/proc')) if (/^\d+$/.test(entry)) programIdsFromFdinfo(`/proc/${entry}/fdinfo`, ids);
  return ids;
}

/**
 * Programs named like ours that no process holds: attached with nothing to
 * detach them (a legacy cgroup attach, a pin) — what a crashed or careless
 * agent leaves behind. Programs of another live flowtel (or of an in-process
 * kernel test) are held by that process and are not counted. Re-checked so a
 * program that another process is loading or freeing at that moment is not
 * taken for a leak.
 */
export async function orphanedOurPrograms(): Promise<BpfProgram[]> {
  let orphans: BpfProgram[] | undefined;
  for (let round = 0; round < 3; round++) {
    const named = ourNamedPrograms();
    const held = programIdsHeldByAnyProcess();
    const now = named.filter((p) => !held.has(p.id));
    orphans = orphans === undefined ? now : orphans.filter((o) => now.some((p) => p.id === o.id));
    if (orphans.length === 0) return [];
    await sleep(200);
  }
  return orphans ?? [];
}

/**
 * While the agent runs: every program of ours is loaded, held by the agent
 * and listed by `bpftool prog show`. Returns their ids.
 */
export function assertProgramsAttached(agent: Agent): Set<number> {
  const held = agent.heldProgramIds();
  const listed = bpfPrograms().filter((p) => held.has(p.id));
  // An alternate stands for the program it replaces on this kernel.
  const names = listed.map((p) => OUR_ALTERNATES[p.name] ?? p.name).sort();
  assert.deepEqual(names, [...OUR_PROGRAMS].sort(), `programs held by the agent (pid ${agent.pid}) as bpftool shows them`);
  return new Set(listed.map((p) => p.id));
}

/** After the agent exited: none of its programs is loaded any more, and no program of ours is left without an owner. */
export async function assertNothingAttached(ids: ReadonlySet<number> = new Set()): Promise<void> {
  // The kernel frees a program when its last reference goes, which may be deferred a little after exit.
  let left: BpfProgram[] = [];
  await until(
    'the agent programs to be unloaded',
    () => {
      left = bpfPrograms().filter((p) => ids.has(p.id));
      return left.length === 0;
    },
    3_000,
    () => `still loaded: ${JSON.stringify(left)}`,
  );
  const orphans = await orphanedOurPrograms();
  assert.deepEqual(orphans, [], 'BPF programs named like flowtel\'s that no process holds (left attached)');
}

// ---------------------------------------------------------------------------
// Prometheus text format

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromScrape {
  text: string;
  samples: PromSample[];
  /** `# TYPE name type` */
  types: Map<string, string>;
  /** `# UNIT name unit` */
  units: Map<string, string>;
}

export function parsePrometheus(text: string): PromScrape {
  const samples: PromSample[] = [];
  const types = new Map<string, string>();
  const units = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let m = /^# (TYPE|UNIT) (\S+) (.*)$/.exec(line);
    if (m) {
      (m[1] === 'TYPE' ? types : units).set(m[2]!, m[3]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const raw = m[3]!;
    samples.push({ name: m[1]!, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return { text, samples, types, units };
}

export async function scrape(url: string): Promise<PromScrape> {
  const response = await fetch(url);
  assert.equal(response.status, 200, `GET ${url}`);
  return parsePrometheus(await response.text());
}

/** Samples of `name` whose labels include every pair of `match`. */
export function promSelect(s: PromScrape, name: string, match: Record<string, string>): PromSample[] {
  return s.samples.filter((x) => x.name === name && Object.entries(match).every(([k, v]) => x.labels[k] === v));
}

/** The sum of the matching samples (0 when there are none). */
export function promSum(s: PromScrape, name: string, match: Record<string, string>): number {
  return promSelect(s, name, match).reduce((a, x) => a + x.value, 0);
}

/**
 * nobody must be able to load `node bin/flowtel` (the whole require graph:
 * dist/, node_modules/, the native addon). Where it cannot, this opens exactly
 * that: o+x on the directories above the checkout, o+rX on what the CLI loads
 * (bin, dist, node_modules, native/build, bpf/.output, package.json).
 */
export function ensureRunnableByNobody(): void {
  const probe = (): void => {
    execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', process.execPath, BIN, '--version'], { stdio: 'ignore' });
  };
  try {
    probe();
    return;
  } catch {
    /* open the path below */
  }
  for (let dir = REPO; ; dir = path.dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
    if (dir === path.dirname(dir)) break;
  }
  for (const p of ['bin', 'dist', 'node_modules', 'native/build', 'bpf/.output', 'package.json']) execFileSync('chmod', ['-R', 'o+rX', path.join(REPO, p)]);
  probe();
}
