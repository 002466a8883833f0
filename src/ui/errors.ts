/** The one place errors become output: a clear line for user errors, a stack only with --debug. */
import { UnicornError } from '../engine/errors.js';

export function reportError(e: unknown, debug: boolean): number {
  if (e instanceof UnicornError) {
    process.stderr.write(`unicorn: ${e.message}\n`);
    if (e.hint !== undefined) process.stderr.write(`  fix: ${e.hint}\n`);
    if (debug && e.stack !== undefined) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
  process.stderr.write(`unicorn: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
  if (debug && e instanceof Error && e.stack !== undefined) process.stderr.write(`${e.stack}\n`);
  else process.stderr.write('  (run again with --debug for the stack trace, and please report it)\n');
  return 2;
}
