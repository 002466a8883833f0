/**
 * The one progress spinner of the commands: on stderr; animated only on a terminal (ora draws
 * nothing off one and prints just the final ✔ / ✖ line); silent altogether under --json, so that
 * stdout and stderr carry only the JSON and real errors.
 */
import ora, { type Ora } from 'ora';

export function spinner(text: string, opts: { json?: boolean } = {}): Ora {
  return ora({ text, stream: process.stderr, isSilent: opts.json === true }).start();
}
