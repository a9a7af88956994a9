// Terminal output: colors only on a TTY (and never with NO_COLOR), number formatting,
// and tables.
const colors = process.stderr.isTTY && process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: number) => (s: string) => (colors ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = paint(1);
export const dim = paint(2);
export const red = paint(31);
export const yellow = paint(33);
export const green = paint(32);

const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

export const int = (n: number | bigint) => n.toLocaleString('en-US');

export function seconds(s: number): string {
  return s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(1)} s`;
}

/** Columns of numbers right-aligned, the others (`left`, by index) left-aligned. */
export function table(header: string[], rows: string[][], left: number[] = [0]): string {
  const widths = header.map((h, i) => rows.reduce((w, r) => Math.max(w, visible(r[i]).length), h.length));
  const pad = (c: string, i: number) => {
    const fill = ' '.repeat(Math.max(0, widths[i] - visible(c).length));
    return left.includes(i) ? c + fill : fill + c;
  };
  const line = (r: string[]) => r.map(pad).join('  ').trimEnd();
  return [bold(line(header)), ...rows.map(line)].join('\n');
}

/** A one-line status on stderr that the next status or message replaces (TTY only). */
export class Status {
  readonly #tty = process.stderr.isTTY === true;
  #shown = false;

  show(text: string): void {
    if (!this.#tty) return;
    process.stderr.write(`\r\x1b[K${text}`);
    this.#shown = true;
  }

  /** Replaces the status with a line that stays. */
  done(text: string): void {
    this.clear();
    process.stderr.write(`${text}\n`);
  }

  clear(): void {
    if (this.#shown) process.stderr.write('\r\x1b[K');
    this.#shown = false;
  }
}
