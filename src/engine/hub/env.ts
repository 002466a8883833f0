/**
 * Where the Hugging Face Hub and its cache are, read from the environment the way huggingface_hub
 * reads it (constants.py): HF_ENDPOINT, HF_HUB_CACHE / HUGGINGFACE_HUB_CACHE, HF_HOME, XDG_CACHE_HOME,
 * HF_TOKEN / HUGGING_FACE_HUB_TOKEN / HF_TOKEN_PATH, HF_HUB_OFFLINE.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UnicornError } from '../errors.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

type Env = Readonly<Record<string, string | undefined>>;

function expandHome(p: string): string {
  return p === '~' ? os.homedir() : p.startsWith('~/') ? path.join(os.homedir(), p.slice(2)) : p;
}

function set(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(env: Env = process.env): string {
  const home = set(env, 'HF_HOME');
  if (home !== undefined) return expandHome(home);
  return path.join(expandHome(set(env, 'XDG_CACHE_HOME') ?? '~/.cache'), 'huggingface');
}

/** The hub cache: $HF_HUB_CACHE, else the legacy $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub. */
export function hubCacheDir(env: Env = process.env): string {
  const dir = set(env, 'HF_HUB_CACHE') ?? set(env, 'HUGGINGFACE_HUB_CACHE');
  return dir !== undefined ? expandHome(dir) : path.join(hfHome(env), 'hub');
}

/** The Hub (or a mirror): $HF_ENDPOINT without a trailing slash, checked to be an http(s) URL. */
export function hubEndpoint(env: Env = process.env): string {
  const given = set(env, 'HF_ENDPOINT');
  if (given === undefined) return DEFAULT_ENDPOINT;
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw new UnicornError(`HF_ENDPOINT=${given} is not a URL`, { hint: 'set HF_ENDPOINT to the Hub or a mirror, e.g. https://huggingface.co, or unset it' });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new UnicornError(`HF_ENDPOINT=${given}: only http:// and https:// endpoints are supported`, {
      hint: 'unset HF_ENDPOINT to use https://huggingface.co',
    });
  return given.replace(/\/+$/, '');
}

/** The token file huggingface_hub writes (`huggingface-cli login`): $HF_TOKEN_PATH, else $HF_HOME/token. */
export function tokenPath(env: Env = process.env): string {
  const p = set(env, 'HF_TOKEN_PATH');
  return p !== undefined ? expandHome(p) : path.join(hfHome(env), 'token');
}

/** The access token: $HF_TOKEN, else the legacy $HUGGING_FACE_HUB_TOKEN, else the token file; none is fine. */
export function hubToken(env: Env = process.env): string | undefined {
  const t = set(env, 'HF_TOKEN') ?? set(env, 'HUGGING_FACE_HUB_TOKEN');
  if (t !== undefined) return t.trim();
  try {
    const fromFile = fs.readFileSync(tokenPath(env), 'utf8').trim();
    return fromFile === '' ? undefined : fromFile;
  } catch {
    return undefined;
  }
}

/** HF_HUB_OFFLINE=1 (or true/yes/on, as huggingface_hub's _is_true reads it): no network at all. */
export function hubOffline(env: Env = process.env): boolean {
  return ['1', 'ON', 'YES', 'TRUE'].includes((env['HF_HUB_OFFLINE'] ?? '').toUpperCase());
}
