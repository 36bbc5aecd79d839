/**
 * Real OTLP metrics receivers for tests, decoding the requests themselves
 * (see otlp-proto.ts):
 *
 * - startOtlpReceiver(): OTLP/gRPC, a @grpc/grpc-js server implementing
 *   `opentelemetry.proto.collector.metrics.v1.MetricsService/Export` and
 *   `opentelemetry.proto.collector.logs.v1.LogsService/Export` (log requests
 *   in `logRequests`, `waitForLogs`) with identity (de)serializers;
 * - startOtlpHttpReceiver(): OTLP/HTTP, `POST /v1/metrics` and `POST /v1/logs`
 *   with a protobuf or JSON body (gzip or not).
 *
 *   const receiver = await startOtlpReceiver();
 *   // exporter endpoint: receiver.endpoint (127.0.0.1:<port>), plaintext
 *   await receiver.waitFor((reqs) => flattenMetrics(reqs).some((m) => m.name === 'x'));
 *   receiver.setBehavior('unavailable', { times: 3 }); // fail the next 3 calls, then accept
 *   await receiver.close();
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { Server, ServerCredentials, status, type Metadata, type sendUnaryData, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import {
  decodeExportLogsServiceRequest,
  decodeExportLogsServiceRequestJson,
  decodeExportMetricsServiceRequest,
  decodeExportMetricsServiceRequestJson,
  type AttributeValue,
  type DecodedAttributes,
  type DecodedExportLogsServiceRequest,
  type DecodedExportMetricsServiceRequest,
  type DecodedLogRecord,
  type Temporality,
} from './otlp-proto';

export const METRICS_EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';
export const LOGS_EXPORT_PATH = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';

/** How the receiver answers: accept, or fail with a gRPC status (over HTTP: the matching HTTP status). */
export type ReceiverBehavior = 'ok' | 'unavailable' | 'unauthenticated' | 'invalid_argument' | 'internal' | 'resource_exhausted';

const STATUS_OF: Readonly<Record<Exclude<ReceiverBehavior, 'ok'>, status>> = {
  unavailable: status.UNAVAILABLE,
  unauthenticated: status.UNAUTHENTICATED,
  invalid_argument: status.INVALID_ARGUMENT,
  internal: status.INTERNAL,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
};

/** OTLP/HTTP answers for the same behaviors (429/503 are the retryable ones). */
export const HTTP_STATUS_OF: Readonly<Record<Exclude<ReceiverBehavior, 'ok'>, number>> = {
  unavailable: 503,
  unauthenticated: 401,
  invalid_argument: 400,
  internal: 500,
  resource_exhausted: 429,
};

export interface BehaviorOptions {
  /** Answer this way for the next `times` calls only, then accept again. */
  readonly times?: number;
  /** OTLP/HTTP: send `Retry-After: <seconds>` with a failure. */
  readonly retryAfterSeconds?: number;
}

export interface DecodedRequest extends DecodedExportMetricsServiceRequest {
  /** gRPC metadata or HTTP headers (lower-case names), first value of each key. */
  readonly metadata: Record<string, string>;
  readonly receivedAtMs: number;
  /** Wire encoding of the body: gRPC is always proto. */
  readonly encoding: 'proto' | 'json';
  /** OTLP/HTTP: the Content-Encoding of the body (`gzip`), if any. */
  readonly contentEncoding?: string;
}

export interface DecodedLogsRequest extends DecodedExportLogsServiceRequest {
  readonly metadata: Record<string, string>;
  readonly receivedAtMs: number;
  /** OTLP/HTTP: the body's encoding and Content-Encoding (gRPC: proto, none). */
  readonly encoding?: 'proto' | 'json';
  readonly contentEncoding?: string;
}

