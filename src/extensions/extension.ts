/**
 * Extensions: components outside the pipelines (the Collector's
 * `extensions:` section), listed in `service.extensions`, started before the
 * pipelines and stopped after them, in reverse order.
 */
import type { ComponentContext, ComponentFactory, Lifecycle } from '../pipeline/component';
import type { HealthReport } from '../telemetry/component-status';

/** What an extension may ask of the running agent. */
export interface ExtensionHost {
  /** The agent's health: service state and every component's status. */
  health(): HealthReport;
}

export interface ExtensionContext extends ComponentContext {
  readonly host: ExtensionHost;
}

export interface Extension extends Lifecycle {
  readonly id: string;
}

export type ExtensionFactory<Config> = ComponentFactory<Config, Extension, ExtensionContext>;
