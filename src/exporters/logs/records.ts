/**
 * flowtel's log records as the SDK's ReadableLogRecord, which the
 * otlp-transformer serializers (protobuf for OTLP/gRPC and OTLP/HTTP, JSON
 * for the file exporter) and OTLPLogExporter take. No LoggerProvider is
 * involved: records are made by receivers, not by an API logger, and go
 * through the Collector-like queue of each exporter.
 */
import type { HrTime } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { SeverityNumber } from '@opentelemetry/api-logs';
import type { LogRecordData } from '../../pipeline/logs';
import { FLOWTEL_VERSION } from '../../telemetry/resource';

/** The instrumentation scope of every record (one object: the serializers group by identity). */
export const LOGS_SCOPE: ReadableLogRecord['instrumentationScope'] = Object.freeze({ name: 'flowtel', version: FLOWTEL_VERSION });

/** ms since the epoch (with a fraction: µs precision) to [s, ns], rounded to the µs (core's millisToHrTime keeps float noise in the ns). */
export function msToHrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  let us = Math.round((ms - s * 1000) * 1000);
  let sec = s;
  if (us >= 1_000_000) {
    sec += 1;
    us -= 1_000_000;
  }
  return [sec, us * 1000];
}

/**
 * Each record with `resource`. The event name is both the LogRecord's
 * `event_name` field and an `event.name` attribute (for backends that only
 * read attributes). `observedMs`: when the agent handled it.
 */
export function toReadableLogRecords(records: readonly LogRecordData[], resource: Resource, observedMs = Date.now()): ReadableLogRecord[] {
  const observed = msToHrTime(observedMs);
  return records.map((r) => ({
    hrTime: msToHrTime(r.timeMs),
    hrTimeObserved: observed,
    severityNumber: r.severityNumber as SeverityNumber,
    severityText: r.severityText,
    body: r.body,
    eventName: r.eventName,
    resource,
    instrumentationScope: LOGS_SCOPE,
    attributes: { 'event.name': r.eventName, ...r.attributes },
    droppedAttributesCount: 0,
  }));
}

/** Wait for the resource's asynchronous attributes (host.id) before its first use. */
export async function settled(resource: Resource): Promise<Resource> {
  if (resource.asyncAttributesPending) await resource.waitForAsyncAttributes?.();
  return resource;
}
