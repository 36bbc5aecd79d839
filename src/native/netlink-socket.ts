/**
 * Typed wrapper over the addon's NetlinkSocket (native/src/netlink_socket.cc):
 * one non-blocking AF_NETLINK socket, created in a chosen network namespace.
 * `send` writes one request to the kernel; `recv` returns one queued datagram
 * (possibly several netlink messages) or null when none is queued. Messages
 * are built and parsed in TypeScript.
 */
import { existsSync } from 'node:fs';
import { BpfError, nativeAddonCandidates } from './bpf';

export const NETLINK_NETFILTER = 12;

interface RawNetlinkSocket {
  send(message: Buffer): void;
  recv(): Buffer | null;
  close(): void;
  isClosed(): boolean;
  portId(): number;
}

interface RawNetlinkAddon {
  NetlinkSocket?: new (protocol: number, options?: { netnsPath?: string; groups?: number; rcvbufBytes?: number }) => RawNetlinkSocket;
}

let cachedAddon: RawNetlinkAddon | undefined;
function addon(): Required<RawNetlinkAddon> {
  if (!cachedAddon) {
    const file = nativeAddonCandidates().find((f) => existsSync(f));
    if (!file) throw new BpfError('native addon flowtel_native.node not found: build it with `npm run build:native`', { code: 'ERR_NATIVE_NOT_BUILT' });
    cachedAddon = require(file) as RawNetlinkAddon;
  }
  if (typeof cachedAddon.NetlinkSocket !== 'function') throw new BpfError('native addon has no NetlinkSocket: rebuild it (npm run build:native)', { code: 'ERR_NATIVE_NOT_BUILT' });
  return cachedAddon as Required<RawNetlinkAddon>;
}

/** An error from the socket, with the errno name (`ENOBUFS`) as `code`. */
export class NetlinkError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'NetlinkError';
  }
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Error && !(e instanceof TypeError)) {
      const code = (e as Error & { code?: unknown }).code;
      throw new NetlinkError(e.message, typeof code === 'string' ? code : undefined);
    }
    throw e;
  }
}

export interface NetlinkSocketOptions {
  /** Create the socket in this network namespace (/proc/PID/ns/net, /run/netns/NAME); default the agent's. */
  readonly netnsPath?: string;
  /** Multicast groups to join, as the bind(2) bitmask (group N is bit N-1). */
  readonly groups?: number;
  /** Receive buffer size (SO_RCVBUFFORCE, else SO_RCVBUF). */
  readonly rcvbufBytes?: number;
}

export class NetlinkSocket {
  private readonly raw: RawNetlinkSocket;

  constructor(protocol: number, options: NetlinkSocketOptions = {}) {
    const A = addon();
    this.raw = wrap(() => new A.NetlinkSocket(protocol, { netnsPath: options.netnsPath, groups: options.groups, rcvbufBytes: options.rcvbufBytes }));
  }

  /** The port id the kernel gave the socket (nlmsg_pid of its replies). */
  get portId(): number {
    return this.raw.portId();
  }

  send(message: Buffer): void {
    wrap(() => this.raw.send(message));
  }

  /** One datagram, or null when none is queued. Throws NetlinkError (code ENOBUFS when messages were lost). */
  recv(): Buffer | null {
    return wrap(() => this.raw.recv());
  }

  close(): void {
    this.raw.close();
  }

  get closed(): boolean {
    return this.raw.isClosed();
  }
}
