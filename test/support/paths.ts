/** Paths to the repository's fixtures, and scratch directories that are removed when the test process exits. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/test/..., fixtures stay in test/fixtures). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');
export const MODEL_FIXTURES = ['gemma3-text', 'gemma3-mm', 'qwen2', 'llama'] as const;
export const modelFixture = (name: string) => path.join(FIXTURES, 'models', name);
export const BIN = path.join(ROOT, 'bin', 'unicorn');

const scratch = new Set<string>();

/** Removes every scratch directory this process made (at exit: a test file is one process). */
function removeScratch(): void {
  for (const dir of scratch) {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
    } catch {
      // a mount point a test could not unmount, say: nothing more to do at exit
    }
  }
  scratch.clear();
}

/**
 * A fresh directory under the system's temporary folder, removed when the test process exits
 * (passing or failing), so the suite leaves no /tmp/unicorn-* behind.
 */
export function scratchDir(prefix: string): string {
  if (scratch.size === 0) process.once('exit', removeScratch);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `unicorn-${prefix}-`));
  scratch.add(dir);
  return dir;
}
