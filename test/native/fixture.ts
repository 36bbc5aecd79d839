/**
 * Shared helpers for the native addon tests: where the fixture object is, how
 * to configure it for this process, how to make it produce events.
 * The fixture is built by test/native/build-fixture.sh.
 */
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BpfObject } from '../../src/native/bpf';

function packageRoot(): string {
  let dir = __dirname;
  // dist/ may hold a copy of package.json: look for the source tree.
  while (!existsSync(path.join(dir, 'test', 'native', 'fixtures', 'Makefile'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no test/native/fixtures/Makefile above ${__dirname}`);
    dir = up;
  }
  return dir;
}

export const FIXTURE = path.join(packageRoot(), 'test', 'native', 'fixtures', '.output', 'fixture.bpf.o');

/** struct event in fixture.bpf.c */
export const EVENT_SIZE = 32;
/** struct odd_event */
export const ODD_EVENT_SIZE = 16;
/** struct iter_rec */
export const ITER_REC_SIZE = 32;

/** Counter slots of the fixture's `counters` array. */
export const C_EMITTED = 0;
export const C_RB_FULL = 1;
export const C_ODD = 2;
export const C_EGRESS = 3;

const SYSCALLS: Record<string, { getpriority: number; setpriority: number }> = {
  x64: { getpriority: 140, setpriority: 141 },
  arm64: { getpriority: 141, setpriority: 140 },
};

export function syscalls(): { getpriority: number; setpriority: number } {
  const s = SYSCALLS[process.arch];
  if (!s) throw new Error(`fixture tests: no syscall numbers for ${process.arch}`);
  return s;
}

export interface FixtureOptions {
  magic?: number;
  /** 0 disables event production */
  tgid?: number;
}

/** Opens the fixture configured to emit one event per getpriority(2) of this process. */
export function openFixture(opts: FixtureOptions = {}): BpfObject {
  if (!existsSync(FIXTURE)) throw new Error(`${FIXTURE} missing: run test/native/build-fixture.sh first`);
  const obj = new BpfObject(FIXTURE);
  obj.setGlobalU32('magic', opts.magic ?? 0xf10e7e1);
  obj.setGlobalU32('target_tgid', opts.tgid ?? process.pid);
  obj.setGlobalU64('target_syscall', syscalls().getpriority);
  obj.setGlobalU64('odd_syscall', syscalls().setpriority);
  return obj;
}

/** n events of EVENT_SIZE bytes (one getpriority(2) each). */
export function produce(n: number): void {
  for (let i = 0; i < n; i++) os.getPriority();
}

const NICE = os.getPriority(); // read at import, before any object is attached

/** n events of the wrong size (one setpriority(2) each, to the current nice value). */
export function produceOdd(n: number): void {
  for (let i = 0; i < n; i++) os.setPriority(NICE);
}

export interface Event {
  magic: number;
  pid: number;
  tgid: number;
  cpu: number;
  seq: bigint;
  tsNs: bigint;
}

export function decodeEvents(batch: Buffer, count: number): Event[] {
  const out: Event[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * EVENT_SIZE;
    out.push({
      magic: batch.readUInt32LE(o),
      pid: batch.readUInt32LE(o + 4),
      tgid: batch.readUInt32LE(o + 8),
      cpu: batch.readUInt32LE(o + 12),
      seq: batch.readBigUInt64LE(o + 16),
      tsNs: batch.readBigUInt64LE(o + 24),
    });
  }
  return out;
}

export function counter(obj: BpfObject, idx: number): bigint {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(idx, 0);
  const v = obj.mapLookup('counters', k);
  if (!v) throw new Error(`counters[${idx}] missing`);
  return v.readBigUInt64LE(0);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
