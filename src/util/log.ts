/**
 * The agent's own logger: pino, JSON lines on stderr (stdout belongs to the
 * `debug` exporter's table). The level comes from `FLOWTEL_LOG_LEVEL` if set,
 * else from the config (`service.telemetry.logs.level`), else `info`; the
 * environment wins so an operator can turn on debug logs without editing the
 * config file.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_LEVEL_ENV = 'FLOWTEL_LOG_LEVEL';
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

export interface ResolvedLogLevel {
  readonly level: LogLevel;
  /** Set when a configured level was not understood and a fallback was used. */
  readonly warning?: string;
}

/** Pick the level: env `FLOWTEL_LOG_LEVEL` > config > `info`. Case-insensitive; `warning` means `warn`. */
export function resolveLogLevel(configLevel: string | undefined, env: NodeJS.ProcessEnv = process.env): ResolvedLogLevel {
  const candidates: Array<[string, string | undefined]> = [
    [LOG_LEVEL_ENV, env[LOG_LEVEL_ENV]],
    ['service.telemetry.logs.level', configLevel],
  ];
  let warning: string | undefined;
  for (const [source, raw] of candidates) {
    if (raw === undefined || raw.trim() === '') continue;
    const normalized = normalizeLevel(raw);
    if (normalized) return warning ? { level: normalized, warning } : { level: normalized };
    warning ??= `${source}: unknown log level "${raw}" (expected one of ${LOG_LEVELS.join(', ')})`;
  }
  return warning ? { level: DEFAULT_LOG_LEVEL, warning } : { level: DEFAULT_LOG_LEVEL };
}

function normalizeLevel(raw: string): LogLevel | undefined {
  const lower = raw.trim().toLowerCase();
  if (lower === 'warning') return 'warn';
  if (lower === 'none' || lower === 'off') return 'silent';
  return isLogLevel(lower) ? lower : undefined;
}

export interface LoggerOptions {
  /** Level from the config file; `FLOWTEL_LOG_LEVEL` overrides it. */
  readonly level?: string;
  /** Logger name (`name` field in every line). Default `flowtel`. */
  readonly name?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Where to write; default is stderr (fd 2), synchronous so nothing is lost on exit. */
  readonly destination?: DestinationStream;
}

/** Create the root logger. Components get children: `logger.child({ component: id })`. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const { level, warning } = resolveLogLevel(options.level, options.env ?? process.env);
  const destination = options.destination ?? pino.destination({ dest: 2, sync: true });
  const logger = pino(
    {
      name: options.name ?? 'flowtel',
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  if (warning) logger.warn(warning);
  return logger;
}

/** A logger that drops everything; handy in tests and for components created before logging is set up. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
