import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryLimiterProcessor, availableMemory, memoryLimiterProcessorFactory } from '../../src/processors/memory_limiter';
import type { Measurement, MeasurementBatch } from '../../src/pipeline/measurements';

const MIB = 1024 * 1024;

function batch(): MeasurementBatch {
  const measurements: Measurement[] = [
      { metric: 'tcp_bytes_sent', value: 10, attributes: { 'source.address': '10.0.0.1', 'destination.port': 443 } },
      { metric: 'tcp_connections', value: 1, attributes: { 'source.address': '10.0.0.1', 'network.connection.state': 'established' } },
      { metric: 'flowtel_tracked_connections', value: 1, attributes: { receiver: 'ebpf_tcp' } },
  ];
  return Object.freeze({ timeMs: 1, gaugesReplaced: ['tcp_connections', 'flowtel_tracked_connections'], measurements });
}

test('memory_limiter refuses flow data above the soft limit, counts it, and lets it through again below', () => {
  let rss = 50 * MIB;
  const config = memoryLimiterProcessorFactory.validate({ limit_mib: 100, spike_limit_mib: 20 }, 'processors.memory_limiter');
  const p = new MemoryLimiterProcessor('memory_limiter', config, () => rss, 1024 * MIB);
  assert.equal(p.softLimit, 80 * MIB);
  p.check();
  const b = batch();
  assert.equal(p.process(b), b, 'below the limit: untouched');
  rss = 90 * MIB;
  p.check();
  const out = p.process(b);
  assert.deepEqual(out.measurements.map((m) => m.metric), ['flowtel_tracked_connections', 'flowtel_processor_refused_measurements'], 'self-telemetry still passes, and the refusal is counted in it');
  assert.deepEqual(out.measurements[1], { metric: 'flowtel_processor_refused_measurements', value: 2, attributes: { processor: 'memory_limiter' } });
  assert.deepEqual(out.gaugesReplaced, ['flowtel_tracked_connections'], 'flow gauges keep their last values');
  assert.equal(p.refused, 2);
  // Shutting down clears its part of the process-wide memory pressure (the exporters' queues read it).
  void p.shutdown();
  rss = 70 * MIB;
  p.check();
  assert.equal(p.process(b), b);
});

test('memory_limiter forces a garbage collection above the hard limit, at most every min_gc_interval_when_hard_limited (10s by default)', () => {
  let rss = 50 * MIB;
  let now = 0;
  let gcs = 0;
  const config = memoryLimiterProcessorFactory.validate({ limit_mib: 100 }, 'processors.memory_limiter');
  assert.equal(config.min_gc_interval_when_hard_limited, 10_000);
  const p = new MemoryLimiterProcessor('m', config, () => rss, 1024 * MIB, () => void gcs++, () => now);
  p.check();
  assert.equal(gcs, 0, 'below the hard limit');
  rss = 90 * MIB;
  p.check();
  assert.equal(gcs, 0, 'above the soft limit only: data refused, no collection');
  rss = 120 * MIB;
  p.check();
  assert.equal(gcs, 1);
  now = 9_999;
  p.check();
  assert.equal(gcs, 1, 'not again within the interval');
  now = 10_000;
  p.check();
  assert.equal(gcs, 2);
  assert.equal(p.forcedGcs, 2);
  // Without --expose-gc there is nothing to call, and nothing fails.
  const none = new MemoryLimiterProcessor('m', config, () => rss, 1024 * MIB, undefined);
  none.check();
  assert.equal(none.forcedGcs, 0);
});

test('memory_limiter limits as a percentage of the available memory; config errors', () => {
  const config = memoryLimiterProcessorFactory.validate({ limit_percentage: 50, spike_limit_percentage: 10 }, 'processors.memory_limiter');
  const p = new MemoryLimiterProcessor('m', config, () => 0, 1000 * MIB);
  assert.equal(p.hardLimit, 500 * MIB);
  assert.equal(p.softLimit, 400 * MIB);
  assert.throws(() => memoryLimiterProcessorFactory.validate({}, 'processors.memory_limiter'), /processors\.memory_limiter: set exactly one of limit_mib and limit_percentage/);
  assert.throws(() => memoryLimiterProcessorFactory.validate({ limit_mib: 100, spike_limit_mib: 100 }, 'processors.memory_limiter'), /spike_limit_mib: must be below limit_mib \(100\)/);
  assert.throws(() => memoryLimiterProcessorFactory.validate({ limit_mib: 100, limit_percentage: 5 }, 'p'), /exactly one/);
});

test('available memory: the cgroup v2 limit when there is one', () => {
  const files: Record<string, string> = { '/proc/self/cgroup': '0::/kubepods/pod1\n', '/sys/fs/cgroup/kubepods/pod1/memory.max': String(256 * MIB) };
  assert.equal(availableMemory((f) => {
    const v = files[f];
    if (v === undefined) throw new Error('ENOENT');
    return v;
  }), 256 * MIB);
});
