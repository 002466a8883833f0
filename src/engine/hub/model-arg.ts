/**
 * A command's model argument: a path (as before), or a Hub model name (`org/name`, `org/name@rev`)
 * that is not an existing path, which names its snapshot in the Hugging Face cache. Nothing here
 * touches the network: a model not in the cache is an error naming the `unicorn pull` to run.
 */
import * as fs from 'node:fs';
import { findSnapshot } from './cache.js';
import { hubCacheDir } from './env.js';
import { isRepoRef, parseRepoRef } from './repo-id.js';

/** The directory (or file) `arg` names: itself when it exists or is not written as a model name, else the cached snapshot. */
export function resolveModelArg(arg: string, cacheDir: string = hubCacheDir()): string {
  if (fs.existsSync(arg) || !isRepoRef(arg)) return arg;
  return findSnapshot(cacheDir, parseRepoRef(arg)).dir;
}
