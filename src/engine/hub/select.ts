/**
 * Which files of a repo unicorn downloads: the safetensors weights (the shards its index names, or
 * every top-level .safetensors file when there is no index), the index, config.json,
 * generation_config.json, and the tokenizer and chat-template files. Never by default: *.bin,
 * *.gguf, *.pth, or anything in a folder (original/, onnx/...). A multimodal Gemma 3 gets all its
 * shards, since they hold both the text model and the vision tower. --include adds files, --exclude
 * takes them away; both are fnmatch patterns on the path, as huggingface_hub's allow/ignore_patterns.
 */

/** The small files unicorn reads beside the weights. */
export const MODEL_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.jinja',
  'chat_template.json',
  'special_tokens_map.json',
  'added_tokens.json',
] as const;

/** fnmatch as huggingface_hub applies it: `*` matches across `/`, `?` one character, `[...]` a class; a pattern ending in `/` means the folder's contents. */
export function globToRegExp(pattern: string): RegExp {
  const p = pattern.endsWith('/') ? `${pattern}*` : pattern;
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = p.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let body = p.slice(i + 1, end).replace(/\\/g, '\\\\');
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

const matchesAny = (file: string, patterns: readonly RegExp[]) => patterns.some((p) => p.test(file));

/** The index of the weights, if the repo has one (model.safetensors.index.json first). */
export function weightIndexFile(files: readonly string[]): string | undefined {
  const indexes = files.filter((f) => !f.includes('/') && f.endsWith('.safetensors.index.json'));
  return indexes.find((f) => f === 'model.safetensors.index.json') ?? indexes[0];
}

/**
 * The files to download, in the repo's order. `shards` are the files the weight index names (read
 * from the index before this is called); without an index every top-level .safetensors file is a shard.
 */
export function selectFiles(
  files: readonly string[],
  o: { include?: readonly string[]; exclude?: readonly string[]; shards?: ReadonlySet<string> } = {},
): string[] {
  const include = (o.include ?? []).map(globToRegExp);
  const exclude = (o.exclude ?? []).map(globToRegExp);
  const index = weightIndexFile(files);
  const wanted = (f: string): boolean => {
    if (f.includes('/')) return false;
    if ((MODEL_FILES as readonly string[]).includes(f)) return true;
    if (index !== undefined) return f === index || (o.shards?.has(f) ?? false);
    return f.endsWith('.safetensors');
  };
  // config.json is always fetched: it says whether unicorn can run the model at all.
  return files.filter((f) => f === 'config.json' || ((wanted(f) || matchesAny(f, include)) && !matchesAny(f, exclude)));
}
