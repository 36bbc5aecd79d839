/**
 * Real cgroups for tests: directories created under the cgroup v2 hierarchy
 * (found in /proc/mounts) and under a named cgroup v1 hierarchy that the test
 * mounts itself (`none,name=flowteltest`: no controller, so it changes
 * nothing for any process), with the paths container runtimes use; processes
 * are moved into them by writing their pid to `cgroup.procs`. `cleanup()`
 * moves the processes back to the root, removes every directory it made and
 * unmounts what it mounted.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export function cgroup2Root(): string {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, mountPoint, type] = line.split(' ');
    if (type === 'cgroup2' && mountPoint) return mountPoint;
  }
  throw new Error('no cgroup2 hierarchy in /proc/mounts');
}

/** rmdir, retried for a second while the kernel still counts a process that is exiting (EBUSY). */
function removeDir(dir: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || attempt >= 20) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
}

export class TestCgroups {
  private readonly made: string[] = [];
  private v1Mount?: string;

  /** Make `relative` (e.g. `flowteltest.slice/docker-<id>.scope`) under `root`; returns its directory. */
  make(root: string, relative: string): string {
    const parts = relative.split('/').filter(Boolean);
    let dir = root;
    for (const p of parts) {
      dir = path.join(dir, p);
      try {
        mkdirSync(dir);
        this.made.push(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    return dir;
  }

  /** Mount (once) a named v1 hierarchy with no controllers; returns its mount point. */
  v1Root(): string {
    if (this.v1Mount) return this.v1Mount;
    const dir = mkdtempSync(path.join(tmpdir(), 'flowtel-cgv1-'));
    execFileSync('mount', ['-t', 'cgroup', '-o', 'none,name=flowteltest', 'cgroup', dir]);
    this.v1Mount = dir;
    return dir;
  }

  move(pid: number, dir: string): void {
    writeFileSync(path.join(dir, 'cgroup.procs'), `${pid}\n`);
  }

  cleanup(): void {
    for (const dir of [...this.made].reverse()) {
      // Processes still in it (alive) go back to the hierarchy's root first.
      try {
        const root = this.rootOf(dir);
        for (const pid of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try {
            writeFileSync(path.join(root, 'cgroup.procs'), `${pid}\n`);
          } catch {
            /* exited meanwhile */
          }
        }
        removeDir(dir);
      } catch {
        /* already gone */
      }
    }
    this.made.length = 0;
    if (this.v1Mount) {
      try {
        execFileSync('umount', [this.v1Mount]);
        rmdirSync(this.v1Mount);
      } catch {
        /* keep going */
      }
      this.v1Mount = undefined;
    }
  }

  private rootOf(dir: string): string {
    if (this.v1Mount && dir.startsWith(this.v1Mount)) return this.v1Mount;
    return cgroup2Root();
  }
}
