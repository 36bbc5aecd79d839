/**
 * Typed wrapper over the native addon (native/, built with `npm run build:native`).
 *
 * The addon is a thin layer over libbpf: one object per kernel object, batches
 * of records handed over as packed Buffers, ring buffers drained on a native
 * thread. Everything else (decoding, policy, retries) lives in TypeScript.
 *
 * The addon is loaded lazily, on first use, so importing this module never
 * fails on a machine where it has not been built.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type {
  RawAddon,
  RawBpfObject,
  RawBtfKind,
  RawRingBufferReader,
} from './raw';

// ---------------------------------------------------------------------------
// Errors

/** Every error raised by the native layer. `errno` is set when a syscall or libbpf call failed. */
export class BpfError extends Error {
  /** errno name, e.g. "ENOENT", "EPERM", "ESRCH" */
  readonly errno?: string;
  /** errno name, or ERR_BPF_NOT_FOUND / ERR_BPF_BAD_SIZE / ERR_BPF_STATE / ERR_BPF_CLOSED / ERR_NATIVE_NOT_BUILT ... */
  readonly code?: string;
  /** the BPF object file, for open/load errors */
  readonly path?: string;

  constructor(message: string, opts: { errno?: string; code?: string; path?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BpfError';
    if (opts.errno !== undefined) this.errno = opts.errno;
    if (opts.code !== undefined) this.code = opts.code;
    if (opts.path !== undefined) this.path = opts.path;
  }
}

function stringProp(o: object, key: string): string | undefined {
  const v: unknown = (o as Record<string, unknown>)[key];
  return typeof v === 'string' ? v : undefined;
}

/** Raw addon errors become BpfError; argument TypeErrors and non-errors pass through. */
function toBpfError(e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof BpfError || e instanceof TypeError || e instanceof RangeError) return e;
  const err = new BpfError(e.message, {
    errno: stringProp(e, 'errno'),
    code: stringProp(e, 'code'),
    path: stringProp(e, 'path'),
  });
  return err;
}

function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toBpfError(e);
  }
}

// ---------------------------------------------------------------------------
// Loading the addon

const ADDON_FILE = 'flowtel_native.node';
let cached: RawAddon | undefined;

/** The package root: the nearest ancestor of this file with package.json and native/binding.gyp (dist/ may hold a copy of package.json). */
function packageRoot(): string | undefined {
  let dir = __dirname;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'native', 'binding.gyp'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** Where the addon is looked for, in order. FLOWTEL_NATIVE_ADDON overrides. */
export function nativeAddonCandidates(): string[] {
  const out: string[] = [];
  const env = process.env.FLOWTEL_NATIVE_ADDON;
  if (env) out.push(path.resolve(env));
  const root = packageRoot();
  if (root) {
    out.push(path.join(root, 'native', 'build', 'Release', ADDON_FILE));
    out.push(path.join(root, 'native', 'build', 'Debug', ADDON_FILE));
  }
  return out;
}

function addon(): RawAddon {
  if (cached) return cached;
  const candidates = nativeAddonCandidates();
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    throw new BpfError(
      `native addon ${ADDON_FILE} not found (looked in: ${candidates.join(', ') || 'no package root found'}); ` +
        'build it with `npm run build:native`',
      { code: 'ERR_NATIVE_NOT_BUILT' },
    );
  }
  try {
    cached = require(file) as RawAddon;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new BpfError(`cannot load native addon ${file}: ${msg} (libbpf1, libelf1 and zlib must be installed)`, {
      code: 'ERR_NATIVE_LOAD',
      cause: e,
    });
  }
  return cached;
}

