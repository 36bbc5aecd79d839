import { existsSync } from 'node:fs';
import path from 'node:path';

let root: string | undefined;

/**
 * The checkout or install directory: the one holding package.json and bpf/
 * (tsc copies package.json into dist/, so package.json alone is not enough).
 */
export function packageRoot(): string {
  if (root) return root;
  let dir = __dirname;
  while (!(existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'bpf')))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`flowtel: no directory with package.json and bpf/ above ${__dirname}`);
    dir = up;
  }
  root = dir;
  return dir;
}

/** A compiled eBPF object of bpf/ (FLOWTEL_BPF_DIR overrides where they are). */
export function bpfObjectPath(name: string): string {
  const dir = process.env.FLOWTEL_BPF_DIR ?? path.join(packageRoot(), 'bpf', '.output');
  return path.join(dir, `${name}.bpf.o`);
}

/** Mount point of the cgroup v2 hierarchy, from /proc/mounts. */
export function cgroup2Mount(mountsText: string): string | undefined {
  for (const line of mountsText.split('\n')) {
    const f = line.split(' ');
    if (f[2] === 'cgroup2') return f[1];
  }
  return undefined;
}
