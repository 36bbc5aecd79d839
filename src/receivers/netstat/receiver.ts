/**
 * The netstat receiver: the kernel's own TCP/UDP counters from
 * /proc/net/snmp and /proc/net/netstat, as metrics. Useful by itself (listen
 * drops, SYN retransmits, resets) and the ground truth the eBPF numbers are
 * compared with.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { validateObject, describeSchema, type Schema, type SchemaValue } from '../../config/schema';
import { registerMetric } from '../../metrics/definitions';
import { ConfigError, type MetricsReceiver, type ReceiverFactory } from '../../pipeline/component';
import type { Measurement, MeasurementConsumer } from '../../pipeline/measurements';
import { DEFAULT_COUNTERS, definitionOf, metricNameOf, parseNetstat, type NetstatTable } from './counters';

const schema = {
  collection_interval: { type: 'duration', default: '10s', minMs: 100, description: 'How often the counters are read.' },
  counters: {
    type: 'string[]',
    default: DEFAULT_COUNTERS,
    description: 'Counters to report, as `Group:Name` from /proc/net/snmp or /proc/net/netstat (e.g. `TcpExt:ListenDrops`). Metric name: `netstat_<group>_<name>` in snake case.',
  },
  proc_path: {
    type: 'string',
    default: '/proc/self',
    description: 'Where to read `net/snmp` and `net/netstat`: `/proc/self` is the agent\'s network namespace; `/proc/PID` that of process PID (e.g. `/host/proc/1` for the host from a container).',
  },
} as const satisfies Schema;

export type NetstatConfig = SchemaValue<typeof schema>;

function validate(raw: unknown, path: string): NetstatConfig {
  const cfg = validateObject(raw, path, schema);
  for (const c of cfg.counters) {
    if (!/^[A-Za-z0-9]+:[A-Za-z0-9]+$/.test(c)) throw new ConfigError(`${path}.counters`, `"${c}" is not Group:Name (e.g. Tcp:RetransSegs)`);
  }
  return cfg;
}

export class NetstatReceiver implements MetricsReceiver {
  private timer?: NodeJS.Timeout;
  private last?: NetstatTable;

  constructor(
    readonly id: string,
    private readonly config: NetstatConfig,
    private readonly next: MeasurementConsumer,
    private readonly logger: Logger,
  ) {
    for (const c of config.counters) registerMetric(definitionOf(c));
  }

  async read(): Promise<NetstatTable> {
    const table: NetstatTable = new Map();
    for (const f of ['net/snmp', 'net/netstat']) parseNetstat(await readFile(`${this.config.proc_path}/${f}`, 'utf8'), table);
    return table;
  }

  async start(): Promise<void> {
    this.last = await this.read();
    const missing = this.config.counters.filter((c) => !this.last!.has(c));
    if (missing.length) this.logger.warn({ counters: missing }, `netstat: this kernel has no ${missing.join(', ')}: not reported`);
    this.timer = setInterval(() => void this.collect().catch((e: unknown) => this.logger.error({ err: e }, 'netstat collection failed')), this.config.collection_interval);
    this.timer.unref();
  }

  async collect(): Promise<void> {
    const now = await this.read();
    const prev = this.last ?? now;
    this.last = now;
    const out: Measurement[] = [];
    const gauges: string[] = [];
    for (const c of this.config.counters) {
      const v = now.get(c);
      if (v === undefined) continue;
      const def = definitionOf(c);
      if (def.kind === 'gauge') {
        out.push({ metric: def.name, value: v, attributes: {} });
        gauges.push(def.name);
      } else {
        const d = v - (prev.get(c) ?? v);
        // A counter that went backwards was reset (namespace recreated): report nothing this time.
        if (d > 0) out.push({ metric: metricNameOf(c), value: d, attributes: {} });
      }
    }
    this.next.consume({ timeMs: Date.now(), measurements: out, gaugesReplaced: gauges, source: this.id });
  }

  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export const netstatReceiverFactory: ReceiverFactory<NetstatConfig> = {
  kind: 'receiver',
  type: 'netstat',
  stability: 'alpha',
  options: describeSchema(schema),
  defaultConfig: () => validate(undefined, ''),
  validate,
  create: (config, ctx) => new NetstatReceiver(ctx.id, config, ctx.next, ctx.logger),
};
