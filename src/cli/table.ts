/** Plain-text tables for batch summaries: columns padded to their widest cell, numbers right-aligned. */

/**
 * Formats rows under a header; a column whose cells all look numeric is right-aligned.
 *
 * @example
 * formatTable(['file', 'bytes'], [['a.png', '123']]) // 'file   bytes\na.png    123\n'
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^[-+]?[\d.,%x× ]+$|^-$|^n\/a$/.test(r[i] ?? '')));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/**
 * Bytes in a short human form.
 *
 * @example
 * formatBytes(32117) // '31.4 KiB'
 */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/**
 * `a` as a percentage of `b`, or '-' when either is missing.
 *
 * @example
 * percentOf(25, 100) // '25.0%'
 */
export function percentOf(a: number | null | undefined, b: number | null | undefined): string {
  return a == null || b == null || b === 0 ? '-' : `${((100 * a) / b).toFixed(1)}%`;
}
