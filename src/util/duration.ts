/**
 * Durations as written in config files, in the Go `time.ParseDuration` syntax
 * the OpenTelemetry Collector uses: a sequence of decimal numbers with units,
 * e.g. `500ms`, `10s`, `2m`, `1h30m`, `1.5s`, `250us`.
 *
 * Values are returned in milliseconds (possibly fractional for `us`/`ns`).
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign
  'μs': 1e-3, // U+03BC greek mu
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

const COMPONENT = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

export class DurationParseError extends Error {
  constructor(readonly input: string, reason: string) {
    super(`invalid duration "${input}": ${reason} (expected e.g. 500ms, 10s, 2m, 1h30m)`);
    this.name = 'DurationParseError';
  }
}

/** Parse a duration string into milliseconds. Throws DurationParseError. */
export function parseDuration(input: string): number {
  const text = input.trim();
  if (text === '') throw new DurationParseError(input, 'empty');
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    sign = rest.startsWith('-') ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  let total = 0;
  let pos = 0;
  while (pos < rest.length) {
    COMPONENT.lastIndex = pos;
    const match = COMPONENT.exec(rest);
    if (!match) {
      const tail = rest.slice(pos);
      const reason = /^\d/.test(tail) || tail.startsWith('.') ? `missing or unknown unit in "${tail}"` : `unexpected "${tail}"`;
      throw new DurationParseError(input, reason);
    }
    const [, amount, unit] = match as unknown as [string, string, string];
    total += Number(amount) * (UNIT_MS[unit] as number);
    pos = COMPONENT.lastIndex;
  }
  if (!Number.isFinite(total)) throw new DurationParseError(input, 'out of range');
  return sign * total;
}

/** Like parseDuration but returns undefined instead of throwing. */
export function tryParseDuration(input: string): number | undefined {
  try {
    return parseDuration(input);
  } catch {
    return undefined;
  }
}

/** Format milliseconds compactly in the same syntax: 90000 → `1m30s`, 1.5 → `1.5ms`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1) return `${round(ms * 1000)}us`;
  if (ms < 1000) return `${round(ms)}ms`;
  let rest = ms;
  let out = '';
  const hours = Math.floor(rest / 3_600_000);
  if (hours > 0) {
    out += `${hours}h`;
    rest -= hours * 3_600_000;
  }
  const minutes = Math.floor(rest / 60_000);
  if (minutes > 0) {
    out += `${minutes}m`;
    rest -= minutes * 60_000;
  }
  if (rest > 0) out += `${round(rest / 1000)}s`;
  return out;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
