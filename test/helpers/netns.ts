/**
 * Test hosts: two network namespaces joined by a veth pair, each with its own
 * IPv4 and IPv6 address. Traffic in tests goes only between such hosts (or
 * loopback) — never anywhere else.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';

export function sh(cmd: string, args: readonly string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export interface TestHost {
  ns: string;
  /** veth device inside the namespace. */
  dev: string;
  ip4: string;
  ip6: string;
}

/** dist/test/helpers/traffic.js: the traffic generator run inside the namespaces. */
export const TRAFFIC = path.join(__dirname, 'traffic.js');

export class TestNet {
  readonly client: TestHost;
  readonly server: TestHost;

  /** `subnet` (1–250) must be unique per test file: hosts are 10.201.<subnet>.1 and .2. */
  constructor(readonly name: string, readonly subnet: number) {
    const p = `ft${name}`;
    this.client = { ns: `${p}-c`, dev: `${p}c`, ip4: `10.201.${subnet}.1`, ip6: `fd00:201:${subnet}::1` };
    this.server = { ns: `${p}-s`, dev: `${p}s`, ip4: `10.201.${subnet}.2`, ip6: `fd00:201:${subnet}::2` };
  }

  static create(name: string, subnet: number): TestNet {
    const net = new TestNet(name, subnet);
    net.destroy();
    const { client: c, server: s } = net;
    sh('ip', ['netns', 'add', c.ns]);
    sh('ip', ['netns', 'add', s.ns]);
    sh('ip', ['link', 'add', c.dev, 'netns', c.ns, 'type', 'veth', 'peer', 'name', s.dev, 'netns', s.ns]);
    for (const h of [c, s]) {
      net.exec(h, 'ip', ['link', 'set', 'lo', 'up']);
      net.exec(h, 'ip', ['addr', 'add', `${h.ip4}/24`, 'dev', h.dev]);
      net.exec(h, 'ip', ['-6', 'addr', 'add', `${h.ip6}/64`, 'dev', h.dev, 'nodad']);
      net.exec(h, 'ip', ['link', 'set', h.dev, 'up']);
      // Failures must show up in seconds, not minutes.
      net.exec(h, 'sysctl', ['-q', '-w', 'net.ipv4.tcp_syn_retries=1']);
    }
    return net;
  }

  exec(h: TestHost, cmd: string, args: readonly string[], input?: string): string {
    return sh('ip', ['netns', 'exec', h.ns, cmd, ...args], input);
  }

  /** Start a process inside a host's namespace. Its pid is the program's own (ip netns exec execs it). */
  spawn(h: TestHost, cmd: string, args: readonly string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', h.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Run the traffic generator in a host; resolves with its JSON result line. */
  async traffic<T = Record<string, unknown>>(h: TestHost, args: readonly string[]): Promise<{ pid: number; result: T }> {
    const child = this.spawn(h, process.execPath, [TRAFFIC, ...args]);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`traffic ${args.join(' ')} in ${h.ns} exited ${code}: ${err}`);
    const last = out.trim().split('\n').pop() ?? '{}';
    return { pid: child.pid!, result: JSON.parse(last) as T };
  }

  /** Start a long-running traffic process (a server); resolves once it printed its ready line. */
  async startServer(h: TestHost, args: readonly string[]): Promise<ChildProcess> {
    const child = this.spawn(h, process.execPath, [TRAFFIC, ...args]);
    let out = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`server ${args.join(' ')} exited ${code} before ready`)));
    });
    return child;
  }

  /** A kernel counter of one namespace (nstat reads /proc/net/snmp and netstat of that netns). */
  nstat(h: TestHost, counter: string): number {
    const out = this.exec(h, 'nstat', ['-asz', counter]);
    const m = new RegExp(`^${counter}\\s+(\\d+)`, 'm').exec(out);
    return m ? Number(m[1]) : 0;
  }

  nft(h: TestHost, ruleset: string): void {
    this.exec(h, 'nft', ['-f', '-'], ruleset);
  }

  destroy(): void {
    for (const ns of [this.client.ns, this.server.ns]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        /* not there */
      }
    }
  }
}
