/** RingBufferReader against the real kernel: counts, content, batching, flush ordering, shutdown. */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { BpfObject, RingBufferReader } from '../../src/native/bpf';
import {
  C_EMITTED,
  C_RB_FULL,
  EVENT_SIZE,
  counter,
  decodeEvents,
  openFixture,
  produce,
  produceOdd,
  sleep,
  type Event,
} from './fixture';

const CHILD_ENV = 'FLOWTEL_NATIVE_TEST_CHILD';

interface Collected {
  events: Event[];
  batches: number[];
  log: string[];
}

function collector(): { c: Collected; onBatch: (b: Buffer, n: number) => void } {
  const c: Collected = { events: [], batches: [], log: [] };
  return {
    c,
    onBatch: (b: Buffer, n: number) => {
      assert.equal(b.length, n * EVENT_SIZE);
      c.batches.push(n);
      c.log.push(`batch:${n}`);
      c.events.push(...decodeEvents(b, n));
    },
  };
}

function loadedFixture(magic = 0xf10e7e1): BpfObject {
  const obj = openFixture({ magic });
  obj.setMapMaxEntries('events', 4 << 20);
  obj.load();
  obj.attach('on_sys_enter');
  return obj;
}

/** Runs this file as a child in one of the exit scenarios below; resolves with its exit code or 'timeout'. */
function runChild(mode: string, timeoutMs: number): Promise<{ code: number | string; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [__filename], { env: { ...process.env, [CHILD_ENV]: mode }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      resolve({ code: 'timeout', out });
    }, timeoutMs);
    p.on('error', reject);
    p.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (sig !== 'SIGKILL') resolve({ code: code ?? String(sig), out });
    });
  });
}

async function childMain(mode: string): Promise<void> {
  const obj = loadedFixture();
  let got = 0;
  const r = new RingBufferReader(obj, 'events', EVENT_SIZE, (_b, n) => (got += n));
  produce(1000);
  await r.flush();
  if (got !== 1000) throw new Error(`child got ${got}`);
  switch (mode) {
    case 'stop':
      r.stop();
      break; // obj stays open: kernel objects are freed at exit
    case 'close':
      obj.close(); // stops the reader it owns
      break;
    case 'unref':
      r.unref(); // left running
      break;
    case 'running':
      break; // must keep the process alive
    case 'exit':
      process.exit(0); // hard exit with the thread running
  }
  console.log(`child ${mode} ok`);
}

