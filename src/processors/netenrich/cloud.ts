/**
 * `cloud` (like the Collector's resourcedetection): where this host runs —
 * `cloud.provider`, `cloud.platform`, `cloud.region`, `cloud.availability_zone`,
 * `cloud.account.id`, `host.id`, `host.type` (and `host.name`, `host.image.id`,
 * `azure.resourcegroup.name` where the provider says) — from the instance
 * metadata service of AWS (IMDSv2), GCP or Azure (./cloud/detectors.ts), or
 * written in the config (`attributes`), added to every measurement.
 *
 * Detection runs once, at start: every detector in `detectors` at once, all
 * cut off at `timeout`, so start-up waits at most `timeout`. The default,
 * `auto`, asks only the metadata service of the cloud the machine's firmware
 * names (./cloud/dmi.ts: a few files under /sys/class/dmi/id, no network);
 * on a machine that is not a cloud VM nothing is asked and start-up does not
 * wait at all. For each
 * attribute the first detector in `detectors` order that found it wins;
 * `attributes` from the config win over detection. Nothing found is not an
 * error: the processor then adds only the configured attributes and logs
 * why each detector found nothing. Existing attributes of a measurement are
 * replaced when `override` is true (as in the Collector), kept otherwise.
 *
 * The `zone` processor later in the pipeline takes `cloud.availability_zone`
 * as the zone of the local end of every flow.
 */
import type { Logger } from 'pino';
import { ConfigError } from '../../config/errors';
import { childPath } from '../../config/location';
import { describeSchema, validateObject, type Schema, type SchemaValue } from '../../config/schema';
import type { MetricsProcessor, ProcessorFactory } from '../../pipeline/component';
import { relabeled, type FlowAttributes, type Measurement, type MeasurementBatch } from '../../pipeline/measurements';
import type { LogBatch } from '../../pipeline/logs';
import { throwIfErrors, withMeasurements } from '../common';
import { enrichLogRecords } from './logs';
import { DEFAULT_METADATA_ENDPOINT, detectCloud, DETECTOR_NAMES, type CloudAttributes, type DetectionResult, type DetectorName } from './cloud/detectors';
import { cloudFromDmi } from './cloud/dmi';

const endpointOption = (provider: string) =>
  ({
    type: 'string',
    default: DEFAULT_METADATA_ENDPOINT,
    description: `Base URL of the ${provider} instance metadata service (http only).`,
    check: (v: string) => (/^http:\/\/[^/]+\/?$/.test(v) ? undefined : 'must be http://host[:port] (no path)'),
  }) as const;

const cloudSchema = {
  detectors: {
    type: 'string[]',
    default: ['auto'],
    description:
      'Metadata services to ask, among ec2, gcp, azure, and auto: the one of the cloud the machine\'s firmware names (DMI: /sys/class/dmi/id), none on a machine that is not a cloud VM (nothing is asked, start-up does not wait). All are asked at once; for each attribute the first in this order that found it wins. [] asks none (only attributes).',
  },
  timeout: {
    type: 'duration',
    default: '2s',
    description: 'How long detection may take in all (start-up waits at most this long). A metadata service answers in milliseconds; this only bounds the wait where there is none.',
  },
  override: {
    type: 'boolean',
    default: true,
    description: 'Replace attributes a measurement already has with the detected ones (false: keep them).',
  },
  attributes: {
    type: 'map<string,string>',
    default: {},
    description: 'Attributes to set instead of (or on top of) detection, e.g. {cloud.provider: aws, cloud.region: us-east-1, cloud.availability_zone: us-east-1a}. They win over detected values.',
  },
  endpoints: {
    type: 'object',
    description: 'Where each metadata service is.',
    schema: {
      ec2: endpointOption('AWS EC2 (IMDSv2)'),
      gcp: endpointOption('GCP Compute Engine'),
      azure: endpointOption('Azure (IMDS)'),
    },
  },
} as const satisfies Schema;

type RawCloudConfig = SchemaValue<typeof cloudSchema>;
export type DetectorChoice = DetectorName | 'auto';
export type CloudConfig = Omit<RawCloudConfig, 'detectors'> & { readonly detectors: DetectorChoice[] };
const CHOICES: readonly string[] = [...DETECTOR_NAMES, 'auto'];

