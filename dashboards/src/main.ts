/**
 * Writes dashboards/*.json from the TypeScript sources (`npm run dashboards`).
 * `--check` writes nothing and exits 1 if a committed file differs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DASHBOARDS, renderDashboard } from './index';

/** dist/dashboards/src → the checkout's dashboards/. */
export const DASHBOARDS_DIR = path.resolve(__dirname, '..', '..', '..', 'dashboards');

function main(argv: readonly string[]): number {
  const check = argv.includes('--check');
  let stale = 0;
  for (const { file, spec } of DASHBOARDS) {
    const target = path.join(DASHBOARDS_DIR, file);
    const text = renderDashboard(spec);
    let current = '';
    try {
      current = readFileSync(target, 'utf8');
    } catch {
      /* new file */
    }
    if (current === text) continue;
    if (check) {
      stale++;
      process.stderr.write(`dashboards/${file} is out of date: run npm run dashboards\n`);
    } else {
      writeFileSync(target, text);
      process.stdout.write(`wrote dashboards/${file}\n`);
    }
  }
  return stale ? 1 : 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