const childMode = process.env[CHILD_ENV];
if (childMode) {
  childMain(childMode).catch((e: unknown) => {
    console.error(e);
    process.exit(3);
  });
} else {
  describe('RingBufferReader', () => {
    // Every test gets its own object: attached programs of other objects would
    // otherwise leave records in a shared ring.
    let obj: BpfObject;
    beforeEach(() => {
      obj = loadedFixture();
    });
    afterEach(() => obj.close());

    it('delivers exactly the records produced, more than one full batch, with their content', async () => {
      const { c, onBatch } = collector();
      const r = new RingBufferReader(obj, 'events', EVENT_SIZE, onBatch, { maxBatchRecords: 1000, maxLatencyMs: 60_000 });
      try {
        const base = counter(obj, C_EMITTED);
        const N = 10_500;
        produce(N);
        await r.flush();
        assert.equal(counter(obj, C_EMITTED) - base, BigInt(N));
        assert.equal(counter(obj, C_RB_FULL), 0n, 'no ring buffer drops');
        assert.equal(c.events.length, N);
        assert.ok(c.batches.every((n) => n <= 1000), `batches: ${c.batches}`);
        assert.ok(c.batches.filter((n) => n === 1000).length >= 10, `batches: ${c.batches}`);
        for (const e of c.events) {
          assert.equal(e.magic, 0xf10e7e1);
          assert.equal(e.tgid, process.pid);
          assert.equal(e.pid, process.pid);
        }
        // one producer thread: kernel order == sequence order
        const first = c.events[0].seq;
        c.events.forEach((e, i) => assert.equal(e.seq, first + BigInt(i)));
        const s = r.stats();
        assert.equal(s.records, N);
        assert.equal(s.batches, c.batches.length);
        assert.equal(s.badSize, 0);
        assert.equal(s.queuedBatches, 0);
        assert.equal(s.running, true);
      } finally {
        r.stop();
      }
    });

    it('flush resolves after the batches before it, in order', async () => {
      const { c, onBatch } = collector();
      const r = new RingBufferReader(obj, 'events', EVENT_SIZE, onBatch, { maxLatencyMs: 60_000 });
      try {
        await r.flush();
        assert.equal(c.log.length, 0, 'empty flush delivers nothing');
        produce(5);
        const a = r.flush().then(() => c.log.push('flushA'));
        produce(7);
        const b = r.flush().then(() => c.log.push('flushB'));
        const z = r.flush().then(() => c.log.push('flushC'));
        await Promise.all([a, b, z]);
        // B may or may not have been taken in A's pass (the thread may wake late),
        // but every record produced before a flush is delivered before it resolves.
        const total = (upTo: string): number =>
          c.log.slice(0, c.log.indexOf(upTo)).reduce((s, x) => s + (x.startsWith('batch:') ? Number(x.slice(6)) : 0), 0);
        assert.ok(total('flushA') >= 5, c.log.join(','));
        assert.equal(total('flushB'), 12, c.log.join(','));
        assert.equal(total('flushC'), 12, c.log.join(','));
        assert.ok(c.log.indexOf('flushA') < c.log.indexOf('flushB') && c.log.indexOf('flushB') < c.log.indexOf('flushC'));
      } finally {
        r.stop();
      }
    });

    it('delivers a partial batch after maxLatencyMs without a flush', async () => {
      const { c, onBatch } = collector();
      const r = new RingBufferReader(obj, 'events', EVENT_SIZE, onBatch, { maxLatencyMs: 30 });
      try {
        produce(3);
        const t0 = Date.now();
        while (c.events.length < 3 && Date.now() - t0 < 3000) await sleep(5);
        assert.equal(c.events.length, 3);
        assert.deepEqual(c.batches, [3]);
      } finally {
        r.stop();
      }
    });

    it('counts samples of the wrong size instead of delivering them', async () => {
      const { c, onBatch } = collector();
      const r = new RingBufferReader(obj, 'events', EVENT_SIZE, onBatch);
      try {
        produceOdd(4);
        produce(6);
        produceOdd(2);
        await r.flush();
        assert.equal(c.events.length, 6);
        assert.equal(r.stats().badSize, 6);
      } finally {
        r.stop();
      }
    });

    it('setGlobal changes what the program writes', async () => {
      const other = loadedFixture(0xabcdef01);
      const seen: number[] = [];
      const r = new RingBufferReader(other, 'events', EVENT_SIZE, (b, n) => decodeEvents(b, n).forEach((e) => seen.push(e.magic)));
      try {
        produce(20);
        await r.flush();
        assert.equal(seen.length, 20);
        assert.ok(seen.every((m) => m === 0xabcdef01));
      } finally {
        r.stop();
        other.close();
      }
      // target_tgid = 0 means the program emits nothing
      const silent = openFixture({ tgid: 0 });
      silent.load();
      silent.attach('on_sys_enter');
      try {
        produce(20);
        assert.equal(counter(silent, C_EMITTED), 0n);
      } finally {
        silent.close();
      }
    });

    it('stop is idempotent, drains what is left, and flush after stop resolves', async () => {
      const { c, onBatch } = collector();
      const r = new RingBufferReader(obj, 'events', EVENT_SIZE, onBatch, { maxLatencyMs: 60_000 });
      produce(9);
      const pending = r.flush();
      r.stop();
      r.stop();
      assert.equal(r.running, false);
      await pending;
      await r.flush();
      await sleep(20);
      assert.equal(c.events.length, 9);
      assert.equal(r.stats().running, false);
    });

    it('closing the BpfObject stops its readers', async () => {
      const own = loadedFixture();
      const { c, onBatch } = collector();
      const r = new RingBufferReader(own, 'events', EVENT_SIZE, onBatch, { maxLatencyMs: 60_000 });
      produce(4);
      own.close();
      assert.equal(r.running, false);
      await r.flush();
      await sleep(20);
      assert.equal(c.events.length, 4, 'records in the ring at close are still delivered');
    });

    it('onError receives exceptions from onBatch and the reader keeps going', async () => {
      const errors: Error[] = [];
      let calls = 0;
      const r = new RingBufferReader(
        obj,
        'events',
        EVENT_SIZE,
        (_b, n) => {
          calls += n;
          if (calls <= 2) throw new Error('boom');
        },
        { onError: (e) => errors.push(e), maxLatencyMs: 60_000 },
      );
      try {
        produce(2);
        await r.flush();
        produce(3);
        await r.flush();
        assert.equal(calls, 5);
        assert.equal(errors.length, 1);
        assert.equal(errors[0].message, 'boom');
      } finally {
        r.stop();
      }
    });

    for (const mode of ['stop', 'close', 'unref', 'exit']) {
      it(`process exits after ${mode}`, async () => {
        const { code, out } = await runChild(mode, 10_000);
        assert.equal(code, 0, out);
        if (mode !== 'exit') assert.match(out, new RegExp(`child ${mode} ok`));
      });
    }

    for (const mode of ['running', 'unref']) {
      it(`a reader left ${mode} in a worker thread is stopped with the worker`, async () => {
        const w = new Worker(__filename, { env: { ...process.env, [CHILD_ENV]: mode }, stdout: true, stderr: true });
        let out = '';
        w.stdout.on('data', (d: Buffer) => (out += d.toString()));
        w.stderr.on('data', (d: Buffer) => (out += d.toString()));
        const exited = new Promise<number>((res, rej) => {
          w.on('exit', res);
          w.on('error', rej);
        });
        const t0 = Date.now();
        while (!out.includes(`child ${mode} ok`) && Date.now() - t0 < 10_000) await sleep(10);
        assert.match(out, new RegExp(`child ${mode} ok`));
        if (mode === 'running') await w.terminate();
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<string>((res) => (timer = setTimeout(() => res('timeout'), 10_000)));
        const code = await Promise.race([exited, timeout]);
        clearTimeout(timer);
        assert.equal(code, mode === 'running' ? 1 : 0, out);
      });
    }

    it('a running reader keeps the process alive', async () => {
      const p = spawn(process.execPath, [__filename], { env: { ...process.env, [CHILD_ENV]: 'running' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      try {
        const t0 = Date.now();
        while (!out.includes('child running ok') && p.exitCode === null && Date.now() - t0 < 10_000) await sleep(10);
        assert.match(out, /child running ok/);
        await sleep(1000);
        assert.equal(p.exitCode, null, `child exited: ${out}`);
      } finally {
        p.kill('SIGKILL');
      }
    });
  });
}
