/**
 * The agent's HTTP endpoints (prometheus exporter, health_check): bound to
 * the configured address only, HTTPS with real TLS handshakes (server
 * certificate verified by the client, client certificates required with
 * client_ca_file, min_version enforced), basic and bearer authentication, and
 * config errors that name the option.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { afterEach, before, describe, test } from 'node:test';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { prometheusExporterFactory, type PrometheusMetricsExporter } from '../../src/exporters';
import { healthCheckExtensionFactory, type HealthCheckExtension } from '../../src/extensions/health-check';
import { pprofExtensionFactory, type PprofExtension } from '../../src/extensions/pprof';
import { ConfigError } from '../../src/pipeline/component';
import { freePort } from '../helpers/e2e';
import { captureLogger } from '../helpers/capture-logger';
import { haveOpenssl, selfSignedCert, type TestCert } from '../helpers/test-certs';
import { SelfTelemetry } from '../../src/telemetry/self-telemetry';
import { httpServerSecurity } from '../../src/util/http-server';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let server: TestCert;
let client: TestCert;
let stranger: TestCert;
before(() => {
  if (!haveOpenssl()) return;
  server = selfSignedCert('server');
  client = selfSignedCert('client');
  stranger = selfSignedCert('stranger');
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One GET; rejects on a failed connection or TLS handshake. */
function get(url: string, options: RequestOptions = {}): Promise<Reply> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise<Reply>((resolve, reject) => {
    const req = request(url, { ...options, agent: false, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function prometheus(raw: Record<string, unknown>): Promise<PrometheusMetricsExporter> {
  const { logger } = captureLogger();
  const config = prometheusExporterFactory.validate(raw, 'exporters.prometheus');
  const exporter = prometheusExporterFactory.create(config, { id: 'prometheus', logger });
  const provider = new MeterProvider({ readers: [exporter.reader] });
  provider.getMeter('t').createCounter('tcp_bytes_sent', { unit: 'By' }).add(1500, { 'destination.port': 443 });
  await exporter.start();
  cleanups.push(() => exporter.shutdown());
  return exporter;
}

async function healthCheck(raw: Record<string, unknown>): Promise<HealthCheckExtension> {
  const { logger } = captureLogger();
  const config = healthCheckExtensionFactory.validate(raw, 'extensions.health_check');
  const ext = healthCheckExtensionFactory.create(config, {
    id: 'health_check',
    logger,
    host: { health: () => ({ healthy: true, status: 'Server available' }) as never },
  }) as HealthCheckExtension;
  await ext.start();
  cleanups.push(() => ext.shutdown());
  return ext;
}

const basic = (user: string, password: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

describe('bind address', () => {
  test('prometheus and health_check listen on the configured address only', async () => {
    const promPort = await freePort();
    const prom = await prometheus({ endpoint: `127.0.0.1:${promPort}` });
    assert.equal((await get(prom.url)).status, 200);
    // 127.0.0.2 is loopback too, but nothing listens there.
    await assert.rejects(get(`http://127.0.0.2:${promPort}/metrics`), /ECONNREFUSED/);
    const health = await healthCheck({ endpoint: '127.0.0.1:0' });
    const port = Number(new URL(health.url).port);
    assert.equal((await get(health.url)).status, 200);
    await assert.rejects(get(`http://127.0.0.2:${port}/`), /ECONNREFUSED/);
  });
});

describe('TLS', { skip: !haveOpenssl() && 'openssl not installed' }, () => {
  test('prometheus over HTTPS: the client verifies the server certificate; untrusted or plain HTTP fails', async () => {
    const port = await freePort();
    const prom = await prometheus({ endpoint: `127.0.0.1:${port}`, tls: { cert_file: server.certFile, key_file: server.keyFile } });
    assert.equal(prom.url, `https://127.0.0.1:${port}/metrics`);
    const ok = await get(prom.url, { ca: server.cert });
    assert.equal(ok.status, 200);
    assert.match(ok.body, /^tcp_bytes_sent_total\{.*\} 1500$/m);
    // A client that does not trust the certificate refuses the handshake.
    await assert.rejects(get(prom.url), /self-signed certificate|unable to verify/);
    await assert.rejects(get(prom.url, { ca: stranger.cert }), /self-signed certificate|unable to verify/);
    // Plain HTTP to the TLS port gets no metrics.
    await assert.rejects(get(`http://127.0.0.1:${port}/metrics`));
  });

  test('client_ca_file: a client without a certificate, or with one the CA did not sign, is refused; a signed one gets the metrics', async () => {
    const port = await freePort();
    const prom = await prometheus({
      endpoint: `127.0.0.1:${port}`,
      tls: { cert_file: server.certFile, key_file: server.keyFile, client_ca_file: client.certFile },
    });
    await assert.rejects(get(prom.url, { ca: server.cert }), /certificate|socket hang up|ECONNRESET/);
    await assert.rejects(get(prom.url, { ca: server.cert, cert: stranger.cert, key: stranger.key }), /certificate|socket hang up|ECONNRESET/);
    const ok = await get(prom.url, { ca: server.cert, cert: client.cert, key: client.key });
    assert.equal(ok.status, 200);
    assert.match(ok.body, /tcp_bytes_sent_total/);
  });

  test('min_version 1.3: a TLS 1.2-only client is refused, a 1.3 one accepted', async () => {
    const port = await freePort();
    const prom = await prometheus({ endpoint: `127.0.0.1:${port}`, tls: { cert_file: server.certFile, key_file: server.keyFile, min_version: '1.3' } });
    await assert.rejects(get(prom.url, { ca: server.cert, maxVersion: 'TLSv1.2' }), /version|alert/i);
    assert.equal((await get(prom.url, { ca: server.cert, minVersion: 'TLSv1.3' })).status, 200);
  });

  test('health_check over HTTPS with a bearer token', async () => {
    const health = await healthCheck({ endpoint: '127.0.0.1:0', tls: { cert_file: server.certFile, key_file: server.keyFile }, auth: { bearer_token: 's3cr3t-token' } });
    assert.match(health.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    const denied = await get(health.url, { ca: server.cert });
    assert.equal(denied.status, 401);
    assert.equal(denied.headers['www-authenticate'], 'Bearer realm="flowtel"');
    const ok = await get(health.url, { ca: server.cert, headers: { authorization: 'Bearer s3cr3t-token' } });
    assert.equal(ok.status, 200);
    assert.match(ok.body, /Server available/);
  });

  test('the self-telemetry endpoint (service.telemetry.metrics) over HTTPS with a bearer token', async () => {
    const port = await freePort();
    const { logger } = captureLogger();
    const telemetry = new SelfTelemetry({
      level: 'basic',
      address: `127.0.0.1:${port}`,
      security: httpServerSecurity({ cert_file: server.certFile, key_file: server.keyFile, min_version: '1.2' }, { basic: {}, bearer_token: 'self-token' }, 'service.telemetry.metrics'),
      logger,
    });
    cleanups.push(() => telemetry.shutdown());
    await telemetry.start();
    assert.equal(telemetry.url, `https://127.0.0.1:${port}/metrics`);
    await assert.rejects(get(telemetry.url.replace('https:', 'http:')), 'plain HTTP on the TLS port');
    assert.equal((await get(telemetry.url, { ca: server.cert })).status, 401);
    const ok = await get(telemetry.url, { ca: server.cert, headers: { authorization: 'Bearer self-token' } });
    assert.equal(ok.status, 200);
    assert.match(ok.body, /flowtel_process_memory_rss/);
  });
});

describe('pprof', () => {
  test('pprof (heap snapshots hold secrets) over HTTPS with basic auth: 401 without credentials, the index with them', { skip: !haveOpenssl() && 'openssl not installed' }, async () => {
    const { logger } = captureLogger();
    const config = pprofExtensionFactory.validate(
      { endpoint: '127.0.0.1:0', tls: { cert_file: server.certFile, key_file: server.keyFile }, auth: { basic: { username: 'ops', password: 'pprof-pass' } } },
      'extensions.pprof',
    );
    const ext = pprofExtensionFactory.create(config, { id: 'pprof', logger, host: { health: () => ({}) as never } }) as PprofExtension;
    await ext.start();
    cleanups.push(() => ext.shutdown());
    assert.match(ext.url, /^https:\/\/127\.0\.0\.1:\d+\/debug\/pprof\/$/);
    assert.equal((await get(ext.url, { ca: server.cert })).status, 401);
    const ok = await get(ext.url, { ca: server.cert, headers: basic('ops', 'pprof-pass') });
    assert.equal(ok.status, 200);
    assert.match(ok.body, /heap/);
    assert.throws(() => pprofExtensionFactory.validate({ auth: { basic: { password: 'x' } } }, 'extensions.pprof'), /extensions\.pprof\.auth\.basic\.username/);
  });
});

describe('authentication', () => {
  test('basic: 401 with a challenge without credentials or with wrong ones; 200 with the right ones', async () => {
    const port = await freePort();
    const prom = await prometheus({ endpoint: `127.0.0.1:${port}`, auth: { basic: { username: 'prom', password: 'pa:ss wörd' } } });
    const none = await get(prom.url);
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Basic realm="flowtel", charset="UTF-8"');
    assert.doesNotMatch(none.body, /tcp_bytes_sent/);
    assert.equal((await get(prom.url, { headers: basic('prom', 'wrong') })).status, 401);
    assert.equal((await get(prom.url, { headers: basic('other', 'pa:ss wörd') })).status, 401);
    assert.equal((await get(prom.url, { headers: { authorization: 'Bearer pa:ss wörd' } })).status, 401, 'a bearer token is not accepted when only basic is configured');
    assert.equal((await get(prom.url, { headers: { authorization: 'Basic !!!not base64' } })).status, 401);
    const ok = await get(prom.url, { headers: basic('prom', 'pa:ss wörd') });
    assert.equal(ok.status, 200);
    assert.match(ok.body, /tcp_bytes_sent_total\{.*\} 1500/);
  });

  test('basic and bearer together: either credential is accepted', async () => {
    const port = await freePort();
    const prom = await prometheus({ endpoint: `127.0.0.1:${port}`, auth: { basic: { username: 'u', password: 'p' }, bearer_token: 'tok' } });
    const none = await get(prom.url);
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Basic realm="flowtel", charset="UTF-8", Bearer realm="flowtel"');
    assert.equal((await get(prom.url, { headers: basic('u', 'p') })).status, 200);
    assert.equal((await get(prom.url, { headers: { authorization: 'bearer tok' } })).status, 200, 'the scheme is case-insensitive');
    assert.equal((await get(prom.url, { headers: { authorization: 'Bearer tok2' } })).status, 401);
  });
});

describe('config', () => {
  const check = (raw: Record<string, unknown>, pattern: RegExp): void => {
    assert.throws(() => prometheusExporterFactory.validate(raw, 'exporters.prometheus'), (e: unknown) => e instanceof ConfigError && pattern.test(e.message));
    assert.throws(() => healthCheckExtensionFactory.validate(raw, 'extensions.health_check'), (e: unknown) => e instanceof ConfigError && pattern.test(e.message.replace('extensions.health_check', 'exporters.prometheus')));
  };

  test('incomplete tls or auth is an error naming the option', () => {
    check({ tls: { cert_file: '/x.crt' } }, /exporters\.prometheus\.tls\.key_file.*cert_file and key_file must be set together/);
    check({ tls: { key_file: '/x.key' } }, /tls\.cert_file.*set together/);
    check({ tls: { client_ca_file: '/ca.crt' } }, /tls\.client_ca_file.*client certificates need TLS/);
    check({ tls: { cert_file: '/a', key_file: '/b', min_version: '1.1' } }, /tls\.min_version.*"1\.2", "1\.3"/);
    check({ auth: { basic: { username: 'u' } } }, /auth\.basic\.password.*username and password must be set together/);
    check({ auth: { basic: { username: 'a:b', password: 'p' } } }, /auth\.basic\.username.*cannot contain ":"/);
    check({ auth: { bearer: 'x' } }, /auth\.bearer.*bearer_token/);
  });

  test('an unreadable certificate or key: a ConfigError naming the option and the file', () => {
    const { logger } = captureLogger();
    const config = prometheusExporterFactory.validate({ endpoint: '127.0.0.1:1', tls: { cert_file: '/nonexistent/server.crt', key_file: '/nonexistent/server.key' } }, 'exporters.prometheus');
    assert.throws(
      () => prometheusExporterFactory.create(config, { id: 'prometheus', logger }),
      (e: unknown) => e instanceof ConfigError && /exporters\.prometheus\.tls\.cert_file: cannot read \/nonexistent\/server\.crt: ENOENT/.test(e.message),
    );
  });
});
