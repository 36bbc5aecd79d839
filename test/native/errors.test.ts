/** Error reporting of the native layer: each error names what failed and why. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { BpfError, BpfObject, RingBufferReader, libbpfLog } from '../../src/native/bpf';
import { EVENT_SIZE, FIXTURE, openFixture } from './fixture';

function bpfError(check: (e: BpfError) => void) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof BpfError, `expected BpfError, got ${String(e)}`);
    assert.equal(e.name, 'BpfError');
    check(e);
    return true;
  };
}

describe('errors', () => {
  it('missing file names the file and the errno', () => {
    assert.throws(
      () => new BpfObject('/nonexistent/flowtel/x.bpf.o'),
      bpfError((e) => {
        assert.equal(e.errno, 'ENOENT');
        assert.equal(e.code, 'ENOENT');
        assert.equal(e.path, '/nonexistent/flowtel/x.bpf.o');
        assert.match(e.message, /'\/nonexistent\/flowtel\/x\.bpf\.o'.*ENOENT/);
      }),
    );
  });

  it('a file that is not a BPF ELF object', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'flowtel-native-'));
    try {
      const f = path.join(dir, 'garbage.o');
      writeFileSync(f, 'this is not an ELF file\n'.repeat(10));
      assert.throws(
        () => new BpfObject(f),
        bpfError((e) => {
          assert.ok(e.errno, 'has an errno');
          assert.ok(e.message.includes(f), e.message);
        }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('unknown program and map names list what exists', () => {
    const obj = new BpfObject(FIXTURE);
    try {
      assert.throws(
        () => obj.setAutoload('no_such_prog', false),
        bpfError((e) => {
          assert.equal(e.code, 'ERR_BPF_NOT_FOUND');
          assert.equal(e.errno, undefined);
          assert.match(e.message, /no BPF program named 'no_such_prog'.*programs: .*on_sys_enter/);
        }),
      );
      assert.throws(() => obj.attach('no_such_prog'), bpfError((e) => assert.equal(e.code, 'ERR_BPF_NOT_FOUND')));
      assert.throws(() => obj.setMapMaxEntries('no_such_map', 1), bpfError((e) => assert.match(e.message, /no BPF map named 'no_such_map'/)));
    } finally {
      obj.close();
    }
  });

  it('setGlobal with the wrong size or an unknown name', () => {
    const obj = new BpfObject(FIXTURE);
    try {
      assert.throws(
        () => obj.setGlobal('magic', Buffer.alloc(8)),
        bpfError((e) => {
          assert.equal(e.code, 'ERR_BPF_BAD_SIZE');
          assert.match(e.message, /setGlobal\('magic'\): variable in \.rodata is 4 bytes, value is 8 bytes/);
        }),
      );
      assert.throws(
        () => obj.setGlobal('no_such_var', Buffer.alloc(4)),
        bpfError((e) => assert.equal(e.code, 'ERR_BPF_NOT_FOUND')),
      );
      obj.setGlobal('seen_total', Buffer.alloc(8)); // .bss works too
      assert.throws(() => obj.setGlobal('magic', 'x' as unknown as Buffer), TypeError);
    } finally {
      obj.close();
    }
  });

  it('loading a tp_btf program whose tracepoint does not exist shows the libbpf log', () => {
    const obj = openFixture();
    try {
      obj.setAutoload('bogus_target', true);
      assert.throws(
        () => obj.load(),
        bpfError((e) => {
          assert.ok(e.errno, 'has an errno');
          assert.match(e.message, /failed to load BPF object '.*fixture\.bpf\.o'/);
          assert.match(e.message, /--- libbpf log \(last \d+ lines\) ---/);
          assert.match(e.message, /flowtel_no_such_tracepoint/);
        }),
      );
      assert.equal(obj.loaded, false);
    } finally {
      obj.close();
    }
    assert.ok(libbpfLog().some((l) => l.level === 'warn' && l.message.includes('flowtel_no_such_tracepoint')));
  });

  it('EPERM when loading without privileges says which capabilities are needed', (t) => {
    if (process.getuid?.() !== 0 || !existsSync('/usr/bin/setpriv')) {
      t.skip('needs root and setpriv to drop privileges');
      return;
    }
    const bpfJs = path.join(__dirname, '..', '..', 'src', 'native', 'bpf.js');
    const script =
      `const b = require(${JSON.stringify(bpfJs)});` +
      `const o = new b.BpfObject(${JSON.stringify(FIXTURE)});` +
      `try { o.load(); console.log('LOADED'); } catch (e) { console.log(JSON.stringify({ name: e.name, errno: e.errno, message: e.message })); }`;
    const r = spawnSync('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout.trim()) as { name: string; errno?: string; message: string };
    assert.equal(res.name, 'BpfError');
    assert.equal(res.errno, 'EPERM');
    assert.match(res.message, /CAP_BPF.*CAP_PERFMON.*root/);
    assert.match(res.message, /libbpf log/);
  });

  it('RingBufferReader: wrong map type, unloaded object, bad arguments', () => {
    const obj = openFixture();
    try {
      assert.throws(
        () => new RingBufferReader(obj, 'events', EVENT_SIZE, () => {}),
        bpfError((e) => assert.equal(e.code, 'ERR_BPF_STATE')),
      );
      obj.load();
      assert.throws(
        () => new RingBufferReader(obj, 'counters', EVENT_SIZE, () => {}),
        bpfError((e) => {
          assert.equal(e.code, 'ERR_BPF_BAD_TYPE');
          assert.match(e.message, /not a BPF_MAP_TYPE_RINGBUF/);
        }),
      );
      assert.throws(() => new RingBufferReader(obj, 'nope', EVENT_SIZE, () => {}), bpfError((e) => assert.equal(e.code, 'ERR_BPF_NOT_FOUND')));
      assert.throws(() => new RingBufferReader(obj, 'events', 0, () => {}), bpfError((e) => assert.equal(e.code, 'ERR_OUT_OF_RANGE')));
      assert.throws(
        () => new RingBufferReader(obj, 'events', EVENT_SIZE, () => {}, { maxBatchRecords: 0 }),
        bpfError((e) => assert.equal(e.code, 'ERR_OUT_OF_RANGE')),
      );
    } finally {
      obj.close();
    }
  });
});
