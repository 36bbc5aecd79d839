/**
 * Where a config value came from, and how config paths are spelled.
 *
 * Paths are the dotted form people see in error messages:
 * `exporters.otlp/backup.tls.insecure`, with `[i]` for list items:
 * `service.pipelines.metrics.exporters[1]`.
 */

export interface SourceLocation {
  /** File name, `<embedded default>`, or `--set key=value`. */
  readonly source: string;
  /** 1-based; absent for sources without lines (`--set`). */
  readonly line?: number;
  readonly col?: number;
}

export type PathSegment = string | number;

/** Join segments: `['a', 'b', 0, 'c']` → `a.b[0].c`. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out;
}

/** Append one segment to an already formatted path. */
export function childPath(path: string, segment: PathSegment): string {
  if (typeof segment === 'number') return `${path}[${segment}]`;
  return path === '' ? segment : `${path}.${segment}`;
}

/** `a.b[0]` → `a.b`; `a.b` → `a`; `a` → ``. */
export function parentPath(path: string): string {
  if (path.endsWith(']')) {
    const open = path.lastIndexOf('[');
    if (open >= 0) return path.slice(0, open);
  }
  const dot = path.lastIndexOf('.');
  return dot >= 0 ? path.slice(0, dot) : '';
}

export function formatLocation(location: SourceLocation): string {
  if (location.line === undefined) return location.source;
  return `${location.source}:${location.line}:${location.col ?? 1}`;
}

/** Path → where it was written. Later sources overwrite earlier ones. */
export type LocationIndex = Map<string, SourceLocation>;

/** The location of `path`, or of its nearest ancestor that has one. */
export function locate(index: ReadonlyMap<string, SourceLocation>, path: string): SourceLocation | undefined {
  let current = path;
  for (;;) {
    const found = index.get(current);
    if (found) return found;
    if (current === '') return undefined;
    current = parentPath(current);
  }
}

/** Drop `path` and everything under it (used when a later source replaces a value). */
export function forgetSubtree(index: LocationIndex, path: string): void {
  for (const key of [...index.keys()]) {
    if (key === path || key.startsWith(`${path}.`) || key.startsWith(`${path}[`)) index.delete(key);
  }
}
