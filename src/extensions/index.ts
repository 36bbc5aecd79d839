/** Extension factories: `health_check`, `pprof`. The host that runs them: startExtensions. */
import type { ExtensionFactory } from './extension';
import { healthCheckExtensionFactory } from './health-check';
import { pprofExtensionFactory } from './pprof';

export { healthCheckExtensionFactory, healthResponse, DEFAULT_HEALTH_CHECK_ENDPOINT, type HealthCheckConfig, type HealthCheckExtension } from './health-check';
export { pprofExtensionFactory, profileSeconds, DEFAULT_PPROF_ENDPOINT, type PprofConfig, type PprofExtension } from './pprof';
export type { Extension, ExtensionContext, ExtensionFactory, ExtensionHost } from './extension';
export { startExtensions, type RunningExtensions } from './host';

/** type → factory, for the extensions section of the component registry. */
export const extensionFactories: Readonly<Record<string, ExtensionFactory<unknown>>> = {
  [healthCheckExtensionFactory.type]: healthCheckExtensionFactory as ExtensionFactory<unknown>,
  [pprofExtensionFactory.type]: pprofExtensionFactory as ExtensionFactory<unknown>,
};
