import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { findSnapshot, linkSnapshotFile, listCache, missingModelFiles, repoFolder, writeRef } from '../../../src/engine/hub/cache.js';
import { hubCacheDir, hubEndpoint, hubOffline, hubToken, tokenPath } from '../../../src/engine/hub/env.js';
import { resolveModelArg } from '../../../src/engine/hub/model-arg.js';
import { isRepoRef, parseRepoRef } from '../../../src/engine/hub/repo-id.js';
import { globToRegExp, selectFiles } from '../../../src/engine/hub/select.js';
import { looksLikeModel } from '../../../src/engine/bundled.js';
import { modelFixture, scratchDir } from '../../support/paths.js';

const COMMIT = 'a'.repeat(40);

/** A cache as huggingface_hub documents it (guides/manage-cache): blobs, snapshots of relative links, refs. */
function hfCache(files: string[], dir = scratchDir('hf-cache')): string {
  const folder = path.join(dir, 'models--google--gemma-3-4b-it');
  const src = modelFixture('gemma3-mm');
  fs.mkdirSync(path.join(folder, 'blobs'), { recursive: true });
  fs.mkdirSync(path.join(folder, 'refs'));
  fs.writeFileSync(path.join(folder, 'refs', 'main'), COMMIT);
  for (const [i, f] of files.entries()) {
    const blob = `${i}`.padStart(40, 'b');
    fs.copyFileSync(path.join(src, path.basename(f)), path.join(folder, 'blobs', blob));
    const link = path.join(folder, 'snapshots', COMMIT, f);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.relative(path.dirname(link), path.join(folder, 'blobs', blob)), link);
  }
  return dir;
}

describe('hub environment', () => {
  test('the cache: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub', () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '/a', HUGGINGFACE_HUB_CACHE: '/b', HF_HOME: '/c' }), '/a');
    assert.equal(hubCacheDir({ HUGGINGFACE_HUB_CACHE: '/b', HF_HOME: '/c' }), '/b');
    assert.equal(hubCacheDir({ HF_HOME: '/c', XDG_CACHE_HOME: '/x' }), '/c/hub');
    assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/huggingface/hub');
    assert.equal(hubCacheDir({}), path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '~/models' }), path.join(os.homedir(), 'models'));
  });

  test('the token: HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the token file huggingface_hub writes', () => {
    const home = scratchDir('hf-home');
    assert.equal(tokenPath({ HF_HOME: home }), path.join(home, 'token'));
    assert.equal(hubToken({ HF_HOME: home }), undefined);
    fs.writeFileSync(path.join(home, 'token'), 'hf_from_file\n');
    assert.equal(hubToken({ HF_HOME: home }), 'hf_from_file');
    assert.equal(hubToken({ HF_HOME: home, HUGGING_FACE_HUB_TOKEN: 'hf_legacy' }), 'hf_legacy');
    assert.equal(hubToken({ HF_HOME: home, HF_TOKEN: 'hf_env', HUGGING_FACE_HUB_TOKEN: 'hf_legacy' }), 'hf_env');
    fs.writeFileSync(path.join(home, 'other'), 'hf_other');
    assert.equal(hubToken({ HF_HOME: home, HF_TOKEN_PATH: path.join(home, 'other') }), 'hf_other');
  });

  test('HF_ENDPOINT and HF_HUB_OFFLINE', () => {
    assert.equal(hubEndpoint({}), 'https://huggingface.co');
    assert.equal(hubEndpoint({ HF_ENDPOINT: 'https://hf-mirror.com/' }), 'https://hf-mirror.com');
    assert.throws(() => hubEndpoint({ HF_ENDPOINT: 'ftp://x' }), /only http:\/\/ and https:\/\/ endpoints/);
    assert.throws(() => hubEndpoint({ HF_ENDPOINT: 'not a url' }), /HF_ENDPOINT=not a url is not a URL/);
    for (const v of ['1', 'true', 'YES', 'on']) assert.equal(hubOffline({ HF_HUB_OFFLINE: v }), true);
    for (const v of ['0', '', 'false']) assert.equal(hubOffline({ HF_HUB_OFFLINE: v }), false);
  });
});

