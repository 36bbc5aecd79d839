/**
 * Attribute actions with the OpenTelemetry Collector's names and semantics
 * (attributes processor): insert, update, upsert, delete, hash, extract,
 * convert. Validated from config once, then applied to attribute maps
 * copy-on-write (the input map is never changed).
 *
 * - insert: set `key` if it is absent. update: set it if present. upsert:
 *   set it either way. The value is `value` (a string, number or boolean,
 *   type kept) or the value of `from_attribute` (no change if that is absent).
 * - delete: remove `key`, and every attribute whose name matches `pattern`.
 * - hash: replace the value of `key` (and of every attribute whose name
 *   matches `pattern`) with the lowercase hex SHA-256 (64 characters, not
 *   truncated) of its string form — or HMAC-SHA256 with the processor's
 *   `hash_key`. The Collector also uses SHA-256 (earlier versions SHA-1).
 * - extract: match `pattern` (a regex with named groups) against the string
 *   value of `key`; each named group that took part in the match becomes an
 *   attribute (overwriting one of the same name). No match: no change.
 *   `(?P<name>...)` (Go/RE2 syntax, as in Collector configs) is accepted, and
 *   group names may be attribute names with dots (`(?<url.path>...)`).
 * - convert: `converted_type` int | double | string; a value that does not
 *   convert is left as it is.
 *
 * Patterns are JavaScript regular expressions, unanchored (add ^ and $ to
 * match whole names or values).
 */
import { createHash, createHmac } from 'node:crypto';
import { ConfigError } from '../config/errors';
import { childPath } from '../config/location';
import { describeValue } from '../config/schema';
import { didYouMean } from '../config/suggest';
import { isConfigMap } from '../config/types';
import type { OptionDoc } from '../pipeline/component';
import type { AttributeValue, FlowAttributes } from '../pipeline/measurements';
import { BoundedCache } from './common';

export const ACTION_NAMES = ['insert', 'update', 'upsert', 'delete', 'hash', 'extract', 'convert'] as const;
export type ActionName = (typeof ACTION_NAMES)[number];
export const CONVERTED_TYPES = ['int', 'double', 'string'] as const;
export type ConvertedType = (typeof CONVERTED_TYPES)[number];

const ACTION_FIELDS = ['key', 'action', 'value', 'from_attribute', 'pattern', 'converted_type'] as const;

/** One validated action, as plain data (patterns as source text). */
export interface AttributeAction {
  readonly action: ActionName;
  readonly key?: string;
  readonly value?: AttributeValue;
  readonly fromAttribute?: string;
  /** Key regex for delete/hash, value regex for extract, as written. */
  readonly pattern?: string;
  readonly convertedType?: ConvertedType;
}

/** Option docs for an `actions` list, `prefix` e.g. `actions`. */
export function actionOptionDocs(prefix: string, target: string, of = 'of every measurement'): OptionDoc[] {
  return [
    {
      name: prefix,
      type: 'list of maps',
      description: `Actions applied in order to the ${target} ${of}, with the Collector's names: insert, update, upsert, delete, hash, extract, convert (required, at least one).`,
    },
    { name: `${prefix}[].key`, type: 'string', description: 'The attribute the action acts on (required except for delete and hash with a pattern).' },
    {
      name: `${prefix}[].action`,
      type: ACTION_NAMES.join(' | '),
      description:
        'insert: set key if absent; update: set if present; upsert: set either way; delete: remove key and attributes whose names match pattern; hash: replace with the hex SHA-256 (64 characters) of the value (HMAC-SHA256 with hash_key); extract: named groups of pattern, matched on the value of key, become attributes; convert: change the type to converted_type (required).',
    },
    { name: `${prefix}[].value`, type: 'string | number | boolean', description: 'The value insert/update/upsert set (its YAML type is kept). Not with from_attribute.' },
    { name: `${prefix}[].from_attribute`, type: 'string', description: 'insert/update/upsert: copy the value of this attribute instead (nothing happens when it is absent).' },
    {
      name: `${prefix}[].pattern`,
      type: 'string',
      description:
        'A JavaScript regex, unanchored. delete/hash: matched against attribute names. extract: matched against the value of key, with named groups ((?<name>...) or (?P<name>...); names may contain dots) that become attributes.',
    },
    { name: `${prefix}[].converted_type`, type: CONVERTED_TYPES.join(' | '), description: 'convert: the type to convert to; values that do not convert are left as they are.' },
  ];
}

