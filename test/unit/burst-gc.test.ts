import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BurstGc, exposedGc } from '../../src/util/burst-gc';

test('a full collection once a burst has settled: a change of at least minChange and minRatio of the last size, then stable, at most once per interval', () => {
  let runs = 0;
  let now = 0;
  const g = new BurstGc(() => void runs++, { minChange: 100, minRatio: 0.25, settledRatio: 0.02, minIntervalMs: 1000 }, () => now);
  assert.equal(g.observe(50), false); // a small start
  assert.equal(g.observe(600), false); // a ramp: not settled
  assert.equal(g.observe(1000), false); // still rising
  assert.equal(g.observe(1010), true); // settled, 1010 above the last collection's 0
  assert.equal(runs, 1);
  now = 2000;
  assert.equal(g.observe(1200), false); // +190: over minChange, under 25 % of 1010
  assert.equal(g.observe(1200), false);
  assert.equal(g.observe(900), false); // -110: under 25 %
  assert.equal(g.observe(1400), false); // +390, not settled
  assert.equal(g.observe(1400), true); // settled
  now = 2500;
  assert.equal(g.observe(100), false); // -1300, not settled
  assert.equal(g.observe(100), false); // settled, but 500 ms after the last collection
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
