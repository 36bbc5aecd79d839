/**
 * Which cloud the machine's firmware says it runs on (SMBIOS/DMI in
 * /sys/class/dmi/id, as cloud-init's ds-identify reads it): no network, a
 * few small files. The embedded default config turns the `cloud` processor on
 * only when this names a cloud, with only that cloud's detector, so that a
 * machine elsewhere never waits for a metadata service that is not there.
 *
 * - AWS: `sys_vendor`/`board_vendor` "Amazon EC2", `bios_vendor`/`bios_version`
 *   containing "amazon" (Xen instances), or /sys/hypervisor/uuid starting with "ec2".
 * - GCP: `product_name` "Google Compute Engine" or `sys_vendor`/`bios_vendor` "Google".
 * - Azure: `chassis_asset_tag` 7783-7084-3265-9085-8269-3286-77 (what Azure sets on every VM).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DetectorName } from './detectors';

const AZURE_ASSET_TAG = '7783-7084-3265-9085-8269-3286-77';

function read(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

export function cloudFromDmi(sysRoot = '/sys'): DetectorName | undefined {
  const dmi = (f: string): string => read(path.join(sysRoot, 'class', 'dmi', 'id', f));
  const sysVendor = dmi('sys_vendor');
  const boardVendor = dmi('board_vendor');
  const biosVendor = dmi('bios_vendor').toLowerCase();
  const biosVersion = dmi('bios_version').toLowerCase();
  const productName = dmi('product_name');
  if (sysVendor === 'Amazon EC2' || boardVendor === 'Amazon EC2' || biosVendor.includes('amazon') || biosVersion.includes('amazon')) return 'ec2';
  if (read(path.join(sysRoot, 'hypervisor', 'uuid')).toLowerCase().startsWith('ec2')) return 'ec2';
  if (productName === 'Google Compute Engine' || sysVendor === 'Google' || biosVendor === 'google') return 'gcp';
  if (dmi('chassis_asset_tag') === AZURE_ASSET_TAG) return 'azure';
  return undefined;
}