/**
 * `(?P<name>` → `(?<name>`, and group names that are not JavaScript
 * identifiers (`url.path`) → generated ones. Returns the source and, for
 * every named group, JavaScript name → attribute name. Escapes and character
 * classes are skipped.
 */
export function translateNamedGroups(pattern: string): { source: string; names: Map<string, string> } {
  const names = new Map<string, string>();
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\') {
      // \k<name> back-reference to a renamed group.
      const ref = /^\\k<([^>]+)>/.exec(pattern.slice(i));
      if (ref && !inClass) {
        const generated = [...names].find(([, wanted]) => wanted === ref[1])?.[0];
        out += `\\k<${generated ?? ref[1]}>`;
        i += ref[0].length - 1;
        continue;
      }
      out += pattern.slice(i, i + 2);
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      continue;
    }
    const group = /^\(\?P?<(?![=!])([^>]*)>/.exec(pattern.slice(i));
    if (c === '(' && group) {
      const name = group[1] as string;
      const jsName = name === '' || /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : `__flowtel_g${names.size}`;
      names.set(jsName, name);
      out += `(?<${jsName}>`;
      i += group[0].length - 1;
      continue;
    }
    out += c;
  }
  return { source: out, names };
}

interface CompiledAction extends AttributeAction {
  readonly regex?: RegExp;
  /** extract: regex group name → attribute name. */
  readonly groups?: ReadonlyMap<string, string>;
}

function fail(errors: ConfigError[], path: string, message: string): undefined {
  errors.push(new ConfigError(path, message));
  return undefined;
}

/** A pattern as written (Go-style (?P<...>) and dotted group names allowed) → RegExp and its named groups. */
function compilePattern(pattern: string): { regex: RegExp; groups: Map<string, string> } {
  const { source, names } = translateNamedGroups(pattern);
  return { regex: new RegExp(source), groups: names };
}

function compileRegex(pattern: string, path: string, errors: ConfigError[]): { regex: RegExp; groups: Map<string, string> } | undefined {
  try {
    return compilePattern(pattern);
  } catch (error) {
    const detail = error instanceof Error ? error.message.replace(/^Invalid regular expression: /, '') : String(error);
    return fail(errors, path, `invalid regular expression "${pattern}": ${detail}`);
  }
}

/** Validate an `actions` list; errors (with paths like `actions[2].pattern`) go to `errors`. */
export function validateActions(raw: unknown, path: string, errors: ConfigError[]): AttributeAction[] {
  if (raw === undefined || raw === null) {
    fail(errors, path, 'at least one action is required (e.g. - { key: source.address, action: hash })');
    return [];
  }
  if (!Array.isArray(raw)) {
    fail(errors, path, `expected a list of actions, got ${describeValue(raw)}`);
    return [];
  }
  if (raw.length === 0) fail(errors, path, 'at least one action is required (e.g. - { key: source.address, action: hash })');
  const out: AttributeAction[] = [];
  raw.forEach((item, index) => {
    const action = validateAction(item, childPath(path, index), errors);
    if (action) out.push(action);
  });
  return out;
}

