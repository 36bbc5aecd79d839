/**
 * Private typing of the raw native addon (native/build/Release/flowtel_native.node).
 * Only src/native/bpf.ts may use these; everyone else imports the wrapper.
 *
 * Errors thrown by the addon are plain `Error`s with:
 *   - `errno`: errno name ("ENOENT") when a syscall or libbpf call failed,
 *   - `code`:  the same errno name, or `ERR_BPF_*` / `ERR_INVALID_ARG_*` for
 *              argument and state errors,
 *   - `path`:  the object file, for open/load errors.
 */

export interface RawProgramInfo {
  name: string;
  section: string;
  /** enum bpf_prog_type */
  type: number;
  autoload: boolean;
  attached: boolean;
}

export interface RawMapInfo {
  name: string;
  /** enum bpf_map_type */
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  perCpu: boolean;
  /** libbpf-internal datasec map (.rodata/.data/.bss/.kconfig) */
  internal: boolean;
}

export interface RawMapDump {
  /** count x keySize bytes */
  keys: Buffer;
  /** count x valueSize bytes (per-CPU: valueSize = round_up(value, 8) x possible CPUs) */
  values: Buffer;
  count: number;
  keySize: number;
  valueSize: number;
}

export interface RawProgramStats {
  name: string;
  id: number;
  runTimeNs: number;
  runCnt: number;
  recursionMisses: number;
  verifiedInsns: number;
  attached: boolean;
}

export interface RawBpfObject {
  programs(): RawProgramInfo[];
  maps(): RawMapInfo[];
  setGlobal(name: string, value: Buffer): void;
  setMapMaxEntries(map: string, n: number): void;
  setAutoload(prog: string, on: boolean): void;
  load(): void;
  attach(prog: string): void;
  attachCgroup(prog: string, cgroupPath: string): void;
  /** iter/* program; with `map`, a map iterator (iter/bpf_map_elem, iter/bpf_sk_storage_map) over it */
  attachIter(prog: string, map?: string): void;
  /** false if the program was not attached */
  detach(prog: string): boolean;
  detachAll(): void;
  close(): void;
  isLoaded(): boolean;
  isClosed(): boolean;
  /** netnsPath: create the iterator inside that network namespace (iter/tcp, iter/udp walk one netns) */
  readIterator(prog: string, netnsPath?: string): Buffer;
  /**
   * One walk of an attached iterator whose program writes records into
   * `chunkMap` (a BPF_F_MMAPABLE array) and their number into `countMap`[0],
   * returning 1 when the chunk is full; every record, packed.
   */
  drainIterator(prog: string, chunkMap: string, countMap: string): Buffer;
  /**
   * The same walk on a native thread: `onChunk` gets a copy of each chunk (a
   * view detached when the call returns) while the kernel fills the next.
   * Resolves to the number of records; rejects with what onChunk threw, a
   * failed call's errno, or ERR_BPF_CLOSED if the object closed meanwhile.
   * With `sideMap` (a second BPF_F_MMAPABLE array, its count in
   * `countMap`[1]), onChunk gets that map's records of the same read() too.
   */
  walkIterator(prog: string, chunkMap: string, countMap: string, onChunk: (chunk: Uint8Array, side?: Uint8Array) => void, sideMap?: string): Promise<number>;
  mapLookup(map: string, key: Buffer): Buffer | null;
  mapUpdate(map: string, key: Buffer, value: Buffer, flags?: number): void;
  mapDelete(map: string, key: Buffer): boolean;
  mapDump(map: string): RawMapDump;
  /** A read-only view of a BPF_F_MMAPABLE array map's values (valid after close: the mapping holds the map). */
  mapMemory(map: string): Buffer;
  programStats(): RawProgramStats[];
}

export interface RawBpfObjectConstructor {
  new (path: string): RawBpfObject;
}

export interface RawRingBufferOptions {
  maxBatchRecords?: number;
  maxLatencyMs?: number;
  /** Called (on the JS thread) if the reader thread fails; it then stops consuming. */
  onError?: (err: Error) => void;
}

export interface RawRingBufferStats {
  records: number;
  batches: number;
  badSize: number;
  /** batches handed to the JS thread but not yet delivered */
  queuedBatches: number;
  errors: number;
  running: boolean;
}

export interface RawRingBufferReader {
  flush(): Promise<void>;
  stats(): RawRingBufferStats;
  stop(): void;
  ref(): void;
  unref(): void;
  isRunning(): boolean;
}

export interface RawRingBufferReaderConstructor {
  new (
    obj: RawBpfObject,
    mapName: string,
    recordSize: number,
    /** `batch`: the reader's one Buffer (maxBatchRecords records), of which the first count * recordSize bytes are this batch; valid during the call only. */
    onBatch: (batch: Buffer, count: number) => void,
    options?: RawRingBufferOptions,
  ): RawRingBufferReader;
}

export type RawBtfKind = 'typedef' | 'struct' | 'union' | 'func' | 'enum' | 'var';

export interface RawLibbpfLogLine {
  level: 'warn' | 'info' | 'debug';
  message: string;
}

export interface RawPacketSocketOptions {
  /** Create the socket in this network namespace (e.g. /proc/PID/ns/net, /run/netns/NAME). */
  netnsPath?: string;
  /** 0 (default): every interface of the namespace. */
  ifindex?: number;
  /** TPACKET_V3 block size in bytes (power of two, multiple of the page size). Default 256 KiB. */
  blockSize?: number;
  /** Blocks in the ring. Default 16. */
  blockCount?: number;
  /** A partly filled block is handed over at most this long after its first packet. Default 20. */
  retireMs?: number;
  /** Bytes per batch handed to JS. Default 1 MiB. */
  maxBatchBytes?: number;
  onError?: (err: Error) => void;
}

export interface RawPacketSocketStats {
  /** PACKET_STATISTICS tp_packets, accumulated: packets the filter passed, dropped ones included. */
  kernelPackets: number;
  /** PACKET_STATISTICS tp_drops, accumulated: passed packets lost because the ring was full. */
  kernelDrops: number;
  kernelFreezes: number;
  /** packets delivered to JS */
  packets: number;
  bytes: number;
  batches: number;
  blocks: number;
  queuedBatches: number;
  errors: number;
  running: boolean;
}

export interface RawPacketSocket {
  flush(): Promise<void>;
  stats(): RawPacketSocketStats;
  stop(): void;
  ref(): void;
  unref(): void;
  isRunning(): boolean;
}

export interface RawPacketSocketConstructor {
  new (
    obj: RawBpfObject,
    progName: string,
    onBatch: (batch: Buffer, count: number) => void,
    options?: RawPacketSocketOptions,
  ): RawPacketSocket;
  interfaces(netnsPath?: string): { index: number; name: string }[];
}

export interface RawAddon {
  BpfObject: RawBpfObjectConstructor;
  RingBufferReader: RawRingBufferReaderConstructor;
  PacketSocket: RawPacketSocketConstructor;
  libbpfVersion(): string;
  numPossibleCpus(): number;
  vmlinuxHasType(name: string, kind: RawBtfKind): boolean;
  bumpMemlockRlimit(): boolean;
  libbpfLog(maxLines?: number): RawLibbpfLogLine[];
}
