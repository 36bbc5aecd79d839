/**
 * Parse one YAML source into plain data, recording where every key and list
 * item was written (via the `yaml` package's node ranges and a LineCounter),
 * and expanding `${env:...}` references in string scalars.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, Scalar, type Document, type Node } from 'yaml';
import { expandEnvReferences } from './env-expand';
import { IssueCollector } from './errors';
import { childPath, locate, type LocationIndex, type SourceLocation } from './location';
import { isConfigMap, type ConfigMap, type ConfigValue } from './types';

export interface ParsedSource {
  readonly data: ConfigValue;
  readonly locations: LocationIndex;
  readonly warnings: string[];
}

interface WalkContext {
  readonly doc: Document;
  readonly env: NodeJS.ProcessEnv;
  readonly locations: LocationIndex;
  readonly issues: IssueCollector;
  readonly warnings: string[];
  readonly locationAt: (offset: number | undefined) => SourceLocation;
  depth: number;
}

const MAX_DEPTH = 64;

/**
 * Parse `text` (named `source` in messages). Problems go to `issues` with
 * locations; the returned data is best-effort so more problems can be found.
 * `basePath` prefixes every recorded path (used for `--set a.b=<yaml>`).
 * `withLines: false` records locations without line/col (for `--set`).
 */
export function parseYamlSource(
  text: string,
  source: string,
  env: NodeJS.ProcessEnv,
  issues: IssueCollector,
  options: { basePath?: string; withLines?: boolean } = {},
): ParsedSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const withLines = options.withLines ?? true;
  const locationAt = (offset: number | undefined): SourceLocation => {
    if (!withLines || offset === undefined) return { source };
    const { line, col } = lineCounter.linePos(offset);
    return { source, line, col };
  };
  const ctx: WalkContext = { doc, env, locations: new Map(), issues, warnings: [], locationAt, depth: 0 };
  for (const error of doc.errors) {
    const at = error.linePos?.[0];
    const firstLine = error.message.split('\n')[0] ?? error.message;
    const location: SourceLocation = withLines && at ? { source, line: at.line, col: at.col } : { source };
    // YAML syntax errors have no config path; report them by position.
    issues.addAt(location, options.basePath ?? '', `YAML: ${firstLine.replace(/ at line \d+, column \d+:?$/, '')}`);
  }
  if (doc.errors.length > 0) return { data: {}, locations: ctx.locations, warnings: ctx.warnings };
  const basePath = options.basePath ?? '';
  if (basePath !== '') ctx.locations.set(basePath, { source });
  const data = doc.contents === null ? null : walk(doc.contents as Node, basePath, ctx);
  return { data, locations: ctx.locations, warnings: ctx.warnings };
}

/** Parse a whole config file: the top level must be a map (an empty file is `{}`). */
export function parseConfigFile(text: string, source: string, env: NodeJS.ProcessEnv, issues: IssueCollector): {
  data: ConfigMap;
  locations: LocationIndex;
  warnings: string[];
} {
  const parsed = parseYamlSource(text, source, env, issues);
  if (parsed.data === null) return { data: {}, locations: parsed.locations, warnings: parsed.warnings };
  if (!isConfigMap(parsed.data)) {
    issues.addAt({ source }, '', 'the top level of a config file must be a map (receivers:, exporters:, service: ...)');
    return { data: {}, locations: parsed.locations, warnings: parsed.warnings };
  }
  return { data: parsed.data, locations: parsed.locations, warnings: parsed.warnings };
}

function walk(node: Node, path: string, ctx: WalkContext): ConfigValue {
  if (ctx.depth > MAX_DEPTH) {
    report(ctx, path, 'nesting too deep (recursive alias?)');
    return null;
  }
  ctx.depth++;
  try {
    if (isAlias(node)) {
      const target = node.resolve(ctx.doc);
      return target ? walk(target as Node, path, ctx) : null;
    }
    if (isScalar(node)) return scalarValue(node, path, ctx);
    if (isMap(node)) {
      const out: ConfigMap = {};
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const key = isScalar(keyNode) ? String(keyNode.value) : undefined;
        if (key === undefined) {
          report(ctx, path, 'map keys must be plain strings');
          continue;
        }
        if (key === '__proto__') {
          report(ctx, path, 'key "__proto__" is not allowed');
          continue;
        }
        const keyPath = childPath(path, key);
        ctx.locations.set(keyPath, ctx.locationAt(keyNode?.range?.[0]));
        out[key] = pair.value === null || pair.value === undefined ? null : walk(pair.value as Node, keyPath, ctx);
      }
      return out;
    }
    if (isSeq(node)) {
      return node.items.map((item, index) => {
        const itemPath = childPath(path, index);
        const itemNode = item as Node | null;
        ctx.locations.set(itemPath, ctx.locationAt(itemNode?.range?.[0]));
        return itemNode === null ? null : walk(itemNode, itemPath, ctx);
      });
    }
    report(ctx, path, 'unsupported YAML node');
    return null;
  } finally {
    ctx.depth--;
  }
}

/** Report at `path` with its location in this source. */
function report(ctx: WalkContext, path: string, message: string): void {
  ctx.issues.addAt(locate(ctx.locations, path), path, message);
}

function scalarValue(node: Scalar, path: string, ctx: WalkContext): ConfigValue {
  const value: unknown = node.value;
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'string') return String(value);
  const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE;
  try {
    const expanded = expandEnvReferences(value, ctx.env, !quoted);
    for (const name of expanded.unset) {
      ctx.warnings.push(`${path}: environment variable ${name} is not set; using an empty string`);
    }
    return expanded.value;
  } catch (error) {
    report(ctx, path, error instanceof Error ? error.message : String(error));
    return value;
  }
}
