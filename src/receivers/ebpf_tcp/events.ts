/**
 * `connection_events`: the ebpf_tcp receiver's log records, one per failed
 * connection (`flowtel.tcp.connection_failed`, WARN) and, when asked, per
 * closed connection (`flowtel.tcp.connection_closed`, INFO), made from the
 * tracker's TcpConnectionEvents. A record's time is the kernel's time of the
 * event, on the wall clock (KtimeClock).
 */
import { Severity, type LogRecordData } from '../../pipeline/logs';
import type { FlowAttributes } from '../../pipeline/measurements';
import type { TcpConnectionEvent } from '../../flows/tcp-tracker';

export const TCP_CONNECTION_FAILED = 'flowtel.tcp.connection_failed';
export const TCP_CONNECTION_CLOSED = 'flowtel.tcp.connection_closed';

/**
 * Kernel event times (bpf_ktime_get_ns: CLOCK_MONOTONIC) to wall-clock ms.
 * Node's process.hrtime reads the same clock (libuv's uv_hrtime is
 * clock_gettime(CLOCK_MONOTONIC) on Linux), so the offset is Date.now()
 * minus hrtime, measured now and again at each refresh() (NTP may step the
 * wall clock).
 */
export class KtimeClock {
  private offsetMs = 0;
  constructor(
    private readonly wallMs: () => number = Date.now,
    private readonly monoNs: () => bigint = process.hrtime.bigint,
  ) {
    this.refresh();
  }
  refresh(): void {
    this.offsetMs = this.wallMs() - Number(this.monoNs()) / 1e6;
  }
  toEpochMs(ktimeNs: bigint): number {
    return Number(ktimeNs) / 1e6 + this.offsetMs;
  }
}

function endpoint(address: unknown, port: unknown): string {
  const a = String(address ?? '?');
  const host = a.includes(':') ? `[${a}]` : a;
  return port === undefined ? host : `${host}:${String(port)}`;
}

/** The log record of one connection event. */
export function connectionEventRecord(ev: TcpConnectionEvent, clock: KtimeClock): LogRecordData {
  const a = ev.attributes;
  const attributes: FlowAttributes = { ...a };
  if (ev.errorType !== undefined) attributes['error.type'] = ev.errorType;
  if (ev.stateBefore !== undefined) attributes['network.connection.state'] = ev.stateBefore;
  if (ev.bytesSent !== undefined) attributes['tcp.bytes_sent'] = ev.bytesSent;
  if (ev.bytesReceived !== undefined) attributes['tcp.bytes_received'] = ev.bytesReceived;
  if (ev.retransmits !== undefined) attributes['tcp.retransmits'] = ev.retransmits;
  if (ev.srttUs) attributes['tcp.rtt_us'] = ev.srttUs;
  if (ev.durationNs !== undefined) attributes['tcp.duration_ms'] = Number(ev.durationNs / 1000n) / 1000;

  const who = a['process.executable.name'] !== undefined ? ` [${String(a['process.executable.name'])} ${String(a['process.pid'] ?? '')}]`.replace(' ]', ']') : '';
  const flow = `tcp ${endpoint(a['source.address'], a['source.port'])} → ${endpoint(a['destination.address'], a['destination.port'])} (${String(a['flow.direction'] ?? '')})`;
  const stats =
    ev.bytesSent !== undefined
      ? `: sent ${ev.bytesSent} B, received ${ev.bytesReceived ?? 0} B, ${ev.retransmits ?? 0} retransmits` +
        (ev.srttUs ? `, rtt ${ev.srttUs} µs` : '') +
        (ev.durationNs !== undefined ? `, ${attributes['tcp.duration_ms'] as number} ms` : '')
      : '';
  const failed = ev.kind === 'failed';
  const what = failed
    ? `connection failed: ${ev.errorType ?? 'error'}${ev.stateBefore ? ` in ${ev.stateBefore}` : ''}`
    : `connection closed${ev.errorType ? ` (${ev.errorType})` : ''}`;
  return {
    timeMs: clock.toEpochMs(ev.tsNs),
    severityNumber: failed ? Severity.WARN : Severity.INFO,
    severityText: failed ? 'WARN' : 'INFO',
    body: `${flow} ${what}${stats}${who}`,
    eventName: failed ? TCP_CONNECTION_FAILED : TCP_CONNECTION_CLOSED,
    attributes,
  };
}
