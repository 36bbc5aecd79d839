/**
 * One small HTTP/1.1 request to a metadata service, with an AbortSignal,
 * no connection reuse and a bounded body.
 */
import { request } from 'node:http';

export interface HttpResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

const MAX_BODY = 256 * 1024;

export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; signal: AbortSignal },
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    if (options.signal.aborted) {
      reject(abortError(options.signal));
      return;
    }
    const target = new URL(url);
    if (target.protocol !== 'http:') {
      reject(new Error(`${url}: only http:// metadata endpoints are supported`));
      return;
    }
    const req = request(
      target,
      { method: options.method ?? 'GET', headers: { ...options.headers, Connection: 'close' }, agent: false, signal: options.signal },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) {
            res.destroy(new Error(`${url}: response larger than ${MAX_BODY} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', (e) => reject(options.signal.aborted ? abortError(options.signal) : e));
    req.end();
  });
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('aborted');
}
