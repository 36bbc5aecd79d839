/**
 * Every network namespace of the host, each with a path that opens it:
 * /proc/PID/ns/net of one process in it, and the named ones of `ip netns`.
 */
import { readdirSync, statSync } from 'node:fs';

export function listNetworkNamespaces(procRoot = '/proc', named = ['/run/netns', '/var/run/netns']): Map<number, string> {
  const found = new Map<number, string>();
  const add = (p: string): void => {
    try {
      const ino = statSync(p).ino;
      if (!found.has(ino)) found.set(ino, p);
    } catch {
      /* gone, or not ours to see */
    }
  };
  add(`${procRoot}/self/ns/net`);
  for (const dir of named) {
    try {
      for (const n of readdirSync(dir)) add(`${dir}/${n}`);
    } catch {
      /* none */
    }
  }
  let pids: string[] = [];
  try {
    pids = readdirSync(procRoot).filter((d) => /^\d+$/.test(d));
  } catch {
    /* no procfs */
  }
  for (const pid of pids) add(`${procRoot}/${pid}/ns/net`);
  return found;
}
