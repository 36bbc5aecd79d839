/**
 * `health_check` extension, after the Collector's: an HTTP endpoint that
 * answers 200 while the agent is healthy and 503 otherwise, with a small JSON
 * body (`{"status":"Server available","upSince":...,"uptime":...}` as the
 * Collector's, then the service state and every component's status).
 *
 * Healthy: every pipeline runs (all receivers and exporters started, nothing
 * stopping) and no receiver failed its last collection. Starting, stopping
 * and a failed component are 503. Export failures (a backend down) are not:
 * they concern the data path, not whether the agent is alive.
 *
 * Options (Collector names): `endpoint` (default 0.0.0.0:13133), `path`
 * (default `/`), `tls` and `auth` (src/util/http-server.ts: HTTPS, client
 * certificates, basic or bearer credentials). GET and HEAD on `path`;
 * anything else is 404 / 405.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../config/schema';
import { ConfigErrorList } from '../config/errors';
import {
  HTTP_SERVER_AUTH_OPTION,
  HTTP_SERVER_TLS_OPTION,
  checkHttpServerSecurity,
  closeServer,
  createSecureServer,
  httpServerSecurity,
  listen,
  schemeOf,
} from '../util/http-server';
import { formatHostPort, parseHostPort, type HostPort } from '../exporters/endpoint';
import type { HealthReport } from '../telemetry/component-status';
import type { Extension, ExtensionContext, ExtensionFactory } from './extension';

export const DEFAULT_HEALTH_CHECK_ENDPOINT = '0.0.0.0:13133';

const HEALTH_CHECK_SCHEMA = {
  endpoint: {
    type: 'string',
    default: DEFAULT_HEALTH_CHECK_ENDPOINT,
    check: (value: string) => {
      const parsed = parseHostPort(value, { allowPortZero: true });
      return typeof parsed === 'string' ? parsed : undefined;
    },
    description: 'host:port the HTTP server listens on (port 0: any free port).',
  },
  path: {
    type: 'string',
    default: '/',
    check: (value: string) => (value.startsWith('/') ? undefined : 'must start with "/"'),
    description: 'URL path of the health check; other paths answer 404.',
  },
  tls: HTTP_SERVER_TLS_OPTION,
  auth: HTTP_SERVER_AUTH_OPTION,
} as const satisfies Schema;

export type HealthCheckConfig = SchemaValue<typeof HEALTH_CHECK_SCHEMA>;

export interface HealthCheckExtension extends Extension {
  /** `http://host:port/path` once started (127.0.0.1 for a wildcard host; the real port for port 0). */
  readonly url: string;
}

function listenErrorMessage(id: string, address: string, error: unknown): string {
  const code = error && typeof error === 'object' && 'code' in error ? (error as NodeJS.ErrnoException).code : undefined;
  const base = `extension ${id}: cannot listen on ${address}`;
  switch (code) {
    case 'EADDRINUSE':
      return `${base}: the port is already in use; set extensions.${id}.endpoint to a free port`;
    case 'EACCES':
      return `${base}: permission denied`;
    case 'EADDRNOTAVAIL':
      return `${base}: no local interface has that address`;
    default:
      return `${base}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** The response for a report: 200 when healthy, else 503. */
export function healthResponse(report: HealthReport): { status: number; body: string } {
  return { status: report.healthy ? 200 : 503, body: `${JSON.stringify(report)}\n` };
}

function validateHealthCheck(raw: unknown, path: string): HealthCheckConfig {
  const config = validateObject(raw, path, HEALTH_CHECK_SCHEMA);
  const errors = checkHttpServerSecurity(config.tls, config.auth, path);
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new ConfigErrorList(path, errors);
  return config;
}

function createHealthCheck(config: HealthCheckConfig, ctx: ExtensionContext): HealthCheckExtension {
  const security = httpServerSecurity(config.tls, config.auth, `extensions.${ctx.id}`);
  const address = parseHostPort(config.endpoint, { allowPortZero: true }) as HostPort;
  const endpoint = formatHostPort(address);
  let server: Server | undefined;
  let bound: HostPort = address;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== config.path) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    let response: { status: number; body: string };
    try {
      response = healthResponse(ctx.host.health());
    } catch (error) {
      ctx.logger.error({ err: error }, `extension ${ctx.id}: health report failed`);
      response = { status: 500, body: `${JSON.stringify({ status: 'Server not available', error: String(error) })}\n` };
    }
    res.writeHead(response.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : response.body);
  };

  const url = (): string => {
    const host = bound.host === '0.0.0.0' || bound.host === '::' ? '127.0.0.1' : bound.host;
    return `${schemeOf(security)}://${formatHostPort({ host, port: bound.port })}${config.path}`;
  };

  return {
    id: ctx.id,
    get url() {
      return url();
    },
    async start() {
      if (server) return;
      const s = createSecureServer(security, handle);
      // Health checks are short requests: do not let an idle keep-alive connection hold the shutdown.
      s.keepAliveTimeout = 1_000;
      let port: number;
      try {
        port = (await listen(s, address.host, address.port)).port;
      } catch (error) {
        throw new Error(listenErrorMessage(ctx.id, endpoint, error), { cause: error });
      }
      s.on('error', (error) => ctx.logger.error({ err: error }, `extension ${ctx.id}: server error`));
      s.on('tlsClientError', (error: Error) => ctx.logger.debug({ err: error.message }, `extension ${ctx.id}: TLS handshake failed`));
      server = s;
      bound = { host: address.host, port };
      ctx.logger.info({ endpoint: formatHostPort(bound), path: config.path }, `extension ${ctx.id}: health check at ${url()}`);
    },
    async shutdown() {
      const s = server;
      if (!s) return;
      server = undefined;
      await closeServer(s);
    },
  };
}

export const healthCheckExtensionFactory: ExtensionFactory<HealthCheckConfig> = {
  kind: 'extension',
  type: 'health_check',
  stability: 'beta',
  options: describeSchema(HEALTH_CHECK_SCHEMA),
  defaultConfig: () => validateObject(undefined, '', HEALTH_CHECK_SCHEMA),
  validate: validateHealthCheck,
  create: createHealthCheck,
};
