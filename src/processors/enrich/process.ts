/**
 * `process`: the owning process of each flow (`process.pid`, set by the
 * receiver) described from /proc — `process.executable.name`,
 * `process.executable.path`, `process.command`, `process.command_line`,
 * `process.owner` — and the container it runs in (`container.id`, from
 * /proc/PID/cgroup: see ./cgroup.ts for the runtimes and shapes).
 *
 * The command line is off by default: arguments may hold secrets (passwords,
 * tokens), and each distinct command line is a new series.
 *
 * Cache: one entry per pid, at most `cache_size` (least recently used goes
 * first). Each pid seen in a batch is checked once per batch against its start
 * time in /proc/PID/stat: a pid the kernel gave to a new process is read again.
 * A process that exited keeps its last description (its last connections are
 * still reported after it is gone), until its entry is evicted or the pid is
 * reused. A pid never seen alive gets nothing: /proc is read at collection
 * time, so a process that exited before the first collection reporting its
 * flow (a short-lived client) keeps only the receiver's pid and comm.
 *
 * In a container, mount the host's /proc (e.g. at /host/proc) and set
 * `proc_path`; the pids in flows are the host's.
 */
import { ConfigError } from '../../config/errors';
import { childPath } from '../../config/location';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../../config/schema';
import type { ProcessorFactory } from '../../pipeline/component';
import type { FlowAttributes } from '../../pipeline/measurements';
import { throwIfErrors } from '../common';
import { Enricher, withAttributes } from './enricher';
import { readProcessInfo, readStartTime, UserNames, type ProcessInfo, type ReadOptions } from './proc-info';

export const PROCESS_ATTRIBUTES = [
  'process.executable.name',
  'process.executable.path',
  'process.command',
  'process.command_line',
  'process.owner',
  'container.id',
] as const;
export type ProcessAttribute = (typeof PROCESS_ATTRIBUTES)[number];

const DEFAULT_ATTRIBUTES: readonly ProcessAttribute[] = ['process.executable.name', 'process.executable.path', 'process.owner', 'container.id'];

const processSchema = {
  attributes: {
    type: 'string[]',
    default: [...DEFAULT_ATTRIBUTES],
    description: `Attributes to add, from: ${PROCESS_ATTRIBUTES.join(', ')}. process.command (argv[0]) and process.command_line (every argument, joined by spaces) are off by default: arguments may hold secrets. process.executable.name is only filled in when the receiver did not set it (it sets the kernel's comm).`,
  },
  proc_path: { type: 'string', default: '/proc', description: "Where the host's procfs is mounted (/host/proc when the agent runs in a container with the host's /proc mounted there)." },
  passwd_file: { type: 'string', default: '/etc/passwd', description: 'The passwd file that turns uids into the user names of process.owner (a uid it does not list is reported as its number).' },
  cache_size: { type: 'number', default: 4096, min: 16, integer: true, description: 'Processes remembered at most (least recently used are forgotten first).' },
} as const satisfies Schema;

export interface ProcessConfig extends Omit<SchemaValue<typeof processSchema>, 'attributes'> {
  readonly attributes: readonly ProcessAttribute[];
}

function isProcessAttribute(s: string): s is ProcessAttribute {
  return (PROCESS_ATTRIBUTES as readonly string[]).includes(s);
}

export function validateProcessConfig(raw: unknown, path: string): ProcessConfig {
  const c = validateObject(raw, path, processSchema);
  const errors: ConfigError[] = [];
  c.attributes.forEach((a, i) => {
    if (!isProcessAttribute(a)) errors.push(new ConfigError(`${childPath(path, 'attributes')}[${i}]`, `unknown attribute "${a}" (known: ${PROCESS_ATTRIBUTES.join(', ')})`));
  });
  throwIfErrors(errors, path);
  return { ...c, attributes: [...new Set(c.attributes.filter(isProcessAttribute))] };
}

