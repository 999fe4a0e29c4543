// Plain-text tables for the CLI's human output (--json prints the admin API's shapes instead).

/** Columns padded to their widest cell; the first column left-aligned (names), the rest right-aligned (numbers). */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const COLUMNS = ['requests', 'errors', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'cache_write_tokens', 'reasoning_tokens', 'cost'] as const;

/** `token360 usage --summary`: the summary as presented by the admin API (admin/present.ts), a row per group and a total. */
export function usageSummaryTable(s: Record<string, unknown>): string {
  const cells = (r: Record<string, unknown>): string[] => COLUMNS.map((c) => String(r[c]));
  const data = s['data'] as Record<string, unknown>[];
  const rows = data.map((r) => [String(r['group']), ...cells(r)]);
  rows.push(['total', ...cells(s['total'] as Record<string, unknown>)]);
  const header = [String(s['group_by']), 'requests', 'errors', 'prompt', 'completion', 'cached', 'cache_write', 'reasoning', 'cost_usd'];
  return `usage from ${String(s['from'])} to ${String(s['to'])}\n${table(header, rows)}`;
}
