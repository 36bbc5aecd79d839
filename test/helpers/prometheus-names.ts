/**
 * The OpenTelemetry Collector's OTLP → Prometheus name translation, written
 * from its documented behaviour (the contrib `prometheus` and
 * `prometheusremotewrite` exporters, pkg/translator/prometheus and its
 * successor prometheus/otlptranslator, translation strategy
 * `UnderscoreEscapingWithSuffixes` = `add_metric_suffixes: true`, the
 * default), so a test can apply it to the OTLP flowtel really emits:
 *
 * - the name is split into tokens on every character outside [a-zA-Z0-9:]
 *   (so `.`, `-` and `_` all separate tokens, and runs collapse);
 * - with suffixes: the unit's Prometheus word (`By` → bytes, `us` →
 *   microseconds, `s` → seconds, …; a unit in braces like `{segment}` and
 *   `1` give none) is appended unless it already is one of the tokens; a
 *   `/x` per-unit appends `per_<x>`; monotonic sums get `total` (moved to
 *   the end); gauges of unit `1` get `ratio`;
 * - tokens are joined with `_`; a leading digit gets a `_` prefix;
 * - without suffixes: only invalid characters become `_`.
 * Histograms are served as `<name>_bucket`, `_sum`, `_count`.
 *
 * Label names: every character outside [a-zA-Z0-9_] becomes `_`; a name
 * that starts with a digit gets `key_`.
 */

export type OtlpMetricType = 'gauge' | 'sum' | 'histogram' | 'exponential_histogram' | 'summary';

export interface OtlpMetricShape {
  readonly name: string;
  readonly unit: string;
  readonly type: OtlpMetricType;
  /** Sums only. */
  readonly monotonic?: boolean;
}

export interface TranslationOptions {
  /** `add_metric_suffixes` (translation_strategy UnderscoreEscapingWithSuffixes). Default true. */
  readonly addMetricSuffixes?: boolean;
  readonly namespace?: string;
}

const UNIT_WORDS: Readonly<Record<string, string>> = {
  d: 'days', h: 'hours', min: 'minutes', s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds',
  By: 'bytes', KiBy: 'kibibytes', MiBy: 'mebibytes', GiBy: 'gibibytes', TiBy: 'tibibytes',
  KBy: 'kilobytes', MBy: 'megabytes', GBy: 'gigabytes', TBy: 'terabytes',
  m: 'meters', V: 'volts', A: 'amperes', J: 'joules', W: 'watts', g: 'grams',
  Cel: 'celsius', Hz: 'hertz', '1': '', '%': 'percent',
};

const PER_UNIT_WORDS: Readonly<Record<string, string>> = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week', mo: 'month', y: 'year' };

const tokens = (s: string): string[] => s.split(/[^a-zA-Z0-9:]+/).filter((t) => t !== '');
const cleanUnit = (s: string): string => tokens(s).join('_');

function unitSuffixes(unit: string): { main: string; per: string } {
  const [mainRaw = '', perRaw = ''] = unit.split('/', 2).map((u) => u.trim());
  const main = mainRaw !== '' && !/[{}]/.test(mainRaw) ? cleanUnit(UNIT_WORDS[mainRaw] ?? mainRaw) : '';
  const perWord = perRaw !== '' && !/[{}]/.test(perRaw) ? cleanUnit(PER_UNIT_WORDS[perRaw] ?? perRaw) : '';
  return { main, per: perWord };
}

/** The Prometheus metric family name the Collector gives an OTLP metric. */
export function collectorMetricName(metric: OtlpMetricShape, options: TranslationOptions = {}): string {
  const withSuffixes = options.addMetricSuffixes ?? true;
  if (!withSuffixes) {
    let name = metric.name.split(/[^a-zA-Z0-9:_]+/).filter((t) => t !== '').join('_');
    if (options.namespace) return `${options.namespace}_${name}`;
    if (/^[0-9]/.test(name)) name = `_${name}`;
    return name;
  }
  let nameTokens = tokens(metric.name);
  const { main, per } = unitSuffixes(metric.unit);
  if (main !== '' && !nameTokens.includes(main)) nameTokens.push(main);
  if (per !== '' && !nameTokens.includes(per)) nameTokens.push('per', per);
  if (metric.type === 'sum' && metric.monotonic) nameTokens = [...nameTokens.filter((t) => t !== 'total'), 'total'];
  if (metric.unit === '1' && metric.type === 'gauge') nameTokens = [...nameTokens.filter((t) => t !== 'ratio'), 'ratio'];
  if (options.namespace) nameTokens.unshift(options.namespace);
  let name = nameTokens.join('_');
  if (/^[0-9]/.test(name)) name = `_${name}`;
  return name;
}

/** The sample names a metric family is served with. */
export function sampleNames(family: string, type: OtlpMetricType): string[] {
  return type === 'histogram' ? [`${family}_bucket`, `${family}_sum`, `${family}_count`] : [family];
}

/** A Prometheus label name for an OTLP attribute key. */
export function collectorLabelName(key: string): string {
  const name = key.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[0-9]/.test(name) ? `key_${name}` : name;
}
