/** Model names on the Hub: `org/name` with an optional `@revision` (a branch, a tag or a commit). */
import { UnicornError } from '../errors.js';

export interface RepoRef {
  /** org/name, as the Hub spells it. */
  readonly repo: string;
  /** The revision asked for: a branch, a tag, a commit; `main` when none was given. */
  readonly revision: string;
}

/** huggingface_hub's validate_repo_id: letters, digits, `-`, `_`, `.`; no `--` or `..`; at most 96 characters. */
const PART = /^[A-Za-z0-9][\w.-]*$/;

function validPart(p: string): boolean {
  return PART.test(p) && !p.includes('--') && !p.includes('..') && !p.endsWith('.') && !p.endsWith('-');
}

/** Whether `arg` is written as a Hub model name (`org/name` or `org/name@rev`), whatever the file system holds. */
export function isRepoRef(arg: string): boolean {
  const at = arg.indexOf('@');
  const id = at < 0 ? arg : arg.slice(0, at);
  const rev = at < 0 ? 'main' : arg.slice(at + 1);
  const parts = id.split('/');
  return parts.length === 2 && id.length <= 96 && parts.every(validPart) && validRevision(rev);
}

function validRevision(rev: string): boolean {
  return rev.length > 0 && rev.length <= 255 && !/[\s\\~^:?*[\]\x00-\x1f\x7f]/.test(rev) && !rev.split('/').some((s) => s === '' || s === '.' || s === '..');
}

/** Parses `org/name[@revision]`, or says in one line what a model name looks like. */
export function parseRepoRef(arg: string): RepoRef {
  if (!isRepoRef(arg)) {
    throw new UnicornError(`${JSON.stringify(arg)} is not a Hugging Face model name`, {
      hint: 'name it as on its Hub page, org/name, optionally with @revision (a branch, tag or commit): e.g. google/gemma-3-4b-it',
    });
  }
  const at = arg.indexOf('@');
  return at < 0 ? { repo: arg, revision: 'main' } : { repo: arg.slice(0, at), revision: arg.slice(at + 1) };
}

/** A full commit hash (what snapshots are named by). */
export function isCommit(rev: string): boolean {
  return /^[0-9a-f]{40}$/.test(rev);
}

export function refText(r: RepoRef): string {
  return r.revision === 'main' ? r.repo : `${r.repo}@${r.revision}`;
}
