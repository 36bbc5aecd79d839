/**
 * Running the extensions and the agent's self-observation next to a Service:
 * the status tracker (what health_check serves) and self-telemetry are
 * attached to the service, then self-telemetry and the extensions of
 * `service.extensions` start, in order, before the pipelines do. After the
 * pipelines have stopped, `shutdown()` stops the extensions in reverse order.
 */
import type { Logger } from 'pino';
import { httpServerSecurity } from '../util/http-server';
import type { ValidatedConfig } from '../config/validate';
import { StatusTracker } from '../telemetry/component-status';
import { ObserverChain, type ServiceObserver } from '../telemetry/observer';
import { SelfTelemetry } from '../telemetry/self-telemetry';
import type { Extension, ExtensionContext, ExtensionHost } from './extension';

/** What startExtensions needs of the service (src/pipeline/service.ts). */
export interface ObservableService {
  attachTelemetry(observer: ServiceObserver): void;
}

export interface RunningExtensions {
  readonly status: StatusTracker;
  readonly telemetry: SelfTelemetry;
  readonly extensions: ReadonlyMap<string, Extension>;
  /** Stop the extensions (reverse order) and self-telemetry. Call after the service's shutdown. */
  shutdown(): Promise<void>;
}

/**
 * Attach status tracking and self-telemetry to `service` and start them and
 * every extension of `service.extensions`. On a failure, whatever started is
 * stopped again and the error is thrown.
 */
export async function startExtensions(config: ValidatedConfig, service: ObservableService, logger: Logger): Promise<RunningExtensions> {
  const status = new StatusTracker(config.pipelines, config.service.extensions);
  const metrics = config.service.telemetry.metrics;
  const telemetry = new SelfTelemetry({
    level: metrics.level,
    ...(metrics.address === undefined ? {} : { address: metrics.address }),
    ...(metrics.address !== undefined && metrics.tls && metrics.auth
      ? { security: httpServerSecurity(metrics.tls, metrics.auth, 'service.telemetry.metrics') }
      : {}),
    logger: logger.child({ 'component.id': 'telemetry', 'component.kind': 'service' }),
    receiverFailures: (id) => status.collectionFailures(id),
  });
  service.attachTelemetry(new ObserverChain([status, telemetry]));

  const host: ExtensionHost = { health: () => status.report() };
  const extensions = new Map<string, Extension>();
  for (const id of config.service.extensions) {
    const c = config.extensions.get(id);
    if (!c) throw new Error(`extension ${id} is listed in service.extensions but not defined`);
    const ctx: ExtensionContext = { id, logger: logger.child({ 'component.id': id, 'component.kind': 'extension' }), host };
    extensions.set(id, c.factory.create(c.config, ctx) as Extension);
  }

  const started: Array<[string, Extension]> = [];
  const stop = async (): Promise<void> => {
    for (const [id, e] of started.splice(0).reverse()) {
      status.setExtension(id, 'StatusStopping');
      try {
        await e.shutdown();
      } catch (error) {
        logger.warn({ err: error, 'component.id': id, 'component.kind': 'extension' }, `extension ${id}: shutdown failed`);
      }
      status.setExtension(id, 'StatusStopped');
    }
    await telemetry.shutdown();
  };

  try {
    await telemetry.start();
    for (const [id, e] of extensions) {
      status.setExtension(id, 'StatusStarting');
      try {
        await e.start();
      } catch (error) {
        status.setExtension(id, 'StatusPermanentError', error);
        throw error;
      }
      started.push([id, e]);
      status.setExtension(id, 'StatusOK');
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { status, telemetry, extensions, shutdown: stop };
}
