/** BpfObject against the real kernel: configure, load, attach, maps, iterators. */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BpfError,
  BpfObject,
  MapType,
  ProgType,
  UpdateFlags,
  dumpEntries,
  hasBtfTracepoint,
  libbpfVersion,
  numPossibleCpus,
  sumPerCpuU64,
  userValueSize,
  vmlinuxHasType,
} from '../../src/native/bpf';
import { C_EGRESS, C_EMITTED, FIXTURE, ITER_REC_SIZE, counter, openFixture, produce } from './fixture';

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v, 0);
  return b;
}

function u64(v: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v), 0);
  return b;
}

function isBpfError(code: string, re?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof BpfError, `expected BpfError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  };
}

describe('free functions', () => {
  it('libbpfVersion and numPossibleCpus', () => {
    assert.match(libbpfVersion(), /^v1\.\d+/);
    const n = numPossibleCpus();
    assert.ok(Number.isInteger(n) && n >= 1);
  });

  it('vmlinuxHasType finds tracepoint typedefs and rejects bogus names', () => {
    assert.equal(vmlinuxHasType('btf_trace_inet_sock_set_state', 'typedef'), true);
    assert.equal(vmlinuxHasType('btf_trace_flowtel_bogus_tp', 'typedef'), false);
    assert.equal(vmlinuxHasType('task_struct', 'struct'), true);
    assert.equal(vmlinuxHasType('task_struct', 'typedef'), false);
    assert.equal(vmlinuxHasType('tcp_v4_connect', 'func'), true);
    assert.equal(vmlinuxHasType('bpf_map_type', 'enum'), true);
    assert.equal(hasBtfTracepoint('sys_enter'), true);
    assert.throws(() => vmlinuxHasType('x', 'bogus' as 'struct'), /kind must be one of/);
  });
});

describe('BpfObject before load', () => {
  it('lists programs and maps', () => {
    const obj = new BpfObject(FIXTURE);
    try {
      assert.equal(obj.loaded, false);
      const progs = new Map(obj.programs().map((p) => [p.name, p]));
      assert.deepEqual([...progs.keys()].sort(), ['bogus_target', 'count_egress', 'drain_kv', 'drain_kv_split', 'dump_kv', 'dump_tasks', 'dump_tcp_ports', 'on_sys_enter']);
      assert.equal(progs.get('on_sys_enter')?.section, 'tp_btf/sys_enter');
      assert.equal(progs.get('on_sys_enter')?.type, ProgType.TRACING);
      assert.equal(progs.get('count_egress')?.type, ProgType.CGROUP_SKB);
      assert.equal(progs.get('dump_tasks')?.section, 'iter/task');
      assert.equal(progs.get('bogus_target')?.autoload, false, "'?' section prefix means autoload off");
      assert.equal(progs.get('on_sys_enter')?.autoload, true);

      const maps = new Map(obj.maps().map((m) => [m.name, m]));
      assert.deepEqual(
        { type: maps.get('events')?.type, max: maps.get('events')?.maxEntries },
        { type: MapType.RINGBUF, max: 256 * 1024 },
      );
      assert.deepEqual(maps.get('counters'), {
        name: 'counters', type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 4, perCpu: false, internal: false,
      });
      assert.equal(maps.get('percpu_hits')?.perCpu, true);
      assert.ok(obj.maps().some((m) => m.internal && m.name.endsWith('.rodata')));
    } finally {
      obj.close();
    }
  });

  it('setMapMaxEntries and setAutoload take effect', () => {
    const obj = openFixture();
    try {
      obj.setMapMaxEntries('kv', 77);
      obj.setAutoload('count_egress', false);
      obj.setAutoload('dump_kv', false);
      obj.setAutoload('drain_kv', false);
      obj.setAutoload('drain_kv_split', false);
      obj.setAutoload('dump_tcp_ports', false);
      obj.load();
      assert.equal(obj.map('kv').maxEntries, 77);
      const stats = obj.programStats().map((p) => p.name).sort();
      assert.deepEqual(stats, ['dump_tasks', 'on_sys_enter']);
      assert.throws(() => obj.attach('count_egress'), isBpfError('ERR_BPF_STATE', /not loaded/));
    } finally {
      obj.close();
    }
  });

  it('rejects configuration after load and everything after close', () => {
    const obj = openFixture();
    obj.load();
    assert.equal(obj.loaded, true);
    assert.throws(() => obj.setGlobalU32('magic', 1), isBpfError('ERR_BPF_STATE', /before load/));
    assert.throws(() => obj.setMapMaxEntries('kv', 1), isBpfError('ERR_BPF_STATE'));
    assert.throws(() => obj.load(), isBpfError('ERR_BPF_STATE'));
    obj.close();
    obj.close(); // idempotent
    assert.equal(obj.closed, true);
    assert.throws(() => obj.programs(), isBpfError('ERR_BPF_CLOSED', /is closed/));
    assert.throws(() => obj.mapLookup('counters', u32(0)), isBpfError('ERR_BPF_CLOSED'));
    obj.detachAll(); // no-op after close
  });
});

describe('BpfObject loaded', () => {
  let obj: BpfObject;
  before(() => {
    obj = openFixture();
    obj.load();
  });
  after(() => obj.close());

  it('attach / detach controls the program', () => {
    const before0 = counter(obj, C_EMITTED);
    produce(50);
    assert.equal(counter(obj, C_EMITTED), before0, 'not attached yet');
    obj.attach('on_sys_enter');
    assert.ok(obj.programs().find((p) => p.name === 'on_sys_enter')?.attached);
    assert.throws(() => obj.attach('on_sys_enter'), isBpfError('ERR_BPF_STATE', /already attached/));
    produce(100);
    assert.equal(counter(obj, C_EMITTED), before0 + 100n);
    assert.equal(obj.detach('on_sys_enter'), true);
    assert.equal(obj.detach('on_sys_enter'), false);
    produce(100);
    assert.equal(counter(obj, C_EMITTED), before0 + 100n, 'detached');
    obj.attach('on_sys_enter');
    produce(10);
    assert.equal(counter(obj, C_EMITTED), before0 + 110n);
    obj.detachAll();
    produce(10);
    assert.equal(counter(obj, C_EMITTED), before0 + 110n);
  });

  it('per-CPU lookups return every CPU slot', () => {
    const info = obj.map('percpu_hits');
    const ncpu = numPossibleCpus();
    assert.equal(userValueSize(info), 8 * ncpu);
    const v0 = obj.mapLookup('percpu_hits', u32(0));
    assert.ok(v0);
    assert.equal(v0.length, 8 * ncpu);
    const start = sumPerCpuU64(v0);
    obj.attach('on_sys_enter');
    try {
      produce(250);
    } finally {
      obj.detach('on_sys_enter');
    }
    const v1 = obj.mapLookup('percpu_hits', u32(0));
    assert.ok(v1);
    assert.equal(sumPerCpuU64(v1) - start, 250n);
    // write all slots, read back
    const w = Buffer.alloc(8 * ncpu);
    for (let c = 0; c < ncpu; c++) w.writeBigUInt64LE(BigInt(c + 1), c * 8);
    obj.mapUpdate('percpu_hits', u32(0), w);
    assert.deepEqual(obj.mapLookup('percpu_hits', u32(0)), w);
    assert.throws(() => obj.mapUpdate('percpu_hits', u32(0), u64(1)), isBpfError('ERR_BPF_BAD_SIZE', /per-CPU/));
    const d = obj.mapDump('percpu_hits');
    assert.equal(d.count, 1);
    assert.equal(d.valueSize, 8 * ncpu);
    assert.deepEqual(d.values, w);
  });

  it('hash map update / lookup / delete / dump', () => {
    assert.equal(obj.mapLookup('kv', u32(1)), null);
    obj.mapUpdate('kv', u32(1), u64(100));
    assert.deepEqual(obj.mapLookup('kv', u32(1)), u64(100));
    obj.mapUpdate('kv', u32(1), u64(101), UpdateFlags.EXIST);
    assert.deepEqual(obj.mapLookup('kv', u32(1)), u64(101));
    assert.throws(
      () => obj.mapUpdate('kv', u32(1), u64(5), UpdateFlags.NOEXIST),
      (e: unknown) => e instanceof BpfError && e.errno === 'EEXIST' && /mapUpdate\('kv'\)/.test(e.message),
    );
    assert.equal(obj.mapDelete('kv', u32(1)), true);
    assert.equal(obj.mapDelete('kv', u32(1)), false);
    assert.equal(obj.mapLookup('kv', u32(1)), null);

    assert.equal(obj.mapDump('kv').count, 0);
    for (let i = 0; i < 700; i++) obj.mapUpdate('kv', u32(i), u64(i * 3));
    const d = obj.mapDump('kv');
    assert.equal(d.count, 700);
    assert.equal(d.keys.length, 700 * 4);
    assert.equal(d.values.length, 700 * 8);
    const seen = new Set<number>();
    for (const { key, value } of dumpEntries(d)) {
      const k = key.readUInt32LE(0);
      assert.equal(value.readBigUInt64LE(0), BigInt(k * 3));
      seen.add(k);
    }
    assert.equal(seen.size, 700);
    for (let i = 0; i < 700; i++) obj.mapDelete('kv', u32(i));
    assert.equal(obj.mapDump('kv').count, 0);

    assert.throws(() => obj.mapLookup('kv', u64(1)), isBpfError('ERR_BPF_BAD_SIZE', /key is 8 bytes, map key size is 4/));
    assert.throws(() => obj.mapUpdate('kv', u32(1), u32(1)), isBpfError('ERR_BPF_BAD_SIZE'));
    assert.throws(() => obj.mapLookup('nope', u32(1)), isBpfError('ERR_BPF_NOT_FOUND', /no BPF map named 'nope'.*maps: .*\bevents, counters/));
  });

  it('array dump returns every slot', () => {
    const d = obj.mapDump('counters');
    assert.equal(d.count, 4);
    assert.deepEqual(
      [...dumpEntries(d)].map((e) => e.key.readUInt32LE(0)),
      [0, 1, 2, 3],
    );
    assert.throws(
      () => obj.mapDelete('counters', u32(0)),
      (e: unknown) => e instanceof BpfError && e.errno === 'EINVAL', // array elements cannot be deleted
    );
  });

  it('readIterator returns whole fixed-size records', () => {
    assert.throws(() => obj.readIterator('dump_tasks'), isBpfError('ERR_BPF_STATE', /not attached/));
    obj.attach('dump_tasks');
    try {
      for (let round = 0; round < 2; round++) {
        const buf = obj.readIterator('dump_tasks');
        assert.equal(buf.length % ITER_REC_SIZE, 0, `length ${buf.length}`);
        const n = buf.length / ITER_REC_SIZE;
        assert.ok(n > 10, `only ${n} tasks`);
        let self = false;
        for (let i = 0; i < n; i++) {
          const o = i * ITER_REC_SIZE;
          assert.equal(buf.readUInt32LE(o), 0xf10e7e1, `record ${i} magic`);
          const pid = buf.readUInt32LE(o + 4);
          const tgid = buf.readUInt32LE(o + 8);
          if (pid === process.pid && tgid === process.pid) {
            self = true;
            const comm = buf.subarray(o + 16, o + 32).toString('latin1').replace(/\0.*$/s, '');
            assert.equal(comm, readFileSync('/proc/self/comm', 'utf8').trim());
          }
        }
        assert.ok(self, 'own task not found');
      }
    } finally {
      obj.detach('dump_tasks');
    }
  });

  it('attachIter over a map iterates its elements', () => {
    for (let i = 0; i < 50; i++) obj.mapUpdate('kv', u32(1000 + i), u64(i * 7));
    try {
      assert.throws(() => obj.attachIter('dump_kv', 'nope'), isBpfError('ERR_BPF_NOT_FOUND'));
      obj.attachIter('dump_kv', 'kv');
      const buf = obj.readIterator('dump_kv');
      assert.equal(buf.length, 50 * 16);
      const got = new Map<number, bigint>();
      for (let o = 0; o < buf.length; o += 16) {
        assert.equal(buf.readUInt32LE(o + 4), 0xf10e7e1);
        got.set(buf.readUInt32LE(o), buf.readBigUInt64LE(o + 8));
      }
      for (let i = 0; i < 50; i++) assert.equal(got.get(1000 + i), BigInt(i * 7));
    } finally {
      obj.detach('dump_kv');
      for (let i = 0; i < 50; i++) obj.mapDelete('kv', u32(1000 + i));
    }
  });

  it('drainIterator: a walk handed over in chunks of 7 records returns every element once', () => {
    const N = 50;
    for (let i = 0; i < N; i++) obj.mapUpdate('kv', u32(2000 + i), u64(i * 11));
    try {
      obj.attachIter('drain_kv', 'kv');
      assert.throws(() => obj.drainIterator('drain_kv', 'kv', 'kv_chunk_count'), isBpfError('ERR_BPF_STATE', /BPF_F_MMAPABLE/));
      for (let round = 0; round < 2; round++) {
        const buf = obj.drainIterator('drain_kv', 'kv_chunk', 'kv_chunk_count');
        assert.equal(buf.length, N * 16, `round ${round}: ${buf.length / 16} records`);
        const got = new Map<number, bigint>();
        for (let o = 0; o < buf.length; o += 16) {
          assert.equal(buf.readUInt32LE(o + 4), 0xf10e7e1);
          assert.equal(got.has(buf.readUInt32LE(o)), false, 'each element once');
          got.set(buf.readUInt32LE(o), buf.readBigUInt64LE(o + 8));
        }
        for (let i = 0; i < N; i++) assert.equal(got.get(2000 + i), BigInt(i * 11));
      }
    } finally {
      obj.detach('drain_kv');
      for (let i = 0; i < N; i++) obj.mapDelete('kv', u32(2000 + i));
    }
  });

  it('walkIteratorChunks: the walk on a native thread, every element once, each chunk a view detached after its call; a throwing consumer rejects and stops it', async () => {
    const N = 50;
    for (let i = 0; i < N; i++) obj.mapUpdate('kv', u32(4000 + i), u64(i * 17));
    try {
      obj.attachIter('drain_kv', 'kv');
      await assert.rejects(
        obj.walkIteratorChunks('drain_kv', 'kv', 'kv_chunk_count', () => undefined),
        isBpfError('ERR_BPF_STATE', /BPF_F_MMAPABLE/),
      );
      for (let round = 0; round < 2; round++) {
        const sizes: number[] = [];
        const kept: Buffer[] = [];
        const got = new Map<number, bigint>();
        const walked = obj.walkIteratorChunks('drain_kv', 'kv_chunk', 'kv_chunk_count', (chunk) => {
          sizes.push(chunk.length / 16);
          kept.push(chunk);
          for (let o = 0; o < chunk.length; o += 16) {
            assert.equal(chunk.readUInt32LE(o + 4), 0xf10e7e1);
            assert.equal(got.has(chunk.readUInt32LE(o)), false, 'each element once');
            got.set(chunk.readUInt32LE(o), chunk.readBigUInt64LE(o + 8));
          }
        });
        assert.equal(sizes.length, 0, 'chunks come on later turns of the event loop, not during the call');
        const total = await walked;
        assert.equal(total, N, `round ${round}`);
        assert.ok(sizes.length >= Math.ceil(N / 7) && sizes.every((k) => k >= 1 && k <= 7), `chunks of ${sizes.join(', ')}`);
        for (let i = 0; i < N; i++) assert.equal(got.get(4000 + i), BigInt(i * 17));
        assert.ok(kept.every((b) => b.length === 0), 'a chunk kept past its call reads as empty');
      }
      let calls = 0;
      await assert.rejects(
        obj.walkIteratorChunks('drain_kv', 'kv_chunk', 'kv_chunk_count', () => {
          calls++;
          throw new Error('consumer failed');
        }),
        /consumer failed/,
      );
      assert.equal(calls, 1, 'no chunk is handed over after the consumer threw');
      assert.equal((await obj.walkIteratorChunks('drain_kv', 'kv_chunk', 'kv_chunk_count', () => undefined)), N, 'the next walk is whole');
    } finally {
      obj.detach('drain_kv');
      for (let i = 0; i < N; i++) obj.mapDelete('kv', u32(4000 + i));
    }
  });

  it('walkIteratorChunks with a side map: each chunk comes with the side map\'s records of the same read(); either one full restarts the read', async () => {
    const N = 40;
    for (let i = 0; i < N; i++) obj.mapUpdate('kv', u32(6000 + i), u64(i));
    try {
      obj.attachIter('drain_kv_split', 'kv');
      await assert.rejects(
        obj.walkIteratorChunks('drain_kv_split', 'kv_chunk', 'kv_chunk_count', () => undefined, 'kv_side'),
        isBpfError('ERR_BPF_STATE', /no second entry/),
      );
      await assert.rejects(
        obj.walkIteratorChunks('drain_kv_split', 'kv_chunk', 'kv_split_count', () => undefined, 'kv'),
        isBpfError('ERR_BPF_STATE', /BPF_F_MMAPABLE/),
      );
      const even: number[] = [];
      const odd: number[] = [];
      const sideSizes: number[] = [];
      const total = await obj.walkIteratorChunks(
        'drain_kv_split',
        'kv_chunk',
        'kv_split_count',
        (chunk, side) => {
          assert.ok(side, 'a side buffer with every chunk');
          sideSizes.push(side.length / 8);
          for (let o = 0; o < chunk.length; o += 16) even.push(chunk.readUInt32LE(o));
          for (let o = 0; o < side.length; o += 8) odd.push(Number(side.readBigUInt64LE(o)));
        },
        'kv_side',
      );
      assert.equal(total, N);
      assert.deepEqual([...even].sort((a, b) => a - b), Array.from({ length: N / 2 }, (_, i) => 6000 + 2 * i));
      assert.deepEqual([...odd].sort((a, b) => a - b), Array.from({ length: N / 2 }, (_, i) => 6001 + 2 * i));
      assert.ok(sideSizes.every((k) => k <= 3) && sideSizes.length >= Math.ceil(N / 2 / 3), `side records per chunk: ${sideSizes.join(', ')}`);
    } finally {
      obj.detach('drain_kv_split');
      for (let i = 0; i < N; i++) obj.mapDelete('kv', u32(6000 + i));
    }
  });

  it('walkIteratorChunks: closing the object during a walk rejects it with ERR_BPF_CLOSED, hands over no more chunks and leaves nothing running', async () => {
    const own = openFixture();
    own.load();
    const N = 200;
    for (let i = 0; i < N; i++) own.mapUpdate('kv', u32(5000 + i), u64(i));
    own.attachIter('drain_kv', 'kv');
    let calls = 0;
    const walked = own.walkIteratorChunks('drain_kv', 'kv_chunk', 'kv_chunk_count', () => calls++);
    own.close();
    await assert.rejects(walked, isBpfError('ERR_BPF_CLOSED', /closed during the walk/));
    assert.equal(calls, 0);
    assert.equal(own.closed, true);
  });

  it('readIterator walks another network namespace when given its path', async (t) => {
    if (!existsSync('/usr/bin/unshare')) {
      t.skip('unshare(1) not installed');
      return;
    }
    const ports = (b: Buffer): number[] => Array.from({ length: b.length / 4 }, (_, i) => b.readUInt32LE(i * 4));
    const server = net.createServer();
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
    const hostPort = (server.address() as net.AddressInfo).port;
    const child = spawn('/usr/bin/unshare', ['-n', process.execPath, '-e',
      "const s = require('net').createServer().listen(0, '0.0.0.0', () => console.log('PORT ' + s.address().port)); setTimeout(() => {}, 30000);"],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const childPort = await new Promise<number>((res, rej) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /PORT (\d+)/.exec(out);
          if (m) res(Number(m[1]));
        });
        child.on('exit', (c) => rej(new Error(`unshare child exited ${c}`)));
      });
      obj.attach('dump_tcp_ports');
      try {
        const host = ports(obj.readIterator('dump_tcp_ports'));
        assert.ok(host.includes(hostPort), `host ports ${host}`);
        const inNs = ports(obj.readIterator('dump_tcp_ports', `/proc/${child.pid}/ns/net`));
        assert.deepEqual(inNs, [childPort]);
        assert.throws(
          () => obj.readIterator('dump_tcp_ports', '/nonexistent/ns/net'),
          (e: unknown) => e instanceof BpfError && e.errno === 'ENOENT' && e.message.includes('/nonexistent/ns/net'),
        );
      } finally {
        obj.detach('dump_tcp_ports');
      }
    } finally {
      child.kill('SIGKILL');
      server.close();
    }
  });

  it('programStats has the documented shape', () => {
    const stats = obj.programStats();
    assert.deepEqual(stats.map((s) => s.name).sort(), ['count_egress', 'drain_kv', 'drain_kv_split', 'dump_kv', 'dump_tasks', 'dump_tcp_ports', 'on_sys_enter']);
    for (const s of stats) {
      assert.equal(typeof s.runTimeNs, 'number');
      assert.equal(typeof s.runCnt, 'number');
      assert.ok(s.id > 0);
      assert.ok(s.verifiedInsns > 0);
    }
  });

  it('attachCgroup counts egress packets on the cgroup v2 root', async (t) => {
    const line = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
    if (!line) {
      t.skip('no cgroup v2 hierarchy mounted');
      return;
    }
    const root = line.split(' ')[1];
    assert.throws(
      () => obj.attachCgroup('count_egress', '/nonexistent/cgroup'),
      (e: unknown) => e instanceof BpfError && e.errno === 'ENOENT' && /\/nonexistent\/cgroup/.test(e.message),
    );
    // A child cgroup too, to check attach/detach on a non-root cgroup.
    const child = path.join(root, `flowtel-native-test-${process.pid}`);
    mkdirSync(child);
    try {
      obj.attachCgroup('count_egress', child);
      obj.detach('count_egress');
    } finally {
      rmdirSync(child);
    }
    obj.attachCgroup('count_egress', root);
    try {
      const before0 = counter(obj, C_EGRESS);
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((res) => sock.bind(0, '127.0.0.1', () => res()));
      const port = sock.address().port;
      for (let i = 0; i < 5; i++) await new Promise<void>((res, rej) => sock.send('x', port, '127.0.0.1', (e) => (e ? rej(e) : res())));
      sock.close();
      assert.ok(counter(obj, C_EGRESS) - before0 >= 5n, 'egress packets counted');
    } finally {
      obj.detach('count_egress');
    }
  });
});
