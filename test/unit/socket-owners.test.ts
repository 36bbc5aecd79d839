import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findSocketOwners } from '../../src/flows/socket-owners';
import { readComm } from '../../src/flows/records';

/** A /proc of processes with the given socket inodes, as fd symlinks. */
function fakeProc(procs: Record<string, { comm: Buffer; sockets: number[] }>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'flowtel-proc-'));
  for (const [pid, p] of Object.entries(procs)) {
    mkdirSync(path.join(root, pid, 'fd'), { recursive: true });
    writeFileSync(path.join(root, pid, 'comm'), Buffer.concat([p.comm, Buffer.from('\n')]));
    p.sockets.forEach((ino, i) => symlinkSync(`socket:[${ino}]`, path.join(root, pid, 'fd', String(i + 3))));
    symlinkSync('/dev/null', path.join(root, pid, 'fd', '0'));
  }
  mkdirSync(path.join(root, 'self')); // not a pid
  return root;
}

test('findSocketOwners: the process of each inode asked for, one owner object per process, named with the bytes the kernel keeps (as records decode them)', () => {
  const cafe = Buffer.from('café srv', 'utf8'); // a name outside ASCII: 9 bytes
  const root = fakeProc({ '100': { comm: cafe, sockets: [11, 12, 13] }, '200': { comm: Buffer.from(' sp '), sockets: [21] } });
  try {
    const found = findSocketOwners(new Set([11, 13, 21, 99]), root);
    assert.deepEqual([...found.keys()].sort(), [11, 13, 21]);
    assert.equal(found.get(11)!.pid, 100);
    assert.equal(found.get(11), found.get(13), 'one object per process');
    const kernelSide = Buffer.alloc(16);
    cafe.copy(kernelSide);
    assert.equal(found.get(11)!.comm, readComm(kernelSide, 0), 'the same name as a record of the kernel for that process');
    assert.equal(found.get(21)!.comm, ' sp ', 'only the newline /proc adds is removed');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