interface Entry {
  info: ProcessInfo;
  /** The attributes it adds. */
  extra: Record<string, string | undefined>;
  /** Batch in which it was last checked against /proc. */
  checked: number;
}

/** pid → what /proc said, checked once per batch against the pid's start time. */
export class ProcessCache {
  private readonly entries = new Map<number, Entry>();
  /** pids looked up and not found in this batch (so each is read once per batch). */
  private missing = new Set<number>();
  private batch = 0;
  private readonly read: ReadOptions;
  private readonly users: UserNames;
  /** Reads of /proc (a process read in full), for tests and telemetry. */
  reads = 0;

  constructor(private readonly config: ProcessConfig) {
    const a = new Set(config.attributes);
    this.read = {
      commandLine: a.has('process.command') || a.has('process.command_line'),
      executablePath: a.has('process.executable.path'),
      owner: a.has('process.owner'),
      container: a.has('container.id'),
    };
    this.users = new UserNames(config.passwd_file);
  }

  get size(): number {
    return this.entries.size;
  }

  nextBatch(): void {
    this.batch++;
    this.missing = new Set();
  }

  lookup(pid: number): Entry | undefined {
    let e = this.entries.get(pid);
    if (e && e.checked === this.batch) return e;
    if (e) {
      const start = readStartTime(this.config.proc_path, pid);
      // Gone (undefined): keep what we knew. Same start: the same process.
      if (start === undefined || start === e.info.startTime) {
        e.checked = this.batch;
        this.touch(pid, e);
        return e;
      }
    }
    if (this.missing.has(pid)) return e;
    const info = readProcessInfo(this.config.proc_path, pid, this.read);
    this.reads++;
    if (!info) {
      this.missing.add(pid);
      return e;
    }
    e = { info, extra: this.describe(info), checked: this.batch };
    this.touch(pid, e);
    return e;
  }

  private touch(pid: number, e: Entry): void {
    this.entries.delete(pid);
    this.entries.set(pid, e);
    if (this.entries.size > this.config.cache_size) {
      const oldest = this.entries.keys().next().value as number;
      this.entries.delete(oldest);
    }
  }

  private describe(info: ProcessInfo): Record<string, string | undefined> {
    const want = new Set(this.config.attributes);
    const extra: Record<string, string | undefined> = {};
    if (want.has('process.executable.name')) extra['process.executable.name'] = info.comm;
    if (want.has('process.executable.path')) extra['process.executable.path'] = info.executablePath;
    if (want.has('process.command')) extra['process.command'] = info.argv?.[0];
    if (want.has('process.command_line')) extra['process.command_line'] = info.argv?.join(' ');
    if (want.has('process.owner') && info.uid !== undefined) extra['process.owner'] = this.users.name(info.uid);
    if (want.has('container.id')) extra['container.id'] = info.container?.id;
    return extra;
  }
}

export class ProcessProcessor extends Enricher<Entry> {
  readonly cache: ProcessCache;

  constructor(
    id: string,
    readonly config: ProcessConfig,
  ) {
    super(id);
    this.cache = new ProcessCache(config);
  }

  async start(): Promise<void> {}
  async shutdown(): Promise<void> {}

  protected override beginBatch(): void {
    this.cache.nextBatch();
  }

  protected token(attributes: FlowAttributes): Entry | undefined {
    const pid = attributes['process.pid'];
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return undefined;
    return this.cache.lookup(pid);
  }

  protected enrich(attributes: FlowAttributes, entry: Entry): FlowAttributes {
    return withAttributes(attributes, entry.extra);
  }
}

export const processProcessorFactory: ProcessorFactory<ProcessConfig> = {
  kind: 'processor',
  type: 'process',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: describeSchema(processSchema),
  defaultConfig: () => validateProcessConfig(undefined, ''),
  validate: validateProcessConfig,
  create: (config, ctx) => new ProcessProcessor(ctx.id, config),
};