export interface OtlpTestReceiver {
  readonly port: number;
  /** `127.0.0.1:<port>` */
  readonly endpoint: string;
  /** Accepted requests, in arrival order. */
  readonly requests: DecodedRequest[];
  /** Accepted logs export requests (gRPC only), in arrival order. */
  readonly logRequests: DecodedLogsRequest[];
  /** Like waitFor, on the logs requests. */
  waitForLogs(predicate: (requests: readonly DecodedLogsRequest[]) => boolean, timeoutMs?: number): Promise<DecodedLogsRequest[]>;
  /** Export calls answered with an error (see setBehavior). */
  readonly rejected: number;
  /** Export calls received, accepted or not. */
  readonly calls: number;
  setBehavior(behavior: ReceiverBehavior, options?: BehaviorOptions): void;
  /** Answer every export call this many milliseconds late (a slow backend); 0: at once. */
  setDelay(ms: number): void;
  /** Resolve with the requests once `predicate(requests)` holds; reject after `timeoutMs`. */
  waitFor(predicate: (requests: readonly DecodedRequest[]) => boolean, timeoutMs?: number): Promise<DecodedRequest[]>;
  close(): Promise<void>;
}

export interface OtlpHttpTestReceiver extends OtlpTestReceiver {
  /** `http(s)://127.0.0.1:<port>`: the base URL (an otlphttp `endpoint`). */
  readonly baseUrl: string;
  /** `<baseUrl>/v1/metrics` */
  readonly url: string;
  /** `<baseUrl>/v1/logs` */
  readonly logsUrl: string;
}

export interface ReceiverOptions {
  /** 0 (default) picks a free port. */
  readonly port?: number;
  readonly host?: string;
  /** Serve TLS with this PEM key/cert; with `clientCa`, require client certificates signed by it. */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer; readonly clientCa?: Buffer };
}

/** What both receivers share: the requests, the behavior and the waiters. */
class ReceiverState {
  readonly requests: DecodedRequest[] = [];
  readonly logRequests: DecodedLogsRequest[] = [];
  rejected = 0;
  calls = 0;
  delayMs = 0;
  private readonly waiters = new Set<() => void>();
  private behavior: ReceiverBehavior = 'ok';
  private remaining = Infinity;
  private retryAfterSeconds: number | undefined;

  setBehavior(behavior: ReceiverBehavior, options: BehaviorOptions = {}): void {
    this.behavior = behavior;
    this.remaining = options.times ?? Infinity;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** The answer to the call that just came in: 'ok' or the failure to send (counted). */
  next(): { behavior: ReceiverBehavior; retryAfterSeconds?: number } {
    this.calls++;
    if (this.behavior === 'ok') return { behavior: 'ok' };
    const answer = { behavior: this.behavior, ...(this.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: this.retryAfterSeconds }) };
    this.rejected++;
    if (--this.remaining <= 0) this.setBehavior('ok');
    return answer;
  }

  accept(request: DecodedRequest): void {
    this.requests.push(request);
    for (const wake of [...this.waiters]) wake();
  }

  acceptLogs(request: DecodedLogsRequest): void {
    this.logRequests.push(request);
    for (const wake of [...this.waiters]) wake();
  }

  waitFor(predicate: (requests: readonly DecodedRequest[]) => boolean, timeoutMs = 5_000): Promise<DecodedRequest[]> {
    return this.waitOn(this.requests, predicate, timeoutMs);
  }

  waitForLogs(predicate: (requests: readonly DecodedLogsRequest[]) => boolean, timeoutMs = 5_000): Promise<DecodedLogsRequest[]> {
    return this.waitOn(this.logRequests, predicate, timeoutMs);
  }

  private waitOn<T>(list: T[], predicate: (requests: readonly T[]) => boolean, timeoutMs: number): Promise<T[]> {
    return new Promise<T[]>((resolve, reject) => {
      const check = (): boolean => {
        if (!predicate(list)) return false;
        cleanup();
        resolve([...list]);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`OTLP test receiver: condition not met within ${timeoutMs}ms (${list.length} requests received, ${this.rejected} rejected)`));
      }, timeoutMs);
      const wake = (): void => {
        check();
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
      };
      this.waiters.add(wake);
      check();
    });
  }
}

const identity = (buffer: Buffer): Buffer => buffer;