export function validateCloudConfig(raw: unknown, path: string): CloudConfig {
  const v = validateObject(raw, path, cloudSchema);
  const errors: ConfigError[] = [];
  const seen = new Set<string>();
  v.detectors.forEach((d, i) => {
    if (!CHOICES.includes(d)) errors.push(new ConfigError(childPath(childPath(path, 'detectors'), String(i)), `unknown detector "${d}" (known: ${CHOICES.join(', ')})`));
    else if (seen.has(d)) errors.push(new ConfigError(childPath(childPath(path, 'detectors'), String(i)), `detector "${d}" is listed twice`));
    seen.add(d);
  });
  throwIfErrors(errors, path);
  return { ...v, detectors: v.detectors as DetectorChoice[] };
}

/** The detectors to run: `auto` becomes the one DMI names (or none), duplicates go. */
export function resolveDetectors(choices: readonly DetectorChoice[], dmi: () => DetectorName | undefined = () => cloudFromDmi()): DetectorName[] {
  const out: DetectorName[] = [];
  for (const c of choices) {
    const d = c === 'auto' ? dmi() : c;
    if (d !== undefined && !out.includes(d)) out.push(d);
  }
  return out;
}

/** Detections in flight or done, by config: pipelines listing the same `cloud` ask once. */
const detections = new Map<string, Promise<DetectionResult>>();

function detectOnce(detectors: DetectorName[], config: CloudConfig): Promise<DetectionResult> {
  const key = JSON.stringify([detectors, config.endpoints, config.timeout]);
  let p = detections.get(key);
  if (!p) {
    p = detectCloud(detectors, config.endpoints, config.timeout);
    detections.set(key, p);
    // Only a success is kept: a metadata service that was down is asked again at the next start (reload).
    void p.then((r) => {
      if (r.found.length === 0) detections.delete(key);
    });
  }
  return p;
}

export class CloudProcessor implements MetricsProcessor {
  private attributes: CloudAttributes = {};
  private readonly outputs = new WeakMap<FlowAttributes, FlowAttributes>();
  /** What detection found (after start). */
  detection?: DetectionResult;

  constructor(
    readonly id: string,
    readonly config: CloudConfig,
    private readonly logger?: Logger,
    /** Which cloud the firmware names (tests give their own). */
    private readonly dmi: () => DetectorName | undefined = () => cloudFromDmi(),
  ) {
    this.attributes = { ...config.attributes };
  }

  /** The detectors start() runs (after resolving `auto`). */
  get detectors(): DetectorName[] {
    return resolveDetectors(this.config.detectors, this.dmi);
  }

  /** The attributes added to every measurement. */
  get cloudAttributes(): Readonly<CloudAttributes> {
    return this.attributes;
  }

  async start(): Promise<void> {
    const detectors = this.detectors;
    if (detectors.length === 0 && this.config.detectors.includes('auto')) {
      this.logger?.debug(`${this.id}: the firmware (DMI) names no cloud: no metadata service asked`);
    }
    if (detectors.length > 0) {
      const r = await detectOnce(detectors, this.config);
      this.detection = r;
      this.attributes = { ...r.attributes, ...this.config.attributes };
      if (r.found.length > 0) this.logger?.info({ detectors: r.found, attributes: this.attributes }, `${this.id}: running on ${this.attributes['cloud.provider'] ?? r.found.join(', ')}`);
      else this.logger?.info({ failures: r.failures }, `${this.id}: no instance metadata service answered; adding only the configured attributes`);
    }
  }

  async shutdown(): Promise<void> {}

  process(batch: MeasurementBatch): MeasurementBatch {
    if (Object.keys(this.attributes).length === 0) return batch;
    const out: Measurement[] = batch.measurements.map((m) => {
      let attributes = this.outputs.get(m.attributes);
      if (attributes === undefined) {
        attributes = this.config.override ? { ...m.attributes, ...this.attributes } : { ...this.attributes, ...m.attributes };
        this.outputs.set(m.attributes, attributes);
      }
      return relabeled(m, attributes);
    });
    return withMeasurements(batch, out);
  }

  /** In a logs pipeline: the same attributes on every record. */
  processLogs(batch: LogBatch): LogBatch {
    if (Object.keys(this.attributes).length === 0) return batch;
    return enrichLogRecords(batch, (a) => (this.config.override ? { ...a, ...this.attributes } : { ...this.attributes, ...a }), false);
  }
}

export const cloudProcessorFactory: ProcessorFactory<CloudConfig> = {
  kind: 'processor',
  type: 'cloud',
  stability: 'alpha',
  signals: ['metrics', 'logs'],
  options: describeSchema(cloudSchema),
  defaultConfig: () => validateCloudConfig(undefined, ''),
  validate: validateCloudConfig,
  create: (config, ctx) => new CloudProcessor(ctx.id, config, ctx.logger),
};
