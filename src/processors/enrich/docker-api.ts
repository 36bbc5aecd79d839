/**
 * The few calls of the Docker Engine API the `container` processor makes,
 * over the engine's unix socket (or TCP), with node:http: `GET
 * /containers/json?all=1` lists every container with its names and image.
 * Podman serves the same API (its docker-compatible service, e.g.
 * /run/podman/podman.sock).
 */
import { request, type RequestOptions } from 'node:http';

export interface ContainerSummary {
  readonly id: string;
  /** Without the leading slash. */
  readonly name?: string;
  /** As the container was created from: `nginx:1.25`, `registry:5000/team/app@sha256:…`. */
  readonly image?: string;
}

/** An engine endpoint: `unix:///var/run/docker.sock` or `http://host:port`. */
export interface EngineEndpoint {
  readonly url: string;
  readonly socketPath?: string;
  readonly host?: string;
  readonly port?: number;
}

export function parseEngineEndpoint(url: string): EngineEndpoint | string {
  if (url.startsWith('unix://')) {
    const socketPath = url.slice('unix://'.length);
    if (!socketPath.startsWith('/')) return 'a unix endpoint needs an absolute path: unix:///var/run/docker.sock';
    return { url, socketPath };
  }
  if (url.startsWith('/')) return { url: `unix://${url}`, socketPath: url };
  const m = /^(?:tcp|http):\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(url);
  if (m) return { url, host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  return 'expected unix:///path/to/socket or http://host:port (tcp://host:port)';
}

/** The JSON body of a GET, or an Error naming what went wrong (status, socket). */
export function getJson(endpoint: EngineEndpoint, path: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const options: RequestOptions = {
      method: 'GET',
      path,
      headers: { host: 'docker', accept: 'application/json' },
      timeout: timeoutMs,
      ...(endpoint.socketPath ? { socketPath: endpoint.socketPath } : { host: endpoint.host, port: endpoint.port }),
    };
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          reject(new Error(`${endpoint.url} GET ${path}: HTTP ${res.statusCode ?? '?'} ${text.slice(0, 200)}`));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error(`${endpoint.url} GET ${path}: not JSON`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${endpoint.url} GET ${path}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** `GET /containers/json?all=1` → summaries; entries without an Id are skipped. */
export function parseContainerList(body: unknown): ContainerSummary[] {
  if (!Array.isArray(body)) throw new Error('container list: expected a JSON array');
  const out: ContainerSummary[] = [];
  for (const item of body as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const c = item as { Id?: unknown; Names?: unknown; Image?: unknown };
    if (typeof c.Id !== 'string') continue;
    const names = Array.isArray(c.Names) ? (c.Names as unknown[]).filter((n): n is string => typeof n === 'string') : [];
    // Legacy links add `/other/alias` names; the container's own name has one slash.
    const own = names.find((n) => n.lastIndexOf('/') === 0) ?? names[0];
    const summary: { id: string; name?: string; image?: string } = { id: c.Id.toLowerCase() };
    if (own) summary.name = own.replace(/^\//, '');
    if (typeof c.Image === 'string' && c.Image !== '') summary.image = c.Image;
    out.push(summary);
  }
  return out;
}

/**
 * An image reference split into name and tag: `nginx:1.25` → nginx, 1.25;
 * `registry:5000/team/app` → registry:5000/team/app, latest (the default
 * tag); `app@sha256:…` → app, no tag (a digest is not a tag); a bare image
 * id (`sha256:…`, when the image's name is gone) → neither.
 */
export function parseImageReference(ref: string): { name?: string; tag?: string } {
  if (/^(sha256:)?[0-9a-f]{64}$/.test(ref)) return {};
  const at = ref.indexOf('@');
  const withoutDigest = at >= 0 ? ref.slice(0, at) : ref;
  const slash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  if (colon > slash) return { name: withoutDigest.slice(0, colon), tag: withoutDigest.slice(colon + 1) };
  return at >= 0 ? { name: withoutDigest } : { name: withoutDigest, tag: 'latest' };
}
