// Provider IP-range lookups (cloud_services): load a synthetic file in the
// AWS ip-ranges.json format as large as the real one (or larger), then time
// lookups of random addresses. `node bench/ranges.mjs [ipv4Prefixes] [ipv6Prefixes] [lookups]`
// after `npm run build`; run with --expose-gc for the heap figure. Prints one
// JSON line; docs/performance.md quotes it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { loadRangeFiles } = require('../dist/src/processors/netenrich/cloud-services.js');
const { parseIp } = require('../dist/src/util/ip.js');

const [v4Count = 50_000, v6Count = 20_000, lookups = 1_000_000] = process.argv.slice(2).map(Number);
const SERVICES = ['AMAZON', 'EC2', 'S3', 'DYNAMODB', 'CLOUDFRONT', 'ROUTE53', 'API_GATEWAY'];
// mulberry32: a small PRNG, so that runs are repeatable.
let seed = 42;
const rand = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
};

const prefixes = [];
for (let i = 0; i < v4Count; i++) {
  const len = 16 + Math.floor(rand() * 13); // /16 … /28, like the real file
  const a = (Math.floor(rand() * 2 ** 32) & (0xffffffff << (32 - len))) >>> 0;
  prefixes.push({ ip_prefix: `${a >>> 24}.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}/${len}`, region: 'us-east-1', service: SERVICES[i % SERVICES.length], network_border_group: 'us-east-1' });
}
const ipv6 = [];
for (let i = 0; i < v6Count; i++) {
  const len = [32, 36, 40, 44, 48, 56, 64][i % 7];
  const groups = Array.from({ length: 8 }, (_, g) => (g * 16 < len ? Math.floor(rand() * 65536) : 0));
  const keep = len % 16;
  if (keep) groups[Math.floor(len / 16)] &= (0xffff << (16 - keep)) & 0xffff;
  ipv6.push({ ipv6_prefix: `${groups.map((g) => g.toString(16)).join(':')}/${len}`, region: 'us-west-2', service: 'S3', network_border_group: 'us-west-2' });
}
const dir = mkdtempSync(path.join(tmpdir(), 'flowtel-bench-ranges-'));
const file = path.join(dir, 'ip-ranges.json');
writeFileSync(file, JSON.stringify({ syncToken: '1', createDate: '2026-01-01-00-00-00', prefixes, ipv6_prefixes: ipv6 }));
// Keep only what the lookups need, so the heap measured below is the table's.
const v6Probes = ipv6.slice(0, 2500).map((p) => p.ipv6_prefix);
prefixes.length = 0;
ipv6.length = 0;

global.gc?.();
const heap0 = process.memoryUsage().heapUsed;
let t0 = performance.now();
const loaded = await loadRangeFiles([file]);
const loadMs = performance.now() - t0;
global.gc?.();
const heapMb = (process.memoryUsage().heapUsed - heap0) / 2 ** 20; // the table (loaded.table) is still referenced here

const addresses = [];
for (let i = 0; i < 10_000; i++) {
  if (i % 4 === 3) {
    addresses.push(parseIp(v6Probes[i % v6Probes.length].split('/')[0].replace(/:0:0$/, ':1:2')));
  } else {
    const a = Math.floor(rand() * 2 ** 32);
    addresses.push(parseIp(`${a >>> 24}.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}`));
  }
}
const time = (list) => {
  let hits = 0;
  const t = performance.now();
  for (let i = 0; i < lookups; i++) if (loaded.table.lookup(list[i % list.length]) !== undefined) hits++;
  return { ns: Math.round(((performance.now() - t) * 1e6) / lookups), hitRate: +(hits / lookups).toFixed(3) };
};
const v4 = time(addresses.filter((a) => a.family === 4));
const v6 = time(addresses.filter((a) => a.family === 6));
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ prefixes: loaded.table.size, loadMs: Math.round(loadMs), heapMb: +heapMb.toFixed(1), lookups, ipv4: v4, ipv6: v6 }));