/** True if the addon can be loaded (it is built and its shared libraries are present). */
export function nativeAvailable(): boolean {
  try {
    addon();
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Constants (subset of the kernel's enums, for reading programs()/maps())

export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  SK_STORAGE: 24,
  RINGBUF: 27,
} as const;

export const ProgType = {
  SOCKET_FILTER: 1,
  KPROBE: 2,
  TRACEPOINT: 5,
  CGROUP_SKB: 8,
  SOCK_OPS: 13,
  RAW_TRACEPOINT: 17,
  TRACING: 26,
} as const;

/** Flags for mapUpdate(). */
export const UpdateFlags = { ANY: 0, NOEXIST: 1, EXIST: 2, LOCK: 4 } as const;

// ---------------------------------------------------------------------------
// Types

export interface ProgramInfo {
  readonly name: string;
  /** ELF section, e.g. "tp_btf/inet_sock_set_state" */
  readonly section: string;
  /** enum bpf_prog_type (see ProgType) */
  readonly type: number;
  readonly autoload: boolean;
  readonly attached: boolean;
}

export interface MapInfo {
  readonly name: string;
  /** enum bpf_map_type (see MapType) */
  readonly type: number;
  readonly keySize: number;
  /** value size as declared; see perCpu */
  readonly valueSize: number;
  readonly maxEntries: number;
  /** per-CPU map: lookups return round_up(valueSize, 8) x numPossibleCpus() bytes */
  readonly perCpu: boolean;
  /** libbpf-internal map backing .rodata/.data/.bss */
  readonly internal: boolean;
}

export interface MapDump {
  /** count x keySize bytes, packed */
  readonly keys: Buffer;
  /** count x valueSize bytes, packed (per-CPU values are all CPUs' values concatenated) */
  readonly values: Buffer;
  readonly count: number;
  readonly keySize: number;
  /** bytes per entry in `values` */
  readonly valueSize: number;
}

export interface ProgramStats {
  readonly name: string;
  /** kernel program id */
  readonly id: number;
  /** cumulative run time; non-zero only while kernel.bpf_stats_enabled=1 */
  readonly runTimeNs: number;
  /** cumulative run count; non-zero only while kernel.bpf_stats_enabled=1 */
  readonly runCnt: number;
  readonly recursionMisses: number;
  readonly verifiedInsns: number;
  readonly attached: boolean;
}

export type BtfKind = RawBtfKind;

export interface LibbpfLogLine {
  readonly level: 'warn' | 'info' | 'debug';
  readonly message: string;
}

// ---------------------------------------------------------------------------
// BpfObject

/**
 * An opened BPF ELF object (`struct bpf_object`). Configure (setGlobal,
 * setMapMaxEntries, setAutoload), then load(), then attach. close() detaches
 * everything, stops this object's ring buffer readers and frees the kernel
 * objects; it is idempotent and also happens when the object is garbage collected.
 */
export class BpfObject {
  /** @internal */
  readonly raw: RawBpfObject;
  readonly path: string;

  constructor(file: string) {
    const A = addon();
    this.path = file;
    this.raw = call(() => new A.BpfObject(file));
  }

  get loaded(): boolean {
    return this.raw.isLoaded();
  }

  get closed(): boolean {
    return this.raw.isClosed();
  }

  programs(): ProgramInfo[] {
    return call(() => this.raw.programs());
  }

  maps(): MapInfo[] {
    return call(() => this.raw.maps());
  }

  /** Info for one map, or a BpfError (ERR_BPF_NOT_FOUND). */
  map(name: string): MapInfo {
    const m = this.maps().find((x) => x.name === name);
    if (!m) throw new BpfError(`no BPF map named '${name}' in '${this.path}'`, { code: 'ERR_BPF_NOT_FOUND' });
    return m;
  }

  /** Before load(): set global variable `name` (in .rodata/.data/.bss); `value` must be exactly its size. */
  setGlobal(name: string, value: Buffer): void {
    call(() => this.raw.setGlobal(name, value));
  }

  setGlobalU32(name: string, v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0, 0);
    this.setGlobal(name, b);
  }

  setGlobalU64(name: string, v: bigint | number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v), 0);
    this.setGlobal(name, b);
  }

  /** Before load(). Ring buffer sizes are rounded up to a power-of-two number of pages by libbpf. */
  setMapMaxEntries(map: string, n: number): void {
    call(() => this.raw.setMapMaxEntries(map, n));
  }

  /** Before load(). A program whose section starts with '?' is off by default. */
  setAutoload(prog: string, on: boolean): void {
    call(() => this.raw.setAutoload(prog, on));
  }

  /** Loads maps and programs into the kernel. On failure the BpfError carries libbpf's log tail. */
  load(): void {
    call(() => this.raw.load());
  }

  /** Attaches by section type (tp_btf, raw_tp, tracepoint, kprobe, iter, ...). */
  attach(prog: string): void {
    call(() => this.raw.attach(prog));
  }

  /** Attaches a cgroup program (cgroup_skb/*, sockops, ...) to a cgroup v2 directory. */
  attachCgroup(prog: string, cgroupPath: string): void {
    call(() => this.raw.attachCgroup(prog, cgroupPath));
  }

  /**
   * Attaches an iter/* program. With `map`, a map iterator (iter/bpf_map_elem,
   * iter/bpf_sk_storage_map) over that map; without, the same as attach().
   */
  attachIter(prog: string, map?: string): void {
    call(() => this.raw.attachIter(prog, map));
  }

  /** Returns false if the program was not attached. */
  detach(prog: string): boolean {
    return call(() => this.raw.detach(prog));
  }

  detachAll(): void {
    call(() => this.raw.detachAll());
  }

  close(): void {
    this.raw.close();
  }

  /**
   * Runs an attached iter/* program to the end and returns everything it wrote.
   * Per-network-namespace iterators (iter/tcp, iter/udp, iter/unix) walk the
   * namespace they are created in: pass `netnsPath` (e.g. /proc/<pid>/ns/net,
   * /run/netns/<name>) to create it there (on a helper thread; needs CAP_SYS_ADMIN).
   */
  readIterator(prog: string, netnsPath?: string): Buffer {
    return call(() => this.raw.readIterator(prog, netnsPath));
  }

  /**
   * Runs an attached iter/* program that hands its records over through a
   * chunk map instead of the seq_file (for map iterators, whose reads resume
   * by walking a bucket from its start: one read per 32 KiB would make a walk
   * quadratic). The program writes records into `chunkMap` (a
   * BPF_F_MMAPABLE array) and their count into `countMap`[0], and returns 1
   * when the chunk is full; every record of the walk comes back, packed.
   */
  drainIterator(prog: string, chunkMap: string, countMap: string): Buffer {
    return call(() => this.raw.drainIterator(prog, chunkMap, countMap));
  }

  /**
   * The same walk, with the kernel's part on a native thread: `onChunk` runs
   * on this thread for each chunk (a Buffer over a copy, valid only during
   * the call) while the kernel walks on and fills the next chunk, so the two
   * overlap and the event loop is free while the kernel walks. At most one
   * chunk copy waits for `onChunk` at a time. Resolves to the number of records.
   * An exception thrown by `onChunk` ends the walk and rejects the promise;
   * closing the object during a walk rejects it with ERR_BPF_CLOSED.
   * With `sideMap`, a second array the program writes records into (their
   * count in `countMap`[1]; the chunk is full when either is), `onChunk`
   * gets that map's records of the same read() as its second argument.
   */
  async walkIteratorChunks(prog: string, chunkMap: string, countMap: string, onChunk: (chunk: Buffer, side?: Buffer) => void, sideMap?: string): Promise<number> {
    const buf = (u8: Uint8Array): Buffer => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
    const pending = call(() => this.raw.walkIterator(prog, chunkMap, countMap, (u8, side) => onChunk(buf(u8), side && buf(side)), sideMap));
    try {
      return await pending;
    } catch (e) {
      throw toBpfError(e);
    }
  }

  /** null if the key is absent. Per-CPU maps: all CPUs' values concatenated (8-byte aligned each). */
  mapLookup(map: string, key: Buffer): Buffer | null {
    return call(() => this.raw.mapLookup(map, key));
  }

  mapUpdate(map: string, key: Buffer, value: Buffer, flags: number = UpdateFlags.ANY): void {
    call(() => this.raw.mapUpdate(map, key, value, flags));
  }

  /** false if the key was absent. */
  mapDelete(map: string, key: Buffer): boolean {
    return call(() => this.raw.mapDelete(map, key));
  }

  /** All entries, packed (not an atomic snapshot: the kernel may change the map meanwhile). */
  /**
   * The values of a BPF_F_MMAPABLE array map as a read-only Buffer over the
   * kernel's memory (max_entries x value_size bytes, no copy, no system call
   * per read). It stays valid after close(): the mapping holds the map.
   */
  mapMemory(map: string): Buffer {
    return call(() => this.raw.mapMemory(map));
  }

  mapDump(map: string): MapDump {
    return call(() => this.raw.mapDump(map));
  }

  programStats(): ProgramStats[] {
    return call(() => this.raw.programStats());
  }
}