export async function startOtlpReceiver(options: ReceiverOptions = {}): Promise<OtlpTestReceiver> {
  const host = options.host ?? '127.0.0.1';
  const server = new Server();
  const state = new ReceiverState();

  const handleExport = (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void => {
    if (state.delayMs > 0) {
      const ms = state.delayMs;
      setTimeout(() => answerExport(call, callback), ms);
      return;
    }
    answerExport(call, callback);
  };

  const answerExport = (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void => {
    const { behavior } = state.next();
    if (behavior !== 'ok') {
      const error: Partial<ServiceError> = { code: STATUS_OF[behavior], details: `test receiver behavior: ${behavior}` };
      callback(error as ServiceError, null);
      return;
    }
    let decoded: DecodedExportMetricsServiceRequest;
    try {
      decoded = decodeExportMetricsServiceRequest(call.request);
    } catch (error) {
      const failure: Partial<ServiceError> = { code: status.INVALID_ARGUMENT, details: String(error) };
      callback(failure as ServiceError, null);
      return;
    }
    state.accept({ ...decoded, metadata: metadataRecord(call.metadata), receivedAtMs: Date.now(), encoding: 'proto' });
    // An empty ExportMetricsServiceResponse encodes to zero bytes.
    callback(null, Buffer.alloc(0));
  };

  const handleLogsExport = (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void => {
    const { behavior } = state.next();
    if (behavior !== 'ok') {
      const error: Partial<ServiceError> = { code: STATUS_OF[behavior], details: `test receiver behavior: ${behavior}` };
      callback(error as ServiceError, null);
      return;
    }
    let decoded: DecodedExportLogsServiceRequest;
    try {
      decoded = decodeExportLogsServiceRequest(call.request);
    } catch (error) {
      const failure: Partial<ServiceError> = { code: status.INVALID_ARGUMENT, details: String(error) };
      callback(failure as ServiceError, null);
      return;
    }
    state.acceptLogs({ ...decoded, metadata: metadataRecord(call.metadata), receivedAtMs: Date.now() });
    callback(null, Buffer.alloc(0));
  };

  server.addService(
    {
      Export: {
        path: LOGS_EXPORT_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    { Export: handleLogsExport },
  );

  server.addService(
    {
      Export: {
        path: METRICS_EXPORT_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    { Export: handleExport },
  );

  const port = await new Promise<number>((resolve, reject) => {
    const tls = options.tls;
    const credentials = tls
      ? ServerCredentials.createSsl(tls.clientCa ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], tls.clientCa !== undefined)
      : ServerCredentials.createInsecure();
    server.bindAsync(`${host}:${options.port ?? 0}`, credentials, (error, boundPort) => {
      if (error) reject(error);
      else resolve(boundPort);
    });
  });

  return {
    port,
    endpoint: `${host}:${port}`,
    requests: state.requests,
    logRequests: state.logRequests,
    waitForLogs: (predicate, timeoutMs) => state.waitForLogs(predicate, timeoutMs),
    get rejected() {
      return state.rejected;
    },
    get calls() {
      return state.calls;
    },
    setBehavior: (behavior, behaviorOptions) => state.setBehavior(behavior, behaviorOptions),
    setDelay: (ms) => void (state.delayMs = ms),
    waitFor: (predicate, timeoutMs) => state.waitFor(predicate, timeoutMs),
    close() {
      return new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Don't let a stuck client keep the test alive.
        setTimeout(() => server.forceShutdown(), 1_000).unref();
      });
    },
  };
}

export const OTLP_HTTP_METRICS_PATH = '/v1/metrics';
export const OTLP_HTTP_LOGS_PATH = '/v1/logs';

/**
 * OTLP/HTTP: `POST /v1/metrics` and `POST /v1/logs` with
 * `application/x-protobuf` or `application/json` (optionally gzip), answered
 * with an empty Export*ServiceResponse in the same encoding; failures per
 * setBehavior (HTTP_STATUS_OF, both paths). Anything else is 404/405/415/400.
 */
export async function startOtlpHttpReceiver(options: ReceiverOptions = {}): Promise<OtlpHttpTestReceiver> {
  const host = options.host ?? '127.0.0.1';
  const state = new ReceiverState();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => (state.delayMs > 0 ? setTimeout(answer, state.delayMs) : answer()));
    const answer = (): void => {
      const path = req.url?.split('?')[0];
      if (path !== OTLP_HTTP_METRICS_PATH && path !== OTLP_HTTP_LOGS_PATH) return void res.writeHead(404).end();
      if (req.method !== 'POST') return void res.writeHead(405).end();
      const type = String(req.headers['content-type'] ?? '').split(';')[0]?.trim();
      const encoding = type === 'application/x-protobuf' ? 'proto' : type === 'application/json' ? 'json' : undefined;
      if (encoding === undefined) return void res.writeHead(415).end();
      const { behavior, retryAfterSeconds } = state.next();
      if (behavior !== 'ok') {
        const headers: Record<string, string> = { 'content-type': 'text/plain' };
        if (retryAfterSeconds !== undefined) headers['retry-after'] = String(retryAfterSeconds);
        return void res.writeHead(HTTP_STATUS_OF[behavior], headers).end(`test receiver behavior: ${behavior}`);
      }
      const contentEncoding = req.headers['content-encoding'];
      let body: Buffer;
      try {
        body = Buffer.concat(chunks);
        if (contentEncoding === 'gzip') body = gunzipSync(body);
      } catch (error) {
        return void res.writeHead(400, { 'content-type': 'text/plain' }).end(String(error));
      }
      if (path === OTLP_HTTP_LOGS_PATH) {
        let logs: DecodedExportLogsServiceRequest;
        try {
          logs = encoding === 'proto' ? decodeExportLogsServiceRequest(body) : decodeExportLogsServiceRequestJson(JSON.parse(body.toString('utf8')));
        } catch (error) {
          return void res.writeHead(400, { 'content-type': 'text/plain' }).end(String(error));
        }
        state.acceptLogs({
          ...logs,
          metadata: headerRecord(req),
          receivedAtMs: Date.now(),
          encoding,
          ...(typeof contentEncoding === 'string' ? { contentEncoding } : {}),
        });
        return void res.writeHead(200, { 'content-type': type }).end(encoding === 'json' ? '{}' : undefined);
      }
      let decoded: DecodedExportMetricsServiceRequest;
      try {
        decoded = encoding === 'proto' ? decodeExportMetricsServiceRequest(body) : decodeExportMetricsServiceRequestJson(JSON.parse(body.toString('utf8')));
      } catch (error) {
        return void res.writeHead(400, { 'content-type': 'text/plain' }).end(String(error));
      }
      state.accept({
        ...decoded,
        metadata: headerRecord(req),
        receivedAtMs: Date.now(),
        encoding,
        ...(typeof contentEncoding === 'string' ? { contentEncoding } : {}),
      });
      res.writeHead(200, { 'content-type': type }).end(encoding === 'json' ? '{}' : undefined);
    };
  };

  const tls = options.tls;
  const server: HttpServer = tls
    ? createHttpsServer({ key: tls.key, cert: tls.cert, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) }, handle)
    : createHttpServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const baseUrl = `${tls ? 'https' : 'http'}://${host}:${port}`;

  return {
    port,
    endpoint: `${host}:${port}`,
    baseUrl,
    url: `${baseUrl}${OTLP_HTTP_METRICS_PATH}`,
    logsUrl: `${baseUrl}${OTLP_HTTP_LOGS_PATH}`,
    requests: state.requests,
    logRequests: state.logRequests,
    waitForLogs: (predicate, timeoutMs) => state.waitForLogs(predicate, timeoutMs),
    get rejected() {
      return state.rejected;
    },
    get calls() {
      return state.calls;
    },
    setBehavior: (behavior, behaviorOptions) => state.setBehavior(behavior, behaviorOptions),
    setDelay: (ms) => void (state.delayMs = ms),
    waitFor: (predicate, timeoutMs) => state.waitFor(predicate, timeoutMs),
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open.
        server.closeAllConnections();
      });
    },
  };
}

