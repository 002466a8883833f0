/** Reads a Hugging Face model directory: its config files into a ModelSpec, its weights into a Checkpoint. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../errors.js';
import { Checkpoint } from '../formats/checkpoint.js';
import { type ModelSpec, parseModelSpec } from './spec.js';
import { type BoundCheckpoint, bindCheckpoint } from './tensors.js';

function readJson(file: string, required: boolean): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      hint: required ? 'a model directory needs the config.json that came with the weights' : undefined,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ConfigError(`${file}: is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** Reads config.json and its companions in `dir` into a ModelSpec. */
export function readModelSpec(dir: string): ModelSpec {
  const template = path.join(dir, 'chat_template.jinja');
  return parseModelSpec({
    config: readJson(path.join(dir, 'config.json'), true),
    generationConfig: readJson(path.join(dir, 'generation_config.json'), false),
    tokenizerConfig: readJson(path.join(dir, 'tokenizer_config.json'), false),
    chatTemplateFile: fs.existsSync(template) ? fs.readFileSync(template, 'utf8') : undefined,
    source: path.join(dir, 'config.json'),
  });
}

export interface ModelFiles {
  readonly dir: string;
  readonly spec: ModelSpec;
  readonly checkpoint: Checkpoint;
  readonly bound: BoundCheckpoint;
}

/** Opens a model directory (or a .safetensors file with config.json beside it): headers only. */
export function openModel(target: string): ModelFiles {
  if (!fs.existsSync(target)) {
    throw new ConfigError(`${target}: no such file or directory`, { hint: 'give the path of a Hugging Face model directory (config.json, *.safetensors, tokenizer.json)' });
  }
  const dir = fs.existsSync(target) && fs.statSync(target).isFile() ? path.dirname(target) : target;
  const spec = readModelSpec(dir);
  const checkpoint = Checkpoint.open(target);
  try {
    return { dir, spec, checkpoint, bound: bindCheckpoint(spec, checkpoint) };
  } catch (e) {
    checkpoint.close();
    throw e;
  }
}
