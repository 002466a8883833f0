/** Small formatting helpers for human-readable command output. */

/** n in steps of 1000 with the first unit that keeps it under 1000, three significant digits. */
function scaled(n: number, units: readonly string[], small: (n: number) => string): string {
  if (n < 1000) return small(n);
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

export function formatBytes(n: number): string {
  return scaled(n, ['KB', 'MB', 'GB', 'TB'], (v) => `${v} B`);
}

export function formatCount(n: number): string {
  return scaled(n, ['K', 'M', 'B', 'T'], String);
}

/** Compact number: 1000000 -> 1e6, 10000 -> 1e4, 500000 -> 5e5, 1.5 -> 1.5. */
export function formatNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) >= 10_000) {
    const e = Math.floor(Math.log10(Math.abs(n)));
    const m = n / 10 ** e;
    if (Number.isInteger(m)) return `${m}e${e}`;
  }
  return String(n);
}

/** Renders rows as left-aligned columns (numbers right-aligned when `right` marks the column). */
export function table(header: readonly string[], rows: readonly (readonly string[])[], right: readonly boolean[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/**
 * JSON that is also safe on a terminal: JSON.stringify escapes C0 controls but leaves DEL, the C1
 * controls (U+009B is a CSI on some terminals) and the Unicode line separators as they are; those
 * become \\u escapes too (the same JSON value).
 */
export function jsonForTerminal(v: unknown, indent?: number): string {
  // eslint-disable-next-line no-control-regex
  return JSON.stringify(v, null, indent).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
