/**
 * Instance metadata clients for the `cloud` processor, one per provider, each
 * speaking its service's protocol:
 *
 * - `ec2` (AWS IMDSv2): `PUT /latest/api/token` with
 *   `X-aws-ec2-metadata-token-ttl-seconds`, then
 *   `GET /latest/dynamic/instance-identity/document` with the token in
 *   `X-aws-ec2-metadata-token`. IMDSv1 (no token) is not used. In a container
 *   on EC2 the token's PUT needs an instance hop limit of 2 or more.
 * - `gcp`: `GET /computeMetadata/v1/instance/?recursive=true`, `/instance/id`
 *   and `/computeMetadata/v1/project/project-id` with `Metadata-Flavor: Google`;
 *   the answer must carry the same header back (anything else is not GCP).
 * - `azure`: `GET /metadata/instance/compute?api-version=2021-12-13&format=json`
 *   with `Metadata: true`.
 *
 * Every endpoint defaults to the link-local address 169.254.169.254 (GCP's
 * `metadata.google.internal` is the same server; the address needs no DNS).
 */
import { httpRequest } from './http';

export type DetectorName = 'ec2' | 'gcp' | 'azure';
export const DETECTOR_NAMES: readonly DetectorName[] = ['ec2', 'gcp', 'azure'];
export const DEFAULT_METADATA_ENDPOINT = 'http://169.254.169.254';

export type CloudAttributes = Record<string, string>;

type Detector = (endpoint: string, signal: AbortSignal) => Promise<CloudAttributes>;

function url(endpoint: string, path: string): string {
  return endpoint.replace(/\/+$/, '') + path;
}

function json(body: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    throw new Error(`${what}: the answer is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: the answer is not a JSON object`);
  return v as Record<string, unknown>;
}

/** Keep the string (or number) fields that are set. */
function put(out: CloudAttributes, key: string, value: unknown): void {
  if (typeof value === 'string' && value !== '') out[key] = value;
  else if (typeof value === 'number' || typeof value === 'bigint') out[key] = String(value);
}

const ec2: Detector = async (endpoint, signal) => {
  const token = await httpRequest(url(endpoint, '/latest/api/token'), {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
    signal,
  });
  if (token.status !== 200 || token.body === '') throw new Error(`IMDSv2 token request answered HTTP ${token.status}`);
  const doc = await httpRequest(url(endpoint, '/latest/dynamic/instance-identity/document'), {
    headers: { 'X-aws-ec2-metadata-token': token.body.trim() },
    signal,
  });
  if (doc.status !== 200) throw new Error(`instance identity document answered HTTP ${doc.status}`);
  const d = json(doc.body, 'instance identity document');
  if (typeof d.instanceId !== 'string') throw new Error('instance identity document has no instanceId');
  const out: CloudAttributes = { 'cloud.provider': 'aws', 'cloud.platform': 'aws_ec2' };
  put(out, 'cloud.region', d.region);
  put(out, 'cloud.availability_zone', d.availabilityZone);
  put(out, 'cloud.account.id', d.accountId);
  put(out, 'host.id', d.instanceId);
  put(out, 'host.type', d.instanceType);
  put(out, 'host.image.id', d.imageId);
  return out;
};

const gcp: Detector = async (endpoint, signal) => {
  const headers = { 'Metadata-Flavor': 'Google' };
  // The instance id is a 64-bit number: read as text (JSON.parse would round it).
  const [instance, id, project] = await Promise.all([
    httpRequest(url(endpoint, '/computeMetadata/v1/instance/?recursive=true&alt=json'), { headers, signal }),
    httpRequest(url(endpoint, '/computeMetadata/v1/instance/id'), { headers, signal }),
    httpRequest(url(endpoint, '/computeMetadata/v1/project/project-id'), { headers, signal }),
  ]);
  for (const r of [instance, id, project]) {
    if (r.status !== 200) throw new Error(`metadata server answered HTTP ${r.status}`);
    if (r.headers['metadata-flavor'] !== 'Google') throw new Error('the answer has no "Metadata-Flavor: Google" header: not a GCP metadata server');
  }
  const d = json(instance.body, 'instance metadata');
  const out: CloudAttributes = { 'cloud.provider': 'gcp', 'cloud.platform': 'gcp_compute_engine' };
  // zone: projects/123456/zones/us-central1-a; machineType: projects/123456/machineTypes/e2-medium
  const zone = typeof d.zone === 'string' ? d.zone.split('/').pop() : undefined;
  put(out, 'cloud.availability_zone', zone);
  if (zone && /-[a-z]$/.test(zone)) out['cloud.region'] = zone.replace(/-[a-z]$/, '');
  put(out, 'cloud.account.id', project.body.trim());
  if (/^\d+$/.test(id.body.trim())) out['host.id'] = id.body.trim();
  put(out, 'host.name', d.name);
  put(out, 'host.type', typeof d.machineType === 'string' ? d.machineType.split('/').pop() : undefined);
  if (out['host.id'] === undefined) throw new Error('instance metadata has no id');
  return out;
};

const azure: Detector = async (endpoint, signal) => {
  const r = await httpRequest(url(endpoint, '/metadata/instance/compute?api-version=2021-12-13&format=json'), {
    headers: { Metadata: 'true' },
    signal,
  });
  if (r.status !== 200) throw new Error(`instance metadata answered HTTP ${r.status}`);
  const d = json(r.body, 'instance metadata');
  if (typeof d.vmId !== 'string') throw new Error('instance metadata has no vmId');
  const out: CloudAttributes = { 'cloud.provider': 'azure', 'cloud.platform': 'azure_vm' };
  put(out, 'cloud.region', d.location);
  put(out, 'cloud.availability_zone', d.zone);
  put(out, 'cloud.account.id', d.subscriptionId);
  put(out, 'host.id', d.vmId);
  put(out, 'host.name', d.name);
  put(out, 'host.type', d.vmSize);
  put(out, 'azure.resourcegroup.name', d.resourceGroupName);
  return out;
};

export const DETECTORS: Readonly<Record<DetectorName, Detector>> = { ec2, gcp, azure };

export interface DetectionResult {
  /** Merged attributes: for each key, the first detector (in the configured order) that found it. */
  readonly attributes: CloudAttributes;
  /** The detectors that answered. */
  readonly found: DetectorName[];
  /** detector → why it found nothing (`timeout after 2s`, `connect ECONNREFUSED ...`). */
  readonly failures: Partial<Record<DetectorName, string>>;
}

/**
 * Ask every detector at once; all are cut off together at `timeoutMs`, so
 * this never takes (much) longer than the timeout.
 */
export async function detectCloud(
  detectors: readonly DetectorName[],
  endpoints: Partial<Record<DetectorName, string>>,
  timeoutMs: number,
): Promise<DetectionResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs);
  try {
    const results = await Promise.allSettled(detectors.map((d) => DETECTORS[d](endpoints[d] ?? DEFAULT_METADATA_ENDPOINT, controller.signal)));
    const attributes: CloudAttributes = {};
    const found: DetectorName[] = [];
    const failures: Partial<Record<DetectorName, string>> = {};
    results.forEach((r, i) => {
      const name = detectors[i] as DetectorName;
      if (r.status === 'fulfilled') {
        found.push(name);
        for (const [k, v] of Object.entries(r.value)) if (attributes[k] === undefined) attributes[k] = v;
      } else {
        failures[name] = r.reason instanceof Error ? r.reason.message : String(r.reason);
      }
    });
    return { attributes, found, failures };
  } finally {
    clearTimeout(timer);
    controller.abort(new Error('detection over'));
  }
}
