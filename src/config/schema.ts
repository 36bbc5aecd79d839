/**
 * Declarative option schemas for component configs, shared by every factory
 * (receivers, processors, exporters, extensions).
 *
 * A schema lists each option with its type, default and description:
 *
 * ```ts
 * const schema = {
 *   endpoint: { type: 'string', description: 'host:port to send to' },
 *   timeout: { type: 'duration', default: '5s', description: 'per-export deadline' },
 *   compression: { type: 'enum', values: ['gzip', 'none'], default: 'gzip', description: '...' },
 *   headers: { type: 'map<string,string>', default: {}, description: 'extra gRPC metadata' },
 *   tls: { type: 'object', description: 'TLS settings', schema: {
 *     insecure: { type: 'boolean', default: false, description: 'plaintext' },
 *   } },
 * } as const satisfies Schema;
 *
 * type Config = SchemaValue<typeof schema>;
 * //   { timeout: number; compression: 'gzip' | 'none'; headers: Record<string, string>;
 * //     tls: { insecure: boolean }; endpoint?: string }
 *
 * validate(raw: unknown, path: string): Config {
 *   return validateObject(raw, path, schema); // throws ConfigError(s) naming `path.option`
 * }
 * readonly options = describeSchema(schema);  // OptionDoc[] for `flowtel components`
 * ```
 *
 * Rules:
 * - `null`/absent input means "all defaults"; a non-map input is an error.
 * - An unknown option is an error that suggests the closest known name.
 * - Options with a `default` (or `required: true`) are always present in the
 *   result; others are `undefined` when not written, so a factory can tell
 *   "not set" apart (e.g. to let an OTEL_* env var apply). `object` options
 *   are always present (with their own defaults).
 * - A value of `null` (`key:` with nothing after it) counts as not written.
 * - Types: `string` (numbers and booleans are accepted and turned into strings,
 *   since `${env:X}` can yield them), `number` (numeric strings accepted),
 *   `boolean` (`"true"`/`"false"` accepted), `duration` (`500ms`, `10s`,
 *   `1h30m`; result in milliseconds; bare numbers other than 0 are rejected
 *   as ambiguous),
 *   `string[]`, `map<string,string>` (scalar values stringified), `enum`
 *   (case-insensitive, result is the canonical spelling), `object` (nested schema).
 * - All problems in one object are reported together (ConfigErrorList).
 */
import type { OptionDoc } from '../pipeline/component';
import { formatDuration, parseDuration } from '../util/duration';
import { ConfigError, ConfigErrorList } from './errors';
import { childPath } from './location';
import { didYouMean } from './suggest';
import { isConfigMap } from './types';

interface OptionBase {
  readonly description: string;
  /** Error if the option is not written (and has no default). */
  readonly required?: boolean;
  /** Shown in docs instead of `default` (e.g. "from OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4317"). */
  readonly docDefault?: string;
  /** A secret (password, token, auth headers): error messages never show its value. */
  readonly sensitive?: boolean;
}

export interface StringOption extends OptionBase {
  readonly type: 'string';
  readonly default?: string;
  readonly allowEmpty?: boolean;
  /** Extra check; return an error message or undefined. */
  readonly check?: (value: string) => string | undefined;
}
export interface NumberOption extends OptionBase {
  readonly type: 'number';
  readonly default?: number;
  readonly min?: number;
  readonly max?: number;
  readonly integer?: boolean;
}
export interface BooleanOption extends OptionBase {
  readonly type: 'boolean';
  readonly default?: boolean;
}
export interface DurationOption extends OptionBase {
  readonly type: 'duration';
  /** A duration string (`10s`) or milliseconds. */
  readonly default?: string | number;
  /** Minimum in milliseconds (inclusive). Default: must be > 0. */
  readonly minMs?: number;
}
export interface StringListOption extends OptionBase {
  readonly type: 'string[]';
  readonly default?: readonly string[];
}
export interface StringMapOption extends OptionBase {
  readonly type: 'map<string,string>';
  readonly default?: Readonly<Record<string, string>>;
}
export interface EnumOption extends OptionBase {
  readonly type: 'enum';
  readonly values: readonly string[];
  readonly default?: string;
}
export interface ObjectOption extends OptionBase {
  readonly type: 'object';
  readonly schema: Schema;
}

export type OptionSpec =
  | StringOption
  | NumberOption
  | BooleanOption
  | DurationOption
  | StringListOption
  | StringMapOption
  | EnumOption
  | ObjectOption;

export interface Schema {
  readonly [option: string]: OptionSpec;
}

