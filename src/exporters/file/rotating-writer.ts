/**
 * Appends lines to a file and rotates it by size, the way the Collector's
 * file exporter does (lumberjack): when a write would take the file past
 * `maxBytes`, the file is renamed to `<name>-<timestamp><ext>`
 * (`metrics-2024-05-01T10-00-00.000.json`, UTC unless `localTime`) and a new
 * one is started; only the newest `maxBackups` renamed files are kept
 * (0: all). A line is never split: one longer than `maxBytes` gets a file of
 * its own.
 */
import { open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';

export interface RotationSettings {
  readonly maxBytes: number;
  /** 0 keeps every backup. */
  readonly maxBackups: number;
  readonly localTime: boolean;
}

export interface RotatingFileWriterOptions {
  readonly path: string;
  /** Keep what the file holds (true) or truncate it when opened (false). Always kept with rotation, as in the Collector. */
  readonly append: boolean;
  readonly rotation?: RotationSettings;
  readonly now?: () => Date;
}

export class RotatingFileWriter {
  private handle: FileHandle | undefined;
  private size = 0;
  /** Writes, rotations and close run one after another. */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly options: RotatingFileWriterOptions) {}

  get path(): string {
    return this.options.path;
  }

  async open(): Promise<void> {
    const keep = this.options.append || this.options.rotation !== undefined;
    this.handle = await open(this.options.path, keep ? 'a' : 'w');
    this.size = (await this.handle.stat()).size;
  }

  /** Write whole lines (each ending in \n), rotating between them as needed. */
  write(lines: readonly Buffer[]): Promise<void> {
    const run = this.chain.then(() => this.writeNow(lines));
    this.chain = run.catch(() => undefined);
    return run;
  }

  close(): Promise<void> {
    const run = this.chain.then(async () => {
      const handle = this.handle;
      this.handle = undefined;
      await handle?.close();
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async writeNow(lines: readonly Buffer[]): Promise<void> {
    if (!this.handle) throw new Error(`${this.options.path} is not open`);
    const rotation = this.options.rotation;
    let chunk: Buffer[] = [];
    let chunkBytes = 0;
    for (const line of lines) {
      if (rotation && this.size + chunkBytes > 0 && this.size + chunkBytes + line.length > rotation.maxBytes) {
        await this.append(chunk, chunkBytes);
        chunk = [];
        chunkBytes = 0;
        if (this.size > 0) await this.rotate(rotation);
      }
      chunk.push(line);
      chunkBytes += line.length;
    }
    await this.append(chunk, chunkBytes);
  }

  private async append(chunk: Buffer[], bytes: number): Promise<void> {
    if (bytes === 0 || !this.handle) return;
    await this.handle.write(Buffer.concat(chunk, bytes));
    this.size += bytes;
  }

  private async rotate(rotation: RotationSettings): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    await rename(this.options.path, await this.freeBackupName(rotation));
    this.handle = await open(this.options.path, 'w');
    this.size = 0;
    if (rotation.maxBackups > 0) await this.prune(rotation.maxBackups);
  }

  private async freeBackupName(rotation: RotationSettings): Promise<string> {
    const { dir, stem, ext } = this.parts();
    const stamp = timestamp((this.options.now ?? (() => new Date()))(), rotation.localTime);
    for (let n = 0; ; n++) {
      const candidate = join(dir, `${stem}-${stamp}${n === 0 ? '' : `-${n}`}${ext}`);
      try {
        await stat(candidate);
      } catch {
        return candidate;
      }
    }
  }

  /** Backups, oldest first. */
  async backups(): Promise<string[]> {
    const { dir, stem, ext } = this.parts();
    const pattern = new RegExp(`^${escapeRegExp(stem)}-(\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d\\.\\d{3})(?:-(\\d+))?${escapeRegExp(ext)}$`);
    const found: Array<{ name: string; stamp: string; n: number }> = [];
    for (const name of await readdir(dir)) {
      const match = pattern.exec(name);
      if (match) found.push({ name, stamp: match[1] as string, n: Number(match[2] ?? 0) });
    }
    found.sort((a, b) => (a.stamp === b.stamp ? a.n - b.n : a.stamp < b.stamp ? -1 : 1));
    return found.map((f) => join(dir, f.name));
  }

  private async prune(keep: number): Promise<void> {
    const all = await this.backups();
    for (const old of all.slice(0, Math.max(0, all.length - keep))) await rm(old, { force: true });
  }

  private parts(): { dir: string; stem: string; ext: string } {
    const ext = extname(this.options.path);
    return { dir: dirname(this.options.path), stem: basename(this.options.path, ext), ext };
  }
}

/** `2006-01-02T15-04-05.000`, lumberjack's backup time format. */
function timestamp(date: Date, local: boolean): string {
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  const [y, mo, d, h, mi, s, ms] = local
    ? [date.getFullYear(), date.getMonth() + 1, date.getDate(), date.getHours(), date.getMinutes(), date.getSeconds(), date.getMilliseconds()]
    : [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds(), date.getUTCMilliseconds()];
  return `${pad(y, 4)}-${pad(mo)}-${pad(d)}T${pad(h)}-${pad(mi)}-${pad(s)}.${pad(ms, 3)}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
