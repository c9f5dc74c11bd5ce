/**
 * Plain-text tables for terminal reports: columns padded to their widest cell, a dashed rule under the
 * header, the first `alignLeft` columns left-aligned and the rest right-aligned (numbers line up), no
 * trailing spaces. (Markdown tables for docs/ are bench/report.ts's `table`.)
 */

export function textTable(headers: string[], rows: string[][], alignLeft = 1): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < alignLeft ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
