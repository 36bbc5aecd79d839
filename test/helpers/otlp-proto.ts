/**
 * Small, independent decoders for OTLP metrics and logs export requests
 * (opentelemetry-proto v1: collector/metrics/v1, metrics/v1,
 * collector/logs/v1, logs/v1, common/v1, resource/v1): binary protobuf, and
 * OTLP JSON at the end of the file.
 * Written against the .proto field numbers and the OTLP JSON rules rather
 * than reusing the SDK's serializer, so tests check the real wire format.
 *
 * (otlp-transformer 0.223 no longer ships generated protobufjs code: it has a
 * hand-written writer and only a response reader, and protobufjs is not a
 * direct dependency — hence this decoder.)
 */

export type AttributeValue = string | number | boolean | AttributeValue[] | { [key: string]: AttributeValue } | Uint8Array;
export type DecodedAttributes = Record<string, AttributeValue>;

export interface DecodedNumberDataPoint {
  attributes: DecodedAttributes;
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  value: number;
  /** Which oneof field carried the value. */
  valueType: 'int' | 'double';
}

export interface DecodedHistogramDataPoint {
  attributes: DecodedAttributes;
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  count: number;
  sum?: number;
  bucketCounts: number[];
  explicitBounds: number[];
  min?: number;
  max?: number;
}

export type Temporality = 'unspecified' | 'delta' | 'cumulative';

export type DecodedMetricData =
  | { kind: 'gauge'; dataPoints: DecodedNumberDataPoint[] }
  | { kind: 'sum'; dataPoints: DecodedNumberDataPoint[]; temporality: Temporality; monotonic: boolean }
  | { kind: 'histogram'; dataPoints: DecodedHistogramDataPoint[]; temporality: Temporality }
  | { kind: 'exponential_histogram' | 'summary' | 'none' };

export interface DecodedMetric {
  name: string;
  description: string;
  unit: string;
  data: DecodedMetricData;
}

export interface DecodedScopeMetrics {
  scope: { name: string; version: string; attributes: DecodedAttributes };
  metrics: DecodedMetric[];
  schemaUrl: string;
}

export interface DecodedResourceMetrics {
  resource: { attributes: DecodedAttributes; droppedAttributesCount: number };
  scopeMetrics: DecodedScopeMetrics[];
  schemaUrl: string;
}

export interface DecodedExportMetricsServiceRequest {
  resourceMetrics: DecodedResourceMetrics[];
}

const enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  Fixed32 = 5,
}

interface Field {
  number: number;
  wireType: WireType;
  /** varint (as bigint) */
  varint?: bigint;
  /** fixed64/fixed32/length-delimited payload */
  bytes?: Uint8Array;
}

class ProtoReader {
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('protobuf: truncated varint');
      const byte = this.buf[this.pos++] as number;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 70n) throw new Error('protobuf: varint too long');
    }
  }

  take(n: number): Uint8Array {
    if (this.pos + n > this.buf.length) throw new Error('protobuf: truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  field(): Field {
    const tag = this.varint();
    const number = Number(tag >> 3n);
    const wireType = Number(tag & 7n) as WireType;
    switch (wireType) {
      case WireType.Varint:
        return { number, wireType, varint: this.varint() };
      case WireType.Fixed64:
        return { number, wireType, bytes: this.take(8) };
      case WireType.LengthDelimited:
        return { number, wireType, bytes: this.take(Number(this.varint())) };
      case WireType.Fixed32:
        return { number, wireType, bytes: this.take(4) };
      default:
        throw new Error(`protobuf: unsupported wire type ${wireType as number} (field ${number})`);
    }
  }
}

function fields(buf: Uint8Array): Field[] {
  const reader = new ProtoReader(buf);
  const out: Field[] = [];
  while (!reader.done) out.push(reader.field());
  return out;
}

const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
const utf8 = new TextDecoder();
const str = (f: Field): string => utf8.decode(f.bytes);
const fixed64 = (f: Field): bigint => view(f.bytes as Uint8Array).getBigUint64(0, true);
const sfixed64 = (f: Field): bigint => view(f.bytes as Uint8Array).getBigInt64(0, true);
const double = (f: Field): number => view(f.bytes as Uint8Array).getFloat64(0, true);
const int64 = (f: Field): bigint => BigInt.asIntN(64, f.varint as bigint);

