/** Reads a Hugging Face model directory: its config files into a ModelSpec, its weights into a Checkpoint. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../errors.js';
import { Checkpoint } from '../formats/checkpoint.js';
import { FileError, kindOf, pathProblem, readRegularFile } from '../formats/files.js';
import { type ModelSpec, parseModelSpec } from './spec.js';
import { type BoundCheckpoint, bindCheckpoint } from './tensors.js';

/** Where a model is looked for: a directory, or a .safetensors file with config.json beside it. */
const MODEL_HINT = 'give the path of a Hugging Face model directory (config.json, *.safetensors, tokenizer.json)';

function readJson(file: string, required: boolean): unknown {
  let text: string;
  try {
    text = readRegularFile(file);
  } catch (e) {
    if (!(e instanceof FileError)) throw e;
    if (!required && e.code === 'ENOENT') return undefined;
    throw new ConfigError(e.message, {
      hint: required ? 'a model directory needs the config.json that came with the weights' : undefined,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ConfigError(`${file}: is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

function readText(file: string): string {
  try {
    return readRegularFile(file);
  } catch (e) {
    throw e instanceof FileError ? new ConfigError(e.message) : e;
  }
}

/** Reads config.json and its companions in `dir` into a ModelSpec. */
export function readModelSpec(dir: string): ModelSpec {
  const template = path.join(dir, 'chat_template.jinja');
  return parseModelSpec({
    config: readJson(path.join(dir, 'config.json'), true),
    generationConfig: readJson(path.join(dir, 'generation_config.json'), false),
    tokenizerConfig: readJson(path.join(dir, 'tokenizer_config.json'), false),
    chatTemplateFile: fs.existsSync(template) ? readText(template) : undefined,
    source: path.join(dir, 'config.json'),
  });
}

export interface ModelFiles {
  readonly dir: string;
  readonly spec: ModelSpec;
  readonly checkpoint: Checkpoint;
  readonly bound: BoundCheckpoint;
}

/**
 * The directory a model argument names: the argument itself when it is a directory, the folder of a
 * .safetensors file that has a config.json beside it; anything else (nothing there, a symbolic link
 * loop, another kind of file, a FIFO or a device) is refused in one line saying which it is.
 */
export function modelDirOf(target: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch (e) {
    throw new ConfigError(`${target}: ${pathProblem(e)}`, { hint: MODEL_HINT });
  }
  if (st.isDirectory()) return target;
  if (!st.isFile()) throw new ConfigError(`${target}: is ${kindOf(st)}, not a model directory`, { hint: MODEL_HINT });
  if (!target.endsWith('.safetensors')) throw new ConfigError(`${target}: is a file, not a model directory`, { hint: MODEL_HINT });
  const dir = path.dirname(target);
  if (!fs.existsSync(path.join(dir, 'config.json'))) {
    throw new ConfigError(`${target}: a .safetensors file with no config.json beside it, so not a model unicorn can run`, {
      hint: `\`unicorn inspect ${target}\` lists its tensors; to run it, give the model directory with its config.json`,
    });
  }
  return dir;
}

/** Opens a model directory (or a .safetensors file with config.json beside it): headers only. */
export function openModel(target: string): ModelFiles {
  const dir = modelDirOf(target);
  const spec = readModelSpec(dir);
  const checkpoint = Checkpoint.open(target);
  try {
    return { dir, spec, checkpoint, bound: bindCheckpoint(spec, checkpoint) };
  } catch (e) {
    checkpoint.close();
    throw e;
  }
}
