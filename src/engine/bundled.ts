/**
 * The model that ships inside the package (models/kjv-tiny): what `run`, `chat` and `serve` use when
 * no model is named. A tiny base model trained by scripts/demo-model/ on the King James Bible.
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolveModelArg } from './hub/model-arg.js';
import { isRepoRef } from './hub/repo-id.js';

export const BUNDLED_MODEL = fileURLToPath(new URL('../../../models/kjv-tiny', import.meta.url));

const BUNDLED_NOTE =
  'no model given: using the bundled kjv-tiny (8.7 M parameters, trained on the King James Bible). It is a tiny base model: ' +
  'it continues text in the style of its corpus; it is not an assistant. Name a model directory or a Hub model (unicorn pull org/name) to use your own.';

/**
 * The model a command was given (a path, or a Hub model name resolved to its cached snapshot), or
 * the bundled one (saying so on stderr) when none was.
 */
export function modelOrBundled(given: string | undefined): string {
  if (given !== undefined) return resolveModelArg(given);
  process.stderr.write(`${BUNDLED_NOTE}\n`);
  return BUNDLED_MODEL;
}

/**
 * Whether a lone argument names a model (an existing path, or something written as a path) rather
 * than a prompt for the bundled model. A Hub model name (`org/name`) is written as a relative path, so it
 * counts too (a prompt without a space and with exactly one `/` is taken for a model).
 */
export function looksLikeModel(arg: string): boolean {
  return fs.existsSync(arg) || /^(\.{0,2}\/|~\/)/.test(arg) || (/^[\w.-]+\/[\w./-]*$/.test(arg) && !/\s/.test(arg)) || isRepoRef(arg);
}
