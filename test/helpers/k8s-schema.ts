/**
 * Kubernetes manifests checked against the Kubernetes API schemas, offline,
 * kubeconform-style (strict):
 *
 * - `kubernetes-models` carries the JSON schemas of the Kubernetes OpenAPI
 *   compiled to ajv validators: types, required fields, enums, formats,
 *   int-or-string, for every built-in kind (`new Model(doc).validate()`).
 * - The OpenAPI schemas allow unknown fields (the API server drops them
 *   with a warning), so a typo (`readinesProbe`) would pass. The official
 *   `@kubernetes/client-node` carries every API type's field list
 *   (`getAttributeTypeMap()`, generated from the same OpenAPI): every field
 *   of a manifest, at any depth, must be one of its type's fields.
 *
 * Both packages are ES modules; this repo compiles to CommonJS, so they are
 * loaded with a real dynamic import().
 */

import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../../src/util/paths';

// TypeScript's CommonJS output would turn import() into require(), which cannot load ES modules.
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<Record<string, unknown>>;

export interface Manifest {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  [key: string]: unknown;
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

interface AttributeType {
  name: string;
  baseName: string;
  type: string;
}

interface ClientModel {
  getAttributeTypeMap(): AttributeType[];
}

let clientModels: Record<string, unknown> | undefined;

const NODE_MODULES = path.join(packageRoot(), 'node_modules');
const importFile = (file: string): Promise<Record<string, unknown>> => importEsm(pathToFileURL(file).href);

async function modelFor(apiVersion: string, kind: string): Promise<ModelClass> {
  const parts = apiVersion.includes('/') ? apiVersion.split('/') : [apiVersion];
  const file = path.join(NODE_MODULES, 'kubernetes-models', ...parts, `${kind}.js`);
  if (!existsSync(file)) throw new Error(`kubernetes-models has no ${apiVersion} ${kind}`);
  const model = (await importFile(file))[kind] as ModelClass | undefined;
  if (!model) throw new Error(`kubernetes-models has no ${apiVersion} ${kind}`);
  return model;
}

/** client-node's class name for a kind: apps/v1 DaemonSet → V1DaemonSet, discovery.k8s.io/v1 EndpointSlice → V1EndpointSlice. */
function clientTypeName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop()!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
}

/** Unknown fields of `value` as type `type`, with their paths. */
function unknownFields(value: unknown, type: string, path: string, models: Record<string, unknown>, out: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`, models, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === 'object') for (const [k, v] of Object.entries(value as Record<string, unknown>)) unknownFields(v, map[1]!, `${path}.${k}`, models, out);
    return;
  }
  const model = models[type] as ClientModel | undefined;
  if (!model || typeof model.getAttributeTypeMap !== 'function') return; // string, number, IntOrString, any, Date…
  if (typeof value !== 'object' || Array.isArray(value)) return; // the type validators report it
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const fieldType = fields.get(k);
    if (fieldType === undefined) out.push(`${path}.${k}`);
    else unknownFields(v, fieldType, `${path}.${k}`, models, out);
  }
}

/** Problems of one manifest: schema violations and unknown fields (empty: valid). */
export async function validateManifest(doc: Manifest): Promise<string[]> {
  if (typeof doc.apiVersion !== 'string' || typeof doc.kind !== 'string') return ['apiVersion and kind are required'];
  const problems: string[] = [];
  try {
    const Model = await modelFor(doc.apiVersion, doc.kind);
    new Model(doc).validate();
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  clientModels ??= await importFile(path.join(NODE_MODULES, '@kubernetes', 'client-node', 'dist', 'gen', 'models', 'ObjectSerializer.js'));
  const typeName = clientTypeName(doc.apiVersion, doc.kind);
  if (!clientModels[typeName]) {
    problems.push(`no API type ${typeName} for ${doc.apiVersion} ${doc.kind}`);
  } else {
    const unknown: string[] = [];
    unknownFields(doc, typeName, doc.kind, clientModels, unknown);
    for (const u of unknown) problems.push(`unknown field ${u}`);
  }
  return problems;
}
