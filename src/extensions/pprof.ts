/**
 * `pprof` extension, after the Collector's (same name, same `endpoint`
 * option and default, same URL paths), with what a Node.js process can give:
 * V8's own profile formats, which Chrome DevTools (Memory and Performance
 * panels), VS Code and speedscope open.
 *
 * - `GET /debug/pprof/` — the list of profiles (text).
 * - `GET /debug/pprof/heap` — a heap snapshot (`.heapsnapshot` JSON,
 *   v8.getHeapSnapshot()). Taking it stops the agent for as long as the
 *   heap walk lasts (about a second per 100 MiB of heap): ring buffers are
 *   not drained meanwhile.
 * - `GET /debug/pprof/profile?seconds=N` — a CPU profile of the next N
 *   seconds (default 30, at most 300; `.cpuprofile` JSON from the inspector's
 *   Profiler domain, in-process: no debugger port is opened). One at a time
 *   (409 while one runs); closing the request stops it.
 *
 * - `save_to_file` (the Collector's option): a CPU profile of the agent's
 *   whole run, started with the extension and written to that file when the
 *   agent stops. V8 samples every millisecond: the
 *   profile grows by tens of MB per hour, so use it for bounded runs.
 *
 * The default endpoint is localhost:1777, as in the Collector: profiles show
 * the agent's memory, which holds addresses and process names, so do not
 * bind it to a public address.
 */
import { Session } from 'node:inspector/promises';
import { closeSync, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getHeapSnapshot } from 'node:v8';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../config/schema';
import { formatHostPort, parseHostPort, type HostPort } from '../exporters/endpoint';
import { ConfigErrorList } from '../config/errors';
import { HTTP_SERVER_AUTH_OPTION, HTTP_SERVER_TLS_OPTION, checkHttpServerSecurity, createSecureServer, httpServerSecurity, schemeOf } from '../util/http-server';
import type { Extension, ExtensionContext, ExtensionFactory } from './extension';

export const DEFAULT_PPROF_ENDPOINT = 'localhost:1777';
export const PPROF_PATH = '/debug/pprof/';
export const DEFAULT_PROFILE_SECONDS = 30;
export const MAX_PROFILE_SECONDS = 300;

const PPROF_SCHEMA = {
  endpoint: {
    type: 'string',
    default: DEFAULT_PPROF_ENDPOINT,
    check: (value: string) => {
      const parsed = parseHostPort(value, { allowPortZero: true });
      return typeof parsed === 'string' ? parsed : undefined;
    },
    description:
      'host:port the HTTP server listens on (port 0: any free port). Serves /debug/pprof/heap (V8 heap snapshot) and /debug/pprof/profile?seconds=N (CPU profile). Keep it on localhost: profiles show the agent\'s memory.',
  },
  save_to_file: {
    type: 'string',
    description:
      'Write a CPU profile of the whole run (.cpuprofile JSON) to this file when the agent stops; profiling starts with the extension. Grows by tens of MB per hour: for bounded runs.',
  },
  tls: HTTP_SERVER_TLS_OPTION,
  auth: HTTP_SERVER_AUTH_OPTION,
} as const satisfies Schema;

export type PprofConfig = SchemaValue<typeof PPROF_SCHEMA>;

export interface PprofExtension extends Extension {
  /** `http://host:port/debug/pprof/` once started (the real port for port 0). */
  readonly url: string;
}

const INDEX = `flowtel profiles (V8 formats: open them in Chrome DevTools, VS Code or speedscope)

heap                  a heap snapshot (.heapsnapshot); stops the agent while it is taken
profile?seconds=N     a CPU profile of the next N seconds (.cpuprofile), default ${DEFAULT_PROFILE_SECONDS}, at most ${MAX_PROFILE_SECONDS}
`;

/** `seconds` of a profile request: a whole number 1…MAX, or an error message. */
export function profileSeconds(query: URLSearchParams): number | string {
  const raw = query.get('seconds');
  if (raw === null || raw.trim() === '') return DEFAULT_PROFILE_SECONDS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PROFILE_SECONDS) return `seconds must be a whole number from 1 to ${MAX_PROFILE_SECONDS}, got "${raw}"`;
  return n;
}

function fileStamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

function listenErrorMessage(id: string, address: string, error: unknown): string {
  const code = error && typeof error === 'object' && 'code' in error ? (error as NodeJS.ErrnoException).code : undefined;
  const base = `extension ${id}: cannot listen on ${address}`;
  if (code === 'EADDRINUSE') return `${base}: the port is already in use; set extensions.${id}.endpoint to a free port`;
  if (code === 'EADDRNOTAVAIL') return `${base}: no local interface has that address`;
  return `${base}: ${error instanceof Error ? error.message : String(error)}`;
}

function validatePprof(raw: unknown, path: string): PprofConfig {
  const config = validateObject(raw, path, PPROF_SCHEMA);
  const errors = checkHttpServerSecurity(config.tls, config.auth, path);
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new ConfigErrorList(path, errors);
  return config;
}

