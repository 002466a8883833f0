/** Paths to the repository's fixtures and a scratch directory per test file. */
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

export function scratchDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `unicorn-${prefix}-`));
}
