import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BurstGc, exposedGc } from '../../src/util/burst-gc';

test('a full collection after a burst: a change of at least minChange and minRatio of the last size, at most once per interval', () => {
  let runs = 0;
  let now = 0;
  const g = new BurstGc(() => void runs++, { minChange: 100, minRatio: 0.25, minIntervalMs: 1000 }, () => now);
  assert.equal(g.observe(50), false); // a small start
  assert.equal(g.observe(1000), true); // the start-up sweep: 0 → 1000
  assert.equal(runs, 1);
  now = 2000;
  assert.equal(g.observe(1200), false); // +200: over minChange, under 25 % of 1000
  assert.equal(g.observe(900), false); // -100: under 25 %
  assert.equal(g.observe(1300), true); // +300 since the last collection
  now = 2500;
  assert.equal(g.observe(100), false); // -1200, but 500 ms after the last one
  now = 3500;
  assert.equal(g.observe(100), true); // the same burst, once the interval is over
  assert.equal(g.observe(100), false);
  assert.equal(runs, 3);
  assert.equal(g.runs, 3);
});

test('without global.gc (node without --expose-gc) it never collects, and says so by returning false', () => {
  const g = new BurstGc(undefined);
  assert.equal(g.observe(1e6), false);
  assert.equal(g.runs, 0);
});

test('exposedGc finds global.gc only when it is a function', () => {
  const g = globalThis as { gc?: unknown };
  const saved = g.gc;
  try {
    g.gc = undefined;
    assert.equal(exposedGc(), undefined);
    const fn = (): void => undefined;
    g.gc = fn;
    assert.equal(exposedGc(), fn);
  } finally {
    g.gc = saved;
  }
});
