/**
 * Bad config input: the loader and validator, fed thousands of random
 * mutations of the example configs (otel-config/*.yaml), either succeed or
 * throw a config error that `flowtel` reports as such (exit 2, one message),
 * never anything else; and config files that cannot be read (missing, a
 * directory, no permission, binary garbage) give one clear line, exit 2.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { isMap, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { FACTORIES } from '../../src/cli/main';
import { ConfigValidationError, loadConfigFromTexts, validateConfig } from '../../src/config';
import { ConfigError } from '../../src/config/errors';
import { REPO, ensureRunnableByNobody, runCli } from '../helpers/e2e';

const EXAMPLES = readdirSync(path.join(REPO, 'otel-config'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => ({ source: `otel-config/${f}`, text: readFileSync(path.join(REPO, 'otel-config', f), 'utf8') }));

/** mulberry32: a seeded PRNG, so a failure is reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const JUNK: readonly unknown[] = [
  null, 0, -1, 1e308, Number.NaN, true, '', ' ', 'x'.repeat(5000), '${env:NOPE}', '${env:}', '${bogus:X}', '$${env:X}', '0s', '-5s', '1h1h',
  '::', '[::]:99999', 'http://', 'a:b:c', '*', '&anchor', '!!binary', '\u0000', 'ü\u202e', [], [null], [1, [2, [3]]], {}, { '': 1 }, { a: { b: { c: {} } } },
  '10.0.0.0/33', 'tcp', '/nonexistent/file.pem', 'gzip', 'DELTA',
];

const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

/** Every node of the document's tree, to pick one to change. */
function nodes(root: Node | null): Node[] {
  const out: Node[] = [];
  const walk = (n: unknown): void => {
    if (!n || typeof n !== 'object') return;
    out.push(n as Node);
    if (isMap(n)) for (const pair of n.items) {
      walk(pair.key);
      walk(pair.value);
    }
    else if (isSeq(n)) for (const item of n.items) walk(item);
  };
  walk(root);
  return out;
}

/** One random change: to the YAML tree (a value, a key, a deletion) or to the text itself. */
function mutate(text: string, rnd: () => number): string {
  const kind = Math.floor(rnd() * 10);
  if (kind < 5) {
    const doc = parseDocument(text);
    const all = nodes(doc.contents as Node | null);
    const target = pick(rnd, all);
    if (isScalar(target)) {
      if (rnd() < 0.8) target.value = pick(rnd, JUNK);
      else target.value = `${String(target.value)}${pick(rnd, ['_', 'x', '0', '/', '.'])}`;
    } else if (isMap(target) && target.items.length > 0) {
      const i = Math.floor(rnd() * target.items.length);
      if (rnd() < 0.5) target.items.splice(i, 1);
      else target.items[i]!.value = doc.createNode(pick(rnd, JUNK));
    } else if (isSeq(target) && target.items.length > 0) {
      target.items[Math.floor(rnd() * target.items.length)] = doc.createNode(pick(rnd, JUNK));
    }
    return doc.toString();
  }
  const lines = text.split('\n');
  const i = Math.floor(rnd() * lines.length);
  switch (kind) {
    case 5:
      lines.splice(i, 1);
      break;
    case 6:
      lines.splice(i, 0, lines[Math.floor(rnd() * lines.length)] ?? '');
      break;
    case 7:
      lines[i] = rnd() < 0.5 ? ` ${lines[i]}` : (lines[i] ?? '').replace(/^ {1,2}/, '');
      break;
    case 8: {
      const at = Math.floor(rnd() * text.length);
      return text.slice(0, at) + pick(rnd, ['{', '}', '[', ']', ':', '"', "'", '\t', '- ', '\n', '&a', '*a', '<<: *a', '%', '@', '\u0000', '#']) + text.slice(at);
    }
    default:
      return text.slice(0, Math.floor(rnd() * text.length));
  }
  return lines.join('\n');
}

/** What `flowtel` reports as a config problem (exit 2): anything else would be a crash. */
function isConfigProblem(e: unknown): boolean {
  return e instanceof ConfigValidationError || e instanceof ConfigError;
}

