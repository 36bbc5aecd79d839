/**
 * flowtel — the command line.
 *
 *   flowtel run [--config FILE]... [--set key.path=value]...
 *   flowtel validate --config FILE...
 *   flowtel components
 *   flowtel config default
 *
 * Exit codes: 0 ok, 1 runtime failure (e.g. missing capability), 2 invalid config or usage.
 */
import type { Logger } from 'pino';
import { defaultConfigText, loadConfig, loadConfigFromTexts, validateConfig, ConfigValidationError, type RawConfig } from '../config';
import { EMBEDDED_DEFAULT_SOURCE } from '../config/default-config';
import type { ValidatedConfig } from '../config/validate';
import { exporterFactories } from '../exporters';
import { extensionFactories, startExtensions, type RunningExtensions } from '../extensions';
import type { AnyComponentFactory } from '../config/registry';
import { Service } from '../pipeline/service';
import { ebpfTcpReceiverFactory } from '../receivers/ebpf_tcp/factory';
import { netstatReceiverFactory } from '../receivers/netstat/receiver';
import { ebpfDnsReceiverFactory } from '../receivers/ebpf_dns/factory';
import { processorFactories } from '../processors';
import { ProbeError, checkPrerequisites } from '../receivers/ebpf_tcp/probes';
import { createLogger } from '../util/log';
import { missingDnsCapabilities } from '../util/capabilities';
import { FLOWTEL_VERSION } from '../telemetry/resource';

/** Receivers that load eBPF programs: the agent checks its capabilities before it starts them. */
const EBPF_RECEIVERS = new Set([ebpfTcpReceiverFactory.type, ebpfDnsReceiverFactory.type]);

export const FACTORIES: readonly AnyComponentFactory[] = [
  ebpfTcpReceiverFactory as AnyComponentFactory,
  netstatReceiverFactory as AnyComponentFactory,
  ebpfDnsReceiverFactory as AnyComponentFactory,
  ...Object.values(processorFactories).map((f) => f as AnyComponentFactory),
  ...Object.values(exporterFactories).map((f) => f as AnyComponentFactory),
  ...Object.values(extensionFactories).map((f) => f as AnyComponentFactory),
];

const USAGE = `flowtel ${FLOWTEL_VERSION} — eBPF network performance monitoring that speaks OpenTelemetry

usage:
  flowtel run [--config FILE]... [--set key.path=value]...   run the agent (no --config: the embedded default)
  flowtel validate --config FILE...                          check a config and exit (0 valid, 2 invalid)
  flowtel components [markdown]                              every component type with its options
  flowtel config default                                     print the embedded default config
`;

interface CliArgs {
  command: string;
  rest: string[];
  configs: string[];
  sets: string[];
}

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): CliArgs {
  const out: CliArgs = { command: argv[0] ?? 'help', rest: [], configs: [], sets: [] };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === '--config' || flag === '-c') out.configs.push(value());
    else if (flag === '--set') out.sets.push(value());
    else if (flag.startsWith('-')) throw new UsageError(`unknown option ${flag}`);
    else out.rest.push(a);
  }
  return out;
}

function loadRaw(args: CliArgs): RawConfig {
  if (args.configs.length > 0) return loadConfig(args.configs, args.sets);
  return loadConfigFromTexts([{ source: EMBEDDED_DEFAULT_SOURCE, text: defaultConfigText() }], args.sets);
}

function loadValidated(args: CliArgs): ValidatedConfig {
  return validateConfig(loadRaw(args), FACTORIES);
}

async function run(args: CliArgs): Promise<number> {
  const config = loadValidated(args);
  // What the eBPF receivers need, before anything listens or loads: without
  // it the agent stops here with one line on stderr and nothing started.
  const usesEbpf = config.pipelines.some((p) => p.receivers.some((id) => EBPF_RECEIVERS.has(config.receivers.get(id)?.factory.type ?? '')));
  if (usesEbpf) {
    try {
      checkPrerequisites();
    } catch (e) {
      if (!(e instanceof ProbeError)) throw e;
      process.stderr.write(`flowtel: ${e.message}\n`);
      return 1;
    }
  }
  const usesDns = config.pipelines.some((p) => p.receivers.some((id) => config.receivers.get(id)?.factory.type === ebpfDnsReceiverFactory.type));
  if (usesDns && missingDnsCapabilities().length > 0) {
    process.stderr.write('flowtel: missing capability CAP_NET_RAW: the ebpf_dns receiver reads DNS packets through packet sockets; run flowtel as root or grant it (setcap cap_net_raw+ep, or securityContext.capabilities.add)\n');
    return 1;
  }
  const logger = createLogger({ level: config.service.telemetry.logs.level });
  for (const w of config.warnings) logger.warn(w);
  const service = Service.build(config, logger);

  // Signals are handled from before the start: one that arrives while the
  // probes load stops the agent cleanly once they are attached (the default
  // action would kill it with no last export and a non-zero status).
  let stopping = false;
  let wake: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now, without waiting for the last export');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping: last export, then detaching probes');
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // SIGHUP: read the config files again. A valid config replaces the running
  // one (receivers and exporters whose config is unchanged keep their state);
  // an invalid one is rejected with its errors and the old one keeps running.
  let reloading = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading.then(async () => {
      if (stopping) return;
      let next: ValidatedConfig;
      try {
        next = loadValidated(args);
      } catch (e) {
        logger.error({ error: e instanceof Error ? e.message : String(e) }, 'SIGHUP: new configuration rejected, the running one stays');
        return;
      }
      for (const w of next.warnings) logger.warn(w);
      try {
        await service.reload(next);
      } catch (e) {
        logger.error({ err: e }, 'SIGHUP: reload failed, the running configuration stays');
      }
    });
  });

  let extensions: RunningExtensions | undefined;
  try {
    // Self-telemetry and extensions (health_check) start before the pipelines and stop after them.
    extensions = await startExtensions(config, service, logger);
    await service.start();
  } catch (e) {
    reportStartFailure(e, logger);
    await extensions?.shutdown();
    return 1;
  }
  if (!stopping) {
    logger.info({ version: FLOWTEL_VERSION, pipelines: config.pipelines.map((p) => p.id) }, 'flowtel running');
    await new Promise<void>((resolve) => (wake = resolve));
  }
  await reloading;
  await service.shutdown();
  await extensions.shutdown();
  logger.info('flowtel stopped');
  return 0;
}

