/**
 * The logs side of the enrichment processors: the same attributes on log
 * records (connection events) as on the flows' measurements.
 */
import { withRecords, type LogBatch, type LogRecordData } from '../../pipeline/logs';
import type { FlowAttributes } from '../../pipeline/measurements';
import { isFlow } from '../common';

/** Apply `enrich` to the attributes of every record that is about a flow; the batch is not changed. */
export function enrichLogRecords(batch: LogBatch, enrich: (attributes: FlowAttributes) => FlowAttributes, flowsOnly = true): LogBatch {
  let changed = false;
  const out: LogRecordData[] = batch.records.map((r) => {
    if (flowsOnly && !isFlow(r.attributes)) return r;
    const attributes = enrich(r.attributes);
    if (attributes === r.attributes) return r;
    changed = true;
    return { ...r, attributes };
  });
  return changed ? withRecords(batch, out) : batch;
}