test('fuzz: 3000 random mutations of the example configs load and validate, or fail with a config error', () => {
  const rnd = prng(0x5eed7);
  let valid = 0;
  let invalid = 0;
  for (let i = 0; i < 3000; i++) {
    const base = EXAMPLES[i % EXAMPLES.length]!;
    let text = base.text;
    const rounds = 1 + Math.floor(rnd() * 3);
    for (let r = 0; r < rounds; r++) {
      try {
        text = mutate(text, rnd);
      } catch {
        break; // the YAML library refused to build a tree: keep the text as it is
      }
    }
    try {
      validateConfig(loadConfigFromTexts([{ source: base.source, text }], [], { env: {} }), FACTORIES);
      valid++;
    } catch (e) {
      if (!isConfigProblem(e)) {
        assert.fail(`mutation ${i} of ${base.source} threw ${e instanceof Error ? `${e.name}: ${e.stack}` : String(e)}\n--- config ---\n${text}`);
      }
      assert.ok((e as Error).message.length > 0 && (e as Error).message.length < 100_000, 'a readable message');
      invalid++;
    }
  }
  // The mutations are not all fatal, nor all harmless.
  assert.ok(valid > 100 && invalid > 1000, `valid ${valid}, invalid ${invalid}`);
});

test('fuzz: random --set overrides on the default config never throw anything but a config error', () => {
  const rnd = prng(42);
  const keys = ['receivers.ebpf_tcp.collection_interval', 'exporters.prometheus.endpoint', 'exporters.otlp.headers.x', 'service.pipelines.metrics.exporters', 'processors::x', 'a..b', '.', '', 'exporters.otlp::tls::insecure', 'extensions.health_check.auth.basic.password'];
  for (let i = 0; i < 500; i++) {
    const value = JSON.stringify(pick(rnd, JUNK)) ?? 'null';
    const set = rnd() < 0.9 ? `${pick(rnd, keys)}=${value}` : value;
    try {
      validateConfig(loadConfigFromTexts([{ source: 'otel-config/agent.yaml', text: EXAMPLES.find((e) => e.source.endsWith('/agent.yaml'))!.text }], [set], { env: {} }), FACTORIES);
    } catch (e) {
      if (!isConfigProblem(e)) assert.fail(`--set ${set} threw ${e instanceof Error ? e.stack : String(e)}`);
    }
  }
});

const dir = mkdtempSync(path.join(tmpdir(), 'flowtel-badcfg-'));
chmodSync(dir, 0o755);
after(() => rmSync(dir, { recursive: true, force: true }));

test('config files that cannot be read: exit 2 with one line naming the file and the reason', async () => {
  const secret = path.join(dir, 'root-only.yaml');
  writeFileSync(secret, EXAMPLES[0]!.text, { mode: 0o600 });
  const garbage = path.join(dir, 'garbage.yaml');
  writeFileSync(garbage, Buffer.from([0x00, 0xff, 0xfe, 0x7b, 0x3a, 0x0a, 0x09, 0x2d, 0x5b]), { mode: 0o644 });
  const cases: Array<{ file: string; unprivileged?: boolean; reason: RegExp }> = [
    { file: path.join(dir, 'missing.yaml'), reason: /cannot read config file: .*(no such file|ENOENT)/i },
    { file: dir, reason: /cannot read config file: .*(directory|EISDIR)/i },
    { file: secret, unprivileged: true, reason: /cannot read config file: .*(permission denied|EACCES)/i },
    { file: garbage, reason: /garbage\.yaml:\d+:\d+/ },
  ];
  ensureRunnableByNobody();
  for (const c of cases) {
    const { exit, stderr, stdout } = await runCli(['validate', '--config', c.file], c.unprivileged ? { unprivileged: true } : {});
    assert.equal(exit.code, 2, `${c.file}: exit code\n${stderr}`);
    assert.equal(stdout, '');
    assert.match(stderr, /^flowtel: invalid configuration:\n/);
    assert.ok(stderr.includes(c.file), `names the file:\n${stderr}`);
    assert.match(stderr, c.reason);
    assert.doesNotMatch(stderr, /\n\s+at /, `no stack trace:\n${stderr}`);
  }
});