function reportStartFailure(e: unknown, logger: Logger): void {
  const msg = e instanceof Error ? e.message : String(e);
  // One line a person can act on, on stderr, then the details in the log.
  process.stderr.write(`flowtel: ${msg}\n`);
  if (!(e instanceof ProbeError)) logger.error({ err: e }, 'start failed');
}

const KIND_ORDER = ['receiver', 'processor', 'exporter', 'extension'] as const;

/** The pipelines a component can be in (extensions are in none). */
export function componentSignals(f: AnyComponentFactory): readonly string[] {
  return f.kind === 'extension' ? [] : (f.signals ?? ['metrics']);
}

/** Every component and option as the markdown tables of docs/configuration.md (a test keeps the two equal). */
export function componentsMarkdown(): string {
  const cell = (t: string): string => t.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  let out = '';
  for (const kind of KIND_ORDER) {
    for (const f of FACTORIES.filter((x) => x.kind === kind)) {
      const signals = componentSignals(f);
      out += `### \`${f.type}\` (${kind}, ${f.stability})\n\n`;
      if (signals.length > 0) out += `Pipelines: ${signals.map((x) => `\`${x}\``).join(', ')}.\n\n`;
      out += `| option | type | default | meaning |\n|---|---|---|---|\n`;
      for (const o of f.options) {
        const def = o.default === undefined ? '' : `\`${typeof o.default === 'string' ? o.default : JSON.stringify(o.default)}\``;
        out += `| \`${o.name}\` | ${cell(o.type)} | ${def} | ${cell(o.description)} |\n`;
      }
      out += '\n';
    }
  }
  return out;
}

function components(markdown: boolean): void {
  if (markdown) {
    process.stdout.write(componentsMarkdown());
    return;
  }
  for (const f of FACTORIES) {
    const signals = componentSignals(f);
    process.stdout.write(`${f.kind} ${f.type} (${f.stability})${signals.length > 0 ? ` [${signals.join(', ')}]` : ''}\n`);
    for (const o of f.options) {
      const def = o.default === undefined ? '' : ` [default: ${JSON.stringify(o.default)}]`;
      process.stdout.write(`  ${o.name}: ${o.type}${def} — ${o.description}\n`);
    }
  }
}

export async function main(argv: readonly string[]): Promise<void> {
  let code = 0;
  try {
    const args = parseArgs(argv);
    switch (args.command) {
      case 'run':
        code = await run(args);
        break;
      case 'validate': {
        if (args.configs.length === 0) throw new UsageError('validate needs --config FILE');
        const cfg = loadValidated(args);
        for (const w of cfg.warnings) process.stderr.write(`warning: ${w}\n`);
        process.stdout.write(`${args.configs.join(', ')}: valid\n`);
        break;
      }
      case 'components':
        components(args.rest.includes('markdown'));
        break;
      case 'config':
        if (args.rest[0] !== 'default') throw new UsageError('usage: flowtel config default');
        process.stdout.write(defaultConfigText());
        break;
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        break;
      case '--version':
      case 'version':
        process.stdout.write(`${FLOWTEL_VERSION}\n`);
        break;
      default:
        throw new UsageError(`unknown command "${args.command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`flowtel: ${e.message}\n\n${USAGE}`);
      code = 2;
    } else if (e instanceof ConfigValidationError || (e instanceof Error && e.name.startsWith('Config'))) {
      process.stderr.write(`flowtel: invalid configuration:\n${e.message}\n`);
      code = 2;
    } else {
      process.stderr.write(`flowtel: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      code = 1;
    }
  }
  process.exitCode = code;
  // Exporters' sockets and timers are closed by shutdown; exit now regardless
  // — once what was written to stdout and stderr is out: to a pipe, Node may
  // still hold part of it (exiting at once cut the end of `flowtel
  // components` now and then). A write's callback runs after all before it.
  let streams = 2;
  const exit = (): void => {
    if (--streams === 0) process.exit(code);
  };
  process.stdout.write('', exit);
  process.stderr.write('', exit);
}

if (require.main === module) void main(process.argv.slice(2));