describe('model names', () => {
  test('org/name[@revision]', () => {
    assert.deepEqual(parseRepoRef('google/gemma-3-4b-it'), { repo: 'google/gemma-3-4b-it', revision: 'main' });
    assert.deepEqual(parseRepoRef('Qwen/Qwen2.5-0.5B-Instruct@refs/pr/1'), { repo: 'Qwen/Qwen2.5-0.5B-Instruct', revision: 'refs/pr/1' });
    for (const bad of ['gemma', 'a/b/c', '/abs/path', './x/y', 'a/b@', 'a--b/c', 'a/b..c', 'a/b@x y', 'a/.hidden']) {
      assert.equal(isRepoRef(bad), false, bad);
      assert.throws(() => parseRepoRef(bad), /is not a Hugging Face model name/, bad);
    }
  });

  test('a model name is taken for a model, not a prompt, also with @revision', () => {
    assert.equal(looksLikeModel('google/gemma-3-4b-it'), true);
    assert.equal(looksLikeModel('google/gemma-3-4b-it@main'), true);
    assert.equal(looksLikeModel('hello world'), false);
  });
});

describe('file selection', () => {
  const repo = [
    '.gitattributes',
    'README.md',
    'config.json',
    'generation_config.json',
    'model-00001-of-00002.safetensors',
    'model-00002-of-00002.safetensors',
    'model.safetensors.index.json',
    'consolidated.safetensors',
    'pytorch_model.bin',
    'model.gguf',
    'original/consolidated.00.pth',
    'original/params.json',
    'onnx/model.onnx',
    'tokenizer.json',
    'tokenizer.model',
    'tokenizer_config.json',
    'special_tokens_map.json',
    'added_tokens.json',
    'chat_template.jinja',
  ];
  const shards = new Set(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);

  test('by default: the indexed shards, the index, the config and tokenizer files; no .bin, .gguf, .pth, original/, onnx/', () => {
    assert.deepEqual(selectFiles(repo, { shards }), [
      'config.json',
      'generation_config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
      'added_tokens.json',
      'chat_template.jinja',
    ]);
    // Without an index every top-level .safetensors file is a weight file.
    assert.deepEqual(selectFiles(['config.json', 'model.safetensors', 'a/b.safetensors', 'x.bin']), ['config.json', 'model.safetensors']);
  });

  test('--include adds, --exclude removes (fnmatch: * spans /, a trailing / means a folder); config.json always comes', () => {
    const got = selectFiles(repo, { shards, include: ['original/', '*.md'], exclude: ['*.jinja', 'config.json'] });
    assert.ok(got.includes('README.md') && got.includes('original/params.json') && got.includes('original/consolidated.00.pth'));
    assert.ok(!got.includes('chat_template.jinja'));
    assert.ok(got.includes('config.json'));
    assert.equal(globToRegExp('*.safetensors').test('sub/x.safetensors'), true);
    assert.equal(globToRegExp('model-0000[12]-*').test('model-00002-of-00002.safetensors'), true);
    assert.equal(globToRegExp('model-0000[!12]-*').test('model-00002-of-00002.safetensors'), false);
    assert.equal(globToRegExp('a?c').test('abc'), true);
    assert.equal(globToRegExp('a.c').test('abc'), false);
  });
});

