/**
 * Known traffic for kernel tests, run inside test namespaces:
 *
 *   tcp-server --host H --port P --reply M [--mode normal|rst|hold]
 *       accepts connections; reads until the client half-closes, answers M
 *       bytes and closes (normal); aborts with RST after the first bytes (rst);
 *       or echoes what it reads until the client closes (hold).
 *   tcp-client --host H --port P --send N [--hold-ms T] [--chunk C]
 *       sends N bytes, half-closes, reads the answer to EOF. Prints
 *       {"sent":N,"received":M,"localPort":p,"error":...}.
 *   churn --host H --port P --count K [--parallel J]
 *       K connections, each sending 1 byte and reading the 1-byte answer.
 *   connect --host H --port P [--timeout-ms T]
 *       one connection attempt; prints {"error":"ECONNREFUSED"|...}.
 *   udp-server --host H --port P       echoes every datagram
 *   udp-client --host H --port P --count D --size S
 *       sends D datagrams of S bytes (waiting for each echo).
 * Every command prints one JSON line last; servers print "ready" first.
 */
import dgram from 'node:dgram';
import net from 'node:net';

type Args = Record<string, string>;

function parseArgs(argv: string[]): { cmd: string; args: Args } {
  const [cmd = '', ...rest] = argv;
  const args: Args = {};
  for (let i = 0; i < rest.length; i += 2) args[rest[i]!.replace(/^--/, '')] = rest[i + 1] ?? '';
  return { cmd, args };
}

function num(args: Args, k: string, d?: number): number {
  const v = args[k];
  if (v === undefined) {
    if (d === undefined) throw new Error(`--${k} is required`);
    return d;
  }
  return Number(v);
}

function done(result: unknown): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function tcpServer(args: Args): void {
  const reply = num(args, 'reply', 0);
  const mode = args.mode ?? 'normal';
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined);
    if (mode === 'rst') {
      sock.once('data', () => sock.resetAndDestroy());
      return;
    }
    if (mode === 'hold') {
      sock.pipe(sock);
      return;
    }
    let got = 0;
    sock.on('data', (d: Buffer) => (got += d.length));
    sock.on('end', () => {
      sock.end(Buffer.alloc(reply, 0x61));
      process.stderr.write(`server got ${got}\n`);
    });
  });
  server.listen(num(args, 'port'), args.host, () => process.stdout.write('ready\n'));
}

async function tcpClient(args: Args): Promise<void> {
  const send = num(args, 'send', 0);
  const holdMs = num(args, 'hold-ms', 0);
  const chunk = num(args, 'chunk', 65536);
  const sock = net.connect({ host: args.host, port: num(args, 'port') });
  let received = 0;
  sock.on('data', (d: Buffer) => (received += d.length));
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const localPort = sock.localPort;
  const closed = new Promise<string | undefined>((resolve) => {
    let error: string | undefined;
    sock.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    sock.once('close', () => resolve(error));
  });
  for (let left = send; left > 0; left -= chunk) {
    if (!sock.write(Buffer.alloc(Math.min(chunk, left), 0x62))) await new Promise((r) => sock.once('drain', r));
  }
  if (holdMs > 0) await new Promise((r) => setTimeout(r, holdMs));
  if (!sock.destroyed) sock.end();
  const error = await closed;
  done({ sent: send, received, localPort, error });
}

async function churn(args: Args): Promise<void> {
  const count = num(args, 'count');
  const parallel = num(args, 'parallel', 16);
  let next = 0;
  let ok = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = net.connect({ host: args.host, port: num(args, 'port') }, () => s.end(Buffer.from('x')));
      s.on('data', () => undefined);
      s.once('close', (hadError) => (hadError ? reject(new Error('connection failed')) : (ok++, resolve())));
      s.once('error', reject);
    });
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        next++;
        await one();
      }
    }),
  );
  done({ connections: ok });
}

async function connectOnce(args: Args): Promise<void> {
  const sock = net.connect({ host: args.host, port: num(args, 'port') });
  const error = await new Promise<string | undefined>((resolve) => {
    sock.once('connect', () => resolve(undefined));
    sock.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
  });
  sock.destroy();
  done({ error });
}

function udpServer(args: Args): void {
  const host = args.host ?? '0.0.0.0';
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
  s.bind(num(args, 'port'), host, () => process.stdout.write('ready\n'));
}

async function udpClient(args: Args): Promise<void> {
  const host = args.host!;
  const count = num(args, 'count');
  const size = num(args, 'size');
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  let received = 0;
  for (let i = 0; i < count; i++) {
    const echoed = new Promise<number>((resolve) => s.once('message', (m: Buffer) => resolve(m.length)));
    s.send(Buffer.alloc(size, 0x63), num(args, 'port'), host);
    received += await echoed;
  }
  const localPort = s.address().port;
  s.close();
  done({ sent: count * size, received, localPort });
}

async function main(): Promise<void> {
  const { cmd, args } = parseArgs(process.argv.slice(2));
  switch (cmd) {
    case 'tcp-server':
      return tcpServer(args);
    case 'tcp-client':
      return tcpClient(args);
    case 'churn':
      return churn(args);
    case 'connect':
      return connectOnce(args);
    case 'udp-server':
      return udpServer(args);
    case 'udp-client':
      return udpClient(args);
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
