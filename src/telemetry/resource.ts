/**
 * The OpenTelemetry Resource describing this agent and the host it watches.
 *
 * Precedence, lowest to highest:
 *   SDK defaults (telemetry.sdk.*) < service.name = `flowtel` (or
 *   `opts.serviceName`), service.version < host.name, host.arch, host.id,
 *   os.type, os.version (SDK host/os detectors) < `opts.attributes` (from
 *   config) < OTEL_RESOURCE_ATTRIBUTES < OTEL_SERVICE_NAME (SDK env detector).
 *
 * `host.id` (from /etc/machine-id) is read asynchronously by the SDK: the
 * returned Resource may have `asyncAttributesPending`. Push exporters wait for
 * it; for pull exporters (Prometheus) use `buildSettledResource`.
 */
import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  osDetector,
  resourceFromAttributes,
  type Resource,
} from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { AttributeValue } from '@opentelemetry/api';
import packageJson from '../../package.json';

/**
 * Incubating semantic-convention keys, copied as the semconv package
 * recommends (the `/incubating` entry point may change in minor releases).
 */
export const ATTR_HOST_NAME = 'host.name';
export const ATTR_HOST_ARCH = 'host.arch';
export const ATTR_OS_TYPE = 'os.type';

export const DEFAULT_SERVICE_NAME = 'flowtel';
export const FLOWTEL_VERSION: string = packageJson.version;

export interface ResourceOptions {
  /** service.name unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say otherwise. Default `flowtel`. */
  readonly serviceName?: string;
  /** Extra attributes (e.g. from config); OTEL_RESOURCE_ATTRIBUTES overrides them. */
  readonly attributes?: Readonly<Record<string, AttributeValue>>;
}

export function buildResource(opts: ResourceOptions = {}): Resource {
  const identity = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: opts.serviceName ?? DEFAULT_SERVICE_NAME,
    [ATTR_SERVICE_VERSION]: FLOWTEL_VERSION,
  });
  const host = detectResources({ detectors: [hostDetector, osDetector] });
  const configured = resourceFromAttributes({ ...opts.attributes });
  const fromEnv = detectResources({ detectors: [envDetector] });
  return defaultResource().merge(identity).merge(host).merge(configured).merge(fromEnv);
}

/** buildResource, with asynchronously detected attributes (host.id) resolved. */
export async function buildSettledResource(opts: ResourceOptions = {}): Promise<Resource> {
  const resource = buildResource(opts);
  if (resource.asyncAttributesPending) await resource.waitForAsyncAttributes?.();
  return resource;
}
