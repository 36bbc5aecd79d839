/**
 * Config errors that can be collected and reported together.
 *
 * Factories throw `ConfigError` (from the component model) for one problem, or
 * `ConfigErrorList` for several; `validateConfig` gathers everything into one
 * `ConfigValidationError` whose message lists each problem as
 * `file:line:col: path: message`.
 */
import { ConfigError } from '../pipeline/component';
import { formatLocation, locate, type SourceLocation } from './location';

export { ConfigError };

export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
  readonly location?: SourceLocation;
}

/** Several ConfigErrors thrown at once; still `instanceof ConfigError`. */
export class ConfigErrorList extends ConfigError {
  constructor(
    path: string,
    readonly errors: readonly ConfigError[],
  ) {
    super(path, errors.map((e) => e.message).join('; '));
    this.name = 'ConfigErrorList';
  }
}

/** Flatten anything a validate step may throw into ConfigErrors. */
export function toConfigErrors(error: unknown, fallbackPath: string): ConfigError[] {
  if (error instanceof ConfigErrorList) return error.errors.flatMap((e) => toConfigErrors(e, fallbackPath));
  if (error instanceof ConfigError) return [error];
  const message = error instanceof Error ? error.message : String(error);
  return [new ConfigError(fallbackPath, message)];
}

/** Message of a ConfigError without its `path: ` prefix. */
export function bareMessage(error: ConfigError): string {
  const prefix = `${error.path}: `;
  return error.path && error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}

export function formatIssue(issue: ConfigIssue): string {
  const where = issue.location ? `${formatLocation(issue.location)}: ` : '';
  const path = issue.path ? `${issue.path}: ` : '';
  return `${where}${path}${issue.message}`;
}

export class ConfigValidationError extends Error {
  constructor(readonly issues: readonly ConfigIssue[]) {
    super(
      issues.length === 1
        ? `invalid configuration: ${formatIssue(issues[0] as ConfigIssue)}`
        : `invalid configuration (${issues.length} errors):\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
    );
    this.name = 'ConfigValidationError';
  }
}

/** Collects issues, attaching source locations. */
export class IssueCollector {
  readonly issues: ConfigIssue[] = [];

  constructor(private readonly locations: ReadonlyMap<string, SourceLocation> = new Map()) {}

  /** Record a problem at an explicit location (e.g. a YAML syntax error). */
  addAt(location: SourceLocation | undefined, path: string, message: string): void {
    this.issues.push(location ? { path, message, location } : { path, message });
  }

  add(path: string, message: string): void {
    const location = locate(this.locations, path);
    this.issues.push(location ? { path, message, location } : { path, message });
  }

  addError(error: unknown, fallbackPath: string): void {
    for (const e of toConfigErrors(error, fallbackPath)) this.add(e.path, bareMessage(e));
  }

  throwIfAny(): void {
    if (this.issues.length > 0) throw new ConfigValidationError(this.issues);
  }
}