type OptionValue<O> = O extends { readonly type: 'string' }
  ? string
  : O extends { readonly type: 'number' }
    ? number
    : O extends { readonly type: 'boolean' }
      ? boolean
      : O extends { readonly type: 'duration' }
        ? number
        : O extends { readonly type: 'string[]' }
          ? string[]
          : O extends { readonly type: 'map<string,string>' }
            ? Record<string, string>
            : O extends { readonly type: 'enum'; readonly values: readonly (infer V)[] }
              ? V
              : O extends { readonly type: 'object'; readonly schema: infer S extends Schema }
                ? SchemaValue<S>
                : never;

type AlwaysPresent<O> = O extends { readonly type: 'object' }
  ? true
  : O extends { readonly default: unknown }
    ? true
    : O extends { readonly required: true }
      ? true
      : false;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The validated value of a schema (see the module comment). */
export type SchemaValue<S extends Schema> = Simplify<
  { -readonly [K in keyof S as AlwaysPresent<S[K]> extends true ? K : never]: OptionValue<S[K]> } & {
    -readonly [K in keyof S as AlwaysPresent<S[K]> extends true ? never : K]?: OptionValue<S[K]>;
  }
>;

/**
 * Check `raw` against `schema`, fill in defaults and return the typed value.
 * `path` (e.g. `exporters.otlp`) prefixes every error. Throws ConfigError, or
 * ConfigErrorList when there are several problems.
 */
export function validateObject<S extends Schema>(raw: unknown, path: string, schema: S): SchemaValue<S> {
  const errors: ConfigError[] = [];
  const value = checkObject(raw, path, schema, errors);
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new ConfigErrorList(path, errors);
  return value as SchemaValue<S>;
}

/** Defaults of a schema, as validateObject(undefined) would return them. */
export function schemaDefaults<S extends Schema>(schema: S): SchemaValue<S> {
  const errors: ConfigError[] = [];
  const value = checkObject(undefined, '', schema, errors, true);
  return value as SchemaValue<S>;
}

/** Option docs for a schema; nested objects are flattened to `tls.insecure`. */
export function describeSchema(schema: Schema, prefix = ''): OptionDoc[] {
  const docs: OptionDoc[] = [];
  for (const [name, spec] of Object.entries(schema)) {
    const fullName = prefix ? `${prefix}.${name}` : name;
    if (spec.type === 'object') {
      docs.push({ name: fullName, type: 'object', description: spec.description });
      docs.push(...describeSchema(spec.schema, fullName));
      continue;
    }
    const defaultValue = spec.docDefault ?? docDefault(spec);
    const description = spec.required ? `${spec.description} (required)` : spec.description;
    docs.push(
      defaultValue === undefined
        ? { name: fullName, type: typeName(spec), description }
        : { name: fullName, type: typeName(spec), default: defaultValue, description },
    );
  }
  return docs;
}

function typeName(spec: OptionSpec): string {
  return spec.type === 'enum' ? spec.values.join(' | ') : spec.type;
}

function docDefault(spec: OptionSpec): unknown {
  if (spec.type === 'object' || spec.default === undefined) return undefined;
  if (spec.type === 'duration' && typeof spec.default === 'number') return formatDuration(spec.default);
  return spec.default;
}

type Plain = Record<string, unknown>;

function checkObject(raw: unknown, path: string, schema: Schema, errors: ConfigError[], defaultsOnly = false): Plain {
  const out: Plain = {};
  let input: Plain = {};
  if (raw !== undefined && raw !== null) {
    if (isConfigMap(raw)) input = raw;
    else errors.push(new ConfigError(path, `expected a map of options, got ${describeValue(raw)}`));
  }
  const known = Object.keys(schema);
  for (const key of Object.keys(input)) {
    if (!Object.prototype.hasOwnProperty.call(schema, key)) {
      const knownList = known.length > 0 ? ` (known options: ${known.join(', ')})` : ' (this component takes no options)';
      errors.push(new ConfigError(childPath(path, key), `unknown option "${key}"${didYouMean(key, known)}${knownList}`));
    }
  }
  for (const [key, spec] of Object.entries(schema)) {
    const optionPath = childPath(path, key);
    const value = input[key];
    if (spec.type === 'object') {
      out[key] = checkObject(value, optionPath, spec.schema, errors, defaultsOnly);
      continue;
    }
    if (value === undefined || value === null) {
      if (spec.default !== undefined) out[key] = defaultValue(spec, optionPath, errors);
      else if (spec.required && !defaultsOnly) errors.push(new ConfigError(optionPath, `required option "${key}" is missing`));
      continue;
    }
    const checked = checkOption(value, optionPath, spec, errors);
    if (checked !== undefined) out[key] = checked;
  }
  return out;
}

