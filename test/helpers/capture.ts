/**
 * Runs an ebpf_tcp receiver in the test process with a consumer that keeps
 * every measurement, so tests can read exact values per flow.
 */
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import type { AttributeValue, Measurement, MeasurementBatch, MeasurementConsumer } from '../../src/pipeline/measurements';
import { ebpfTcpReceiverFactory } from '../../src/receivers/ebpf_tcp/factory';
import type { MetricsReceiver } from '../../src/pipeline/component';
import { filterProcessorFactory, type FilterProcessor } from '../../src/processors/filter';

export class Capture implements MeasurementConsumer {
  /** The batches, each histogram measurement with `samples` made into one measurement per sample (tests count samples). */
  readonly batches: MeasurementBatch[] = [];
  consume(batch: MeasurementBatch): void {
    const expanded: Measurement[] = [];
    for (const m of batch.measurements) {
      if (!m.samples) expanded.push(m);
      else for (let i = 0; i < m.samples.length; i++) expanded.push({ metric: m.metric, value: m.samples[i]!, attributes: m.attributes });
    }
    this.batches.push({ ...batch, measurements: expanded });
  }
  all(): Measurement[] {
    return this.batches.flatMap((b) => b.measurements);
  }
  /** Measurements of `metric` whose attributes include every pair of `match`. */
  select(metric: string, match: Record<string, AttributeValue>, from: Measurement[] = this.all()): Measurement[] {
    return from.filter((m) => m.metric === metric && Object.entries(match).every(([k, v]) => m.attributes[k] === v));
  }
  sum(metric: string, match: Record<string, AttributeValue>): number {
    return this.select(metric, match).reduce((s, m) => s + m.value, 0);
  }
  /** The last batch's gauge values for `metric`. */
  gauge(metric: string, match: Record<string, AttributeValue>): number {
    const last = this.batches[this.batches.length - 1];
    return last ? this.select(metric, match, last.measurements).reduce((s, m) => s + m.value, 0) : 0;
  }
}

/** A logger that keeps its JSON lines (for asserting warnings). */
export function memoryLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, dest), lines };
}

export async function startReceiver(raw: Record<string, unknown> = {}, logger?: Logger): Promise<{ receiver: MetricsReceiver; capture: Capture }> {
  const capture = new Capture();
  // A long interval: tests collect when they choose to.
  const config = ebpfTcpReceiverFactory.validate({ collection_interval: '1h', ...raw }, 'receivers.ebpf_tcp');
  const receiver = ebpfTcpReceiverFactory.create(config, { id: 'ebpf_tcp', logger: logger ?? pino({ level: 'warn' }), next: capture });
  await receiver.start();
  return { receiver, capture };
}

/**
 * startReceiver behind a filter processor that keeps only flows from
 * `sourceCidrs` (pushed down into the kernel, as the service does), so a test
 * sees its own connections and none of the rest of the host's.
 */
export async function startFilteredReceiver(sourceCidrs: string[], raw: Record<string, unknown> = {}, logger: Logger = pino({ level: 'warn' })): Promise<{ receiver: MetricsReceiver; capture: Capture }> {
  const filter = filterProcessorFactory.create(filterProcessorFactory.validate({ include: { source_cidrs: sourceCidrs } }, 'processors.filter'), { id: 'filter', logger }) as FilterProcessor;
  const capture = new Capture();
  const config = ebpfTcpReceiverFactory.validate({ collection_interval: '1h', ...raw }, 'receivers.ebpf_tcp');
  const receiver = ebpfTcpReceiverFactory.create(config, {
    id: 'ebpf_tcp',
    logger,
    next: { consume: (b) => capture.consume(filter.process(b)) },
    filter: filter.kernelPushdown(),
  });
  await receiver.start();
  return { receiver, capture };
}
