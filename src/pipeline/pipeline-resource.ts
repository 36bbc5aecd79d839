/**
 * The resource a pipeline's exporters send. In flowtel the resource belongs
 * to each exporter (its MeterProvider for metrics, its logs side for log
 * records), not to each batch: measurements and records carry only their own
 * attributes. A `resource` processor therefore acts on the resource of the
 * exporters of its pipeline: the service gives each exporter the service
 * resource (src/telemetry/resource.ts) transformed by the resource processors
 * of the pipelines that list it, in their order. Since an exporter sends one
 * resource, validation requires every pipeline that lists an exporter to have
 * the same resource processors (give the pipelines their own exporter ids,
 * `otlp/a` and `otlp/b`, to send two resources to one backend).
 */
import type { Attributes } from '@opentelemetry/api';
import { resourceFromAttributes, type RawResourceAttribute, type Resource } from '@opentelemetry/resources';

/** What a resource processor provides: the resource attributes after its actions. */
export interface ResourceTransformer {
  /** Never changes `attributes`; returns it when nothing changed. */
  transformResource(attributes: Attributes): Attributes;
}

export function isResourceTransformer(p: unknown): p is ResourceTransformer {
  return typeof (p as Partial<ResourceTransformer> | null)?.transformResource === 'function';
}

/**
 * `base` seen through `transforms`. The base's asynchronously detected
 * attributes (host.id) are transformed too: exporters wait for them
 * (waitForAsyncAttributes) before the first export, and the result is
 * computed once they are there.
 */
export class TransformedResource implements Resource {
  private settled: Attributes | undefined;

  constructor(
    private readonly base: Resource,
    private readonly transforms: readonly ResourceTransformer[],
  ) {}

  get asyncAttributesPending(): boolean {
    return this.base.asyncAttributesPending ?? false;
  }

  async waitForAsyncAttributes(): Promise<void> {
    await this.base.waitForAsyncAttributes?.();
  }

  get schemaUrl(): string | undefined {
    return this.base.schemaUrl;
  }

  get attributes(): Attributes {
    if (this.settled) return this.settled;
    let attributes = this.base.attributes;
    for (const t of this.transforms) attributes = t.transformResource(attributes);
    if (!this.asyncAttributesPending) this.settled = attributes;
    return attributes;
  }

  merge(other: Resource | null): Resource {
    return resourceFromAttributes(this.attributes).merge(other);
  }

  getRawAttributes(): RawResourceAttribute[] {
    return Object.entries(this.attributes);
  }
}

/** The exporter's resource: `base` itself when no pipeline transforms it. */
export function exporterResource(base: Resource, transforms: readonly ResourceTransformer[]): Resource {
  return transforms.length === 0 ? base : new TransformedResource(base, transforms);
}
