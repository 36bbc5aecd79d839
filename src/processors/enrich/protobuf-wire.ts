/**
 * Just enough of the protobuf wire format to read the few container runtime
 * answers the `container` processor asks for (runtime-api.ts has the
 * messages, with their .proto field numbers) and to write its small requests.
 * Unknown fields are skipped, as protobuf requires, so newer runtimes that add
 * fields are read the same; a malformed message throws a ProtobufError.
 */

export class ProtobufError extends Error {}

/** One field of a message: its number and its raw value by wire type. */
export type WireField =
  | { readonly field: number; readonly wireType: 0; readonly value: bigint }
  | { readonly field: number; readonly wireType: 2; readonly value: Uint8Array }
  | { readonly field: number; readonly wireType: 1 | 5 };

function readVarint(buf: Uint8Array, at: number): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i]!;
    value |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [value, i + 1];
    shift += 7n;
  }
  throw new ProtobufError('truncated or over-long varint');
}

/** The fields of one message, in wire order (a repeated field appears once per element). */
export function* fields(buf: Uint8Array): Generator<WireField> {
  let at = 0;
  while (at < buf.length) {
    const [key, next] = readVarint(buf, at);
    at = next;
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (field === 0) throw new ProtobufError('field number 0');
    switch (wireType) {
      case 0: {
        const [value, after] = readVarint(buf, at);
        at = after;
        yield { field, wireType, value };
        break;
      }
      case 1:
      case 5: {
        at += wireType === 1 ? 8 : 4;
        if (at > buf.length) throw new ProtobufError('truncated fixed-width field');
        yield { field, wireType };
        break;
      }
      case 2: {
        const [length, after] = readVarint(buf, at);
        const end = after + Number(length);
        if (end > buf.length) throw new ProtobufError(`field ${field}: length ${length} past the end of the message`);
        yield { field, wireType, value: buf.subarray(after, end) };
        at = end;
        break;
      }
      default:
        throw new ProtobufError(`field ${field}: unsupported wire type ${wireType}`);
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

export function text(bytes: Uint8Array): string {
  return utf8.decode(bytes);
}

/** A `map<string, string>` entry (`key = 1`, `value = 2`). */
export function mapEntry(bytes: Uint8Array): [string, string] {
  let key = '';
  let value = '';
  for (const f of fields(bytes)) {
    if (f.wireType !== 2) continue;
    if (f.field === 1) key = text(f.value);
    else if (f.field === 2) value = text(f.value);
  }
  return [key, value];
}

// ---------------------------------------------------------------------------
// Writing: a message is a list of fields, written in order.

export type WriteValue = string | number | boolean | Uint8Array | WriteMessage;
/** A message to write: [field number, value] pairs; a nested array is a sub-message. */
export type WriteMessage = ReadonlyArray<readonly [number, WriteValue | undefined]>;

function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = n;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}

function lengthDelimited(field: number, bytes: Uint8Array): Uint8Array {
  return Uint8Array.from([...varint(BigInt((field << 3) | 2)), ...varint(BigInt(bytes.length)), ...bytes]);
}

/** The bytes of a message: strings and bytes and sub-messages length-delimited, numbers and booleans as varints (int64 two's complement for negatives). */
export function encode(message: WriteMessage): Buffer {
  const parts: Uint8Array[] = [];
  for (const [field, value] of message) {
    if (value === undefined) continue;
    if (typeof value === 'string') parts.push(lengthDelimited(field, new TextEncoder().encode(value)));
    else if (value instanceof Uint8Array) parts.push(lengthDelimited(field, value));
    else if (Array.isArray(value)) parts.push(lengthDelimited(field, encode(value as WriteMessage)));
    else {
      const n = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt.asUintN(64, BigInt(value as number));
      parts.push(Uint8Array.from([...varint(BigInt(field << 3)), ...varint(n)]));
    }
  }
  return Buffer.concat(parts);
}

/** A `map<string, string>` as the repeated entries protobuf writes it. */
export function encodeMap(field: number, map: Readonly<Record<string, string>>): Array<[number, WriteMessage]> {
  return Object.entries(map).map(([k, v]) => [field, [[1, k], [2, v]]]);
}
