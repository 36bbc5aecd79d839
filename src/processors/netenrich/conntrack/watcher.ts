/**
 * Reads the kernel's conntrack tables into a NatTable: for each network
 * namespace, one netlink socket subscribed to conntrack NEW events (drained
 * without blocking, by a timer and before each lookup) and a dump at start
 * and every `refreshMs` (which also forgets entries that are gone). Only
 * entries whose destination was translated are kept.
 *
 * conntrack is per network namespace: a container's connection to a
 * Kubernetes service is DNATed in the host's namespace, a DNAT rule inside a
 * container in the container's. The watcher reads every namespace (or only
 * its own), and a flow's lookup searches them all.
 */
import type { Logger } from 'pino';
import { statSync } from 'node:fs';
import { listNetworkNamespaces } from '../../../flows/netns';
import { NETLINK_NETFILTER, NetlinkError, NetlinkSocket } from '../../../native/netlink-socket';
import { dumpRequest, IPS_DST_NAT, IPS_SRC_NAT, NFNLGRP_CONNTRACK_NEW, parseDatagram } from './messages';
import { NatTable } from './table';

export interface WatcherOptions {
  readonly allNamespaces: boolean;
  readonly refreshMs: number;
  readonly pollMs: number;
  readonly eventBufferBytes: number;
  readonly maxEntries: number;
  readonly logger?: Logger;
  /** Namespaces to read instead of discovering them (tests): inode → path. */
  readonly namespaces?: () => Map<number, string>;
}

export interface WatcherCounters {
  dumpEntries: number;
  eventEntries: number;
  eventsLost: number;
  dumpFailed: number;
  socketFailed: number;
  malformed: number;
}