function createPprof(config: PprofConfig, ctx: ExtensionContext): PprofExtension {
  // A heap snapshot holds everything in the agent's memory, secrets included: tls and auth as for the other endpoints.
  const security = httpServerSecurity(config.tls, config.auth, `extensions.${ctx.id}`);
  const address = parseHostPort(config.endpoint, { allowPortZero: true }) as HostPort;
  let server: Server | undefined;
  let bound: HostPort = address;
  /** The CPU profile being taken: stop() ends it early (request closed, shutdown). */
  let profiling: { stop: () => void } | undefined;
  /** The whole-run profile of save_to_file. */
  let runProfile: Session | undefined;

  const startRunProfile = async (file: string): Promise<void> => {
    // Fail at start, with the option's name, rather than lose the profile at the end.
    try {
      closeSync(openSync(file, 'w'));
    } catch (error) {
      throw new Error(`extension ${ctx.id}: save_to_file: cannot write ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    runProfile = session;
    ctx.logger.info({ file }, `extension ${ctx.id}: profiling the CPU until the agent stops`);
  };

  const saveRunProfile = async (file: string): Promise<void> => {
    const session = runProfile;
    if (!session) return;
    runProfile = undefined;
    try {
      const { profile } = await session.post('Profiler.stop');
      await writeFile(file, JSON.stringify(profile));
      ctx.logger.info({ file }, `extension ${ctx.id}: CPU profile of the run written to ${file}`);
    } catch (error) {
      ctx.logger.error({ err: error, file }, `extension ${ctx.id}: writing save_to_file failed`);
    } finally {
      session.disconnect();
    }
  };

  const text = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers }).end(body);
  };

  const heap = (res: ServerResponse): void => {
    const started = Date.now();
    const snapshot = getHeapSnapshot();
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-disposition': `attachment; filename="flowtel-${process.pid}-${fileStamp()}.heapsnapshot"`,
      'cache-control': 'no-store',
    });
    snapshot.pipe(res);
    snapshot.on('error', (error) => {
      ctx.logger.error({ err: error }, `extension ${ctx.id}: heap snapshot failed`);
      res.destroy(error);
    });
    res.on('finish', () => ctx.logger.info({ ms: Date.now() - started }, `extension ${ctx.id}: heap snapshot served`));
  };

  const cpuProfile = async (res: ServerResponse, seconds: number): Promise<void> => {
    const session = new Session();
    session.connect();
    let timer: NodeJS.Timeout | undefined;
    const ended = new Promise<void>((resolve) => {
      profiling = { stop: resolve };
      timer = setTimeout(resolve, seconds * 1000);
      res.once('close', resolve);
    });
    try {
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
      ctx.logger.info({ seconds }, `extension ${ctx.id}: CPU profile started`);
      await ended;
      const { profile } = await session.post('Profiler.stop');
      if (res.destroyed) return;
      const body = JSON.stringify(profile);
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-disposition': `attachment; filename="flowtel-${process.pid}-${fileStamp()}.cpuprofile"`,
        'cache-control': 'no-store',
      });
      res.end(body);
    } catch (error) {
      ctx.logger.error({ err: error }, `extension ${ctx.id}: CPU profile failed`);
      if (!res.headersSent) text(res, 500, `CPU profile failed: ${error instanceof Error ? error.message : String(error)}\n`);
    } finally {
      clearTimeout(timer);
      profiling = undefined;
      session.disconnect();
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const name = url.pathname.startsWith(PPROF_PATH) ? url.pathname.slice(PPROF_PATH.length) : url.pathname === '/debug/pprof' ? '' : undefined;
    if (name === undefined || !['', 'heap', 'profile'].includes(name)) return text(res, 404, `not found; profiles are under ${PPROF_PATH}\n`);
    if (req.method !== 'GET') return text(res, 405, 'method not allowed\n', { allow: 'GET' });
    if (name === '') return text(res, 200, INDEX);
    if (name === 'heap') return heap(res);
    const seconds = profileSeconds(url.searchParams);
    if (typeof seconds === 'string') return text(res, 400, `${seconds}\n`);
    if (profiling) return text(res, 409, 'a CPU profile is already being taken; try again when it is done\n');
    void cpuProfile(res, seconds);
  };

  const url = (): string => {
    const host = bound.host === '0.0.0.0' || bound.host === '::' ? '127.0.0.1' : bound.host;
    return `${schemeOf(security)}://${formatHostPort({ host, port: bound.port })}${PPROF_PATH}`;
  };

  return {
    id: ctx.id,
    get url() {
      return url();
    },
    async start() {
      if (server) return;
      const s = createSecureServer(security, handle);
      try {
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(address.port, address.host, () => {
            s.off('error', reject);
            resolve();
          });
        });
      } catch (error) {
        throw new Error(listenErrorMessage(ctx.id, formatHostPort(address), error), { cause: error });
      }
      if (config.save_to_file !== undefined) {
        try {
          await startRunProfile(config.save_to_file);
        } catch (error) {
          await new Promise<void>((resolve) => s.close(() => resolve()));
          throw error;
        }
      }
      s.on('error', (error) => ctx.logger.error({ err: error }, `extension ${ctx.id}: server error`));
      server = s;
      bound = { host: address.host, port: (s.address() as AddressInfo).port };
      ctx.logger.info({ endpoint: formatHostPort(bound) }, `extension ${ctx.id}: profiles at ${url()}`);
    },
    async shutdown() {
      const s = server;
      if (!s) return;
      server = undefined;
      profiling?.stop();
      if (config.save_to_file !== undefined) await saveRunProfile(config.save_to_file);
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    },
  };
}

export const pprofExtensionFactory: ExtensionFactory<PprofConfig> = {
  kind: 'extension',
  type: 'pprof',
  stability: 'development',
  options: describeSchema(PPROF_SCHEMA),
  defaultConfig: () => validateObject(undefined, '', PPROF_SCHEMA),
  validate: validatePprof,
  create: createPprof,
};
