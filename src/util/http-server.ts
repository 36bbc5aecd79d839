/**
 * The agent's HTTP endpoints (prometheus exporter, health_check): where they
 * listen, TLS and authentication, like the server side of the Collector's
 * confighttp.
 *
 * ```yaml
 * endpoint: 127.0.0.1:9464
 * tls:                      # HTTPS instead of HTTP
 *   cert_file: /etc/flowtel/tls/server.crt
 *   key_file: /etc/flowtel/tls/server.key
 *   client_ca_file: /etc/flowtel/tls/clients-ca.crt   # optional: require client certificates (mutual TLS)
 *   min_version: "1.2"
 * auth:                     # optional: every request must carry one of these credentials
 *   basic: { username: prometheus, password: ${env:FLOWTEL_METRICS_PASSWORD} }
 *   bearer_token: ${env:FLOWTEL_METRICS_TOKEN}
 * ```
 *
 * The Collector attaches authenticators as extensions (basicauth,
 * bearertokenauth); flowtel has the two that make sense for a scrape endpoint
 * inline, under `auth`. A request without valid credentials gets 401 with a
 * `WWW-Authenticate` challenge; credentials are compared in constant time
 * and never logged. Certificates and keys are read when the component is
 * created, so an unreadable file is a config error naming the option.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ObjectOption, SchemaValue } from '../config/schema';
import { ConfigError } from '../pipeline/component';

const TLS_SCHEMA = {
  cert_file: { type: 'string', description: 'PEM certificate (chain) the endpoint serves; with key_file, the endpoint is HTTPS.' },
  key_file: { type: 'string', description: 'PEM private key of cert_file.' },
  client_ca_file: { type: 'string', description: 'PEM CA certificates: when set, clients must present a certificate signed by one of them (mutual TLS).' },
  min_version: { type: 'enum', values: ['1.2', '1.3'], default: '1.2', description: 'Oldest TLS version accepted.' },
} as const;

const AUTH_SCHEMA = {
  basic: {
    type: 'object',
    description: 'HTTP basic authentication (RFC 7617): requests must send this username and password.',
    schema: {
      username: { type: 'string', description: 'User name (with password).' },
      password: { type: 'string', sensitive: true, description: 'Password (with username); use ${env:VAR} to keep it out of the file. Never logged.' },
    },
  },
  bearer_token: { type: 'string', sensitive: true, description: 'Requests may authenticate with `Authorization: Bearer <token>` instead; use ${env:VAR}. Never logged.' },
} as const;

export const HTTP_SERVER_TLS_OPTION = {
  type: 'object',
  description: 'Serve HTTPS (as the Collector\'s confighttp server tls). Unset: plain HTTP.',
  schema: TLS_SCHEMA,
} as const satisfies ObjectOption;

export const HTTP_SERVER_AUTH_OPTION = {
  type: 'object',
  description: 'Require credentials on every request (401 otherwise). Unset: no authentication.',
  schema: AUTH_SCHEMA,
} as const satisfies ObjectOption;

export type HttpServerTlsConfig = SchemaValue<typeof TLS_SCHEMA>;
export type HttpServerAuthConfig = SchemaValue<typeof AUTH_SCHEMA>;

/** Cross-option checks of `tls` and `auth` under `path` (e.g. `exporters.prometheus`). */
export function checkHttpServerSecurity(tls: HttpServerTlsConfig, auth: HttpServerAuthConfig, path: string): ConfigError[] {
  const errors: ConfigError[] = [];
  if ((tls.cert_file === undefined) !== (tls.key_file === undefined)) {
    const missing = tls.cert_file === undefined ? 'cert_file' : 'key_file';
    errors.push(new ConfigError(`${path}.tls.${missing}`, 'cert_file and key_file must be set together'));
  }
  if (tls.client_ca_file !== undefined && tls.cert_file === undefined) {
    errors.push(new ConfigError(`${path}.tls.client_ca_file`, 'client certificates need TLS: set cert_file and key_file too'));
  }
  if ((auth.basic.username === undefined) !== (auth.basic.password === undefined)) {
    const missing = auth.basic.username === undefined ? 'username' : 'password';
    errors.push(new ConfigError(`${path}.auth.basic.${missing}`, 'username and password must be set together'));
  }
  if (auth.basic.username !== undefined && auth.basic.username.includes(':')) {
    errors.push(new ConfigError(`${path}.auth.basic.username`, 'a basic-auth user name cannot contain ":"'));
  }
  return errors;
}

