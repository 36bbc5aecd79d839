/**
 * Network enrichment processors: `cloud` (where this host runs), `zone`
 * (availability zones of both ends, cross-AZ bytes and cost), `nat`
 * (destination NAT from conntrack) and `cloud_services` (provider IP ranges,
 * network scope). Recommended order in a pipeline:
 * `[nat, k8s, cloud, cloud_services, zone]` — nat first so the others name
 * the real backend, cloud before zone so zone knows the local zone, zone
 * last so its cross-AZ metrics carry the names the others found.
 */
import type { ProcessorFactory } from '../../pipeline/component';
import { cloudProcessorFactory } from './cloud';
import { cloudServicesProcessorFactory } from './cloud-services';
import { natProcessorFactory } from './nat';
import { zoneProcessorFactory } from './zone';

export { cloudProcessorFactory, CloudProcessor, type CloudConfig } from './cloud';
export { cloudServicesProcessorFactory, CloudServicesProcessor, type CloudServicesConfig } from './cloud-services';
export { natProcessorFactory, NatProcessor, type NatConfig } from './nat';
export { zoneProcessorFactory, ZoneProcessor, type ZoneConfig } from './zone';
export { zoneSources, ZoneSourceRegistry, type AddressZone, type AddressZoneSource } from './zone-source';
export { cloudFromDmi } from './cloud/dmi';

export const netenrichProcessorFactories: ReadonlyArray<ProcessorFactory<unknown>> = [
  cloudProcessorFactory as ProcessorFactory<unknown>,
  zoneProcessorFactory as ProcessorFactory<unknown>,
  natProcessorFactory as ProcessorFactory<unknown>,
  cloudServicesProcessorFactory as ProcessorFactory<unknown>,
];