function packedFixed64(f: Field): number[] {
  const dv = view(f.bytes as Uint8Array);
  const out: number[] = [];
  for (let i = 0; i + 8 <= dv.byteLength; i += 8) out.push(Number(dv.getBigUint64(i, true)));
  return out;
}

function packedDouble(f: Field): number[] {
  const dv = view(f.bytes as Uint8Array);
  const out: number[] = [];
  for (let i = 0; i + 8 <= dv.byteLength; i += 8) out.push(dv.getFloat64(i, true));
  return out;
}

function decodeAnyValue(buf: Uint8Array): AttributeValue {
  let value: AttributeValue = '';
  for (const f of fields(buf)) {
    switch (f.number) {
      case 1:
        value = str(f);
        break;
      case 2:
        value = f.varint !== 0n;
        break;
      case 3:
        value = Number(int64(f));
        break;
      case 4:
        value = double(f);
        break;
      case 5:
        value = fields(f.bytes as Uint8Array)
          .filter((v) => v.number === 1)
          .map((v) => decodeAnyValue(v.bytes as Uint8Array));
        break;
      case 6: {
        const kv: { [key: string]: AttributeValue } = {};
        for (const entry of fields(f.bytes as Uint8Array)) {
          if (entry.number !== 1) continue;
          const [key, val] = decodeKeyValue(entry.bytes as Uint8Array);
          kv[key] = val;
        }
        value = kv;
        break;
      }
      case 7:
        value = Uint8Array.from(f.bytes as Uint8Array);
        break;
    }
  }
  return value;
}

function decodeKeyValue(buf: Uint8Array): [string, AttributeValue] {
  let key = '';
  let value: AttributeValue = '';
  for (const f of fields(buf)) {
    if (f.number === 1) key = str(f);
    else if (f.number === 2) value = decodeAnyValue(f.bytes as Uint8Array);
  }
  return [key, value];
}

function addAttribute(target: DecodedAttributes, f: Field): void {
  const [key, value] = decodeKeyValue(f.bytes as Uint8Array);
  target[key] = value;
}

function temporalityOf(n: bigint | undefined): Temporality {
  return n === 1n ? 'delta' : n === 2n ? 'cumulative' : 'unspecified';
}

function decodeNumberDataPoint(buf: Uint8Array): DecodedNumberDataPoint {
  const point: DecodedNumberDataPoint = { attributes: {}, startTimeUnixNano: 0n, timeUnixNano: 0n, value: 0, valueType: 'double' };
  for (const f of fields(buf)) {
    switch (f.number) {
      case 7:
        addAttribute(point.attributes, f);
        break;
      case 2:
        point.startTimeUnixNano = fixed64(f);
        break;
      case 3:
        point.timeUnixNano = fixed64(f);
        break;
      case 4:
        point.value = double(f);
        point.valueType = 'double';
        break;
      case 6:
        point.value = Number(sfixed64(f));
        point.valueType = 'int';
        break;
    }
  }
  return point;
}

function decodeHistogramDataPoint(buf: Uint8Array): DecodedHistogramDataPoint {
  const point: DecodedHistogramDataPoint = {
    attributes: {},
    startTimeUnixNano: 0n,
    timeUnixNano: 0n,
    count: 0,
    bucketCounts: [],
    explicitBounds: [],
  };
  for (const f of fields(buf)) {
    switch (f.number) {
      case 9:
        addAttribute(point.attributes, f);
        break;
      case 2:
        point.startTimeUnixNano = fixed64(f);
        break;
      case 3:
        point.timeUnixNano = fixed64(f);
        break;
      case 4:
        point.count = Number(fixed64(f));
        break;
      case 5:
        point.sum = double(f);
        break;
      case 6:
        if (f.wireType === WireType.LengthDelimited) point.bucketCounts.push(...packedFixed64(f));
        else point.bucketCounts.push(Number(fixed64(f)));
        break;
      case 7:
        if (f.wireType === WireType.LengthDelimited) point.explicitBounds.push(...packedDouble(f));
        else point.explicitBounds.push(double(f));
        break;
      case 11:
        point.min = double(f);
        break;
      case 12:
        point.max = double(f);
        break;
    }
  }
  return point;
}