/** What a server is built from, files already read. */
export interface HttpServerSecurity {
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly clientCa?: Buffer; readonly minVersion: 'TLSv1.2' | 'TLSv1.3' };
  readonly auth?: Authenticator;
}

function readFile(file: string, path: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(path, `cannot read ${file}: ${reason}`);
  }
}

/** Read the TLS files and prepare the authenticator. Throws ConfigError naming the option of an unreadable file. */
export function httpServerSecurity(tls: HttpServerTlsConfig, auth: HttpServerAuthConfig, path: string): HttpServerSecurity {
  const out: { tls?: HttpServerSecurity['tls']; auth?: Authenticator } = {};
  if (tls.cert_file !== undefined && tls.key_file !== undefined) {
    out.tls = {
      cert: readFile(tls.cert_file, `${path}.tls.cert_file`),
      key: readFile(tls.key_file, `${path}.tls.key_file`),
      ...(tls.client_ca_file === undefined ? {} : { clientCa: readFile(tls.client_ca_file, `${path}.tls.client_ca_file`) }),
      minVersion: tls.min_version === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
    };
  }
  const authenticator = Authenticator.from(auth);
  if (authenticator) out.auth = authenticator;
  return out;
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Checks the Authorization header against the configured credentials, in constant time. */
export class Authenticator {
  private constructor(
    private readonly basic: Buffer | undefined,
    private readonly bearer: Buffer | undefined,
  ) {}

  static from(auth: HttpServerAuthConfig): Authenticator | undefined {
    const { username, password } = auth.basic;
    const basic = username !== undefined && password !== undefined ? digest(`${username}:${password}`) : undefined;
    const bearer = auth.bearer_token !== undefined ? digest(auth.bearer_token) : undefined;
    return basic || bearer ? new Authenticator(basic, bearer) : undefined;
  }

  /** The schemes a 401 offers. */
  get challenge(): string {
    return [this.basic ? 'Basic realm="flowtel", charset="UTF-8"' : '', this.bearer ? 'Bearer realm="flowtel"' : ''].filter(Boolean).join(', ');
  }

  accepts(header: string | undefined): boolean {
    if (header === undefined) return false;
    const m = /^(\S+)\s+(.+)$/.exec(header.trim());
    if (!m) return false;
    const scheme = m[1]!.toLowerCase();
    const value = m[2]!.trim();
    if (scheme === 'basic' && this.basic) return timingSafeEqual(digest(Buffer.from(value, 'base64').toString('utf8')), this.basic);
    if (scheme === 'bearer' && this.bearer) return timingSafeEqual(digest(value), this.bearer);
    return false;
  }
}

/** `handler` behind the authenticator, if any: 401 with a challenge for a request without valid credentials. */
export function withAuth(security: HttpServerSecurity, handler: RequestListener): RequestListener {
  const auth = security.auth;
  if (!auth) return handler;
  return (req: IncomingMessage, res: ServerResponse) => {
    if (auth.accepts(req.headers.authorization)) {
      handler(req, res);
      return;
    }
    req.resume();
    res.writeHead(401, { 'www-authenticate': auth.challenge, 'content-type': 'text/plain; charset=utf-8' }).end('unauthorized\n');
  };
}

/** An HTTP or HTTPS server (per `security.tls`) around `handler` (behind `security.auth`), not listening yet. */
export function createSecureServer(security: HttpServerSecurity, handler: RequestListener): Server {
  const listener = withAuth(security, handler);
  const tls = security.tls;
  if (!tls) return createHttpServer(listener);
  return createHttpsServer(
    {
      cert: tls.cert,
      key: tls.key,
      minVersion: tls.minVersion,
      ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
    },
    listener,
  );
}

/** Listen on host:port; resolves with the bound address or rejects with the listen error (EADDRINUSE …). */
export function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Close the server and every connection it holds (keep-alive ones included). */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** `http` or `https`. */
export function schemeOf(security: HttpServerSecurity): 'http' | 'https' {
  return security.tls ? 'https' : 'http';
}
