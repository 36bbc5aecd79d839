/**
 * A receiver the test drives, for Service-level tests of processors and
 * exporters: `emit` sends log records to its logs pipelines, `send` a
 * measurement batch to its metrics pipelines. Register `fakeReceiverFactory`
 * with the other factories; the instances made are in `fakeReceivers` by id.
 *
 *   const service = Service.build(validateConfig(..., [fakeReceiverFactory, ...]), logger);
 *   fakeReceivers.get('fake')!.emit(logRecord(443));
 */
import type { ComponentFactory, MetricsReceiver, ReceiverContext } from '../../src/pipeline/component';
import { Severity, type LogRecordData } from '../../src/pipeline/logs';
import type { Measurement } from '../../src/pipeline/measurements';

/** The latest instance made for each receiver id. */
export const fakeReceivers = new Map<string, FakeReceiver>();

export class FakeReceiver implements MetricsReceiver {
  /** What collect() sends (a copy each time); empty: nothing. */
  measurements: Measurement[] = [];

  constructor(
    readonly id: string,
    readonly ctx: ReceiverContext,
  ) {
    fakeReceivers.set(id, this);
  }
  async start(): Promise<void> {}
  async collect(): Promise<void> {
    if (this.measurements.length > 0) this.send([...this.measurements]);
  }
  send(measurements: Measurement[], gaugesReplaced: string[] = []): void {
    this.ctx.next.consume({ timeMs: Date.now(), measurements, gaugesReplaced, source: this.id });
  }
  emit(...records: LogRecordData[]): void {
    this.ctx.logs?.consumeLogs({ records, source: this.id });
  }
  async shutdown(): Promise<void> {}
}

export const fakeReceiverFactory: ComponentFactory<unknown, MetricsReceiver, ReceiverContext> = {
  kind: 'receiver',
  type: 'fake',
  stability: 'development',
  signals: ['metrics', 'logs'],
  options: [],
  defaultConfig: () => ({}),
  validate: (raw) => raw ?? {},
  create: (_c, ctx) => new FakeReceiver(ctx.id, ctx),
};

/** A WARN record about a connection to `port` (the port tells records apart). */
export function logRecord(port: number, body = `conn to ${port}`): LogRecordData {
  return {
    timeMs: 1_700_000_000_000 + port,
    severityNumber: Severity.WARN,
    severityText: 'WARN',
    body,
    eventName: 'flowtel.test.event',
    attributes: { 'network.transport': 'tcp', 'destination.address': '10.0.0.2', 'destination.port': port },
  };
}
