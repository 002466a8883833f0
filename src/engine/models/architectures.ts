/** The architecture for each model family. */
import type { Architecture } from './forward.js';
import { gemma3 } from './gemma3.js';
import { llama } from './llama.js';
import { qwen2 } from './qwen2.js';
import type { Family } from './spec.js';

export const ARCHITECTURES: Record<Family, Architecture> = { gemma3, qwen2, llama };
