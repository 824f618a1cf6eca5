/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal: piped or captured
 * output (CI logs, tests, `2> file`) stays free of carriage returns.
 */

/** The stream the bar draws on; `isTTY` and `columns` as on Node's process.stderr. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface Progress {
  /** One more item done (`failed` when it failed). */
  tick(label: string, failed?: boolean): void;
  /** Clears the bar. */
  done(): void;
}

/**
 * A progress bar over `total` items, or a no-op when `stream` is not a TTY.
 *
 * @example
 * const bar = progressBar(process.stderr, paths.length, 'encode')
 * bar.tick('kodim01.png'); bar.done()
 */
export function progressBar(stream: ProgressStream, total: number, title: string): Progress {
  if (!stream.isTTY) return { tick() {}, done() {} };
  let done = 0;
  let failed = 0;
  const draw = (label: string) => {
    const width = Math.max(10, Math.min(30, (stream.columns ?? 80) - 60));
    const filled = Math.round((done / total) * width);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
    const fail = failed ? `, ${failed} failed` : '';
    const line = `${title} [${bar}] ${done}/${total}${fail} ${label}`;
    // \r and erase-line redraw in place; the label is cut to the terminal's width.
    stream.write(`\r\x1b[2K${line.slice(0, (stream.columns ?? 80) - 1)}`);
  };
  draw('');
  return {
    tick(label, isFailure = false) {
      done++;
      if (isFailure) failed++;
      draw(label);
    },
    done() {
      stream.write('\r\x1b[2K');
    },
  };
}
