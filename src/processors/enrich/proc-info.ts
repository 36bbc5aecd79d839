/**
 * What /proc says about a process: executable, command line, owner, start
 * time, container. Every read is synchronous and small (procfs files of a few
 * hundred bytes), and every failure (the process is gone, the file is not
 * ours to read) leaves that field out rather than throwing.
 */
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { containerFromCgroupFile, type CgroupContainer } from './cgroup';

export interface ProcessInfo {
  readonly pid: number;
  /** Field 22 of /proc/PID/stat: clock ticks after boot. With the pid, it names one process for the life of the host. */
  readonly startTime: number;
  /** /proc/PID/comm (the name `ps` shows; 15 characters at most). */
  readonly comm?: string;
  /** /proc/PID/exe, without the kernel's ` (deleted)` suffix. */
  readonly executablePath?: string;
  /** argv, from /proc/PID/cmdline. */
  readonly argv?: readonly string[];
  /** Effective user id (/proc/PID/status `Uid:`, second field: what `ps -o user` shows). */
  readonly uid?: number;
  readonly container?: CgroupContainer;
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The start time in /proc/PID/stat text (fields after the `(comm)`, which may itself hold spaces and parentheses). */
export function parseStartTime(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  // After ") ": field 3 (state) is index 0, so field 22 (starttime) is index 19.
  const fields = stat.slice(close + 2).split(' ');
  const v = Number(fields[19]);
  return Number.isFinite(v) ? v : undefined;
}

/** The start time of `pid` now, or undefined when it is gone. */
export function readStartTime(procRoot: string, pid: number): number | undefined {
  const stat = read(`${procRoot}/${pid}/stat`);
  return stat === undefined ? undefined : parseStartTime(stat);
}

/** The effective uid in /proc/PID/status text. */
export function parseEffectiveUid(status: string): number | undefined {
  const m = /^Uid:\s+\d+\s+(\d+)/m.exec(status);
  return m ? Number(m[1]) : undefined;
}

export interface ReadOptions {
  readonly commandLine: boolean;
  readonly executablePath: boolean;
  readonly owner: boolean;
  readonly container: boolean;
}

/** Everything asked for about `pid`, or undefined when the process is gone. */
export function readProcessInfo(procRoot: string, pid: number, what: ReadOptions): ProcessInfo | undefined {
  const dir = `${procRoot}/${pid}`;
  const stat = read(`${dir}/stat`);
  const startTime = stat === undefined ? undefined : parseStartTime(stat);
  if (startTime === undefined) return undefined;
  const info: { -readonly [K in keyof ProcessInfo]: ProcessInfo[K] } = { pid, startTime };
  const comm = read(`${dir}/comm`);
  if (comm !== undefined) info.comm = comm.replace(/\n$/, '');
  if (what.executablePath) {
    try {
      info.executablePath = readlinkSync(`${dir}/exe`).replace(/ \(deleted\)$/, '');
    } catch {
      /* a kernel thread, or not ours to read */
    }
  }
  if (what.commandLine) {
    const cmdline = read(`${dir}/cmdline`);
    if (cmdline) info.argv = cmdline.replace(/\0$/, '').split('\0');
  }
  if (what.owner) {
    const status = read(`${dir}/status`);
    const uid = status === undefined ? undefined : parseEffectiveUid(status);
    if (uid !== undefined) info.uid = uid;
  }
  if (what.container) {
    const cgroup = read(`${dir}/cgroup`);
    const c = cgroup === undefined ? undefined : containerFromCgroupFile(cgroup);
    if (c) info.container = c;
  }
  // The pid may have been reused while we read: only a start time that did not change vouches for the rest.
  if (readStartTime(procRoot, pid) !== startTime) return undefined;
  return info;
}

/** uid → user name from a passwd file, re-read when the file changes. Unknown uids are their number. */
export class UserNames {
  private names = new Map<number, string>();
  private mtimeMs = -1;
  private checkedAtMs = 0;

  constructor(
    private readonly passwdFile: string,
    private readonly now: () => number = Date.now,
  ) {}

  name(uid: number): string {
    this.refresh();
    return this.names.get(uid) ?? String(uid);
  }

  private refresh(): void {
    const now = this.now();
    if (this.mtimeMs >= 0 && now - this.checkedAtMs < 5_000) return;
    this.checkedAtMs = now;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.passwdFile).mtimeMs;
    } catch {
      this.names = new Map();
      this.mtimeMs = 0;
      return;
    }
    if (mtimeMs === this.mtimeMs) return;
    this.mtimeMs = mtimeMs;
    this.names = parsePasswd(read(this.passwdFile) ?? '');
  }
}

export function parsePasswd(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    const [name, , uid] = line.split(':');
    if (!name || uid === undefined || !/^\d+$/.test(uid)) continue;
    const n = Number(uid);
    if (!names.has(n)) names.set(n, name);
  }
  return names;
}