function decodeMetric(buf: Uint8Array): DecodedMetric {
  const metric: DecodedMetric = { name: '', description: '', unit: '', data: { kind: 'none' } };
  for (const f of fields(buf)) {
    const body = f.bytes as Uint8Array;
    switch (f.number) {
      case 1:
        metric.name = str(f);
        break;
      case 2:
        metric.description = str(f);
        break;
      case 3:
        metric.unit = str(f);
        break;
      case 5: // Gauge
        metric.data = { kind: 'gauge', dataPoints: fields(body).filter((g) => g.number === 1).map((g) => decodeNumberDataPoint(g.bytes as Uint8Array)) };
        break;
      case 7: {
        // Sum
        const sumFields = fields(body);
        metric.data = {
          kind: 'sum',
          dataPoints: sumFields.filter((s) => s.number === 1).map((s) => decodeNumberDataPoint(s.bytes as Uint8Array)),
          temporality: temporalityOf(sumFields.find((s) => s.number === 2)?.varint),
          monotonic: (sumFields.find((s) => s.number === 3)?.varint ?? 0n) !== 0n,
        };
        break;
      }
      case 9: {
        // Histogram
        const histFields = fields(body);
        metric.data = {
          kind: 'histogram',
          dataPoints: histFields.filter((h) => h.number === 1).map((h) => decodeHistogramDataPoint(h.bytes as Uint8Array)),
          temporality: temporalityOf(histFields.find((h) => h.number === 2)?.varint),
        };
        break;
      }
      case 10:
        metric.data = { kind: 'exponential_histogram' };
        break;
      case 11:
        metric.data = { kind: 'summary' };
        break;
    }
  }
  return metric;
}

function decodeScopeMetrics(buf: Uint8Array): DecodedScopeMetrics {
  const out: DecodedScopeMetrics = { scope: { name: '', version: '', attributes: {} }, metrics: [], schemaUrl: '' };
  for (const f of fields(buf)) {
    if (f.number === 1) {
      for (const s of fields(f.bytes as Uint8Array)) {
        if (s.number === 1) out.scope.name = str(s);
        else if (s.number === 2) out.scope.version = str(s);
        else if (s.number === 3) addAttribute(out.scope.attributes, s);
      }
    } else if (f.number === 2) out.metrics.push(decodeMetric(f.bytes as Uint8Array));
    else if (f.number === 3) out.schemaUrl = str(f);
  }
  return out;
}

function decodeResourceMetrics(buf: Uint8Array): DecodedResourceMetrics {
  const out: DecodedResourceMetrics = { resource: { attributes: {}, droppedAttributesCount: 0 }, scopeMetrics: [], schemaUrl: '' };
  for (const f of fields(buf)) {
    if (f.number === 1) {
      for (const r of fields(f.bytes as Uint8Array)) {
        if (r.number === 1) addAttribute(out.resource.attributes, r);
        else if (r.number === 2) out.resource.droppedAttributesCount = Number(r.varint ?? 0n);
      }
    } else if (f.number === 2) out.scopeMetrics.push(decodeScopeMetrics(f.bytes as Uint8Array));
    else if (f.number === 3) out.schemaUrl = str(f);
  }
  return out;
}

/** Decode `opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest`. */
export function decodeExportMetricsServiceRequest(buf: Uint8Array): DecodedExportMetricsServiceRequest {
  return {
    resourceMetrics: fields(buf)
      .filter((f) => f.number === 1)
      .map((f) => decodeResourceMetrics(f.bytes as Uint8Array)),
  };
}

// ---------------------------------------------------------------------------
// Logs (opentelemetry/proto/logs/v1/logs.proto)

export interface DecodedLogRecord {
  timeUnixNano: bigint;
  observedTimeUnixNano: bigint;
  severityNumber: number;
  severityText: string;
  body: AttributeValue | undefined;
  attributes: DecodedAttributes;
  droppedAttributesCount: number;
  flags: number;
  traceId: Uint8Array | undefined;
  spanId: Uint8Array | undefined;
  eventName: string;
}

export interface DecodedScopeLogs {
  scope: { name: string; version: string; attributes: DecodedAttributes };
  logRecords: DecodedLogRecord[];
  schemaUrl: string;
}

export interface DecodedResourceLogs {
  resource: { attributes: DecodedAttributes; droppedAttributesCount: number };
  scopeLogs: DecodedScopeLogs[];
  schemaUrl: string;
}

export interface DecodedExportLogsServiceRequest {
  resourceLogs: DecodedResourceLogs[];
}

function emptyLogRecord(): DecodedLogRecord {
  return {
    timeUnixNano: 0n,
    observedTimeUnixNano: 0n,
    severityNumber: 0,
    severityText: '',
    body: undefined,
    attributes: {},
    droppedAttributesCount: 0,
    flags: 0,
    traceId: undefined,
    spanId: undefined,
    eventName: '',
  };
}

