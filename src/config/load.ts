/**
 * Loading config: YAML files merged in order (later over earlier), then
 * `--set key=value` overrides, with `${env:...}` expansion and source
 * locations for error messages. See `loadConfig`.
 */
import { readFileSync } from 'node:fs';
import { defaultConfigText, EMBEDDED_DEFAULT_SOURCE } from './default-config';
import { IssueCollector } from './errors';
import { formatPath } from './location';
import { mergeConfigs, type LocatedConfig } from './merge';
import type { ConfigMap, RawConfig } from './types';
import { parseConfigFile, parseYamlSource } from './yaml-source';

export interface LoadOptions {
  /** Environment for `${env:...}` and the default config; default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /** File reader (tests); default reads UTF-8 from disk. */
  readonly readFile?: (path: string) => string;
}

/**
 * Load and merge config sources.
 *
 * - `files`: YAML files, merged in order; maps merge deeply, lists and scalars
 *   are replaced. With no files, the embedded default config is used.
 * - `sets`: `--set` overrides, `key.path=value`, applied after the files. The
 *   value is parsed as YAML (`5` → number, `true` → boolean, `[a, b]` → list,
 *   `{k: v}` → map merged into what is there). Keys are split on `.`, or on
 *   `::` if the key contains `::` (for map keys that contain dots:
 *   `exporters::otlp::headers::x.api.key=secret`). Component ids with `/`
 *   need no escaping: `exporters.otlp/backup.endpoint=host:4317`.
 *
 * Throws ConfigValidationError (listing every problem with `file:line:col`)
 * if a file cannot be read or parsed, or a reference cannot be expanded.
 */
export function loadConfig(files: readonly string[], sets: readonly string[] = [], options: LoadOptions = {}): RawConfig {
  const env = options.env ?? process.env;
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  const issues = new IssueCollector();
  const warnings: string[] = [];
  const sources: string[] = [];
  let merged: LocatedConfig = { data: {}, locations: new Map() };

  const texts: Array<{ source: string; text: string }> = [];
  if (files.length === 0) texts.push({ source: EMBEDDED_DEFAULT_SOURCE, text: defaultConfigText(env) });
  for (const file of files) {
    try {
      texts.push({ source: file, text: readFile(file) });
    } catch (error) {
      issues.addAt({ source: file }, '', `cannot read config file: ${describeFsError(error)}`);
    }
  }
  for (const { source, text } of texts) {
    const parsed = parseConfigFile(text, source, env, issues);
    warnings.push(...parsed.warnings);
    sources.push(source);
    merged = mergeConfigs(merged, parsed);
  }

  for (const set of sets) {
    const override = parseSetOverride(set, env, issues);
    if (!override) continue;
    warnings.push(...override.warnings);
    sources.push(setSourceLabel(set));
    merged = mergeConfigs(merged, override);
  }

  issues.throwIfAny();
  return { data: merged.data, locations: merged.locations, sources, warnings };
}

/** Load config from in-memory YAML texts (tests, `flowtel validate -`); same rules as loadConfig. */
export function loadConfigFromTexts(
  texts: ReadonlyArray<{ source: string; text: string }>,
  sets: readonly string[] = [],
  options: Omit<LoadOptions, 'readFile'> = {},
): RawConfig {
  const byName = new Map(texts.map((t) => [t.source, t.text]));
  return loadConfig(
    texts.map((t) => t.source),
    sets,
    { ...options, readFile: (name) => byName.get(name) ?? '' },
  );
}

/** Split an override key into path segments (see loadConfig). */
export function splitSetKey(key: string): string[] {
  return key.includes('::') ? key.split('::') : key.split('.');
}

function parseSetOverride(
  set: string,
  env: NodeJS.ProcessEnv,
  issues: IssueCollector,
): { data: ConfigMap; locations: LocatedConfig['locations']; warnings: string[] } | undefined {
  const source = setSourceLabel(set);
  const eq = set.indexOf('=');
  if (eq <= 0) {
    issues.addAt({ source }, '', 'expected key.path=value');
    return undefined;
  }
  const segments = splitSetKey(set.slice(0, eq).trim());
  if (segments.some((s) => s.trim() === '')) {
    issues.addAt({ source }, '', `empty key segment in "${set.slice(0, eq)}"`);
    return undefined;
  }
  const path = formatPath(segments);
  const parsed = parseYamlSource(set.slice(eq + 1), source, env, issues, { basePath: path, withLines: false });
  let data: ConfigMap = {};
  for (let i = segments.length - 1; i >= 0; i--) {
    data = { [segments[i] as string]: i === segments.length - 1 ? parsed.data : data };
  }
  // Every ancestor of the override gets the --set as its location too.
  const locations = new Map(parsed.locations);
  for (let i = 1; i <= segments.length; i++) locations.set(formatPath(segments.slice(0, i)), { source });
  return { data, locations, warnings: parsed.warnings };
}

/** Keys whose values are secrets (headers, passwords, tokens, keys): shown in messages without their value. */
const SENSITIVE_SET_KEY = /(^|[.:_/-])(headers|password|token|bearer_token|secret|authorization|api[_-]?key|hash_key)([.:]|$)/i;

/** How a `--set` is named in messages: `--set key=value`, or `--set key=…` when the value may be a secret. */
export function setSourceLabel(set: string): string {
  const eq = set.indexOf('=');
  if (eq > 0 && SENSITIVE_SET_KEY.test(set.slice(0, eq))) return `--set ${set.slice(0, eq)}=…`;
  return `--set ${set}`;
}

function describeFsError(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such file';
    if (code === 'EACCES') return 'permission denied';
    if (code === 'EISDIR') return 'is a directory';
  }
  return error instanceof Error ? error.message : String(error);
}
