/** Human-readable numbers for the top-flows table. */

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** 512 → `512 B`, 1536 → `1.5 KiB`, 10 MiB → `10.0 MiB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  if (Math.abs(bytes) < 1024) return `${Math.round(bytes)} B`;
  let value = bytes;
  let unit: string = 'B';
  for (const next of BYTE_UNITS) {
    if (Math.abs(value) < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${value.toFixed(1)} ${unit}`;
}

/** Microseconds, scaled: `850µs`, `12.3ms`, `1.25s`. */
export function formatMicros(us: number): string {
  if (!Number.isFinite(us)) return '-';
  if (us < 1_000) return `${Math.round(us)}µs`;
  if (us < 1_000_000) return `${(us / 1_000).toFixed(1)}ms`;
  return `${(us / 1_000_000).toFixed(2)}s`;
}

/** Integer with thousands separators: 1234567 → `1,234,567`. */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** `addr:port`, `[v6]:port`, or just the address. */
export function formatAddressPort(address: string | undefined, port: string | number | undefined): string {
  if (address === undefined || address === '') return port === undefined ? '-' : `*:${port}`;
  if (port === undefined || port === '') return address;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Cut to `width` characters, marking the cut with `…`. */
export function truncate(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

export interface Column<Row> {
  readonly header: string;
  readonly align: 'left' | 'right';
  readonly maxWidth?: number;
  readonly cell: (row: Row) => string;
}

/** A plain-text table with a header row; widths fit the content. */
export function renderTable<Row>(columns: readonly Column<Row>[], rows: readonly Row[]): string {
  const cells = rows.map((row) => columns.map((c) => truncate(c.cell(row), c.maxWidth ?? Infinity)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => (r[i] as string).length)));
  const line = (values: readonly string[]): string =>
    columns
      .map((c, i) => {
        const width = widths[i] as number;
        const value = values[i] as string;
        return c.align === 'right' ? value.padStart(width) : value.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n');
}