function decodeLogRecord(buf: Uint8Array): DecodedLogRecord {
  const r = emptyLogRecord();
  for (const f of fields(buf)) {
    switch (f.number) {
      case 1:
        r.timeUnixNano = fixed64(f);
        break;
      case 11:
        r.observedTimeUnixNano = fixed64(f);
        break;
      case 2:
        r.severityNumber = Number(f.varint ?? 0n);
        break;
      case 3:
        r.severityText = str(f);
        break;
      case 5:
        r.body = decodeAnyValue(f.bytes as Uint8Array);
        break;
      case 6:
        addAttribute(r.attributes, f);
        break;
      case 7:
        r.droppedAttributesCount = Number(f.varint ?? 0n);
        break;
      case 8:
        r.flags = view(f.bytes as Uint8Array).getUint32(0, true);
        break;
      case 9:
        r.traceId = Uint8Array.from(f.bytes as Uint8Array);
        break;
      case 10:
        r.spanId = Uint8Array.from(f.bytes as Uint8Array);
        break;
      case 12:
        r.eventName = str(f);
        break;
    }
  }
  return r;
}

function decodeScopeLogs(buf: Uint8Array): DecodedScopeLogs {
  const out: DecodedScopeLogs = { scope: { name: '', version: '', attributes: {} }, logRecords: [], schemaUrl: '' };
  for (const f of fields(buf)) {
    if (f.number === 1) {
      for (const s of fields(f.bytes as Uint8Array)) {
        if (s.number === 1) out.scope.name = str(s);
        else if (s.number === 2) out.scope.version = str(s);
        else if (s.number === 3) addAttribute(out.scope.attributes, s);
      }
    } else if (f.number === 2) out.logRecords.push(decodeLogRecord(f.bytes as Uint8Array));
    else if (f.number === 3) out.schemaUrl = str(f);
  }
  return out;
}

function decodeResourceLogs(buf: Uint8Array): DecodedResourceLogs {
  const out: DecodedResourceLogs = { resource: { attributes: {}, droppedAttributesCount: 0 }, scopeLogs: [], schemaUrl: '' };
  for (const f of fields(buf)) {
    if (f.number === 1) {
      for (const r of fields(f.bytes as Uint8Array)) {
        if (r.number === 1) addAttribute(out.resource.attributes, r);
        else if (r.number === 2) out.resource.droppedAttributesCount = Number(r.varint ?? 0n);
      }
    } else if (f.number === 2) out.scopeLogs.push(decodeScopeLogs(f.bytes as Uint8Array));
    else if (f.number === 3) out.schemaUrl = str(f);
  }
  return out;
}

/** Decode `opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest`. */
export function decodeExportLogsServiceRequest(buf: Uint8Array): DecodedExportLogsServiceRequest {
  return {
    resourceLogs: fields(buf)
      .filter((f) => f.number === 1)
      .map((f) => decodeResourceLogs(f.bytes as Uint8Array)),
  };
}

// ---------------------------------------------------------------------------
// OTLP JSON (the protobuf JSON mapping with the OTLP rules: lowerCamelCase
// field names, 64-bit integers as decimal strings or numbers, enums as numbers
// or names, bytes as base64), into the same decoded shape.

type Json = Record<string, unknown>;

function jsonObject(value: unknown, what: string): Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`OTLP JSON: ${what} is not an object`);
  return value as Json;
}

function jsonList(value: unknown, what: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new Error(`OTLP JSON: ${what} is not a list`);
  return value;
}