interface Namespace {
  readonly ino: number;
  readonly path: string;
  readonly events: NetlinkSocket;
  dumping: boolean;
  /** A dump is owed (events were lost). */
  resync: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class ConntrackWatcher {
  readonly table: NatTable;
  readonly counters: WatcherCounters = { dumpEntries: 0, eventEntries: 0, eventsLost: 0, dumpFailed: 0, socketFailed: 0, malformed: 0 };
  private readonly namespaces = new Map<number, Namespace>();
  /** Namespaces whose socket could not be opened, so the failure is logged once. */
  private readonly failedNamespaces = new Set<number>();
  private pollTimer?: NodeJS.Timeout;
  private refreshTimer?: NodeJS.Timeout;
  private stopped = false;
  private refreshing?: Promise<void>;

  constructor(private readonly options: WatcherOptions) {
    this.table = new NatTable(options.maxEntries);
  }

  /** Open the sockets and dump every namespace once. Throws when even the agent's own namespace cannot be read. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.refresh(true);
    this.pollTimer = setInterval(() => this.poll(), this.options.pollMs);
    this.pollTimer.unref();
    this.refreshTimer = setInterval(() => void this.refresh(false), this.options.refreshMs);
    this.refreshTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    for (const ns of this.namespaces.values()) ns.events.close();
    this.namespaces.clear();
  }

  /** Namespaces being read. */
  get namespaceCount(): number {
    return this.namespaces.size;
  }

  /** Drain every event socket now (cheap when nothing is queued). */
  poll(): void {
    for (const ns of this.namespaces.values()) this.drainEvents(ns);
  }

  /** Find namespaces (new ones get a socket, gone ones are dropped), then dump each. */
  refresh(first: boolean): Promise<void> {
    if (this.refreshing) return this.refreshing;
    this.refreshing = this.doRefresh(first).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private listNamespaces(): Map<number, string> {
    if (this.options.namespaces) return this.options.namespaces();
    if (this.options.allNamespaces) return listNetworkNamespaces();
    return new Map([[statSync('/proc/self/ns/net').ino, '/proc/self/ns/net']]);
  }

  private async doRefresh(first: boolean): Promise<void> {
    const found = this.listNamespaces();
    const own = statSync('/proc/self/ns/net').ino;
    for (const [ino, ns] of this.namespaces) {
      if (!found.has(ino)) {
        ns.events.close();
        this.namespaces.delete(ino);
        this.table.dropNamespace(ino);
      }
    }
    for (const [ino, path] of found) {
      if (this.namespaces.has(ino)) continue;
      try {
        const events = new NetlinkSocket(NETLINK_NETFILTER, {
          netnsPath: ino === own ? undefined : path,
          groups: 1 << (NFNLGRP_CONNTRACK_NEW - 1),
          rcvbufBytes: this.options.eventBufferBytes,
        });
        this.namespaces.set(ino, { ino, path, events, dumping: false, resync: false });
        this.failedNamespaces.delete(ino);
      } catch (e) {
        this.counters.socketFailed++;
        if (first && ino === own) throw new Error(`cannot open a conntrack netlink socket: ${(e as Error).message} (CAP_NET_ADMIN is needed)`);
        if (!this.failedNamespaces.has(ino)) this.options.logger?.warn({ err: e, netns: path }, 'nat: cannot read conntrack of a network namespace');
        this.failedNamespaces.add(ino);
      }
    }
    for (const ns of [...this.namespaces.values()]) {
      if (this.stopped) return;
      await this.dump(ns);
    }
  }

  private drainEvents(ns: Namespace): void {
    for (let i = 0; i < 10_000; i++) {
      let datagram: Buffer | null;
      try {
        datagram = ns.events.recv();
      } catch (e) {
        if (e instanceof NetlinkError && e.code === 'ENOBUFS') {
          // The kernel dropped events: what they said is only in a dump now.
          this.counters.eventsLost++;
          if (!ns.resync) {
            ns.resync = true;
            void this.dump(ns);
          }
          continue;
        }
        this.counters.socketFailed++;
        return;
      }
      if (datagram === null) return;
      for (const item of parseDatagram(datagram)) {
        if (item.type === 'entry' && item.entry.kind === 'new') {
          if (this.table.add(item.entry, ns.ino)) this.counters.eventEntries++;
        } else if (item.type === 'malformed') this.counters.malformed++;
      }
    }
  }

  /**
   * One dump request on `socket` for the entries with the `status` bit, added
   * to the table. Each entry is taken by one pass only (the source NAT pass
   * leaves those with destination NAT to the first), also on kernels that
   * ignore the filter and send every entry.
   */
  private async dumpOnce(socket: NetlinkSocket, status: number, netns: number): Promise<void> {
    socket.send(dumpRequest(status));
    const deadline = Date.now() + 30_000;
    let done = false;
    let datagrams = 0;
    while (!done) {
      const datagram = socket.recv();
      if (datagram === null) {
        if (Date.now() > deadline) throw new Error('conntrack dump did not finish in 30 s');
        await sleep(5);
        continue;
      }
      for (const item of parseDatagram(datagram)) {
        if (item.type === 'entry') {
          const bits = item.entry.status;
          if ((bits & status) === 0 || (status === IPS_SRC_NAT && (bits & IPS_DST_NAT) !== 0)) continue;
          if (this.table.add(item.entry, netns)) this.counters.dumpEntries++;
        } else if (item.type === 'done') done = true;
        else if (item.type === 'error') throw new Error(`conntrack dump failed: errno ${item.errno}`);
        else if (item.type === 'malformed') this.counters.malformed++;
      }
      // Let the event loop breathe between datagrams of a large table.
      if (++datagrams % 16 === 0) await new Promise((r) => setImmediate(r));
    }
  }

  /** Dump one namespace's table (on its own socket), then forget its entries the dump no longer has. */
  private async dump(ns: Namespace): Promise<void> {
    if (ns.dumping || this.stopped) return;
    ns.dumping = true;
    ns.resync = false;
    const stamp = this.table.stamp;
    let socket: NetlinkSocket | undefined;
    try {
      socket = new NetlinkSocket(NETLINK_NETFILTER, { netnsPath: ns.path });
      // The kernel's filter matches status & mask == value: one dump for each
      // kind of NAT (an entry with both comes twice; kernels before 5.19
      // ignore the filter and send everything, twice).
      for (const status of [IPS_DST_NAT, IPS_SRC_NAT]) await this.dumpOnce(socket, status, ns.ino);
      this.table.sweep(ns.ino, stamp);
    } catch (e) {
      this.counters.dumpFailed++;
      this.options.logger?.warn({ err: e, netns: ns.path }, 'nat: conntrack dump failed');
    } finally {
      socket?.close();
      ns.dumping = false;
    }
  }
}
