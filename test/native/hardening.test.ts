/**
 * The native addon is built hardened (native/binding.gyp): full RELRO
 * (GNU_RELRO + BIND_NOW), a non-executable stack, position-independent code
 * (no text relocations), stack protector and _FORTIFY_SOURCE checked calls.
 * Checked on the built file with readelf (binutils), as checksec does.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers/e2e';

const ADDON = path.join(REPO, 'native', 'build', 'Release', 'flowtel_native.node');
const readelf = (...args: string[]): string => execFileSync('readelf', ['-W', ...args, ADDON], { encoding: 'utf8' });

test('the addon has full RELRO, BIND_NOW, a non-executable stack, no text relocations, stack protector and fortified calls', () => {
  assert.ok(existsSync(ADDON), `${ADDON}: build it with npm run build:native`);
  const header = readelf('-h');
  assert.match(header, /Type:\s+DYN/, 'a shared object (position independent)');
  const segments = readelf('-l');
  assert.match(segments, /^\s*GNU_RELRO\s/m, 'GNU_RELRO segment (-Wl,-z,relro)');
  const stack = /^\s*GNU_STACK\s+.*\s(R?W?E?)\s+0x\S+$/m.exec(segments);
  assert.ok(stack, `GNU_STACK segment present:\n${segments}`);
  assert.doesNotMatch(stack[0], /\sRWE\s/, 'the stack is not executable');
  const dynamic = readelf('-d');
  assert.match(dynamic, /\(FLAGS\)\s+.*BIND_NOW/, 'BIND_NOW (-Wl,-z,now)');
  assert.match(dynamic, /\(FLAGS_1\)\s+Flags:.*NOW/, 'DF_1_NOW');
  assert.doesNotMatch(dynamic, /TEXTREL/, 'no text relocations (-fPIC)');
  const symbols = readelf('--dyn-syms');
  assert.match(symbols, /\b__stack_chk_fail\b/, 'stack protector (-fstack-protector-strong)');
  assert.match(symbols, /\b__\w+_chk\b/, 'fortified libc calls (-D_FORTIFY_SOURCE=2 with optimization)');
});