function jsonString(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** int64/uint64/fixed64: a decimal string or a number. */
function jsonInt64(value: unknown, what: string): bigint {
  if (value === undefined || value === null) return 0n;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  throw new Error(`OTLP JSON: ${what} is not a 64-bit integer: ${JSON.stringify(value)}`);
}

function jsonDouble(value: unknown, what: string): number {
  if (typeof value === 'number') return value;
  if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return Number(value);
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  throw new Error(`OTLP JSON: ${what} is not a number: ${JSON.stringify(value)}`);
}

function jsonTemporality(value: unknown): Temporality {
  if (value === 1 || value === 'AGGREGATION_TEMPORALITY_DELTA') return 'delta';
  if (value === 2 || value === 'AGGREGATION_TEMPORALITY_CUMULATIVE') return 'cumulative';
  return 'unspecified';
}

function jsonAnyValue(raw: unknown): AttributeValue {
  const v = jsonObject(raw, 'AnyValue');
  if ('stringValue' in v) return jsonString(v.stringValue);
  if ('boolValue' in v) return v.boolValue === true;
  if ('intValue' in v) return Number(jsonInt64(v.intValue, 'intValue'));
  if ('doubleValue' in v) return jsonDouble(v.doubleValue, 'doubleValue');
  if ('arrayValue' in v) return jsonList(jsonObject(v.arrayValue, 'arrayValue').values, 'arrayValue.values').map(jsonAnyValue);
  if ('kvlistValue' in v) return jsonAttributes(jsonObject(v.kvlistValue, 'kvlistValue').values);
  if ('bytesValue' in v) return Uint8Array.from(Buffer.from(jsonString(v.bytesValue), 'base64'));
  return '';
}

function jsonAttributes(raw: unknown): DecodedAttributes {
  const out: DecodedAttributes = {};
  for (const entry of jsonList(raw, 'attributes')) {
    const kv = jsonObject(entry, 'KeyValue');
    out[jsonString(kv.key)] = kv.value === undefined ? '' : jsonAnyValue(kv.value);
  }
  return out;
}

function jsonNumberDataPoint(raw: unknown): DecodedNumberDataPoint {
  const p = jsonObject(raw, 'NumberDataPoint');
  const base = {
    attributes: jsonAttributes(p.attributes),
    startTimeUnixNano: jsonInt64(p.startTimeUnixNano, 'startTimeUnixNano'),
    timeUnixNano: jsonInt64(p.timeUnixNano, 'timeUnixNano'),
  };
  if ('asInt' in p) return { ...base, value: Number(jsonInt64(p.asInt, 'asInt')), valueType: 'int' };
  return { ...base, value: 'asDouble' in p ? jsonDouble(p.asDouble, 'asDouble') : 0, valueType: 'double' };
}

function jsonHistogramDataPoint(raw: unknown): DecodedHistogramDataPoint {
  const p = jsonObject(raw, 'HistogramDataPoint');
  return {
    attributes: jsonAttributes(p.attributes),
    startTimeUnixNano: jsonInt64(p.startTimeUnixNano, 'startTimeUnixNano'),
    timeUnixNano: jsonInt64(p.timeUnixNano, 'timeUnixNano'),
    count: Number(jsonInt64(p.count, 'count')),
    ...(p.sum === undefined ? {} : { sum: jsonDouble(p.sum, 'sum') }),
    bucketCounts: jsonList(p.bucketCounts, 'bucketCounts').map((c) => Number(jsonInt64(c, 'bucketCounts'))),
    explicitBounds: jsonList(p.explicitBounds, 'explicitBounds').map((b) => jsonDouble(b, 'explicitBounds')),
    ...(p.min === undefined ? {} : { min: jsonDouble(p.min, 'min') }),
    ...(p.max === undefined ? {} : { max: jsonDouble(p.max, 'max') }),
  };
}

function jsonMetric(raw: unknown): DecodedMetric {
  const m = jsonObject(raw, 'Metric');
  const metric: DecodedMetric = { name: jsonString(m.name), description: jsonString(m.description), unit: jsonString(m.unit), data: { kind: 'none' } };
  if (m.gauge !== undefined) {
    metric.data = { kind: 'gauge', dataPoints: jsonList(jsonObject(m.gauge, 'gauge').dataPoints, 'dataPoints').map(jsonNumberDataPoint) };
  } else if (m.sum !== undefined) {
    const sum = jsonObject(m.sum, 'sum');
    metric.data = {
      kind: 'sum',
      dataPoints: jsonList(sum.dataPoints, 'dataPoints').map(jsonNumberDataPoint),
      temporality: jsonTemporality(sum.aggregationTemporality),
      monotonic: sum.isMonotonic === true,
    };
  } else if (m.histogram !== undefined) {
    const histogram = jsonObject(m.histogram, 'histogram');
    metric.data = {
      kind: 'histogram',
      dataPoints: jsonList(histogram.dataPoints, 'dataPoints').map(jsonHistogramDataPoint),
      temporality: jsonTemporality(histogram.aggregationTemporality),
    };
  } else if (m.exponentialHistogram !== undefined) {
    metric.data = { kind: 'exponential_histogram' };
  } else if (m.summary !== undefined) {
    metric.data = { kind: 'summary' };
  }
  return metric;
}

/** Decode an OTLP JSON `ExportMetricsServiceRequest` (already JSON.parse'd). Throws on malformed input. */
export function decodeExportMetricsServiceRequestJson(raw: unknown): DecodedExportMetricsServiceRequest {
  const request = jsonObject(raw, 'ExportMetricsServiceRequest');
  return {
    resourceMetrics: jsonList(request.resourceMetrics, 'resourceMetrics').map((rmRaw) => {
      const rm = jsonObject(rmRaw, 'ResourceMetrics');
      const resource = rm.resource === undefined ? {} : jsonObject(rm.resource, 'resource');
      return {
        resource: { attributes: jsonAttributes(resource.attributes), droppedAttributesCount: Number(resource.droppedAttributesCount ?? 0) },
        scopeMetrics: jsonList(rm.scopeMetrics, 'scopeMetrics').map((smRaw) => {
          const sm = jsonObject(smRaw, 'ScopeMetrics');
          const scope = sm.scope === undefined ? {} : jsonObject(sm.scope, 'scope');
          return {
            scope: { name: jsonString(scope.name), version: jsonString(scope.version), attributes: jsonAttributes(scope.attributes) },
            metrics: jsonList(sm.metrics, 'metrics').map(jsonMetric),
            schemaUrl: jsonString(sm.schemaUrl),
          };
        }),
        schemaUrl: jsonString(rm.schemaUrl),
      };
    }),
  };
}

/** Severity numbers by OTLP JSON enum name (SEVERITY_NUMBER_WARN …). */
function jsonSeverity(value: unknown): number {
  if (typeof value === 'number') return value;
  const names = ['UNSPECIFIED', 'TRACE', 'TRACE2', 'TRACE3', 'TRACE4', 'DEBUG', 'DEBUG2', 'DEBUG3', 'DEBUG4', 'INFO', 'INFO2', 'INFO3', 'INFO4', 'WARN', 'WARN2', 'WARN3', 'WARN4', 'ERROR', 'ERROR2', 'ERROR3', 'ERROR4', 'FATAL', 'FATAL2', 'FATAL3', 'FATAL4'];
  const i = typeof value === 'string' ? names.indexOf(value.replace(/^SEVERITY_NUMBER_/, '')) : -1;
  return i < 0 ? 0 : i;
}

/** Decode an OTLP JSON `ExportLogsServiceRequest` (already JSON.parse'd). Throws on malformed input. */
export function decodeExportLogsServiceRequestJson(raw: unknown): DecodedExportLogsServiceRequest {
  const request = jsonObject(raw, 'ExportLogsServiceRequest');
  return {
    resourceLogs: jsonList(request.resourceLogs, 'resourceLogs').map((rlRaw) => {
      const rl = jsonObject(rlRaw, 'ResourceLogs');
      const resource = rl.resource === undefined ? {} : jsonObject(rl.resource, 'resource');
      return {
        resource: { attributes: jsonAttributes(resource.attributes), droppedAttributesCount: Number(resource.droppedAttributesCount ?? 0) },
        scopeLogs: jsonList(rl.scopeLogs, 'scopeLogs').map((slRaw) => {
          const sl = jsonObject(slRaw, 'ScopeLogs');
          const scope = sl.scope === undefined ? {} : jsonObject(sl.scope, 'scope');
          return {
            scope: { name: jsonString(scope.name), version: jsonString(scope.version), attributes: jsonAttributes(scope.attributes) },
            logRecords: jsonList(sl.logRecords, 'logRecords').map((lrRaw) => {
              const lr = jsonObject(lrRaw, 'LogRecord');
              return {
                ...emptyLogRecord(),
                timeUnixNano: jsonInt64(lr.timeUnixNano, 'timeUnixNano'),
                observedTimeUnixNano: jsonInt64(lr.observedTimeUnixNano, 'observedTimeUnixNano'),
                severityNumber: jsonSeverity(lr.severityNumber),
                severityText: jsonString(lr.severityText),
                body: lr.body === undefined ? undefined : jsonAnyValue(lr.body),
                attributes: jsonAttributes(lr.attributes),
                droppedAttributesCount: Number(lr.droppedAttributesCount ?? 0),
                flags: Number(lr.flags ?? 0),
                eventName: jsonString(lr.eventName),
              };
            }),
            schemaUrl: jsonString(sl.schemaUrl),
          };
        }),
        schemaUrl: jsonString(rl.schemaUrl),
      };
    }),
  };
}
