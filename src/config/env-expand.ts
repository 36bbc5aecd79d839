/**
 * `${env:VAR}` expansion in config strings, as in the OpenTelemetry Collector:
 *
 * - `${env:VAR}` → the variable's value, empty if unset (a warning is recorded);
 * - `${env:VAR:-default}` → the value, or `default` if unset or empty;
 * - `$$` → a literal `$` (so `$${env:X}` stays as the text `${env:X}`);
 * - a value that is *only* a reference (`port: ${env:PORT}`) takes the YAML
 *   type of the expansion when it is a number or boolean (`8080` → 8080);
 *   anything else stays a string. Quoted YAML scalars always stay strings.
 * - any other `${...}` is an error (only the `env` provider exists).
 */
import { parse as parseYaml } from 'yaml';

const REFERENCE = /\$\$|\$\{([^}]*)\}/g;
const ENV_REFERENCE = /^env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;
const WHOLE_REFERENCE = /^\$\{env:[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/;

export class EnvExpansionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvExpansionError';
  }
}

export interface ExpansionResult {
  readonly value: string | number | boolean;
  /** Variables referenced without a default that were not set. */
  readonly unset: readonly string[];
}

/**
 * Expand references in one string. `typed`: allow a whole-value reference to
 * become a number/boolean (false for quoted scalars).
 */
export function expandEnvReferences(text: string, env: NodeJS.ProcessEnv, typed = true): ExpansionResult {
  if (!text.includes('$')) return { value: text, unset: [] };
  const unset: string[] = [];
  const expanded = text.replace(REFERENCE, (match: string, body: string | undefined) => {
    if (match === '$$') return '$';
    const ref = ENV_REFERENCE.exec(body ?? '');
    if (!ref) {
      throw new EnvExpansionError(
        `unsupported reference "${match}" (only \${env:NAME} and \${env:NAME:-default} are supported; write $$ for a literal $)`,
      );
    }
    const name = ref[1] as string;
    const fallback = ref[2];
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    if (value === undefined) unset.push(name);
    return '';
  });
  if (typed && WHOLE_REFERENCE.test(text)) return { value: typeScalar(expanded), unset };
  return { value: expanded, unset };
}

/** `"8080"` → 8080, `"true"` → true, anything else unchanged. */
function typeScalar(text: string): string | number | boolean {
  if (text.trim() === '') return text;
  try {
    const parsed: unknown = parseYaml(text);
    if (typeof parsed === 'number' || typeof parsed === 'boolean') return parsed;
  } catch {
    // not a YAML scalar: keep the string
  }
  return text;
}
