/** Parsing the endpoints exporters listen on or send to. */

export interface HostPort {
  /** Host without brackets (`::` for `[::]:9464`). */
  readonly host: string;
  readonly port: number;
}

/**
 * Parse `host:port`, `[v6]:port` or `:port` (all interfaces). Returns an error
 * message instead of throwing, for schema `check` functions.
 */
export function parseHostPort(text: string, options: { allowPortZero?: boolean } = {}): HostPort | string {
  const trimmed = text.trim();
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(trimmed);
  if (!match) return `expected host:port (e.g. 0.0.0.0:9464 or [::]:9464), got "${text}"`;
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  const minPort = options.allowPortZero ? 0 : 1;
  if (!Number.isInteger(port) || port < minPort || port > 65535) return `port must be between ${minPort} and 65535, got ${match[3]}`;
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** `host:port` with brackets around IPv6 hosts. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Check an OTLP/gRPC endpoint: `host:port`, `http://host:port` or
 * `https://host:port` (the scheme only selects plaintext vs TLS; a path is
 * not allowed for gRPC). Returns an error message or undefined.
 */
export function checkGrpcEndpoint(text: string): string | undefined {
  const trimmed = text.trim();
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(trimmed)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    return `unsupported scheme "${scheme}://" (use host:port, http://host:port for plaintext or https://host:port for TLS)`;
  }
  let url: URL;
  try {
    url = new URL(scheme === undefined ? `https://${trimmed}` : trimmed);
  } catch {
    return `not a valid endpoint: "${text}" (expected host:port)`;
  }
  if (url.hostname === '') return `missing host in "${text}"`;
  if (url.pathname !== '' && url.pathname !== '/') return `gRPC endpoints take no path, got "${url.pathname}" (OTLP/gRPC always uses /opentelemetry.proto.collector.metrics.v1.MetricsService/Export)`;
  if (url.search !== '' || url.hash !== '') return `unexpected query or fragment in "${text}"`;
  return undefined;
}

/**
 * Check an OTLP/HTTP URL: `http://host[:port][/path]` or `https://…`.
 * Returns an error message or undefined.
 */
export function checkHttpEndpoint(text: string): string | undefined {
  const trimmed = text.trim();
  if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(trimmed)) return `expected a URL starting with http:// or https://, got "${text}"`;
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    return `not a valid URL: "${text}"`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `unsupported scheme "${url.protocol}//" (use http:// or https://)`;
  if (url.hostname === '') return `missing host in "${text}"`;
  if (url.search !== '' || url.hash !== '') return `unexpected query or fragment in "${text}"`;
  return undefined;
}

/** `base` + `/v1/metrics`, as the Collector's otlphttp exporter composes signal URLs. */
export function otlpHttpSignalUrl(base: string, signalPath = 'v1/metrics'): string {
  const trimmed = base.trim();
  return trimmed.endsWith('/') ? `${trimmed}${signalPath}` : `${trimmed}/${signalPath}`;
}
