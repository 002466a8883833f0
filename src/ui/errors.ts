/**
 * The one place errors become output: a clear line for user errors, a stack only with --debug.
 * Messages quote outside input (paths, file contents, a server's reply), so they are printed through
 * escapeControl: an error cannot clear the screen, retitle the terminal or forge another line.
 */
import { UnicornError } from '../engine/errors.js';
import { escapeControl } from '../engine/text/escape.js';

export function reportError(e: unknown, debug: boolean): number {
  if (e instanceof UnicornError) {
    process.stderr.write(`unicorn: ${escapeControl(e.message)}\n`);
    if (e.hint !== undefined) process.stderr.write(`  fix: ${escapeControl(e.hint)}\n`);
    if (debug && e.stack !== undefined) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
  process.stderr.write(`unicorn: internal error: ${escapeControl(e instanceof Error ? e.message : String(e))}\n`);
  if (debug && e instanceof Error && e.stack !== undefined) process.stderr.write(`${e.stack}\n`);
  else process.stderr.write('  (run again with --debug for the stack trace, and please report it)\n');
  return 2;
}
