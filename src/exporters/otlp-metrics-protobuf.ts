/**
 * The protobuf encoding of an OTLP ExportMetricsServiceRequest
 * (opentelemetry-proto collector/metrics/v1) from sdk-metrics'
 * ResourceMetrics: the same bytes as @opentelemetry/otlp-transformer's
 * ProtobufMetricsSerializer (same fields, same order; a unit test compares
 * the two), for a fraction of its CPU on flowtel's collections.
 *
 * What makes the difference is the attributes. A flow series keeps one
 * attribute object for its whole life (src/pipeline/flow-metrics.ts), and
 * its ~10 key/value pairs are most of each data point's bytes. They are
 * encoded once per object and kept (a WeakMap: they go when the series
 * does); every later collection copies the bytes. This relies on what both
 * flowtel (src/pipeline/measurements.ts) and the SDK promise: an attribute
 * object is not changed once recorded. The cost is the encoded bytes, about
 * 240 bytes per attribute set of a flow. Everything else is
 * written once into a buffer of the exact size computed beforehand, instead
 * of an estimate pass and a writing pass that each walk every string.
 */
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType, type DataPoint, type ExponentialHistogram, type Histogram, type MetricData, type ResourceMetrics, type ScopeMetrics } from '@opentelemetry/sdk-metrics';
import { ProtobufMetricsSerializer, type IExportMetricsServiceResponse, type ISerializer } from '@opentelemetry/otlp-transformer';

/** Wire types. */
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const tag = (field: number, wire: number): number => (field << 3) | wire;

/** Bytes of a varint holding a uint32 (lengths, tags, small enums). */
function varint32Size(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Bytes of a length-delimited field whose tag is one byte (field numbers below 16). */
const lenField = (body: number): number => 1 + varint32Size(body) + body;

const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;
const isInt64 = (n: number): boolean => Number.isInteger(n) && n >= MIN_INT64 && n < MAX_INT64;

/** Low and high 32 bits of an int64 held in a double (two's complement for negatives). */
function split64(value: number): [number, number] {
  if (value >= 0) return [value >>> 0, (value / 0x100000000) >>> 0];
  const abs = Math.abs(value);
  let low = ~(abs >>> 0) >>> 0;
  let high = ~((abs / 0x100000000) >>> 0) >>> 0;
  low = (low + 1) >>> 0;
  if (low === 0) high = (high + 1) >>> 0;
  return [low, high];
}

/** Bytes of a varint holding any int64 (negative: ten). */
function varint64Size(value: number): number {
  if (value >= 0 && value <= 0xffffffff) return varint32Size(value);
  const [low, high] = split64(value);
  let n = 1;
  let l = low;
  let h = high;
  while (h > 0 || l > 0x7f) {
    l = ((l >>> 7) | (h << 25)) >>> 0;
    h >>>= 7;
    n++;
  }
  return n;
}

/** UTF-8 bytes of a string (ASCII, the usual case, without calling into C++). */
function utf8Size(s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, 'utf8');
  return n;
}

/** Size of an AnyValue message's body for an attribute value (what the transformer writes; unsupported types: empty). */
function anyValueSize(v: unknown): number {
  switch (typeof v) {
    case 'string':
      return lenField(utf8Size(v));
    case 'boolean':
      return 2;
    case 'number':
      return isInt64(v) ? 1 + varint64Size(v) : 9;
    case 'object': {
      if (v === null) return 0;
      if (v instanceof Uint8Array) return lenField(v.length);
      if (Array.isArray(v)) {
        let body = 0;
        for (const item of v as unknown[]) body += lenField(anyValueSize(item));
        return lenField(body);
      }
      return lenField(kvListSize(v as Record<string, unknown>));
    }
    default:
      return 0;
  }
}

