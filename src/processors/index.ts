/**
 * Processor factories: `filter`, `sampling`, `aggregate`, `attributes`,
 * `memory_limiter`, `batch`, `resource`.
 * Each processor returns a new batch and never changes the one it is given
 * (a receiver's batch is shared by every pipeline it feeds).
 */
import type { PipelineProcessor, ProcessorFactory } from '../pipeline/component';
import { aggregateProcessorFactory } from './aggregate';
import { attributesProcessorFactory } from './attributes';
import { filterProcessorFactory } from './filter';
import { samplingProcessorFactory } from './sampling';

export {
  aggregateProcessorFactory,
  AggregateProcessor,
  OVERFLOW_ATTRIBUTE,
  DEFAULT_AGGREGATE_CARDINALITY_LIMIT,
  type AggregateConfig,
} from './aggregate';
export { attributesProcessorFactory, AttributesProcessor, type AttributesConfig } from './attributes';
export { ActionList, validateActions, actionOptionDocs, type AttributeAction } from './actions';
export {
  filterProcessorFactory,
  FilterProcessor,
  kernelFilterCriteria,
  type FilterConfig,
  type FilterCriteria,
  type FilterPushdown,
  type PushdownCidr,
} from './filter';
export { samplingProcessorFactory, SamplingProcessor, SAMPLING_RATE_ATTRIBUTE, type SamplingConfig } from './sampling';
export { FLOW_ATTRIBUTES, isFlow } from './common';
export { parseCidr, parseIp, cidrContains, formatIp, type Cidr, type IpAddress } from '../util/ip';

/** type → factory, for the processors section of the component registry. */
export { memoryLimiterProcessorFactory, MemoryLimiterProcessor, availableMemory, type MemoryLimiterConfig } from './memory_limiter';
import { memoryLimiterProcessorFactory } from './memory_limiter';
import { batchProcessorFactory } from './batch';
import { resourceProcessorFactory } from './resource';
export { batchProcessorFactory, BatchProcessor, LogBatcher, isBatchProcessor, type BatchConfig, type BatchTrigger } from './batch';
export { resourceProcessorFactory, ResourceProcessor, type ResourceProcessorConfig } from './resource';
import { netenrichProcessorFactories } from './netenrich';

export const processorFactories: Readonly<Record<string, ProcessorFactory<unknown, PipelineProcessor>>> = {
  [filterProcessorFactory.type]: filterProcessorFactory,
  [samplingProcessorFactory.type]: samplingProcessorFactory,
  [aggregateProcessorFactory.type]: aggregateProcessorFactory,
  [attributesProcessorFactory.type]: attributesProcessorFactory,
  [memoryLimiterProcessorFactory.type]: memoryLimiterProcessorFactory,
  [batchProcessorFactory.type]: batchProcessorFactory,
  [resourceProcessorFactory.type]: resourceProcessorFactory,
  ...Object.fromEntries(netenrichProcessorFactories.map((f) => [f.type, f])),
};