// ---------------------------------------------------------------------------
// RingBufferReader

export interface RingBufferOptions {
  /** deliver a batch when it holds this many records (default 4096) */
  maxBatchRecords?: number;
  /** ...or when its first record is this old (default 50 ms) */
  maxLatencyMs?: number;
  /**
   * Called with errors thrown by onBatch and with a failure of the reader
   * thread (after which it no longer consumes). Without it, an exception from
   * onBatch becomes an uncaught exception, like in any event callback.
   */
  onError?: (err: Error) => void;
}

export interface RingBufferStats {
  /** records copied into batches */
  readonly records: number;
  /** batches handed to JS (including queued ones) */
  readonly batches: number;
  /** samples whose size was not recordSize (dropped) */
  readonly badSize: number;
  /** batches waiting for the JS thread */
  readonly queuedBatches: number;
  readonly errors: number;
  readonly running: boolean;
}

/**
 * Drains a BPF_MAP_TYPE_RINGBUF on a native thread. `onBatch` receives
 * `count` records of exactly `recordSize` bytes packed in `batch`, which is
 * valid only during the call: the next batch is copied into the same memory
 * (one allocation for the reader's life, not a Buffer per batch left for the
 * garbage collector). The reader keeps Node alive until stop() (or unref()).
 */
export class RingBufferReader {
  private readonly raw: RawRingBufferReader;
  readonly mapName: string;
  readonly recordSize: number;

