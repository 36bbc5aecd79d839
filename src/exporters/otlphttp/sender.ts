/**
 * One OTLP/HTTP export attempt: POST an ExportMetricsServiceRequest or an
 * ExportLogsServiceRequest (protobuf or JSON, from
 * @opentelemetry/otlp-transformer's serializers) and classify the answer as
 * the Collector's otlphttp exporter does:
 *
 * - 2xx: success;
 * - 429, 502, 503, 504: retryable, honouring `Retry-After` (seconds or a date);
 * - any other status: permanent;
 * - no answer (connection refused or reset, DNS, TLS, timeout): retryable.
 */
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { JsonLogsSerializer, JsonMetricsSerializer, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { flowtelMetricsSerializer } from '../otlp-metrics-protobuf';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { AggregationTemporality, InstrumentType, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { MetricsSender, Sender, SendOutcome } from '../retry';

const gzip = promisify(gzipCallback);

/** Bytes of an error response kept for the message. */
const MAX_ERROR_BODY = 4096;
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

export type OtlpHttpEncoding = 'proto' | 'json';

export interface OtlpHttpTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly rejectUnauthorized: boolean;
}

/** Where and how requests are posted (one per signal: /v1/metrics, /v1/logs). */
export interface OtlpHttpPostOptions {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly compression: 'gzip' | 'none';
  readonly encoding: OtlpHttpEncoding;
  readonly timeoutMs: number;
  readonly userAgent: string;
  /** https only. */
  readonly tls?: OtlpHttpTls;
  /** Connections kept open (num_consumers). */
  readonly maxSockets: number;
}

export interface OtlpHttpSenderOptions extends OtlpHttpPostOptions {
  readonly temporality: (type: InstrumentType) => AggregationTemporality;
}

const CONTENT_TYPE: Readonly<Record<OtlpHttpEncoding, string>> = { proto: 'application/x-protobuf', json: 'application/json' };

/** POSTs encoded requests to one URL over kept-alive connections, and classifies the answers. */
export class OtlpHttpPoster {
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private readonly request: typeof httpRequest;

  constructor(private readonly options: OtlpHttpPostOptions) {
    this.url = new URL(options.url);
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets };
    if (this.url.protocol === 'https:') {
      const tls = options.tls ?? { rejectUnauthorized: true };
      this.agent = new HttpsAgent({ ...agentOptions, ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized });
      this.request = httpsRequest;
    } else {
      this.agent = new HttpAgent(agentOptions);
      this.request = httpRequest;
    }
  }

  get encoding(): OtlpHttpEncoding {
    return this.options.encoding;
  }

  /** Encode with `encode` (undefined: nothing encodable), compress, post. Never rejects. */
  async send(encode: () => Uint8Array | undefined): Promise<SendOutcome> {
    let body: Uint8Array;
    try {
      const encoded = encode();
      if (encoded === undefined) return { kind: 'permanent', error: new Error('nothing to send: the batch could not be encoded') };
      body = this.options.compression === 'gzip' ? await gzip(encoded) : encoded;
    } catch (error) {
      return { kind: 'permanent', error: new Error(`encoding the request failed: ${error instanceof Error ? error.message : String(error)}`) };
    }
    return this.post(body);
  }

  close(): void {
    this.agent.destroy();
  }

  private post(body: Uint8Array): Promise<SendOutcome> {
    const headers: Record<string, string> = {
      'User-Agent': this.options.userAgent,
      ...this.options.headers,
      'Content-Type': CONTENT_TYPE[this.options.encoding],
      'Content-Length': String(body.byteLength),
    };
    if (this.options.compression === 'gzip') headers['Content-Encoding'] = 'gzip';
    const target = `POST ${this.url.href}`;
    return new Promise<SendOutcome>((resolve) => {
      let settled = false;
      const finish = (outcome: SendOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const req = this.request(this.url, { method: 'POST', headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size >= MAX_ERROR_BODY) return;
          chunks.push(chunk);
          size += chunk.length;
        });
        res.on('end', () => finish(classifyResponse(res, Buffer.concat(chunks), target)));
        res.on('error', (error) => finish({ kind: 'retryable', error: new Error(`${target}: reading the response failed: ${error.message}`) }));
      });
      const timer = setTimeout(() => req.destroy(new Error(`timed out after ${this.options.timeoutMs}ms`)), this.options.timeoutMs);
      req.on('error', (error) => finish({ kind: 'retryable', error: new Error(`${target}: ${error.message}`, { cause: error }) }));
      req.end(body);
    });
  }
}

/** Metrics: one ExportMetricsServiceRequest per attempt. */
export class OtlpHttpSender implements MetricsSender {
  readonly selectAggregationTemporality: (type: InstrumentType) => AggregationTemporality;
  private readonly poster: OtlpHttpPoster;

  constructor(options: OtlpHttpSenderOptions) {
    this.poster = new OtlpHttpPoster(options);
    this.selectAggregationTemporality = options.temporality;
  }

  send(metrics: ResourceMetrics): Promise<SendOutcome> {
    const serializer = this.poster.encoding === 'json' ? JsonMetricsSerializer : flowtelMetricsSerializer;
    return this.poster.send(() => serializer.serializeRequest(metrics));
  }

  async shutdown(): Promise<void> {
    this.poster.close();
  }
}

/** Log records: one ExportLogsServiceRequest per attempt. */
export class OtlpHttpLogsSender implements Sender<ReadableLogRecord[]> {
  private readonly poster: OtlpHttpPoster;

  constructor(options: OtlpHttpPostOptions) {
    this.poster = new OtlpHttpPoster(options);
  }

  send(records: ReadableLogRecord[]): Promise<SendOutcome> {
    const serializer = this.poster.encoding === 'json' ? JsonLogsSerializer : ProtobufLogsSerializer;
    return this.poster.send(() => serializer.serializeRequest(records));
  }

  async shutdown(): Promise<void> {
    this.poster.close();
  }
}

function classifyResponse(res: IncomingMessage, body: Buffer, target: string): SendOutcome {
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return { kind: 'success' };
  const error = new Error(`${target}: HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}${describeBody(res, body)}`);
  if (!RETRYABLE_STATUS.has(status)) return { kind: 'permanent', error };
  const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
  return retryAfterMs === undefined ? { kind: 'retryable', error } : { kind: 'retryable', error, retryAfterMs };
}

/** A text or JSON error body (e.g. a google.rpc.Status as JSON), shortened; binary bodies are left out. */
function describeBody(res: IncomingMessage, body: Buffer): string {
  const type = String(res.headers['content-type'] ?? '');
  if (body.length === 0 || !/json|text/i.test(type)) return '';
  const text = body.toString('utf8').replace(/\s+/g, ' ').trim();
  return text ? `: ${text.length > 300 ? `${text.slice(0, 300)}…` : text}` : '';
}

/** `Retry-After`: delay-seconds or an HTTP date; undefined if absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
