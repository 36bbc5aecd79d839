// Delta of a Prometheus histogram between two scrapes (text format), summed
// over its series: count, sum, mean and the upper bound of the bucket holding
// the largest observation.
//   node bench/prom-hist.mjs METRIC before.txt after.txt  -> {"count":..,"sum":..,"mean":..,"max_le":..}
import { readFileSync } from 'node:fs';

const [metric, a, b] = process.argv.slice(2);
function parse(path) {
  const out = { count: 0, sum: 0, buckets: new Map() };
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.startsWith('#') || !line.startsWith(metric)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith(`${metric}_count`)) out.count += value;
    else if (line.startsWith(`${metric}_sum`)) out.sum += value;
    else if (line.startsWith(`${metric}_bucket`)) {
      const le = /le="([^"]+)"/.exec(line)?.[1] ?? '+Inf';
      out.buckets.set(le, (out.buckets.get(le) ?? 0) + value);
    }
  }
  return out;
}
const x = parse(a);
const y = parse(b);
const count = y.count - x.count;
const sum = y.sum - x.sum;
let maxLe = null;
const les = [...y.buckets.keys()].sort((p, q) => (p === '+Inf' ? Infinity : Number(p)) - (q === '+Inf' ? Infinity : Number(q)));
for (const le of les) {
  if (y.buckets.get(le) - (x.buckets.get(le) ?? 0) >= count) {
    maxLe = le === '+Inf' ? null : Number(le);
    break;
  }
}
process.stdout.write(`${JSON.stringify({ count, sum, mean: count > 0 ? sum / count : null, max_le: maxLe })}\n`);