function headerRecord(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[key] = Array.isArray(value) ? (value[0] ?? '') : value;
  }
  return out;
}

function metadataRecord(metadata: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, values] of Object.entries(metadata.getMap())) out[key] = Buffer.isBuffer(values) ? values.toString('base64') : String(values);
  return out;
}

// ---------------------------------------------------------------------------
// Flattened views for assertions

export type FlatAttributes = Record<string, string | number | boolean>;

export interface FlatPoint {
  attributes: FlatAttributes;
  startTimeUnixNano: string;
  timeUnixNano: string;
  /** gauge / sum */
  value?: number;
  /** histogram */
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
}

export interface FlatMetric {
  name: string;
  description: string;
  unit: string;
  kind: 'sum' | 'gauge' | 'histogram';
  monotonic?: boolean;
  temporality?: Temporality;
  scope: string;
  points: FlatPoint[];
}

function flatValue(value: AttributeValue): string | number | boolean {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  return JSON.stringify(value);
}

export function flattenAttributes(attributes: DecodedAttributes): FlatAttributes {
  const out: FlatAttributes = {};
  for (const [key, value] of Object.entries(attributes)) out[key] = flatValue(value);
  return out;
}

/** Every metric of every request, in order (one entry per metric per request). */
export function flattenMetrics(requests: readonly DecodedExportMetricsServiceRequest[]): FlatMetric[] {
  const out: FlatMetric[] = [];
  for (const request of requests) {
    for (const rm of request.resourceMetrics) {
      for (const sm of rm.scopeMetrics) {
        for (const metric of sm.metrics) {
          const base = { name: metric.name, description: metric.description, unit: metric.unit, scope: sm.scope.name };
          const data = metric.data;
          switch (data.kind) {
            case 'sum':
            case 'gauge':
              out.push({
                ...base,
                kind: data.kind,
                ...(data.kind === 'sum' ? { monotonic: data.monotonic, temporality: data.temporality } : {}),
                points: data.dataPoints.map((p) => ({
                  attributes: flattenAttributes(p.attributes),
                  startTimeUnixNano: p.startTimeUnixNano.toString(),
                  timeUnixNano: p.timeUnixNano.toString(),
                  value: p.value,
                })),
              });
              break;
            case 'histogram':
              out.push({
                ...base,
                kind: 'histogram',
                temporality: data.temporality,
                points: data.dataPoints.map((p) => ({
                  attributes: flattenAttributes(p.attributes),
                  startTimeUnixNano: p.startTimeUnixNano.toString(),
                  timeUnixNano: p.timeUnixNano.toString(),
                  count: p.count,
                  ...(p.sum === undefined ? {} : { sum: p.sum }),
                  ...(p.min === undefined ? {} : { min: p.min }),
                  ...(p.max === undefined ? {} : { max: p.max }),
                  bucketCounts: p.bucketCounts,
                  explicitBounds: p.explicitBounds,
                })),
              });
              break;
            default:
              break;
          }
        }
      }
    }
  }
  return out;
}