  constructor(
    obj: BpfObject,
    mapName: string,
    recordSize: number,
    onBatch: (batch: Buffer, count: number) => void,
    options: RingBufferOptions = {},
  ) {
    const A = addon();
    this.mapName = mapName;
    this.recordSize = recordSize;
    const onError = options.onError;
    // The addon copies every batch into one Buffer of maxBatchRecords records: hand over the part this batch filled.
    const deliver = (all: Buffer, count: number): void => {
      const batch = all.subarray(0, count * recordSize);
      if (!onError) return onBatch(batch, count);
      try {
        onBatch(batch, count);
      } catch (e) {
        onError(e instanceof Error ? e : new Error(String(e)));
      }
    };
    this.raw = call(
      () =>
        new A.RingBufferReader(obj.raw, mapName, recordSize, deliver, {
          maxBatchRecords: options.maxBatchRecords,
          maxLatencyMs: options.maxLatencyMs,
          onError: onError ? (e: Error) => onError(toBpfError(e) as Error) : undefined,
        }),
    );
  }

  /**
   * Resolves after every record committed to the ring before this call has
   * been passed to onBatch (the partial batch is delivered first).
   */
  async flush(): Promise<void> {
    try {
      await this.raw.flush();
    } catch (e) {
      throw toBpfError(e);
    }
  }

  stats(): RingBufferStats {
    return this.raw.stats();
  }

  get running(): boolean {
    return this.raw.isRunning();
  }

  /**
   * Idempotent. Consumes what is in the ring, joins the thread and frees the
   * ring buffer; batches already queued (including the last partial one) are
   * still delivered to onBatch afterwards, asynchronously.
   */
  stop(): void {
    this.raw.stop();
  }

  /** Let Node exit while the reader runs. */
  unref(): this {
    this.raw.unref();
    return this;
  }

  ref(): this {
    this.raw.ref();
    return this;
  }
}

// ---------------------------------------------------------------------------
// Free functions

/** libbpf's version, e.g. "v1.1". */
export function libbpfVersion(): string {
  return addon().libbpfVersion();
}

export function numPossibleCpus(): number {
  return call(() => addon().numPossibleCpus());
}

/** Whether the running kernel's BTF (vmlinux only, not modules) has a type of that name and kind. */
export function vmlinuxHasType(name: string, kind: BtfKind): boolean {
  return call(() => addon().vmlinuxHasType(name, kind));
}

/** Whether tp_btf/<tracepoint> can be attached on this kernel (btf_trace_<name> exists). */
export function hasBtfTracepoint(tracepoint: string): boolean {
  return vmlinuxHasType(`btf_trace_${tracepoint}`, 'typedef');
}

/**
 * Raises RLIMIT_MEMLOCK to infinity. Returns false if that was not permitted,
 * which is harmless on kernels >= 5.11 (BPF memory is charged to memcg).
 */
export function bumpMemlockRlimit(): boolean {
  return addon().bumpMemlockRlimit();
}

/**
 * The most recent libbpf log lines (WARN and INFO; DEBUG too when
 * FLOWTEL_LIBBPF_DEBUG=1, which also echoes everything to stderr).
 */
export function libbpfLog(maxLines = 200): LibbpfLogLine[] {
  return addon().libbpfLog(maxLines);
}

/** Size of one value in lookups/dumps of a map: per-CPU maps hold one 8-byte-aligned slot per possible CPU. */
export function userValueSize(map: MapInfo): number {
  return map.perCpu ? Math.ceil(map.valueSize / 8) * 8 * numPossibleCpus() : map.valueSize;
}

/** Splits a per-CPU value into one Buffer per possible CPU (views, not copies). */
export function splitPerCpu(value: Buffer, valueSize: number): Buffer[] {
  const slot = Math.ceil(valueSize / 8) * 8;
  const out: Buffer[] = [];
  for (let off = 0; off + valueSize <= value.length; off += slot) out.push(value.subarray(off, off + valueSize));
  return out;
}

/** Sum of a per-CPU u64 value over all CPUs. */
export function sumPerCpuU64(value: Buffer): bigint {
  let total = 0n;
  for (let off = 0; off + 8 <= value.length; off += 8) total += value.readBigUInt64LE(off);
  return total;
}

/** Iterates a dump's entries as views into its buffers. */
export function* dumpEntries(dump: MapDump): Generator<{ key: Buffer; value: Buffer }> {
  for (let i = 0; i < dump.count; i++) {
    yield {
      key: dump.keys.subarray(i * dump.keySize, (i + 1) * dump.keySize),
      value: dump.values.subarray(i * dump.valueSize, (i + 1) * dump.valueSize),
    };
  }
}
