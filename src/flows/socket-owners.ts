/**
 * Who owns a socket, from /proc: every /proc/PID/fd/N that links to
 * `socket:[INODE]`. Used once for connections and listeners that were open
 * before the agent started (the kernel probes saw no connect() or listen()
 * for them). The same walk `ss -p` does.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface SocketOwner {
  pid: number;
  comm: string;
}

export function findSocketOwners(inodes: ReadonlySet<number>, procRoot = '/proc'): Map<number, SocketOwner> {
  const found = new Map<number, SocketOwner>();
  if (inodes.size === 0) return found;
  let pids: string[];
  try {
    pids = readdirSync(procRoot).filter((d) => /^\d+$/.test(d));
  } catch {
    return found;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`${procRoot}/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    let owner: SocketOwner | undefined; // one per process, shared by its sockets
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`${procRoot}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!link.startsWith('socket:[')) continue;
      const ino = Number(link.slice(8, -1));
      if (!inodes.has(ino) || found.has(ino)) continue;
      if (owner === undefined) {
        let comm = '';
        try {
          // latin1: the kernel's bytes as they are, decoded as records decode them (readComm), so a process is named the same whether the kernel or /proc told its owner.
          comm = readFileSync(`${procRoot}/${pid}/comm`, 'latin1').replace(/\n$/, '');
        } catch {
          /* gone meanwhile: the pid is still right */
        }
        owner = { pid: Number(pid), comm };
      }
      found.set(ino, owner);
      if (found.size === inodes.size) return found;
    }
  }
  return found;
}