/** The last occurrence of metric `name` across the requests, if any. */
export function latestMetric(requests: readonly DecodedExportMetricsServiceRequest[], name: string): FlatMetric | undefined {
  return flattenMetrics(requests)
    .filter((m) => m.name === name)
    .at(-1);
}

/** The points of metric `name` in the last request whose attributes include every `match` entry. */
export function lastExportPoints(requests: readonly DecodedExportMetricsServiceRequest[], name: string, match: Record<string, string | number>): FlatPoint[] {
  const last = requests.at(-1);
  if (!last) return [];
  return flattenMetrics([last])
    .filter((m) => m.name === name)
    .flatMap((m) => m.points)
    .filter((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v));
}

/** Resource attributes of a request (of its first ResourceMetrics). */
export function resourceAttributes(request: DecodedExportMetricsServiceRequest): FlatAttributes {
  return flattenAttributes(request.resourceMetrics[0]?.resource.attributes ?? {});
}

// ---------------------------------------------------------------------------
// Log records, flattened

export interface FlatLogRecord {
  resource: FlatAttributes;
  scope: string;
  timeUnixNano: bigint;
  observedTimeUnixNano: bigint;
  severityNumber: number;
  severityText: string;
  body: string;
  eventName: string;
  attributes: FlatAttributes;
}

/** Every log record of every request, in order. */
export function flattenLogRecords(requests: readonly DecodedExportLogsServiceRequest[]): FlatLogRecord[] {
  const out: FlatLogRecord[] = [];
  for (const request of requests) {
    for (const rl of request.resourceLogs) {
      const resource = flattenAttributes(rl.resource.attributes);
      for (const sl of rl.scopeLogs) {
        for (const r of sl.logRecords as DecodedLogRecord[]) {
          out.push({
            resource,
            scope: sl.scope.name,
            timeUnixNano: r.timeUnixNano,
            observedTimeUnixNano: r.observedTimeUnixNano,
            severityNumber: r.severityNumber,
            severityText: r.severityText,
            body: r.body === undefined ? '' : flatValue(r.body).toString(),
            eventName: r.eventName,
            attributes: flattenAttributes(r.attributes),
          });
        }
      }
    }
  }
  return out;
}
