/**
 * One readable line per log record, for the debug exporter:
 *
 *   2024-01-15T10:30:00.123Z WARN  flowtel.tcp.connection_failed tcp 10.0.0.1 → 10.0.0.2:443 refused (syn_sent)
 *
 * With `detailed`, the record's attributes follow as JSON.
 */
import type { LogRecordData } from '../../pipeline/logs';

export function formatLogLine(r: LogRecordData, detailed = false): string {
  const time = Number.isFinite(r.timeMs) ? new Date(r.timeMs).toISOString() : String(r.timeMs);
  const line = `${time} ${r.severityText.padEnd(5)} ${r.eventName} ${r.body}`;
  return detailed ? `${line} ${JSON.stringify(r.attributes)}` : line;
}