/** Body of a KeyValueList: one KeyValue field (1) per own property. */
function kvListSize(obj: Record<string, unknown>): number {
  let body = 0;
  for (const k in obj) {
    if (!Object.prototype.hasOwnProperty.call(obj, k)) continue;
    body += lenField(lenField(utf8Size(k)) + lenField(anyValueSize(obj[k])));
  }
  return body;
}

/** Writes into a buffer whose size was computed exactly beforehand. */
class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  varint32(v: number): void {
    const buf = this.buf;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  varint64(value: number): void {
    if (value >= 0 && value <= 0xffffffff) {
      this.varint32(value >>> 0);
      return;
    }
    let [low, high] = split64(value);
    while (high > 0 || low > 0x7f) {
      this.buf[this.pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    this.buf[this.pos++] = low & 0x7f;
  }

  fixed64(low: number, high: number): void {
    this.buf.writeUInt32LE(low >>> 0, this.pos);
    this.buf.writeUInt32LE(high >>> 0, this.pos + 4);
    this.pos += 8;
  }

  /** An unsigned count held in a double. */
  uint64(n: number): void {
    this.fixed64(n >>> 0, (n / 0x100000000) >>> 0);
  }

  double(v: number): void {
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  /** An optional double field (sum, min, max): nothing when undefined. */
  optionalDouble(field: number, v: number | undefined): void {
    if (v === undefined) return;
    this.byte(tag(field, FIXED64));
    this.double(v);
  }

  /** Length prefix and UTF-8 bytes; `size` is utf8Size(s). */
  string(s: string, size: number): void {
    this.varint32(size);
    if (size === s.length) {
      const buf = this.buf;
      let p = this.pos;
      for (let i = 0; i < size; i++) buf[p++] = s.charCodeAt(i);
      this.pos = p;
    } else {
      this.pos += this.buf.write(s, this.pos, 'utf8');
    }
  }

  bytes(b: Uint8Array): void {
    this.varint32(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  anyValue(v: unknown): void {
    switch (typeof v) {
      case 'string':
        this.byte(tag(1, LEN));
        this.string(v, utf8Size(v));
        return;
      case 'boolean':
        this.byte(tag(2, VARINT));
        this.byte(v ? 1 : 0);
        return;
      case 'number':
        if (isInt64(v)) {
          this.byte(tag(3, VARINT));
          this.varint64(v);
        } else {
          this.byte(tag(4, FIXED64));
          this.double(v);
        }
        return;
      case 'object': {
        if (v === null) return;
        if (v instanceof Uint8Array) {
          this.byte(tag(7, LEN));
          this.bytes(v);
          return;
        }
        if (Array.isArray(v)) {
          this.byte(tag(5, LEN));
          let body = 0;
          for (const item of v as unknown[]) body += lenField(anyValueSize(item));
          this.varint32(body);
          for (const item of v as unknown[]) {
            this.byte(tag(1, LEN));
            this.varint32(anyValueSize(item));
            this.anyValue(item);
          }
          return;
        }
        this.byte(tag(6, LEN));
        this.varint32(kvListSize(v as Record<string, unknown>));
        const obj = v as Record<string, unknown>;
        for (const k in obj) {
          if (!Object.prototype.hasOwnProperty.call(obj, k)) continue;
          this.keyValue(1, k, obj[k]);
        }
        return;
      }
      default:
        return;
    }
  }

  /** One KeyValue field: tag, length, key, value. */
  keyValue(field: number, key: string, value: unknown): void {
    const keySize = utf8Size(key);
    const valueSize = anyValueSize(value);
    this.byte(tag(field, LEN));
    this.varint32(lenField(keySize) + lenField(valueSize));
    this.byte(tag(1, LEN));
    this.string(key, keySize);
    this.byte(tag(2, LEN));
    this.varint32(valueSize);
    this.anyValue(value);
  }
}

let scratchBuffer = Buffer.allocUnsafe(4096);
function scratch(size: number): Buffer {
  if (scratchBuffer.length < size) scratchBuffer = Buffer.allocUnsafe(Math.max(size, 2 * scratchBuffer.length));
  return scratchBuffer;
}

/**
 * The repeated KeyValue fields of an attribute set, encoded once with field
 * number 1 (each KeyValue's tag is patched to the field of the message that
 * holds it when copied).
 */
const encodedAttributes = new WeakMap<Attributes, string>();

/** The encoded block as a one-byte string: compact on V8's heap, no backing store of its own, copied with latin1Write. */
function attributesBlock(attrs: Attributes): string {
  const cached = encodedAttributes.get(attrs);
  if (cached !== undefined) return cached;
  let size = 0;
  for (const key in attrs) {
    if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
    size += lenField(lenField(utf8Size(key)) + lenField(anyValueSize(attrs[key])));
  }
  const w = new Writer(scratch(size));
  for (const key in attrs) {
    if (!Object.prototype.hasOwnProperty.call(attrs, key)) continue;
    w.keyValue(1, key, attrs[key]);
  }
  const block = w.buf.toString('latin1', 0, size);
  encodedAttributes.set(attrs, block);
  return block;
}

/** Copies an attribute block as field `field` of the message being written. */
function writeAttributes(w: Writer, block: string, field: number): void {
  const start = w.pos;
  w.pos += w.buf.write(block, start, 'latin1');
  if (field === 1) return;
  const t = tag(field, LEN);
  const buf = w.buf;
  let p = start;
  const end = w.pos;
  while (p < end) {
    buf[p++] = t;
    let len = 0;
    let shift = 0;
    let b: number;
    do {
      b = buf[p++]!;
      len |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    p += len;
  }
}

/** Nanoseconds since the epoch of an HrTime, as [low, high] 32-bit halves (the transformer's arithmetic, exact past 2^53). */
function hrTimeHalves(t: HrTime): [number, number] {
  const seconds = t[0];
  const nanos = t[1];
  const lowerNs = (seconds & 0xffff) * 1e9;
  const upperNs = ((seconds / 0x10000) >>> 0) * 1e9;
  const low32 = (lowerNs >>> 0) + (((upperNs & 0xffff) * 0x10000) >>> 0) + nanos;
  const high = (Math.floor(lowerNs / 0x100000000) + ((upperNs / 0x10000) >>> 0) + Math.floor(low32 / 0x100000000)) >>> 0;
  return [low32 >>> 0, high];
}

/** The same HrTime objects recur on every point of a collection (end time) or of a series (start time). */
class HrTimeWriter {
  private last?: HrTime;
  private seconds = 0;
  private nanos = 0;
  private halves: [number, number] = [0, 0];
  write(w: Writer, t: HrTime): void {
    if (t !== this.last || t[0] !== this.seconds || t[1] !== this.nanos) {
      this.last = t;
      this.seconds = t[0];
      this.nanos = t[1];
      this.halves = hrTimeHalves(t);
    }
    w.fixed64(this.halves[0], this.halves[1]);
  }
}

function protoTemporality(t: AggregationTemporality): number {
  return t === AggregationTemporality.DELTA ? 1 : t === AggregationTemporality.CUMULATIVE ? 2 : 0;
}

/* ---- sizes (bodies, without the enclosing tag and length) ---- */

function histogramPointSize(p: DataPoint<Histogram>, attributes: number): number {
  const h = p.value;
  let n = 9 + 9 + 9 + attributes;
  if (h.sum !== undefined) n += 9;
  if (h.buckets.counts.length > 0) n += lenField(8 * h.buckets.counts.length);
  if (h.buckets.boundaries.length > 0) n += lenField(8 * h.buckets.boundaries.length);
  if (h.min !== undefined) n += 9;
  if (h.max !== undefined) n += 9;
  return n;
}

function bucketsSize(offset: number, counts: readonly number[]): number {
  let n = offset !== 0 ? 1 + varint32Size(zigzag32(offset)) : 0;
  if (counts.length > 0) {
    let body = 0;
    for (const c of counts) body += varint64Size(c);
    n += lenField(body);
  }
  return n;
}

const zigzag32 = (v: number): number => ((v << 1) ^ (v >> 31)) >>> 0;

function exponentialPointSize(p: DataPoint<ExponentialHistogram>, attributes: number): number {
  const h = p.value;
  let n = attributes + 9 + 9 + 9;
  if (h.sum !== undefined) n += 9;
  if (h.scale !== 0) n += 1 + varint32Size(zigzag32(h.scale));
  n += 9;
  n += lenField(bucketsSize(h.positive.offset, h.positive.bucketCounts));
  n += lenField(bucketsSize(h.negative.offset, h.negative.bucketCounts));
  if (h.min !== undefined) n += 9;
  if (h.max !== undefined) n += 9;
  return n;
}

/** Sizes computed for one request, reused by the writing pass. */
interface Sizes {
  /** One per data point, in order. */
  points: number[];
  /** The attribute block of each data point, in order. */
  blocks: string[];
  /** One per metric: the body of its Gauge/Sum/Histogram message. */
  data: number[];
  /** One per metric: the Metric body. */
  metrics: number[];
  /** One per scope: the ScopeMetrics body. */
  scopes: number[];
  /** The InstrumentationScope body, one per scope. */
  scopeIds: number[];
  resource: number;
  resourceMetrics: number;
}

function pointSize(type: DataPointType, p: DataPoint<unknown>, attributes: number): number {
  switch (type) {
    case DataPointType.HISTOGRAM:
      return histogramPointSize(p as DataPoint<Histogram>, attributes);
    case DataPointType.EXPONENTIAL_HISTOGRAM:
      return exponentialPointSize(p as DataPoint<ExponentialHistogram>, attributes);
    default:
      // start, time, value (fixed64 + tag each), attributes
      return 9 + 9 + 9 + attributes;
  }
}

function scopeIdSize(s: ScopeMetrics['scope'] & { attributes?: Attributes; droppedAttributesCount?: number }): number {
  let n = lenField(utf8Size(s.name));
  if (s.version) n += lenField(utf8Size(s.version));
  if (s.attributes) n += attributesBlock(s.attributes).length;
  if (s.droppedAttributesCount) n += 1 + varint32Size(s.droppedAttributesCount);
  return n;
}

function measure(rm: ResourceMetrics): Sizes {
  const sizes: Sizes = { points: [], blocks: [], data: [], metrics: [], scopes: [], scopeIds: [], resource: 0, resourceMetrics: 0 };
  sizes.resource = attributesBlock(rm.resource.attributes).length + 2;
  let rmBody = lenField(sizes.resource);
  for (const sm of rm.scopeMetrics) {
    const id = scopeIdSize(sm.scope);
    sizes.scopeIds.push(id);
    let smBody = lenField(id);
    for (const m of sm.metrics) {
      let data = 0;
      for (const p of m.dataPoints as ReadonlyArray<DataPoint<unknown>>) {
        const block = attributesBlock(p.attributes);
        const ps = pointSize(m.dataPointType, p, block.length);
        sizes.blocks.push(block);
        sizes.points.push(ps);
        data += lenField(ps);
      }
      if (m.dataPointType !== DataPointType.GAUGE && protoTemporality(m.aggregationTemporality) !== 0) data += 2;
      if (m.dataPointType === DataPointType.SUM && m.isMonotonic) data += 2;
      sizes.data.push(data);
      const d = m.descriptor;
      let body = lenField(utf8Size(d.name));
      if (d.description) body += lenField(utf8Size(d.description));
      if (d.unit) body += lenField(utf8Size(d.unit));
      body += lenField(data);
      sizes.metrics.push(body);
      smBody += lenField(body);
    }
    if (sm.scope.schemaUrl) smBody += lenField(utf8Size(sm.scope.schemaUrl));
    sizes.scopes.push(smBody);
    rmBody += lenField(smBody);
  }
  if (rm.resource.schemaUrl) rmBody += lenField(utf8Size(rm.resource.schemaUrl));
  sizes.resourceMetrics = rmBody;
  return sizes;
}

/* ---- writing ---- */

class RequestWriter {
  private readonly start = new HrTimeWriter();
  private readonly end = new HrTimeWriter();
  private point = 0;
  private metric = 0;
  private scope = 0;

  constructor(
    private readonly w: Writer,
    private readonly sizes: Sizes,
  ) {}

  request(rm: ResourceMetrics): void {
    const w = this.w;
    const s = this.sizes;
    w.byte(tag(1, LEN));
    w.varint32(s.resourceMetrics);
    // Resource: attributes (1), dropped_attributes_count (2) = 0
    w.byte(tag(1, LEN));
    w.varint32(s.resource);
    writeAttributes(w, attributesBlock(rm.resource.attributes), 1);
    w.byte(tag(2, VARINT));
    w.byte(0);
    for (const sm of rm.scopeMetrics) {
      w.byte(tag(2, LEN));
      w.varint32(s.scopes[this.scope]!);
      this.scopeMetrics(sm);
    }
    if (rm.resource.schemaUrl) this.stringField(3, rm.resource.schemaUrl);
  }

  private stringField(field: number, value: string): void {
    this.w.byte(tag(field, LEN));
    this.w.string(value, utf8Size(value));
  }

  private scopeMetrics(sm: ScopeMetrics): void {
    const w = this.w;
    const scope = sm.scope as ScopeMetrics['scope'] & { attributes?: Attributes; droppedAttributesCount?: number };
    w.byte(tag(1, LEN));
    w.varint32(this.sizes.scopeIds[this.scope]!);
    this.stringField(1, scope.name);
    if (scope.version) this.stringField(2, scope.version);
    if (scope.attributes) writeAttributes(w, attributesBlock(scope.attributes), 3);
    if (scope.droppedAttributesCount) {
      w.byte(tag(4, VARINT));
      w.varint32(scope.droppedAttributesCount);
    }
    for (const m of sm.metrics) {
      w.byte(tag(2, LEN));
      w.varint32(this.sizes.metrics[this.metric]!);
      this.metricData(m);
    }
    if (scope.schemaUrl) this.stringField(3, scope.schemaUrl);
    this.scope++;
  }

  private metricData(m: MetricData): void {
    const w = this.w;
    const d = m.descriptor;
    this.stringField(1, d.name);
    if (d.description) this.stringField(2, d.description);
    if (d.unit) this.stringField(3, d.unit);
    const field = { [DataPointType.GAUGE]: 5, [DataPointType.SUM]: 7, [DataPointType.HISTOGRAM]: 9, [DataPointType.EXPONENTIAL_HISTOGRAM]: 10 }[m.dataPointType];
    w.byte(tag(field, LEN));
    w.varint32(this.sizes.data[this.metric]!);
    this.metric++;
    switch (m.dataPointType) {
      case DataPointType.GAUGE:
      case DataPointType.SUM:
        for (const p of m.dataPoints) this.numberPoint(p, d.valueType);
        break;
      case DataPointType.HISTOGRAM:
        for (const p of m.dataPoints) this.histogramPoint(p);
        break;
      case DataPointType.EXPONENTIAL_HISTOGRAM:
        for (const p of m.dataPoints) this.exponentialPoint(p);
        break;
    }
    if (m.dataPointType !== DataPointType.GAUGE) {
      const t = protoTemporality(m.aggregationTemporality);
      if (t !== 0) {
        w.byte(tag(2, VARINT));
        w.byte(t);
      }
    }
    if (m.dataPointType === DataPointType.SUM && m.isMonotonic) {
      w.byte(tag(3, VARINT));
      w.byte(1);
    }
  }

  /** Starts a data point's message; returns its attribute block. */
  private pointHeader(): string {
    const w = this.w;
    w.byte(tag(1, LEN));
    w.varint32(this.sizes.points[this.point]!);
    return this.sizes.blocks[this.point++]!;
  }

  private times(p: DataPoint<unknown>): void {
    const w = this.w;
    w.byte(tag(2, FIXED64));
    this.start.write(w, p.startTime);
    w.byte(tag(3, FIXED64));
    this.end.write(w, p.endTime);
  }

  private numberPoint(p: DataPoint<number>, valueType: ValueType | undefined): void {
    const w = this.w;
    const attributes = this.pointHeader();
    this.times(p);
    if (valueType === ValueType.INT) {
      w.byte(tag(6, FIXED64));
      const [low, high] = split64(p.value);
      w.fixed64(low, high);
    } else {
      w.byte(tag(4, FIXED64));
      w.double(p.value);
    }
    writeAttributes(w, attributes, 7);
  }

  private histogramPoint(p: DataPoint<Histogram>): void {
    const w = this.w;
    const h = p.value;
    const attributes = this.pointHeader();
    this.times(p);
    w.byte(tag(4, FIXED64));
    w.uint64(h.count);
    w.optionalDouble(5, h.sum);
    const counts = h.buckets.counts;
    if (counts.length > 0) {
      w.byte(tag(6, LEN));
      w.varint32(8 * counts.length);
      for (const c of counts) w.uint64(c);
    }
    const bounds = h.buckets.boundaries;
    if (bounds.length > 0) {
      w.byte(tag(7, LEN));
      w.varint32(8 * bounds.length);
      for (const b of bounds) w.double(b);
    }
    writeAttributes(w, attributes, 9);
    w.optionalDouble(11, h.min);
    w.optionalDouble(12, h.max);
  }

  private buckets(field: number, offset: number, counts: readonly number[]): void {
    const w = this.w;
    w.byte(tag(field, LEN));
    w.varint32(bucketsSize(offset, counts));
    if (offset !== 0) {
      w.byte(tag(1, VARINT));
      w.varint32(zigzag32(offset));
    }
    if (counts.length > 0) {
      let body = 0;
      for (const c of counts) body += varint64Size(c);
      w.byte(tag(2, LEN));
      w.varint32(body);
      for (const c of counts) w.varint64(c);
    }
  }

  private exponentialPoint(p: DataPoint<ExponentialHistogram>): void {
    const w = this.w;
    const h = p.value;
    writeAttributes(w, this.pointHeader(), 1);
    this.times(p);
    w.byte(tag(4, FIXED64));
    w.uint64(h.count);
    w.optionalDouble(5, h.sum);
    if (h.scale !== 0) {
      w.byte(tag(6, VARINT));
      w.varint32(zigzag32(h.scale));
    }
    w.byte(tag(7, FIXED64));
    w.uint64(h.zeroCount);
    this.buckets(8, h.positive.offset, h.positive.bucketCounts);
    this.buckets(9, h.negative.offset, h.negative.bucketCounts);
    w.optionalDouble(12, h.min);
    w.optionalDouble(13, h.max);
  }
}

/** The encoded ExportMetricsServiceRequest holding `rm`. */
export function encodeMetricsRequest(rm: ResourceMetrics): Buffer {
  const sizes = measure(rm);
  const buf = Buffer.allocUnsafe(lenField(sizes.resourceMetrics));
  const w = new Writer(buf);
  new RequestWriter(w, sizes).request(rm);
  if (w.pos !== buf.length) throw new Error(`otlp metrics encoding: wrote ${w.pos} bytes of ${buf.length} computed`);
  return buf;
}

/** The serializer the otlp and otlphttp (protobuf) exporters send metrics with. */
export const flowtelMetricsSerializer: ISerializer<ResourceMetrics, IExportMetricsServiceResponse> = {
  serializeRequest: encodeMetricsRequest,
  deserializeResponse: (data) => ProtobufMetricsSerializer.deserializeResponse(data),
};