function defaultValue(spec: Exclude<OptionSpec, ObjectOption>, path: string, errors: ConfigError[]): unknown {
  switch (spec.type) {
    case 'duration':
      return typeof spec.default === 'number' ? spec.default : checkOption(spec.default, path, spec, errors);
    case 'string[]':
      return [...(spec.default ?? [])];
    case 'map<string,string>':
      return { ...spec.default };
    default:
      return spec.default;
  }
}

function checkOption(value: unknown, path: string, spec: Exclude<OptionSpec, ObjectOption>, errors: ConfigError[]): unknown {
  // A secret's value never goes into a message (validate output, logs).
  const describeValue = spec.sensitive ? describeRedacted : describePlain;
  const fail = (message: string): undefined => {
    errors.push(new ConfigError(path, message));
    return undefined;
  };
  switch (spec.type) {
    case 'string': {
      const text = asString(value);
      if (text === undefined) return fail(`expected a string, got ${describeValue(value)}`);
      if (!spec.allowEmpty && text.trim() === '') return fail('must not be empty');
      const problem = spec.check?.(text);
      return problem ? fail(problem) : text;
    }
    case 'number': {
      const n = asNumber(value);
      if (n === undefined) return fail(`expected a number, got ${describeValue(value)}`);
      if (spec.integer && !Number.isInteger(n)) return fail(`expected an integer, got ${n}`);
      if (spec.min !== undefined && n < spec.min) return fail(`must be at least ${spec.min}, got ${n}`);
      if (spec.max !== undefined && n > spec.max) return fail(`must be at most ${spec.max}, got ${n}`);
      return n;
    }
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === 'true';
      return fail(`expected a boolean (true or false), got ${describeValue(value)}`);
    }
    case 'duration': {
      // A bare 0 is unambiguous (Go's time.ParseDuration takes it too: `timeout: 0`).
      if (typeof value !== 'string' && value !== 0) {
        return fail(`expected a duration with a unit (e.g. 500ms, 10s, 1m), got ${describeValue(value)}`);
      }
      let ms: number;
      try {
        ms = value === 0 ? 0 : parseDuration(value as string);
      } catch (error) {
        return fail(error instanceof Error ? error.message : String(error));
      }
      const min = spec.minMs;
      if (min === undefined ? ms <= 0 : ms < min) {
        return fail(min === undefined ? `must be greater than 0, got ${value}` : `must be at least ${formatDuration(min)}, got ${value}`);
      }
      return ms;
    }
    case 'string[]': {
      if (!Array.isArray(value)) return fail(`expected a list of strings, got ${describeValue(value)}`);
      const out: string[] = [];
      value.forEach((item, index) => {
        const text = asString(item);
        if (text === undefined) errors.push(new ConfigError(childPath(path, index), `expected a string, got ${describeValue(item)}`));
        else out.push(text);
      });
      return out;
    }
    case 'map<string,string>': {
      if (!isConfigMap(value)) return fail(`expected a map of strings, got ${describeValue(value)}`);
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(value)) {
        const text = v === null ? '' : asString(v);
        if (text === undefined) errors.push(new ConfigError(childPath(path, k), `expected a string, got ${describeValue(v)}`));
        else out[k] = text;
      }
      return out;
    }
    case 'enum': {
      const text = asString(value);
      const match = text === undefined ? undefined : spec.values.find((v) => v.toLowerCase() === text.trim().toLowerCase());
      if (match !== undefined) return match;
      const hint = text === undefined ? '' : didYouMean(text, spec.values);
      return fail(`expected one of ${spec.values.map((v) => `"${v}"`).join(', ')}, got ${describeValue(value)}${hint}`);
    }
  }
}

function asString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function asNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && value.trim() !== '') {
    const n = Number(value.trim());
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** What a sensitive value is, without the value: `a string (12 characters, not shown)`, `a map`, ... */
export function describeRedacted(value: unknown): string {
  if (typeof value === 'string') return `a string (${value.length} characters, not shown)`;
  if (typeof value === 'number' || typeof value === 'boolean') return `a ${typeof value} (not shown)`;
  return describeValue(value);
}

const describePlain = (value: unknown): string => describeValue(value);

/** `a string ("abc")`, `a number (5)`, `a list`, `a map`, ... */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return `a string ("${value.length > 40 ? `${value.slice(0, 40)}…` : value}")`;
  if (typeof value === 'number') return `a number (${value})`;
  if (typeof value === 'boolean') return `a boolean (${value})`;
  return typeof value;
}
