/** Aligned, borderless text tables that fit 100 columns (cli-table3 without the box). */
import Table from 'cli-table3';

const NONE = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ',
};

const WIDTH = 100;

function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, Math.max(0, n - 1))}…`;
}

/** Renders rows under a header; the widest free-text column is clipped so the table fits. */
export function table(head: string[], rows: (string | number)[][], clipColumn = head.length - 1): string {
  const cells = rows.map((r) => r.map(String));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const total = widths.reduce((a, b) => a + b, 0) + 2 * (head.length - 1) + 1;
  const over = total - WIDTH;
  if (over > 0) {
    const w = Math.max(8, (widths[clipColumn] ?? 8) - over);
    for (const r of cells) r[clipColumn] = clip(r[clipColumn] ?? '', w);
  }
  const t = new Table({ head, chars: NONE, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 } });
  for (const r of cells) t.push(r);
  return t
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
}
