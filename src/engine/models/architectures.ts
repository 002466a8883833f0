/** The architecture for each model family. */
import type { Architecture } from './forward.js';
import { gemma3 } from './gemma3.js';
import { llama } from './llama.js';
import { qwen2 } from './qwen2.js';
import { type Family, architectureOf } from './spec.js';
import { ConfigError } from '../errors.js';

export const ARCHITECTURES: Record<Family, Architecture> = { gemma3, qwen2, llama };

/**
 * Whether unicorn runs the model a config.json describes (its architecture alone, before any weight
 * is read or downloaded): the family it belongs to, or a ConfigError listing what unicorn runs.
 */
export function runnableFamily(config: unknown, source?: string): Family {
  const { family } = architectureOf(config, source);
  if (!Object.hasOwn(ARCHITECTURES, family)) throw new ConfigError(`${source ?? 'config.json'}: the ${family} family has no implementation here`);
  return family;
}
