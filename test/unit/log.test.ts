import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, resolveLogLevel } from '../../src/util/log';

test('resolveLogLevel: env beats config beats default', () => {
  assert.equal(resolveLogLevel(undefined, {}).level, 'info');
  assert.equal(resolveLogLevel('debug', {}).level, 'debug');
  assert.equal(resolveLogLevel('debug', { FLOWTEL_LOG_LEVEL: 'error' }).level, 'error');
  assert.equal(resolveLogLevel('WARNING', {}).level, 'warn');
  assert.equal(resolveLogLevel('INFO', { FLOWTEL_LOG_LEVEL: '' }).level, 'info');
});

test('resolveLogLevel: unknown levels fall back with a warning', () => {
  const fromEnv = resolveLogLevel('debug', { FLOWTEL_LOG_LEVEL: 'loud' });
  assert.equal(fromEnv.level, 'debug');
  assert.match(fromEnv.warning ?? '', /FLOWTEL_LOG_LEVEL: unknown log level "loud"/);
  const fromConfig = resolveLogLevel('chatty', {});
  assert.equal(fromConfig.level, 'info');
  assert.match(fromConfig.warning ?? '', /service\.telemetry\.logs\.level/);
});

test('createLogger writes JSON lines with level labels', () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  const logger = createLogger({ level: 'info', env: {}, destination });
  logger.debug('hidden');
  logger.info({ component: 'otlp' }, 'hello');
  assert.equal(lines.length, 1);
  const entry = JSON.parse(lines[0] as string) as Record<string, unknown>;
  assert.equal(entry.level, 'info');
  assert.equal(entry.msg, 'hello');
  assert.equal(entry.component, 'otlp');
  assert.equal(entry.name, 'flowtel');
  assert.equal(typeof entry.time, 'string');
});
