/**
 * A real OTLP/gRPC metrics receiver for tests: a @grpc/grpc-js server
 * implementing `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`
 * with identity (de)serializers, decoding the raw protobuf request itself
 * (see otlp-proto.ts).
 *
 *   const receiver = await startOtlpReceiver();
 *   // exporter endpoint: receiver.endpoint (127.0.0.1:<port>), plaintext
 *   await receiver.waitFor((reqs) => flattenMetrics(reqs).some((m) => m.name === 'x'));
 *   await receiver.close();
 */
import { Server, ServerCredentials, status, type Metadata, type sendUnaryData, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import {
  decodeExportMetricsServiceRequest,
  type AttributeValue,
  type DecodedAttributes,
  type DecodedExportMetricsServiceRequest,
  type Temporality,
} from './otlp-proto';

export const METRICS_EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';

/** How the receiver answers: accept, or fail with a gRPC status. */
export type ReceiverBehavior = 'ok' | 'unavailable' | 'unauthenticated' | 'invalid_argument' | 'internal';

const STATUS_OF: Readonly<Record<Exclude<ReceiverBehavior, 'ok'>, status>> = {
  unavailable: status.UNAVAILABLE,
  unauthenticated: status.UNAUTHENTICATED,
  invalid_argument: status.INVALID_ARGUMENT,
  internal: status.INTERNAL,
};

export interface DecodedRequest extends DecodedExportMetricsServiceRequest {
  /** gRPC metadata (headers), first value of each key. */
  readonly metadata: Record<string, string>;
  readonly receivedAtMs: number;
}

export interface OtlpTestReceiver {
  readonly port: number;
  /** `127.0.0.1:<port>` */
  readonly endpoint: string;
  /** Accepted requests, in arrival order. */
  readonly requests: DecodedRequest[];
  /** Export calls answered with an error (see setBehavior). */
  readonly rejected: number;
  setBehavior(behavior: ReceiverBehavior): void;
  /** Resolve with the requests once `predicate(requests)` holds; reject after `timeoutMs`. */
  waitFor(predicate: (requests: readonly DecodedRequest[]) => boolean, timeoutMs?: number): Promise<DecodedRequest[]>;
  close(): Promise<void>;
}

export interface ReceiverOptions {
  /** 0 (default) picks a free port. */
  readonly port?: number;
  readonly host?: string;
  /** Serve TLS with this PEM key/cert; with `clientCa`, require client certificates signed by it. */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer; readonly clientCa?: Buffer };
}

const identity = (buffer: Buffer): Buffer => buffer;

export async function startOtlpReceiver(options: ReceiverOptions = {}): Promise<OtlpTestReceiver> {
  const host = options.host ?? '127.0.0.1';
  const server = new Server();
  const requests: DecodedRequest[] = [];
  const waiters = new Set<() => void>();
  let behavior: ReceiverBehavior = 'ok';
  let rejected = 0;

  const handleExport = (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>): void => {
    if (behavior !== 'ok') {
      rejected++;
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
    requests.push({ ...decoded, metadata: metadataRecord(call.metadata), receivedAtMs: Date.now() });
    // An empty ExportMetricsServiceResponse encodes to zero bytes.
    callback(null, Buffer.alloc(0));
    for (const wake of [...waiters]) wake();
  };

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
    requests,
    get rejected() {
      return rejected;
    },
    setBehavior(next) {
      behavior = next;
    },
    waitFor(predicate, timeoutMs = 5_000) {
      return new Promise<DecodedRequest[]>((resolve, reject) => {
        const check = (): boolean => {
          if (!predicate(requests)) return false;
          cleanup();
          resolve([...requests]);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`OTLP test receiver: condition not met within ${timeoutMs}ms (${requests.length} requests received, ${rejected} rejected)`));
        }, timeoutMs);
        const wake = (): void => {
          check();
        };
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(wake);
        };
        waiters.add(wake);
        check();
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Don't let a stuck client keep the test alive.
        setTimeout(() => server.forceShutdown(), 1_000).unref();
      });
    },
  };
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

/** Resource attributes of a request (of its first ResourceMetrics). */
export function resourceAttributes(request: DecodedExportMetricsServiceRequest): FlatAttributes {
  return flattenAttributes(request.resourceMetrics[0]?.resource.attributes ?? {});
}
