/** Config loading and validation (OpenTelemetry Collector config shape). */
export { loadConfig, loadConfigFromTexts, splitSetKey, type LoadOptions } from './load';
export {
  defaultConfigObject,
  defaultConfigText,
  EMBEDDED_DEFAULT_CONFIG,
  EMBEDDED_DEFAULT_SOURCE,
  otlpEndpointFromEnv,
} from './default-config';
export {
  validateConfig,
  type PipelineSignal,
  type ServiceConfig,
  type ValidatedComponent,
  type ValidatedConfig,
  type ValidatedPipeline,
} from './validate';
export {
  describeSchema,
  describeValue,
  schemaDefaults,
  validateObject,
  type BooleanOption,
  type DurationOption,
  type EnumOption,
  type NumberOption,
  type ObjectOption,
  type OptionSpec,
  type Schema,
  type SchemaValue,
  type StringListOption,
  type StringMapOption,
  type StringOption,
} from './schema';
export {
  createRegistry,
  parseComponentId,
  resolveRegistry,
  type AnyComponentFactory,
  type ComponentId,
  type ComponentRegistry,
  type ComponentSection,
  type FactoryMap,
  type RegistryInput,
  type ResolvedRegistry,
} from './registry';
export { ConfigError, ConfigErrorList, ConfigValidationError, formatIssue, type ConfigIssue } from './errors';
export { expandEnvReferences, EnvExpansionError } from './env-expand';
export { formatLocation, locate, type SourceLocation } from './location';
export { closestMatch, editDistance } from './suggest';
export { isConfigMap, type ConfigMap, type ConfigScalar, type ConfigValue, type RawConfig } from './types';