describe('the cache, read through the layout huggingface_hub documents', () => {
  test('a snapshot another tool downloaded is found by name and opens as a model directory', () => {
    const cache = hfCache(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const snap = findSnapshot(cache, parseRepoRef('google/gemma-3-4b-it'));
    assert.equal(snap.dir, path.join(cache, 'models--google--gemma-3-4b-it', 'snapshots', COMMIT));
    assert.equal(findSnapshot(cache, parseRepoRef(`google/gemma-3-4b-it@${COMMIT}`)).dir, snap.dir);
    assert.equal(resolveModelArg('google/gemma-3-4b-it', cache), snap.dir);
    const [entry] = listCache(cache);
    assert.equal(entry?.repo, 'google/gemma-3-4b-it');
    assert.deepEqual(entry?.refs, ['main']);
    assert.deepEqual(entry?.missing, []);
    assert.equal(
      entry?.bytes,
      fs.readdirSync(modelFixture('gemma3-mm')).reduce((a, f) => a + fs.statSync(path.join(modelFixture('gemma3-mm'), f)).size, 0),
    );
  });

  test('what is not cached, or cached without all its weights, is an error naming the pull to run', () => {
    const cache = hfCache(['config.json', 'tokenizer.json']);
    assert.throws(
      () => resolveModelArg('google/gemma-3-4b-it', cache),
      (e: Error & { hint?: string }) =>
        /the cached snapshot .* is incomplete \(no \*\.safetensors\)/.test(e.message) &&
        e.hint === 'finish the download with `unicorn pull google/gemma-3-4b-it`',
    );
    assert.throws(
      () => resolveModelArg('google/gemma-3-4b-it@v2', cache),
      (e: Error & { hint?: string }) =>
        /has no snapshot of revision v2/.test(e.message) && e.hint === 'download it with `unicorn pull google/gemma-3-4b-it@v2`',
    );
    assert.throws(
      () => resolveModelArg('org/absent', cache),
      (e: Error & { hint?: string }) =>
        /org\/absent is not a path, and not in the Hugging Face cache/.test(e.message) && e.hint === 'download it with `unicorn pull org/absent`',
    );
    const sharded = scratchDir('hf-sharded');
    fs.writeFileSync(path.join(sharded, 'config.json'), '{}');
    fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'm-1.safetensors', b: 'm-2.safetensors' } }));
    fs.writeFileSync(path.join(sharded, 'm-1.safetensors'), '');
    assert.deepEqual(missingModelFiles(sharded), ['m-2.safetensors']);
  });

  test('an existing path is used as it is, even when it reads like a model name', () => {
    const cwd = process.cwd();
    const dir = scratchDir('hf-path');
    fs.mkdirSync(path.join(dir, 'org', 'name'), { recursive: true });
    process.chdir(dir);
    try {
      assert.equal(resolveModelArg('org/name', scratchDir('empty-cache')), 'org/name');
    } finally {
      process.chdir(cwd);
    }
    assert.equal(resolveModelArg('/no/such/model', scratchDir('empty-cache')), '/no/such/model');
  });

  test('links and refs unicorn writes follow the same rules (relative links into blobs/, refs/<revision> holding the commit)', () => {
    const cache = scratchDir('hf-write');
    const folder = repoFolder(cache, 'org/m');
    fs.mkdirSync(path.join(folder, 'blobs'), { recursive: true });
    fs.writeFileSync(path.join(folder, 'blobs', 'e1'), 'x');
    linkSnapshotFile(folder, COMMIT, 'sub/dir/f.json', 'e1');
    linkSnapshotFile(folder, COMMIT, 'sub/dir/f.json', 'e1');
    assert.equal(fs.readlinkSync(path.join(folder, 'snapshots', COMMIT, 'sub', 'dir', 'f.json')), path.join('..', '..', '..', '..', 'blobs', 'e1'));
    writeRef(folder, 'refs/pr/1', COMMIT);
    writeRef(folder, COMMIT, COMMIT);
    assert.equal(fs.readFileSync(path.join(folder, 'refs', 'refs', 'pr', '1'), 'utf8'), COMMIT);
    assert.equal(fs.readdirSync(path.join(folder, 'refs')).join(), 'refs');
  });
});
