/**
 * Terminals that do not know their size. A pty made by `script`, a CI runner or `docker exec -t`
 * often reports 0 columns and 0 rows; spinners and the chat UI divide by the width (ora then
 * "clears" infinitely many lines in a synchronous loop: 500 KB/s of escapes, gigabytes of memory,
 * and no turn for a SIGTERM handler). A terminal stream whose size is unknown is treated as 80x24,
 * also after a resize that reports zero again.
 */
import type { WriteStream } from 'node:tty';

export const FALLBACK_COLUMNS = 80;
export const FALLBACK_ROWS = 24;

/** Gives a terminal stream of unknown size (0 or missing columns / rows) the fallback size. */
export function assumeSizeWhereUnknown(stream: NodeJS.WriteStream = process.stdout): void {
  if (stream.isTTY !== true) return;
  const tty = stream as WriteStream;
  const fix = () => {
    if (!(tty.columns > 0)) tty.columns = FALLBACK_COLUMNS;
    if (!(tty.rows > 0)) tty.rows = FALLBACK_ROWS;
  };
  fix();
  tty.on('resize', fix);
}

/** stdout and stderr (the spinners write to stderr, the chat UI to stdout). */
export function assumeTerminalSizes(): void {
  assumeSizeWhereUnknown(process.stdout);
  assumeSizeWhereUnknown(process.stderr);
}
