import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DurationParseError, formatDuration, parseDuration, tryParseDuration } from '../../src/util/duration';

test('parseDuration: single units', () => {
  assert.equal(parseDuration('1s'), 1000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('250us'), 0.25);
  assert.equal(parseDuration('250µs'), 0.25);
  assert.equal(parseDuration('1000000ns'), 1);
});

test('parseDuration: compound, fractional, signs, zero', () => {
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('1m30s500ms'), 90_500);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('.5s'), 500);
  assert.equal(parseDuration(' 10s '), 10_000);
  assert.equal(parseDuration('-2s'), -2000);
  assert.equal(parseDuration('0'), 0);
});

test('parseDuration: rejects missing units and garbage', () => {
  for (const bad of ['', '10', '1x', 's', '1s2', '1 s', '1h 30m', 'ten seconds', '1.2.3s']) {
    assert.throws(() => parseDuration(bad), DurationParseError, bad);
  }
  assert.equal(tryParseDuration('10'), undefined);
  assert.equal(tryParseDuration('3s'), 3000);
  assert.throws(() => parseDuration('10'), /missing or unknown unit/);
});

test('formatDuration round-trips common values', () => {
  assert.equal(formatDuration(10_000), '10s');
  assert.equal(formatDuration(90_000), '1m30s');
  assert.equal(formatDuration(5_400_000), '1h30m');
  assert.equal(formatDuration(500), '500ms');
  assert.equal(formatDuration(0.25), '250us');
  assert.equal(formatDuration(0), '0s');
  for (const ms of [10_000, 90_500, 5_400_000, 500, 1500]) assert.equal(parseDuration(formatDuration(ms)), ms);
});