function validateAction(raw: unknown, path: string, errors: ConfigError[]): AttributeAction | undefined {
  if (!isConfigMap(raw)) return fail(errors, path, `expected a map with key and action, got ${describeValue(raw)}`);
  const before = errors.length;
  for (const field of Object.keys(raw)) {
    if (!(ACTION_FIELDS as readonly string[]).includes(field)) {
      fail(errors, childPath(path, field), `unknown field "${field}"${didYouMean(field, ACTION_FIELDS)} (known fields: ${ACTION_FIELDS.join(', ')})`);
    }
  }
  const str = (field: string): string | undefined => {
    const v = raw[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string' && v !== '') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    return fail(errors, childPath(path, field), `expected a non-empty string, got ${describeValue(v)}`);
  };
  const actionText = str('action');
  if (actionText === undefined) {
    if (raw.action === undefined || raw.action === null) fail(errors, childPath(path, 'action'), `required field "action" is missing (one of: ${ACTION_NAMES.join(', ')})`);
    return undefined;
  }
  const action = ACTION_NAMES.find((a) => a === actionText.trim().toLowerCase());
  if (!action) {
    return fail(errors, childPath(path, 'action'), `unknown action "${actionText}"${didYouMean(actionText, ACTION_NAMES)} (one of: ${ACTION_NAMES.join(', ')})`);
  }
  const key = str('key');
  const pattern = str('pattern');
  const fromAttribute = str('from_attribute');
  const convertedText = str('converted_type');
  const rawValue = raw.value;
  const hasValue = rawValue !== undefined && rawValue !== null;
  const notFor = (field: string, present: boolean): void => {
    if (present) fail(errors, childPath(path, field), `"${field}" does not apply to the ${action} action`);
  };
  const needKey = (): void => {
    if (key === undefined && raw.key == null) fail(errors, childPath(path, 'key'), `required field "key" is missing (the ${action} action needs it)`);
  };

  const result: { -readonly [K in keyof AttributeAction]: AttributeAction[K] } = { action };
  if (key !== undefined) result.key = key;
  switch (action) {
    case 'insert':
    case 'update':
    case 'upsert': {
      needKey();
      notFor('pattern', pattern !== undefined);
      notFor('converted_type', convertedText !== undefined);
      if (hasValue && fromAttribute !== undefined) fail(errors, path, 'set either value or from_attribute, not both');
      else if (!hasValue && fromAttribute === undefined && raw.from_attribute == null) {
        fail(errors, path, `the ${action} action needs a value or a from_attribute`);
      }
      if (hasValue) {
        if (typeof rawValue === 'string' || typeof rawValue === 'number' || typeof rawValue === 'boolean') result.value = rawValue;
        else fail(errors, childPath(path, 'value'), `expected a string, number or boolean, got ${describeValue(rawValue)}`);
      }
      if (fromAttribute !== undefined) result.fromAttribute = fromAttribute;
      break;
    }
    case 'delete':
    case 'hash': {
      notFor('value', hasValue);
      notFor('from_attribute', fromAttribute !== undefined);
      notFor('converted_type', convertedText !== undefined);
      if (key === undefined && pattern === undefined && raw.key == null && raw.pattern == null) {
        fail(errors, path, `the ${action} action needs a key, a pattern (a regex on attribute names), or both`);
      }
      if (pattern !== undefined && compileRegex(pattern, childPath(path, 'pattern'), errors)) result.pattern = pattern;
      break;
    }
    case 'extract': {
      needKey();
      notFor('value', hasValue);
      notFor('from_attribute', fromAttribute !== undefined);
      notFor('converted_type', convertedText !== undefined);
      if (pattern === undefined) {
        if (raw.pattern == null) fail(errors, childPath(path, 'pattern'), 'required field "pattern" is missing (a regex with named groups, e.g. "^(?<url.host>[^/]+)/")');
        break;
      }
      const compiled = compileRegex(pattern, childPath(path, 'pattern'), errors);
      if (!compiled) break;
      if (compiled.groups.size === 0) {
        fail(errors, childPath(path, 'pattern'), `"${pattern}" has no named groups: write (?<attribute.name>...) for each attribute to create`);
        break;
      }
      result.pattern = pattern;
      break;
    }
    case 'convert': {
      needKey();
      notFor('value', hasValue);
      notFor('from_attribute', fromAttribute !== undefined);
      notFor('pattern', pattern !== undefined);
      if (convertedText === undefined) {
        if (raw.converted_type == null) fail(errors, childPath(path, 'converted_type'), `required field "converted_type" is missing (one of: ${CONVERTED_TYPES.join(', ')})`);
        break;
      }
      const t = CONVERTED_TYPES.find((c) => c === convertedText.trim().toLowerCase());
      if (!t) {
        fail(errors, childPath(path, 'converted_type'), `unknown type "${convertedText}"${didYouMean(convertedText, CONVERTED_TYPES)} (one of: ${CONVERTED_TYPES.join(', ')})`);
        break;
      }
      result.convertedType = t;
      break;
    }
  }
  return errors.length === before ? result : undefined;
}

function convert(value: AttributeValue, to: ConvertedType): AttributeValue | undefined {
  switch (to) {
    case 'string':
      return String(value);
    case 'int':
    case 'double': {
      let n: number;
      if (typeof value === 'number') n = value;
      else if (typeof value === 'boolean') n = value ? 1 : 0;
      else if (value.trim() === '') return undefined;
      else n = Number(value.trim());
      if (!Number.isFinite(n)) return undefined;
      return to === 'int' ? Math.trunc(n) : n;
    }
  }
}

/**
 * Actions ready to apply. `hashKey`: HMAC-SHA256 key for `hash` (plain
 * SHA-256 without it).
 */
export class ActionList {
  private readonly actions: readonly CompiledAction[];
  private readonly hashes = new BoundedCache<string, string>();

  constructor(
    actions: readonly AttributeAction[],
    private readonly hashKey?: string,
  ) {
    this.actions = actions.map((a) => (a.pattern === undefined ? a : { ...a, ...compilePattern(a.pattern) }));
  }

  /** The hex digest `hash` writes for `value`. */
  hash(value: AttributeValue): string {
    const text = String(value);
    let digest = this.hashes.get(text);
    if (digest === undefined) {
      digest = (this.hashKey === undefined ? createHash('sha256') : createHmac('sha256', this.hashKey)).update(text, 'utf8').digest('hex');
      this.hashes.set(text, digest);
    }
    return digest;
  }

  /** The attributes after every action; `attributes` itself when nothing changed (never modified). */
  apply(attributes: FlowAttributes): FlowAttributes {
    let current = attributes;
    let copied = false;
    const write = (): FlowAttributes => {
      if (!copied) {
        current = { ...current };
        copied = true;
      }
      return current;
    };
    for (const a of this.actions) {
      const key = a.key;
      switch (a.action) {
        case 'insert':
        case 'update':
        case 'upsert': {
          const present = current[key as string] !== undefined;
          if ((a.action === 'insert' && present) || (a.action === 'update' && !present)) break;
          const value = a.fromAttribute !== undefined ? current[a.fromAttribute] : a.value;
          if (value === undefined) break;
          if (current[key as string] !== value) write()[key as string] = value;
          break;
        }
        case 'delete': {
          if (key !== undefined && current[key] !== undefined) delete write()[key];
          if (a.regex) {
            for (const k of Object.keys(current)) if (a.regex.test(k)) delete write()[k];
          }
          break;
        }
        case 'hash': {
          const targets = new Set<string>();
          if (key !== undefined && current[key] !== undefined) targets.add(key);
          if (a.regex) for (const k of Object.keys(current)) if (a.regex.test(k)) targets.add(k);
          for (const k of targets) write()[k] = this.hash(current[k] as AttributeValue);
          break;
        }
        case 'extract': {
          const value = current[key as string];
          if (typeof value !== 'string' || !a.regex || !a.groups) break;
          const match = a.regex.exec(value);
          if (!match?.groups) break;
          for (const [jsName, attribute] of a.groups) {
            const captured = match.groups[jsName];
            if (captured !== undefined) write()[attribute] = captured;
          }
          break;
        }
        case 'convert': {
          const value = current[key as string];
          if (value === undefined) break;
          const converted = convert(value, a.convertedType as ConvertedType);
          if (converted !== undefined && converted !== value) write()[key as string] = converted;
          break;
        }
      }
    }
    return current;
  }
}
