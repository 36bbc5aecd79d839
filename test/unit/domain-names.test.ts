/**
 * destination.domain: the DomainNames registry a service shares between its
 * receivers, and the FlowDomainAnnotator that labels flows at collection
 * time (late answers, names kept once found, loopback and unknown
 * addresses left alone, bounded memory, stable attribute objects).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfigFromTexts, validateConfig } from '../../src/config';
import { exporterFactories } from '../../src/exporters';
import { FlowDomainAnnotator } from '../../src/flows/domain-annotator';
import type { ComponentFactory, MetricsReceiver, ReceiverContext } from '../../src/pipeline/component';
import { DomainNames, type DomainNameSource } from '../../src/pipeline/domain-names';
import type { FlowAttributes, Measurement } from '../../src/pipeline/measurements';
import { Service } from '../../src/pipeline/service';
import { DnsNameCache } from '../../src/dns/name-cache';
import { silentLogger } from '../../src/util/log';

function source(map: Map<string, string>, settle: () => Promise<void> = async () => undefined): DomainNameSource {
  return { lookup: (a) => map.get(a), settle };
}

const flow = (dst: string, extra: FlowAttributes = {}): FlowAttributes => ({
  'network.transport': 'tcp',
  'source.address': '10.0.0.1',
  'destination.address': dst,
  'destination.port': 443,
  'flow.direction': 'outgoing',
  ...extra,
});

const m = (attributes: FlowAttributes, metric = 'tcp_bytes_sent'): Measurement => ({ metric, value: 1, attributes });

test('DomainNames: no provider, one, two; provide() returns the way out', async () => {
  const d = new DomainNames();
  assert.equal(d.active, false);
  assert.equal(d.lookup('1.2.3.4'), undefined);
  await d.settle();
  const a = new Map([['1.2.3.4', 'a.example']]);
  const b = new Map([['5.6.7.8', 'b.example']]);
  const stopA = d.provide(source(a));
  const stopB = d.provide(source(b));
  assert.equal(d.active, true);
  assert.equal(d.lookup('1.2.3.4'), 'a.example');
  assert.equal(d.lookup('5.6.7.8'), 'b.example');
  stopA();
  assert.equal(d.lookup('1.2.3.4'), undefined);
  stopB();
  assert.equal(d.active, false);
});

test('DomainNames.settle waits for every provider, but never longer than its bound, and never rejects', async () => {
  const d = new DomainNames();
  let settled = 0;
  d.provide(source(new Map(), () => new Promise((r) => setTimeout(() => r(void settled++), 20))));
  d.provide(source(new Map(), () => Promise.reject(new Error('capture closed'))));
  await d.settle();
  assert.equal(settled, 1);
  d.provide(source(new Map(), () => new Promise(() => undefined))); // never resolves
  const t0 = Date.now();
  await d.settle(50);
  assert.ok(Date.now() - t0 < 1000);
});

test('annotator: a flow to a resolved address gets destination.domain; unknown and loopback ones do not', () => {
  const names = new Map([['93.184.216.34', 'example.com'], ['127.0.0.1', 'localhost']]);
  const d = new DomainNames();
  d.provide(source(names));
  const ann = new FlowDomainAnnotator(d);
  const resolved = flow('93.184.216.34');
  const unknown = flow('198.51.100.7');
  const loop = flow('127.0.0.1', { 'flow.direction': 'local' });
  const self = { receiver: 'ebpf_tcp' };
  const ms = [m(resolved), m(unknown), m(loop), m(self, 'flowtel_tracked_connections')];
  ann.annotate(ms);
  assert.equal(ms[0]!.attributes['destination.domain'], 'example.com');
  assert.equal(ms[0]!.attributes['destination.address'], '93.184.216.34');
  assert.equal(ms[1]!.attributes, unknown, 'untouched: the same object');
  assert.equal(ms[2]!.attributes, loop);
  assert.equal(ms[3]!.attributes, self);
  assert.equal(resolved['destination.domain'], undefined, 'the receiver\'s attribute object is not changed');
});

test('annotator: the same attribute object always maps to the same annotated object (processors cache per object)', () => {
  const d = new DomainNames();
  d.provide(source(new Map([['192.0.2.1', 'api.example']])));
  const ann = new FlowDomainAnnotator(d);
  const a = flow('192.0.2.1');
  const x = [m(a), m(a, 'tcp_bytes_received')];
  ann.annotate(x);
  const y = [m(a)];
  ann.annotate(y);
  assert.equal(x[0]!.attributes, x[1]!.attributes);
  assert.equal(x[0]!.attributes, y[0]!.attributes);
});

test('annotator: an answer that arrives after the connection opened still labels it at the next collection', () => {
  const names = new Map<string, string>();
  const d = new DomainNames();
  d.provide(source(names));
  const ann = new FlowDomainAnnotator(d);
  const a = flow('192.0.2.9');
  const first = [m(a)];
  ann.annotate(first);
  assert.equal(first[0]!.attributes['destination.domain'], undefined);
  names.set('192.0.2.9', 'late.example');
  const second = [m(a)];
  ann.annotate(second);
  assert.equal(second[0]!.attributes['destination.domain'], 'late.example');
});

test('annotator: a name once found is kept after the answer expires, while flows to the address go on; then forgotten', () => {
  const cache = new DnsNameCache({ minTtlMs: 0, maxTtlMs: 1000 });
  let now = 1_000_000;
  cache.add('203.0.113.5', 'short.example', 1, now);
  const d = new DomainNames();
  d.provide({ lookup: (a) => cache.lookup(a, now), settle: async () => undefined });
  const ann = new FlowDomainAnnotator(d, { keepCollections: 2 });
  const conn = flow('203.0.113.5');
  const gauge = (): FlowAttributes => ({ ...conn, 'network.connection.state': 'ESTABLISHED' }); // a new object per walk
  const c1 = [m(conn), m(gauge(), 'tcp_connections')];
  ann.annotate(c1);
  assert.equal(c1[0]!.attributes['destination.domain'], 'short.example');
  assert.equal(c1[1]!.attributes['destination.domain'], 'short.example');
  now += 5000; // the answer's TTL is over
  assert.equal(cache.lookup('203.0.113.5', now), undefined);
  for (let i = 0; i < 5; i++) {
    const c = [m(conn), m(gauge(), 'tcp_connections')];
    ann.annotate(c);
    assert.equal(c[0]!.attributes['destination.domain'], 'short.example', 'the connection keeps its name');
    assert.equal(c[1]!.attributes['destination.domain'], 'short.example', 'and so do fresh attribute objects of flows to it');
  }
  // No flow to the address for more than keepCollections: the name is forgotten.
  for (let i = 0; i < 3; i++) ann.annotate([]);
  assert.equal(ann.keptSize, 0);
  const later = [m(gauge(), 'tcp_connections')];
  ann.annotate(later);
  assert.equal(later[0]!.attributes['destination.domain'], undefined);
});

test('annotator: the kept names are bounded', () => {
  const names = new Map<string, string>();
  for (let i = 0; i < 100; i++) names.set(`10.0.1.${i}`, `h${i}.example`);
  const d = new DomainNames();
  d.provide(source(names));
  const ann = new FlowDomainAnnotator(d, { maxKept: 10 });
  ann.annotate([...names.keys()].map((a) => m(flow(a))));
  assert.equal(ann.keptSize, 10);
});

test('annotator: costs nothing and changes nothing without a provider', () => {
  const ann = new FlowDomainAnnotator(new DomainNames());
  const a = flow('192.0.2.1');
  const ms = [m(a)];
  ann.annotate(ms);
  assert.equal(ms[0]!.attributes, a);
});

test('Service: every receiver of a service gets the same DomainNames, kept across a reload; another service has its own', async () => {
  const seen = new Map<string, ReceiverContext>();
  class Fake implements MetricsReceiver {
    constructor(
      readonly id: string,
      ctx: ReceiverContext,
    ) {
      seen.set(`${id}#${seen.size}`, ctx);
    }
    async start(): Promise<void> {}
    async collect(): Promise<void> {}
    async shutdown(): Promise<void> {}
  }
  const fake: ComponentFactory<unknown, MetricsReceiver, ReceiverContext> = {
    kind: 'receiver',
    type: 'fake',
    stability: 'development',
    options: [],
    defaultConfig: () => ({}),
    validate: (raw) => raw ?? {},
    create: (_c, ctx) => new Fake(ctx.id, ctx),
  };
  const config = (extra: string): ReturnType<typeof validateConfig> =>
    validateConfig(
      loadConfigFromTexts(
        [{ source: 't.yaml', text: `receivers:\n  fake/a: {}\n  fake/b: {${extra}}\nexporters:\n  debug: {verbosity: basic}\nservice:\n  pipelines:\n    metrics:\n      receivers: [fake/a, fake/b]\n      exporters: [debug]\n` }],
        [],
        { env: {} },
      ),
      [fake, ...Object.values(exporterFactories)] as never[],
    );
  const svc = Service.build(config(''), silentLogger());
  await svc.start();
  try {
    await svc.reload(config('x: 1')); // fake/b restarts with a new config, fake/a is kept
    const ctxs = [...seen.values()];
    assert.equal(ctxs.length, 3);
    assert.ok(ctxs[0]!.domains instanceof DomainNames);
    assert.ok(ctxs.every((c) => c.domains === ctxs[0]!.domains));
  } finally {
    await svc.shutdown();
  }
  const other = Service.build(config(''), silentLogger());
  const last = [...seen.values()].pop()!;
  assert.notEqual(last.domains, [...seen.values()][0]!.domains);
  void other;
});
