/**
 * Typed wrapper over the addon's PacketSocket (native/src/packet_socket.cc):
 * an AF_PACKET socket (SOCK_DGRAM, every protocol) filtered by a loaded BPF
 * socket-filter program, read through a TPACKET_V3 ring on a native thread.
 * Packets reach `onBatch` as packed Buffers; `forEachPacket` walks one without
 * copying.
 *
 * Record layout (each record 8-byte aligned):
 *
 * | offset | type | field |
 * |---|---|---|
 * | 0 | u64 | kernel timestamp, CLOCK_REALTIME ns |
 * | 8 | u32 | ifindex (in the socket's network namespace) |
 * | 12 | u32 | caplen: bytes that follow (≤ the filter's snap length) |
 * | 16 | u32 | origlen: the packet's length from the IP header on |
 * | 20 | u8 | pkttype: 0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing |
 * | 22 | u16 | protocol: 0x0800 IPv4, 0x86dd IPv6 |
 * | 24 | caplen bytes | the packet from its IP header on |
 */
import { existsSync } from 'node:fs';
import { BpfError, nativeAddonCandidates, type BpfObject } from './bpf';
import type { RawAddon, RawPacketSocket, RawPacketSocketStats } from './raw';

export const PACKET_RECORD_HEADER = 24;
export const PACKET_HOST = 0;
export const PACKET_OUTGOING = 4;

export type PacketSocketStats = RawPacketSocketStats;

export interface PacketSocketOptions {
  /** Network namespace to capture in (a path that opens it); default the agent's own. */
  netnsPath?: string;
  /** Bind to one interface (its index in that namespace); default all. */
  ifindex?: number;
  blockSize?: number;
  blockCount?: number;
  retireMs?: number;
  maxBatchBytes?: number;
  /** The reader thread failed (it stops), or onBatch threw. */
  onError?: (err: Error) => void;
}

/** One packet of a batch; `data` is a view into the batch (no copy). Reused between callbacks: do not keep it. */
export interface CapturedPacket {
  /** Kernel timestamp in µs since the epoch (a double: ~0.25 µs resolution; no BigInt in the hot path). */
  tsUs: number;
  ifindex: number;
  caplen: number;
  origlen: number;
  pkttype: number;
  protocol: number;
  /** Offset of the packet (its IP header) in the batch. */
  offset: number;
}

let cachedAddon: RawAddon | undefined;
function addon(): RawAddon {
  if (cachedAddon) return cachedAddon;
  const file = nativeAddonCandidates().find((f) => existsSync(f));
  if (!file) throw new BpfError('native addon flowtel_native.node not found: build it with `npm run build:native`', { code: 'ERR_NATIVE_NOT_BUILT' });
  cachedAddon = require(file) as RawAddon;
  if (typeof cachedAddon.PacketSocket !== 'function') throw new BpfError(`native addon ${file} has no PacketSocket: rebuild it (npm run build:native)`, { code: 'ERR_NATIVE_NOT_BUILT' });
  return cachedAddon;
}

function toBpfError(e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof BpfError || e instanceof TypeError || e instanceof RangeError) return e;
  const r = e as Error & { errno?: unknown; code?: unknown };
  return new BpfError(e.message, {
    errno: typeof r.errno === 'string' ? r.errno : undefined,
    code: typeof r.code === 'string' ? r.code : undefined,
  });
}

function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toBpfError(e);
  }
}

export class PacketSocket {
  private readonly raw: RawPacketSocket;

  /** `prog` is a SEC("socket") program of `obj`, loaded; the socket keeps it after obj.close(). */
  constructor(obj: BpfObject, prog: string, onBatch: (batch: Buffer, count: number) => void, options: PacketSocketOptions = {}) {
    const A = addon();
    const onError = options.onError;
    const deliver = onError
      ? (batch: Buffer, count: number): void => {
          try {
            onBatch(batch, count);
          } catch (e) {
            onError(e instanceof Error ? e : new Error(String(e)));
          }
        }
      : onBatch;
    this.raw = call(
      () =>
        new A.PacketSocket(obj.raw, prog, deliver, {
          netnsPath: options.netnsPath,
          ifindex: options.ifindex,
          blockSize: options.blockSize,
          blockCount: options.blockCount,
          retireMs: options.retireMs,
          maxBatchBytes: options.maxBatchBytes,
          onError: onError ? (e: Error) => onError(toBpfError(e) as Error) : undefined,
        }),
    );
  }

  /** Interfaces of a network namespace (default: the agent's own). */
  static interfaces(netnsPath?: string): { index: number; name: string }[] {
    return call(() => addon().PacketSocket.interfaces(netnsPath));
  }

  /** Resolves once every packet the kernel passed before this call has reached onBatch (takes about retireMs). */
  async flush(): Promise<void> {
    try {
      await this.raw.flush();
    } catch (e) {
      throw toBpfError(e);
    }
  }

  /** Counters; the kernel's (PACKET_STATISTICS) are read now and accumulated. */
  stats(): PacketSocketStats {
    return this.raw.stats();
  }

  get running(): boolean {
    return this.raw.isRunning();
  }

  /** Idempotent: joins the reader thread and closes the socket; batches already queued are still delivered. */
  stop(): void {
    this.raw.stop();
  }

  ref(): void {
    this.raw.ref();
  }

  unref(): void {
    this.raw.unref();
  }
}

/**
 * Walk the packets of a batch. `pkt` is one object, refilled for each packet;
 * the packet's bytes are batch[pkt.offset, pkt.offset + pkt.caplen).
 */
export function forEachPacket(batch: Buffer, count: number, fn: (pkt: CapturedPacket, batch: Buffer) => void): void {
  const pkt: CapturedPacket = { tsUs: 0, ifindex: 0, caplen: 0, origlen: 0, pkttype: 0, protocol: 0, offset: 0 };
  let off = 0;
  for (let i = 0; i < count && off + PACKET_RECORD_HEADER <= batch.length; i++) {
    const lo = batch.readUInt32LE(off);
    const hi = batch.readUInt32LE(off + 4);
    // (hi·2^32 + lo) / 1000 without leaving the exact range of a double.
    pkt.tsUs = hi * 4_294_967 + (hi * 296 + lo) / 1000;
    pkt.ifindex = batch.readUInt32LE(off + 8);
    pkt.caplen = batch.readUInt32LE(off + 12);
    pkt.origlen = batch.readUInt32LE(off + 16);
    pkt.pkttype = batch[off + 20]!;
    pkt.protocol = batch.readUInt16LE(off + 22);
    pkt.offset = off + PACKET_RECORD_HEADER;
    if (pkt.offset + pkt.caplen > batch.length) return;
    fn(pkt, batch);
    off = pkt.offset + ((pkt.caplen + 7) & ~7);
  }
}
